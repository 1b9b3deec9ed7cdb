"""Report bundles: the comparison figures, the runs' tables and one offline index page.

    <out>/index.html                 standalone page: title, date, runs table, every figure
          figures/<name>.<fmt>       each figure of `compare.comparison_figures` in each format
          runs/<run-id>/run.json     each run's record and CSV tables (not the weights)
          runs/<run-id>/*.csv
          summary.csv, summary.json  `compare.summary_rows`

The page loads nothing from the network: CSS is inline, figures are relative links, and each
figure's HTML embeds plotly.js (export.figure_to_html).
"""

from __future__ import annotations

import datetime
import html
import io
import json
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from .. import __version__
from ..export import rows_to_csv, write_atomic, write_figure
from ..formats import REPORT_FORMATS
from ..formats import check_formats as _check_formats
from ..runs import TABLES, Run, inside_run, load_run, run_dir
from .compare import comparison_figures, comparison_findings, run_labels, summary_rows
from .explain import FOLDER as EXPLAIN_FOLDER
from .explain import LENSES, lens_folder, saved_lenses
from .explain import figures as lens_figures
from .explain import load as load_lens

FORMATS = REPORT_FORMATS
STATIC_WIDTH = 1100  # px of PNG/SVG figures (PNG pixels x2): fits the index page's 1200 px column
FIGURE_TITLES = {
    "training_curves": "Training curves (He et al. 2015, Fig. 6)",
    "residual_norms": "Residual branch vs shortcut norms",
    "ratio_heatmap": "||F(x)|| / ||x|| per unit over training",
    "grad_flow": "Gradient flow across depth",
    "grad_flow_profile": "Gradient flow per layer",
    "responses": "Layer responses (He et al. 2015, Fig. 7)",
}
# (summary key, column heading, format) for the page's runs table; the CSV keeps every key.
_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("run", "run", "{}"), ("model", "model", "{}"), ("residual", "shortcuts", "yes/no"), ("depth", "depth", "{}"),
    ("params", "params", "{:,}"), ("macs", "MACs", "{:,}"), ("dataset", "dataset", "{}"), ("steps", "steps", "{:,}"),
    ("batch_size", "batch", "{}"), ("train_loss", "train loss", "{:.4f}"), ("train_error_%", "train error", "{:.2f}%"),
    ("test_error_%", "test error", "{:.2f}%"), ("seconds", "wall time", "{:,.1f} s"), ("status", "status", "{}"),
)
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
figure { margin: 2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure iframe { width: 100%; border: 1px solid #eee; }
figcaption { font-weight: 600; margin-bottom: 0.4rem; }
li.holds { color: #1b5e20; }
li.note { color: #8a5a00; }
.links { font-size: 0.9rem; color: #666; }
"""


def check_formats(formats: Sequence[str] | str) -> list[str]:
    """The report's formats, validated (`export.check_formats` against `FORMATS`)."""
    return _check_formats(formats, REPORT_FORMATS, "report")


def _load_runs(run_paths: Sequence[str | Path]) -> list[Run]:
    """The runs, without weights; the same folder twice counts once.

    Raises:
        ValueError: no runs, a folder that is not a readable run, or two folders with one id.
    """
    if isinstance(run_paths, (str, Path)):
        run_paths = [run_paths]
    runs: dict[Path, Run] = {}
    for given in run_paths:
        path = Path(given)
        key = path.resolve()
        if key in runs:
            continue
        try:
            run = load_run(path, with_model=False)
        except OSError as err:
            raise ValueError(f"run {path} is unreadable: {err.strerror or err}") from None
        except ValueError as err:
            raise ValueError((str(err).strip().splitlines() or [f'run {path} is unreadable'])[0]) from None
        same = next((other for other in runs.values() if other.id == run.id), None)
        if same is not None:
            raise ValueError(f"runs {same.path} and {path} have the same id {run.id!r}")
        runs[key] = run
    if not runs:
        raise ValueError("a report needs at least one run")
    return list(runs.values())


def _static(fig: go.Figure) -> go.Figure:
    """A copy wide enough for its subtitles and side-by-side heat-maps.

    Static exports otherwise get kaleido's 700 px default, which clips the figures' two-line
    subtitles; the HTML versions keep filling the browser window.
    """
    heatmaps = sum(trace.type == "heatmap" for trace in fig.data)
    return go.Figure(fig).update_layout(width=max(STATIC_WIDTH, 250 + 450 * heatmaps))


def _cell(value: Any, fmt: str) -> tuple[str, bool]:
    """(escaped text, is-number) for one table cell."""
    if value is None:
        return "&ndash;", False
    if fmt == "yes/no":
        return ("yes" if value else "no (plain)"), False
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return html.escape(fmt.format(value)), numeric


def _runs_table(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in _COLUMNS) + "<th>files</th>"
    body = []
    for row in rows:
        cells = []
        for key, _, fmt in _COLUMNS:
            text, numeric = _cell(row.get(key), fmt)
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        folder = html.escape(f"runs/{row['id']}", quote=True)
        cells.append(f'<td><a href="{folder}/run.json" title="{html.escape(row["id"], quote=True)}">run.json</a>, '
                     f'<a href="{folder}/metrics.csv">metrics.csv</a></td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _figure_block(name: str, fig: go.Figure, formats: list[str]) -> str:
    title = html.escape(FIGURE_TITLES.get(name, name.replace("_", " ")))
    links = {"html": "interactive (HTML)", "png": "PNG", "svg": "SVG"}
    shown = next((f for f in ("png", "svg") if f in formats), None)
    if shown is not None:
        view = f'<img src="figures/{name}.{shown}" alt="{title}" loading="lazy">'
    else:  # html only: embed the interactive page itself
        # plotly's page sets body height 100% plus the default margin, so it always scrolls a little:
        # room for the margins, and no scroll bar
        height = int(fig.layout.height or 500) + 40
        view = (f'<iframe src="figures/{name}.html" title="{title}" height="{height}" scrolling="no" '
                'loading="lazy"></iframe>')
    files = " &middot; ".join(f'<a href="figures/{name}.{f}">{links[f]}</a>' for f in formats)
    return f'<figure id="{name}">\n<figcaption>{title}</figcaption>\n{view}\n<div class="links">{files}</div>\n</figure>'


def _findings_html(findings: list) -> str:
    """The comparison's findings as a list, the same sentences as the Compare page's."""
    if not findings:
        return "<p>No finding: these runs hold no plain/residual twins or depths to compare.</p>"
    items = "\n".join(f'<li class="{"holds" if f.holds else "note"}">{html.escape(f.text)}</li>' for f in findings)
    return f"<ul>\n{items}\n</ul>"


def _index_html(title: str, rows: list[dict[str, Any]], figures: dict[str, go.Figure], formats: list[str],
                findings: list = ()) -> str:
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    blocks = "\n".join(_figure_block(name, fig, formats) for name, fig in figures.items())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">Made {html.escape(date)} by resnet_explorer {html.escape(__version__)}.
Train loss and error: mean of the last 20% of logged steps; test error: the last evaluation.
Tables: <a href="summary.csv">summary.csv</a>, <a href="summary.json">summary.json</a>.</p>
<h2>Runs</h2>
{_runs_table(rows)}
<h2>What these runs show</h2>
{_findings_html(list(findings))}
<h2>Figures</h2>
{blocks}
</body>
</html>
"""


def explain_figures(runs: Sequence[Run]) -> dict[str, go.Figure]:
    """The figures of every lens (lesions, paths, landscape) saved in any of the runs' folders, runs together.

    Raises:
        ValueError: a saved analysis is damaged (one line naming its folder).
    """
    out: dict[str, go.Figure] = {}
    labels = run_labels(list(runs))
    residual = {label: run.spec.residual for label, run in zip(labels, runs)}
    depth = {label: run.spec.depth for label, run in zip(labels, runs)}
    classes = {label: run.spec.num_classes for label, run in zip(labels, runs)}
    for lens in LENSES:
        results = {}
        for label, run in zip(labels, runs):
            saved = load_lens(run.path, lens)
            if saved is not None:
                results[label] = saved[0]
        if results:
            out.update(lens_figures(lens, results, residual=residual, depth=depth, classes=classes))
    return out


def write_report_files(run_paths: Sequence[str | Path], out: str | Path,
                       formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the report bundle into `out` (see the module docstring); returns every file, index.html last.

    Args:
        run_paths: run folders; several are compared on shared figures, one is shown alone.
        out: the report folder (created; files already there are replaced, others kept).
        formats: figure formats, a subset of ("html", "png", "svg").

    Raises:
        ValueError: an unknown format, or a run folder that is missing or unreadable.
        export.ExportError: PNG/SVG asked for without kaleido and Chromium.
    """
    formats = check_formats(formats)
    runs = _load_runs(run_paths)
    out = Path(out)
    folders = []
    for run in runs:
        try:
            folders.append(run_dir(out / "runs", run.id))
        except ValueError as err:
            raise ValueError(f"run {run.path}: {err}") from None
    rows = summary_rows(runs)
    figures = comparison_figures(runs)
    figures.update(explain_figures(runs))

    written: list[Path] = []
    for name, fig in figures.items():
        stem = out / "figures" / name
        for fmt in formats:  # in the order asked, as write_figure does
            written += write_figure(fig if fmt == "html" else _static(fig), stem, [fmt])
    for run, folder in zip(runs, folders):  # only files inside each run folder: a link out of it is not copied
        for file in ("run.json", *(f"{table}.csv" for table in TABLES)):
            source = inside_run(run.path, file)
            if source.is_file():
                written.append(write_atomic(folder / file, source.read_bytes()))
        for lens in saved_lenses(run.path):  # the saved analyses' tables, as the run folder has them
            for entry in sorted(lens_folder(run.path, lens).iterdir()):
                source = inside_run(run.path, EXPLAIN_FOLDER, lens, entry.name)
                if source.is_file():
                    written.append(write_atomic(folder / EXPLAIN_FOLDER / lens / source.name, source.read_bytes()))
    written.append(write_atomic(out / "summary.csv", rows_to_csv(rows)))
    written.append(write_atomic(out / "summary.json", json.dumps(rows, indent=1)))
    labels = run_labels(runs)
    title = "ResNet Explorer report: " + (labels[0] if len(labels) == 1 else " vs ".join(labels))
    findings = comparison_findings(runs)
    written.append(write_atomic(out / "index.html", _index_html(title, rows, figures, formats, findings)))
    return written


def write_report(run_paths: Sequence[str | Path], out: str | Path, formats: Sequence[str] = FORMATS) -> Path:
    """Write the report bundle into `out` and return the path of its index.html.

    Raises:
        ValueError: an unknown format, or a run folder that is missing or unreadable.
        export.ExportError: PNG/SVG asked for without kaleido and Chromium.
    """
    return write_report_files(run_paths, out, formats)[-1]


def report_zip(run_paths: Sequence[str | Path], formats: Sequence[str] = FORMATS) -> bytes:
    """The report bundle as zip bytes (built in a temporary folder), for a one-click download.

    Raises:
        ValueError, export.ExportError: as `write_report`.
    """
    with tempfile.TemporaryDirectory(prefix="resnet-report-") as tmp:
        root = Path(tmp)
        files = write_report_files(run_paths, root, formats)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(files, key=lambda p: (p.name != "index.html", str(p))):
                entry = zipfile.ZipInfo(path.relative_to(root).as_posix(), time.localtime(path.stat().st_mtime)[:6])
                entry.external_attr = 0o644 << 16  # write_atomic's temp files are 0600; a download is for sharing
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, path.read_bytes())
    return buffer.getvalue()
