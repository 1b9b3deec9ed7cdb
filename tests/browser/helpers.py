"""Shared by the browser tests: what a test does to a page (settle, screenshots, text boxes, navigation).

The fixtures (a served app per test file, Chromium, a page at 1400 px) are in conftest.py.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from playwright.sync_api import Page

from resnet_explorer.ui.serve import chromium_executable

ROOT = Path(__file__).resolve().parents[2]


def chromium_path() -> str:
    path = chromium_executable()
    assert Path(path).is_file(), "Chromium not found: apt-get install chromium (the browser test needs it)"
    return path


def settle(page: Page, timeout: float = 90_000) -> None:
    try:
        page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)
        page.wait_for_timeout(500)
        page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)
    except Exception:
        shot(page, "timeout")  # what the page showed when it never settled
        raise


def no_exception(page: Page) -> None:
    errors = page.locator("[data-testid=stException]")
    assert errors.count() == 0, errors.first.inner_text()


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


TEXT_BOXES = """(plot) => {
    const frame = plot.getBoundingClientRect();
    return [...plot.querySelectorAll('text.annotation-text, text.gtitle')]
        .filter(t => t.textContent.trim())
        .map(t => { const b = t.getBoundingClientRect();
                    return {text: t.textContent, x0: b.left, x1: b.right, y0: b.top, y1: b.bottom,
                            inside: b.left >= frame.left - 1 && b.right <= frame.right + 1}; });
}"""


def text_boxes(page: Page, plot_selector: str) -> list[dict]:
    """Every title and annotation drawn in one plotly figure, with its box on the screen."""
    return page.locator(plot_selector).first.evaluate(TEXT_BOXES)


def overlaps(boxes: list[dict], slack: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes overlap by more than `slack` px both ways."""
    return [(a["text"], b["text"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > slack
            and min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]) > slack]


def cut_labels(page: Page, selector: str) -> list[str]:
    """Texts under `selector` that their box cuts off (shown with an ellipsis or clipped)."""
    return page.locator(selector).evaluate_all(
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)")


def train_on_the_page(page: Page, runs_dir: Path, count: int) -> None:
    """Press Start training with what the form shows and wait until `count` runs are done."""
    from resnet_explorer.runs import list_runs

    page.get_by_role("button", name="Start training").click()
    deadline = time.time() + 240
    while sum(r["status"] == "done" for r in list_runs(runs_dir)) < count:
        assert time.time() < deadline, [r["status"] for r in list_runs(runs_dir)]
        page.wait_for_timeout(500)
    page.wait_for_selector("[data-testid=stMetric]", timeout=60_000)  # the final numbers
    settle(page)
    no_exception(page)


def go_to(page: Page, name: str) -> None:
    """Open a page from the sidebar, as a user does (session state kept)."""
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=name, exact=True).click()
    page.wait_for_url(re.compile(rf"/{name}(\?|$)"), timeout=30_000)
    page.get_by_role("heading", name=name, exact=True).wait_for(timeout=60_000)
    settle(page)
    no_exception(page)


def page_text(page: Page) -> str:
    """The page's text as one line, with the typographic quotes markdown renders turned back into plain ones."""
    text = " ".join(page.locator("[data-testid=stMain]").all_inner_texts()).replace("\n", " ")
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
