"""Figures and tables to files: self-contained HTML, PNG/SVG (kaleido + Chromium), CSV, JSON."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from .formats import FIGURE_FORMATS, STATIC_FORMATS, check_formats  # noqa: F401  (re-exported)

# mkstemp makes 0600 files; written files get the usual permissions instead (read once at import).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
# kaleido renders in one headless Chromium; concurrent calls into it have returned another call's
# figure (seen when the app exported from two sessions at once), so one export at a time.
_KALEIDO_LOCK = threading.Lock()


class ExportError(RuntimeError):
    """A static export could not be made (usually: no Chromium for kaleido)."""


def chromium_path() -> str | None:
    """A Chrome/Chromium kaleido can drive, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@functools.cache
def _start_kaleido_server() -> bool:
    """Keep one kaleido browser running: ~0.5 s per image instead of ~2.5 s when each export starts one.

    Only with a browser present: without one, kaleido's server waits forever instead of raising,
    while the one-shot path raises the clear error `figure_to_image` reports.
    """
    if chromium_path() is None:
        return False
    import kaleido

    kaleido.start_sync_server(mathjax=False, silence_warnings=True)
    return True


def figure_to_html(fig: go.Figure) -> str:
    """A standalone page with plotly.js embedded: it opens without a network."""
    return fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})


EXPORT_WIDTH = 1100  # px: a chart's width on a 1400 px page beside the sidebar, where its labels were laid out


def figure_to_image(fig: go.Figure, fmt: str = "png", scale: float = 2.0) -> bytes:
    """PNG or SVG bytes through kaleido, which drives the system's Chromium.

    Raises:
        ExportError: kaleido or a Chrome/Chromium is missing, with the fix in the message.
    """
    if fmt not in STATIC_FORMATS:
        raise ValueError(f"static format must be one of {STATIC_FORMATS}, got {fmt!r}")
    pio.defaults.mathjax = None  # MathJax would be fetched from a CDN
    try:
        with _KALEIDO_LOCK:
            _start_kaleido_server()
            with warnings.catch_warnings():  # "kopts ignored with a server": expected
                warnings.simplefilter("ignore", UserWarning)
                # a figure without its own width is drawn as wide as the app draws it, not kaleido's 700 px
                return fig.to_image(format=fmt, scale=scale if fmt == "png" else 1,
                                    width=fig.layout.width or EXPORT_WIDTH)
    except Exception as err:  # kaleido raises several types; all mean the same to the user
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(
            f"{fmt.upper()} export needs kaleido and a Chrome/Chromium browser "
            f"(Debian/Ubuntu: apt-get install chromium): {first}"
        ) from err


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def rows_to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=1)


class OutputError(ValueError):
    """An output folder that cannot be written: one line naming it and why."""


def check_output_dir(path: str | Path) -> Path:
    """Create `path` (and its parents) if needed and prove it writable, before any work starts.

    Raises:
        OutputError: it is a file, or it or a parent cannot be created or written (read-only,
            no permission, disk full), naming the path and the reason.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputError(f"output {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        where = Path(err.filename) if err.filename else path
        raise OutputError(f"cannot write to {path}: {reason} ({where})" if where != path
                          else f"cannot write to {path}: {reason}") from None
    return path


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write to a temp file in the same folder, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:  # a failed write() names no file: name the one being replaced
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_figure(fig: go.Figure, stem: str | Path, formats: Sequence[str] = ("html", "png")) -> list[Path]:
    """Write `fig` as `<stem>.<fmt>` for every format; returns the paths written."""
    written = []
    for fmt in formats:
        if fmt == "html":
            data: str | bytes = figure_to_html(fig)
        elif fmt == "json":
            data = fig.to_json()
        else:
            data = figure_to_image(fig, fmt)
        written.append(write_atomic(Path(f"{stem}.{fmt}"), data))
    return written
