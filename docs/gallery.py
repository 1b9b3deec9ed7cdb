"""Screenshots of every page at 1400 px, for the README's gallery: `python docs/gallery.py`.

Starts the app on a scratch runs folder (a short resnet20 run and its plain twin, trained here on
the embedded data), opens each page in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) in a 1400 x 2600 window (Streamlit scrolls inside the page, so the window is the
shot), waits until the page has finished running, and writes `docs/gallery/<page>.png`.
Look at every image before committing it: cut-off text and overlapping labels show there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "gallery"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TRAIN = ["--steps", "60", "--batch-size", "32", "--train-size", "1024", "--test-size", "256", "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(page: Page, extra_ms: int = 1500) -> None:
    """Wait until Streamlit reports the script finished, twice (reruns follow the first paint)."""
    for _ in range(2):
        page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=180_000)
        page.wait_for_timeout(extra_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go (default docs/gallery)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="gallery-runs-"))
    for model in ("resnet20", "plain20"):
        subprocess.run([sys.executable, "-m", "resnet_explorer", "train", "--model", model, *TRAIN, "--out", str(runs)],
                       cwd=ROOT, check=True, capture_output=True)
    port = free_port()
    log = open(runs / "streamlit.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                              cwd=ROOT, env=dict(os.environ, RESNET_EXPLORER_RUNS=str(runs)),
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            shots = [
                ("home", "/", None),
                ("architecture", "/Architecture?model=resnet56", None),
                ("architecture_resnet1202", "/Architecture?model=resnet1202", None),
                ("train", "/Train", None),
                ("inspect", "/Inspect", None),
                ("attribute", "/Attribute", lambda page: page.get_by_role("button", name="Explain").click()),
                ("compare", f"/Compare?runs={','.join(sorted(p.name for p in runs.iterdir() if p.is_dir()))}", None),
            ]
            for name, path, action in shots:
                page = browser.new_context(viewport={"width": 1400, "height": 2600}).new_page()
                page.goto(url + path)
                settle(page)
                if action is not None:
                    action(page)
                    page.wait_for_timeout(1000)
                    settle(page)
                page.screenshot(path=str(args.out / f"{name}.png"))
                print(args.out / f"{name}.png")
                page.context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    main()
