"""`streamlit run app.py` on a free loopback port, for the scripts and tests that drive the app in a browser
(the benchmarks under bench/, docs/gallery.py and tests/browser), and the Chromium flags they share.

    with served_app({"RESNET_EXPLORER_RUNS": str(runs)}, log=runs / "streamlit.log") as app:
        page.goto(app.url + "/Compare")
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: app.py and .streamlit/config.toml live here
# Headless Chromium on a closed network: no GPU, no sandbox (containers), no background fetches.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_executable() -> str:
    """$CHROMIUM, else Debian's chromium on the PATH (apt-get install chromium), else /usr/bin/chromium."""
    return (os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
            or "/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServedApp:
    url: str  # http://127.0.0.1:<port>
    process: subprocess.Popen  # the server (its pid, e.g. to count its CPU time)
    log: Path  # its stdout and stderr


@contextmanager
def served_app(env: Mapping[str, str] | None = None, *, log: str | Path, timeout_s: float = 90.0) -> Iterator[ServedApp]:
    """The app served until the block ends (then terminated, killed if it lingers).

    Args:
        env: variables added to this process's environment (e.g. RESNET_EXPLORER_RUNS).
        log: file for the server's output (a pipe nobody reads would fill up and block the server).
        timeout_s: how long to wait for /_stcore/health.

    Raises:
        RuntimeError: the server did not answer in time; the message ends with its log's last lines.
    """
    port, log = free_port(), Path(log)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                        break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_bytes().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"streamlit did not start on {url}: {tail}")
                time.sleep(0.5)
            yield ServedApp(url, process, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
