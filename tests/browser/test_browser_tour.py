"""The home tour, Attribute (a held-out image), Explain and Compare in headless Chromium, on
one small run trained through the CLI before the server starts. An upload's path through Attribute (what
the model saw, centre-cropped) is AppTest's, in tests/test_app_compare_attribute.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import (
    cut_labels,
    no_exception,
    overlaps,
    settle,
    shot,
    text_boxes,
)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """One small finished run (resnet8, 40 steps on shapes-easy at 16 px) for the pages to show."""
    from resnet_explorer.cli import main

    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "--model", "resnet8", "--dataset", "shapes-easy", "--steps", "40", "--batch-size", "32",
                 "--image-size", "16", "--device", "cpu", "--out", str(root)]) == 0
    return root


def test_home_tour_compare_and_attribute(server, page):
    page.goto(server)
    settle(page)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    no_exception(page)
    assert page.locator(".js-plotly-plot").count() >= 3  # the tour's figures
    shot(page, "home_tour")

    # the run this file's runs folder holds: attribute it
    page.goto(f"{server}/Attribute")
    settle(page)
    no_exception(page)
    page.get_by_role("button", name="Attribute", exact=True).click()
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=running]", timeout=10_000)
    settle(page, timeout=180_000)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    no_exception(page)
    assert page.locator(".js-plotly-plot").count() >= 2  # the grid and the scores
    # at 1400 px the grid's column headers and cell notes do not run into each other or off the figure
    grid = "[data-testid=stTabPanel] .js-plotly-plot"
    boxes = text_boxes(page, grid)
    assert any("Saliency" in b["text"] for b in boxes) or len(boxes) >= 3, boxes
    assert not overlaps(boxes), overlaps(boxes)
    assert all(b["inside"] for b in boxes), [b["text"] for b in boxes if not b["inside"]]
    assert not cut_labels(page, "[data-testid=stDownloadButton] button p, [data-baseweb=tag] span")
    shot(page, "attribute")

    # Explain: lesion the run (a few images, one draw) and read its figure at 1400 px
    page.goto(f"{server}/Explain")
    settle(page)
    no_exception(page)
    page.get_by_role("spinbutton", name="Held-out images").fill("64")
    page.get_by_role("spinbutton", name="Random draws per k").fill("1")
    page.get_by_role("button", name="Run").first.click()
    page.wait_for_selector("[data-testid=stTabPanel] .js-plotly-plot", timeout=120_000)
    settle(page)
    no_exception(page)
    figure = "[data-testid=stTabPanel] .js-plotly-plot"
    boxes = text_boxes(page, figure)
    assert any("Deleting one unit" in b["text"] for b in boxes), boxes
    assert not overlaps(boxes), overlaps(boxes)
    assert all(b["inside"] for b in boxes), [b["text"] for b in boxes if not b["inside"]]
    shot(page, "explain_lesion")

    page.goto(f"{server}/Compare")
    settle(page)
    no_exception(page)
    page.get_by_role("combobox", name="Runs to compare").click()  # pick the first run
    page.get_by_role("option").first.click()
    page.keyboard.press("Escape")
    settle(page)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    no_exception(page)
    assert "runs=" in page.url  # the selection travels in the link
    with page.expect_download(timeout=120_000) as dl:
        page.locator(".st-key-dl_compare_report button").click()
    assert dl.value.suggested_filename == "resnet_explorer_report.zip"
    assert Path(dl.value.path()).read_bytes()[:2] == b"PK"
    shot(page, "compare")
