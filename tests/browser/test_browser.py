"""The running app in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

No skip when Chromium is missing: CI installs it, and a missing browser must fail the run.
Screenshots go to $SCREENSHOT_DIR when set (the README's try-it-yourself step uses them).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from resnet_explorer.ui.serve import CHROMIUM_ARGS, chromium_executable, served_app

ROOT = Path(__file__).resolve().parents[2]


def chromium_path() -> str:
    path = chromium_executable()
    assert Path(path).is_file(), "Chromium not found: apt-get install chromium (the browser test needs it)"
    return path


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
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2400}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()


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

    page.get_by_role("textbox", name="...or type any name").fill("resnet21")
    page.keyboard.press("Enter")
    settle(page)
    expect(page.locator("[data-testid=stAlertContentError]").first).to_contain_text("6n+2")
    no_exception(page)

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


def test_train_default_and_its_twin_claims_only_what_the_runs_show(server, page, runs_dir):
    """The Train page's defaults as a new user meets them: resnet20, then its plain twin one toggle away.
    Both must leave chance, and no page may call their gap the degradation problem, or claim for the
    residual net an advantage that the findings (computed here from the run folders) do not. Compare
    opens on the run just trained, then on it and its twin."""
    from resnet_explorer.compare import RESPONSES_EVAL, comparison_findings, response_tables, run_progress
    from resnet_explorer.findings import gradient_finding, responses_finding
    from resnet_explorer.runs import list_runs, load_run

    page.goto(f"{server}/Train")
    settle(page)
    no_exception(page)
    train_on_the_page(page, runs_dir, 1)  # the defaults, untouched
    expect(page.locator("[data-testid=stCaptionContainer]").filter(has_text="has left chance").first).to_be_visible()
    shot(page, "train_done")
    go_to(page, "Compare")  # opens on the run just trained
    chosen = page.locator(".st-key-compare_runs")  # its chips name the runs chosen
    expect(chosen).to_contain_text("resnet20", timeout=60_000)
    assert "plain20" not in chosen.inner_text()
    go_to(page, "Train")
    page.get_by_text("Train its plain twin instead", exact=True).click()
    settle(page)
    train_on_the_page(page, runs_dir, 2)
    text = page_text(page)
    assert "has left chance" in text and "has not left chance" not in text

    runs = [load_run(r["path"], with_model=False) for r in reversed(list_runs(runs_dir))]
    assert [r.spec.name for r in runs] == ["resnet20", "plain20"]
    progress = run_progress(runs)
    assert not any(p.at_chance for p in progress.values()), progress  # the defaults leave chance

    page.get_by_role("link", name="Inspect this run").click()  # plain20, with resnet20 overlaid as its twin
    settle(page)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    no_exception(page)
    assert page.locator(".js-plotly-plot").count() >= 5
    shot(page, "inspect")
    text = page_text(page)
    assert "degradation" not in text.lower()
    assert "has not left chance" not in text
    labels = {run.label: run for run in reversed(runs)}  # as the page lists them: the run opened, then its twin
    residual = {label: run.spec.residual for label, run in labels.items()}
    grads = gradient_finding({label: run.tables["grad_flow"] for label, run in labels.items()}, residual,
                             run_progress(list(labels.values()), list(labels)))
    assert grads in text  # the sentence the findings give, and only a claim when they make one
    if "carry the gradient back" not in grads:
        assert "carry the gradient back" not in text
    tables, measured = response_tables(labels)
    assert measured == RESPONSES_EVAL
    responses = responses_finding(tables, residual, {label: 20 for label in labels},
                                  run_progress(list(labels.values()), list(labels)), measured)
    assert responses in text
    if "smaller, as He et al. 2015 report" not in responses:
        assert "smaller, as He et al. 2015 report" not in text

    go_to(page, "Compare")  # opens on the pair just trained: the newest and its twin
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    chips = page.locator(".st-key-compare_runs").inner_text()
    assert "plain20" in chips and "resnet20" in chips and chips.index("plain20") < chips.index("resnet20"), chips
    no_exception(page)
    shot(page, "compare_twins")
    alerts = " ".join(page.locator("[data-testid=stAlert]").all_inner_texts()).replace("\n", " ")
    alerts = alerts.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    findings = comparison_findings(runs)
    assert findings and all(f.text in alerts for f in findings)
    assert "not the degradation problem" in alerts
    assert "trains worse than" not in alerts and "degradation problem." not in alerts.replace(
        "not the degradation problem.", "")


def test_home_tour_compare_and_attribute(server, page):
    page.goto(server)
    settle(page)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    no_exception(page)
    assert page.locator(".js-plotly-plot").count() >= 3  # the tour's figures
    shot(page, "home_tour")

    # the Train test above left one run in this server's runs folder: attribute it
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

    # an upload that is not square: the page shows what the model saw, centre-cropped
    page.get_by_text("Upload images").click()
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(ROOT / "tests" / "fixtures" / "wide.png"))
    page.get_by_role("button", name="Attribute", exact=True).click()
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=running]", timeout=10_000)
    settle(page, timeout=180_000)
    no_exception(page)
    expect(page.get_by_role("heading", name="What the model saw")).to_be_visible()
    expect(page.locator("[data-testid=stImage]").first).to_be_visible()
    expect(page.get_by_text("300 x 200 px, scaled and centre-cropped")).to_be_visible()
    shot(page, "attribute_upload")

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
