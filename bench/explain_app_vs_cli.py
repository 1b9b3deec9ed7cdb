"""A lesion study on the Explain page (a real browser, page open and live) against the CLI, in one run.

    python bench/explain_app_vs_cli.py [--model resnet20] [--images 1000] [--draws 5]

1. Trains the model and its plain twin at the degradation preset's budget into a scratch runs folder.
2. CLI: `python -m resnet_explorer lesion RUN --twin --images N --draws D --out TMP`, timed as a whole
   (process start to exit, so torch's import is included, as the app's worker process pays it too).
3. App: `streamlit run app.py` on that runs folder, headless Chromium (Debian's /usr/bin/chromium)
   at 1400 px on the Explain page, the same options typed into the Lesions form, Run clicked, the
   page left open with its live progress; timed from the click until both runs' saved
   `explain/lesion/result.json` have been rewritten.

Prints both times and their ratio (app / CLI; the app's analyses run in a child process, as the
CLI's, so the target is <= 1.15). The machine is shared: read the ratio, not the absolute times.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_explorer.ui.serve import CHROMIUM_ARGS, chromium_executable, served_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = ["--dataset", "shapes-easy", "--image-size", "16", "--no-augment", "--steps", "250", "--batch-size", "64",
          "--warmup", "0.5", "--test-size", "1000", "--probe-every", "0", "--device", "cpu"]


def cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "resnet_explorer", *args], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="explain-bench-"))
    runs = scratch / "runs"
    try:
        residual = Path(cli("train", "--model", args.model, *PRESET, "--runs", str(runs)))
        twin = Path(cli("train", "--model", args.model, "--plain", *PRESET, "--runs", str(runs)))
        saved = [folder / "explain" / "lesion" / "result.json" for folder in (residual, twin)]

        started = time.perf_counter()
        cli("lesion", str(residual), "--twin", "--images", str(args.images), "--draws", str(args.draws),
            "--format", "html", "--out", str(scratch / "cli"))
        cli_seconds = time.perf_counter() - started
        stamps = [p.stat().st_mtime for p in saved]

        with served_app({"RESNET_EXPLORER_RUNS": str(runs)}, log=scratch / "streamlit.log") as served:
            url = served.url
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_executable(),
                                            args=CHROMIUM_ARGS)
                page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
                page.goto(f"{url}/Explain")
                page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=120_000)
                page.wait_for_timeout(1500)
                page.get_by_role("spinbutton", name="Held-out images").fill(str(args.images))
                page.get_by_role("spinbutton", name="Random draws per k").fill(str(args.draws))
                started = time.perf_counter()
                page.get_by_role("button", name="Run").first.click()
                while any(path.stat().st_mtime == stamp for path, stamp in zip(saved, stamps)):
                    if time.perf_counter() - started > 1800:
                        raise TimeoutError("the app's lesion study did not finish in 30 minutes")
                    time.sleep(0.2)
                app_seconds = time.perf_counter() - started
                browser.close()
        print(f"lesion study of {args.model} and its plain twin, {args.images} held-out images, {args.draws} draws per k")
        print(f"CLI {cli_seconds:.1f} s (process start to exit)")
        print(f"app {app_seconds:.1f} s (Run clicked to both results saved, Explain page open and live)")
        print(f"ratio app / CLI: {app_seconds / cli_seconds:.2f} (target <= 1.15)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
