"""Screenshots of every page at 1400 px, for the README's gallery: `python docs/gallery.py`.

Starts the app on a scratch runs folder (a short resnet20 run and its plain twin, trained here on
the embedded data), opens each page in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) in a 1400 x 2600 window (Streamlit scrolls inside the page, so the window is the
shot), waits until the page has finished running, and writes `docs/gallery/<page>.png`.
Look at every image before committing it: cut-off text and overlapping labels show there.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_explorer.ui.serve import CHROMIUM_ARGS, chromium_executable, served_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "gallery"
# `train`'s defaults (250 steps of 64 on shapes-easy at 16 px, the recipe the Train page opens on): nets
# that leave chance, so the Inspect, Attribute and Explain pages have something to show
TRAIN = ["--train-size", "4096", "--test-size", "512", "--device", "cpu"]
EXPLAIN = {"lesion": ["--twin", "--images", "256", "--draws", "2"], "paths": ["--images", "32", "--draws", "3"],
           "landscape": ["--twin", "--dims", "2", "--grid", "11", "--images", "256"]}


def settle(page: Page, extra_ms: int = 1500) -> None:
    """Wait until Streamlit reports the script finished, twice (reruns follow the first paint)."""
    for _ in range(2):
        page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=180_000)
        page.wait_for_timeout(extra_ms)


def profile_resnet20(page: Page) -> None:
    """The Pretrained page's profile of the trained resnet20 on 64 of its held-out images."""
    page.get_by_role("combobox", name="Net", exact=True).click()
    page.get_by_role("option", name="resnet20").first.click()
    settle(page)
    page.get_by_role("radiogroup", name="Images").get_by_text("Held-out images").click()
    page.get_by_role("spinbutton", name="Held-out images (a trained run)").fill("64")
    page.get_by_role("button", name="Profile").click()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go (default docs/gallery)")
    parser.add_argument("--chromium", default=chromium_executable())
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="gallery-runs-"))
    for model in ("resnet20", "plain20"):
        subprocess.run([sys.executable, "-m", "resnet_explorer", "train", "--model", model, *TRAIN, "--runs", str(runs)],
                       cwd=ROOT, check=True, capture_output=True)
    # the Explain page's three lenses, kept in the runs' folders (their CSVs and figures go to a scratch folder)
    residual = next(p for p in runs.iterdir() if "resnet20" in p.name)
    scratch = Path(tempfile.mkdtemp(prefix="gallery-explain-"))
    for lens, options in EXPLAIN.items():
        subprocess.run([sys.executable, "-m", "resnet_explorer", lens, str(residual), *options, "--format", "html",
                        "--out", str(scratch / lens)], cwd=ROOT, check=True, capture_output=True)
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with served_app({"RESNET_EXPLORER_RUNS": str(runs)}, log=runs / "streamlit.log") as served:
            url = served.url
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                shots = [
                    ("home", "/", None),
                    ("architecture", "/Architecture?model=resnet56", None),
                    ("architecture_resnet1202", "/Architecture?model=resnet1202", None),
                    ("train", "/Train", None),
                    ("inspect", "/Inspect", None),
                    ("attribute", "/Attribute", lambda page: page.get_by_role("button", name="Attribute", exact=True).click()),
                    ("compare", f"/Compare?runs={','.join(sorted(p.name for p in runs.iterdir() if p.is_dir()))}", None),
                    ("explain_lesions", "/Explain", None),
                    ("explain_paths", "/Explain", lambda page: page.get_by_role("tab", name="Paths").click()),
                    ("explain_landscape", "/Explain", lambda page: page.get_by_role("tab", name="Loss landscape").click()),
                    ("pretrained_profile", "/Pretrained", profile_resnet20),
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
        shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    main()
