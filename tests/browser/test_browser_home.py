"""The running app in headless Chromium: the first visitor's navigation, the home page, the Architecture page
(downloads rendered by kaleido, a 1,202-layer net, an expanded stage's labels at 1400 px).

Screenshots go to $SCREENSHOT_DIR when set (the README's try-it-yourself step uses them).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from .helpers import (
    no_exception,
    overlaps,
    settle,
    shot,
    text_boxes,
)


def test_home_and_architecture(server, page):
    # the server's first visitor opens a page by its URL: Streamlit would route it by the pages/
    # folder (its own sidebar, "app" for the home page) unless the page goes through app.py
    page.goto(f"{server}/Inspect")
    settle(page)
    expect(page.get_by_role("heading", name="Inspect")).to_be_visible()
    expect(page.locator("[data-testid=stSidebarNav]")).to_contain_text("Home")
    assert "app" not in page.locator("[data-testid=stSidebarNav]").inner_text().split()
    no_exception(page)

    page.goto(server)
    settle(page)
    expect(page.get_by_role("heading", name="ResNet Explorer")).to_be_visible()
    no_exception(page)
    nav = page.locator("[data-testid=stSidebarNav]")
    expect(nav).to_contain_text("Home")
    assert "app" not in nav.inner_text().split()  # the entry file's name is not a page title
    shot(page, "home")

    page.get_by_role("link", name="Architecture: block graph").first.click()
    settle(page)
    expect(page.get_by_role("heading", name="Architecture")).to_be_visible()
    # the home page's charts may still be in the DOM: wait for this page's own metrics
    expect(page.locator("[data-testid=stMetric]").filter(has_text="Parameters").first).to_contain_text(
        "269,722", timeout=60_000)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    no_exception(page)
    shot(page, "architecture_resnet20")

    with page.expect_download(timeout=60_000) as dl:
        page.locator(".st-key-dl_graph_csv button").click()
    path = dl.value.path()
    assert Path(path).read_text().startswith("node,kind,stage")
    with page.expect_download(timeout=90_000) as dl:  # rendered on click by kaleido
        page.locator(".st-key-dl_graph_png button").click()
    assert Path(dl.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert dl.value.suggested_filename == "resnet20_graph.png"

    page.get_by_role("textbox", name="...or type any name").fill("resnet1202")
    page.keyboard.press("Enter")
    settle(page)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    no_exception(page)
    assert "19,421,274" in str(page.locator("[data-testid=stMetric]").all_inner_texts())
    shot(page, "architecture_resnet1202")

    # expand layer1 (200 units): its first and last units and a gap are drawn, and no label overlaps another
    page.get_by_role("combobox", name="Expand stages (unit by unit)").click()
    page.get_by_role("option", name="layer1 (200 units)").click()
    page.keyboard.press("Escape")
    settle(page)
    no_exception(page)
    graph = ".st-key-arch_graph .js-plotly-plot"
    page.wait_for_selector(graph, timeout=60_000)
    boxes = text_boxes(page, graph)
    assert any("layer1" in b["text"] for b in boxes) and any("…" in b["text"] for b in boxes), boxes
    assert not overlaps(boxes), overlaps(boxes)
    assert all(b["inside"] for b in boxes), [b["text"] for b in boxes if not b["inside"]]
    shot(page, "architecture_resnet1202_layer1")
