"""The degradation preset in the app (a real browser, page open and live) against the CLI, in one run.

    python bench/app_vs_cli.py [--order cli,app] [--shots DIR]

1. CLI: `python -m resnet_explorer degradation --seeds S --no-weights --runs TMP/cli`, timed as a
   whole (process start to exit).
2. App: `streamlit run app.py` with a fresh runs folder, headless Chromium (Debian's
   /usr/bin/chromium) at 1400 px on the Compare page, the preset's "Train the preset" button
   clicked, the page left open with its live progress and curves; timed from the click until
   every run folder reports a final status.

Prints both times, their ratio (target: app / CLI <= 1.15) and each run's own training seconds
(from run.json) on both sides. The machine is shared: read the ratio, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_explorer.ui.serve import CHROMIUM_ARGS, chromium_executable, served_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_seconds(folder: Path) -> dict[str, float]:
    out = {}
    for f in sorted(folder.glob("*/run.json")):
        info = json.loads(f.read_text())
        out[f"{info['spec_name']} seed {info['seed']}"] = info.get("seconds") or float("nan")
    return out


def cpu_seconds(match) -> float:
    """User + system CPU seconds of the processes whose /proc entry `match(pid, cmdline)` accepts."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if match(int(entry.name), cmd):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return total


def cli(out: Path, seeds: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "resnet_explorer", "degradation", "--seeds", seeds, "--no-weights",
                    "--runs", str(out)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def app(out: Path, seeds: list[int], runs_expected: int, shots: Path | None) -> float:
    from playwright.sync_api import sync_playwright

    with served_app({"RESNET_EXPLORER_RUNS": str(out)}, log=out.parent / "streamlit.log") as served:
        server, url = served.process, served.url
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_executable(),
                                        args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{url}/Compare")
            page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=120_000)
            if seeds != [0]:
                raise SystemExit("the app side clicks the preset with its default seed 0 only")
            def ui_cpu():
                return (cpu_seconds(lambda pid, cmd: pid == server.pid),
                        cpu_seconds(lambda pid, cmd: "chromium" in cmd))

            page.get_by_role("button", name="Train the preset").click()
            started = time.perf_counter()
            server_before, browser_before = ui_cpu()
            while True:
                infos = [json.loads(f.read_text()) for f in out.glob("*/run.json")]
                if len(infos) == runs_expected and all(i.get("status") != "running" for i in infos):
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            server_after, browser_after = ui_cpu()
            print(f"UI CPU while the app trained: streamlit server {server_after - server_before:.1f} s, "
                  f"chromium {browser_after - browser_before:.1f} s (of {elapsed:.0f} s wall)", flush=True)
            if shots:
                page.wait_for_timeout(3000)
                page.screenshot(path=str(shots / "app_vs_cli_compare.png"), full_page=True)
            browser.close()
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", default="cli,app")
    parser.add_argument("--shots", help="save a screenshot of the finished Compare page here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="app_vs_cli_"))
    times = {}
    for side in args.order.split(","):
        folder = tmp / side
        folder.mkdir()
        if side == "cli":
            times["cli"] = cli(folder, "0")
        else:
            times["app"] = app(folder, [0], 4, Path(args.shots) if args.shots else None)
        print(f"{side}: {times[side]:.1f} s; per run: " + ", ".join(
            f"{k} {v:.1f} s" for k, v in run_seconds(folder).items()), flush=True)
    ratio = times["app"] / times["cli"]
    print(f"\napp / CLI = {ratio:.2f} (target <= 1.15): {'ok' if ratio <= 1.15 else 'OVER'}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
