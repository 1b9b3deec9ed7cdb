"""Fixtures of the browser tests: one served app and one Chromium for the file (test_browser.py, whose tests
run in order on one server), a fresh page at 1400 px for each test.

No skip when Chromium is missing: CI installs it, and a missing browser must fail the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from resnet_explorer.ui.serve import CHROMIUM_ARGS, served_app

from .helpers import chromium_path


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def server(tmp_path_factory, runs_dir):
    # one torch thread in the app's training process: it runs beside the other pytest worker's tests on
    # two cores, and two spinning OpenMP threads there took the default run from ~30 s to ~120 s
    # (the defaults leave chance with 1 thread as with 2: bench/train_defaults.py)
    env = {"RESNET_EXPLORER_RUNS": str(runs_dir), "OMP_NUM_THREADS": "1"}
    try:
        with served_app(env, log=tmp_path_factory.mktemp("log") / "streamlit.log") as app:
            yield app.url
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh page; with $BROWSER_TRACE set, a Playwright trace of it is written there (each action and
    its duration: `playwright show-trace FILE`, or read the JSON lines of its trace.trace)."""
    context = browser.new_context(viewport={"width": 1400, "height": 2400}, accept_downloads=True)
    trace = os.environ.get("BROWSER_TRACE")
    if trace:
        context.tracing.start(snapshots=False, screenshots=False)
    pg = context.new_page()
    yield pg
    if trace:
        Path(trace).mkdir(parents=True, exist_ok=True)
        context.tracing.stop(path=str(Path(trace) / f"{request.node.name}.zip"))
    context.close()
