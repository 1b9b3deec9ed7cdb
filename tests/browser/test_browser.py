"""The running app in headless Chromium, one server for the whole file (a server's start and its first page
cost ~11 s of CPU, paid once rather than three times), in the order a first visitor meets the pages:

1. Home and Architecture: the first visitor's navigation, the home page, the Architecture page (downloads
   rendered by kaleido, a 1,202-layer net, an expanded stage's labels at 1400 px).
2. The tour's pages on one small run trained through the CLI before the server starts: Attribute (a held-out
   image), Explain and Compare. An upload's path through Attribute (what the model saw, centre-cropped) is
   AppTest's, in tests/test_app_compare_attribute.py.
3. The Train page as a user meets it: a short run of the default model (fewer steps, set in the form), then its
   plain twin one toggle away with the same settings, Inspect and Compare, and every sentence about chance
   and about the twins checked against the findings computed from the run folders. The runs are short on
   purpose: whether the defaults themselves leave chance, on every seed and thread count, is measured by
   bench/train_defaults.py, and tests/test_defaults_measured.py holds the defaults to the config it measured.
   What is checked here is what the pages say about whatever the runs reached: a run at chance is named so,
   and no page claims for it, or for the pair, what the findings do not.

Screenshots go to $SCREENSHOT_DIR when set (the README's try-it-yourself step uses them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from .helpers import (
    cut_labels,
    go_to,
    no_exception,
    overlaps,
    page_text,
    settle,
    shot,
    text_boxes,
    train_on_the_page,
)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """One small finished run (resnet8, 40 steps on shapes-easy at 16 px) for the pages to show."""
    from resnet_explorer.cli import main

    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "--model", "resnet8", "--dataset", "shapes-easy", "--steps", "40", "--batch-size", "32",
                 "--image-size", "16", "--device", "cpu", "--out", str(root)]) == 0
    return root


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
    # the grid and the scores: drawn once the job has ended, by the reruns that follow it (one may come first)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=120_000)
    settle(page)
    no_exception(page)
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


STEPS = 50  # a fifth of the defaults' budget: resnet20 has usually left chance by then, plain20 not always


def set_steps(page) -> None:
    page.get_by_role("spinbutton", name="Steps", exact=True).fill(str(STEPS))
    page.keyboard.press("Tab")  # committed as a user's edit is, on leaving the field


def _verdict_agrees(page, run) -> None:
    """The Train page's verdict on the run just trained is the one computed from its run folder."""
    from resnet_explorer.reports.findings import progress_of

    progress = progress_of(run.spec.name, run.spec.num_classes, run.tables.get("metrics"), run.tables.get("eval"))
    text = page_text(page)
    assert progress.evidence() in text  # the same final loss and held-out accuracy
    if progress.at_chance:
        expect(page.locator("[data-testid=stAlert]").filter(has_text="has not left chance").first).to_be_visible()
    else:
        expect(page.locator("[data-testid=stCaptionContainer]").filter(has_text="has left chance").first).to_be_visible()
        assert "has not left chance" not in text


def test_a_short_run_and_its_twin_claim_only_what_the_runs_show(server, page, runs_dir):
    """No page may call the twins' gap the degradation problem, name a run at chance as having left it, or
    claim for the residual net an advantage that the findings (computed here from the run folders) do not.
    Compare opens on the run just trained, then on it and its twin. The runs folder already holds the tour's
    resnet8 run (older than both)."""
    from resnet_explorer.reports.compare import RESPONSES_EVAL, comparison_findings, response_tables, run_progress
    from resnet_explorer.reports.findings import gradient_finding, responses_finding
    from resnet_explorer.runs import list_runs, load_run

    before = {r["id"] for r in list_runs(runs_dir)}

    def runs():  # the runs this test trained, oldest first
        return [load_run(r["path"], with_model=False) for r in reversed(list_runs(runs_dir)) if r["id"] not in before]

    page.goto(f"{server}/Train")
    settle(page)
    no_exception(page)
    set_steps(page)  # everything else as the page opens
    train_on_the_page(page, runs_dir, len(before) + 1)
    _verdict_agrees(page, runs()[0])
    shot(page, "train_done")
    go_to(page, "Compare")  # opens on the run just trained
    chosen = page.locator(".st-key-compare_runs")  # its chips name the runs chosen
    expect(chosen).to_contain_text("resnet20", timeout=60_000)
    assert "plain20" not in chosen.inner_text()
    go_to(page, "Train")
    page.get_by_text("Train its plain twin instead", exact=True).click()  # the twin, one toggle away
    settle(page)
    set_steps(page)  # the same settings
    train_on_the_page(page, runs_dir, len(before) + 2)

    trained = runs()
    assert [r.spec.name for r in trained] == ["resnet20", "plain20"]
    assert [r.config.steps for r in trained] == [STEPS, STEPS]
    _verdict_agrees(page, trained[1])

    page.get_by_role("link", name="Inspect this run").click()  # plain20, with resnet20 overlaid as its twin
    settle(page)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    no_exception(page)
    assert page.locator(".js-plotly-plot").count() >= 5
    shot(page, "inspect")
    text = page_text(page)
    assert "degradation" not in text.lower()
    labels = {run.label: run for run in reversed(trained)}  # as the page lists them: the run opened, then its twin
    progress = run_progress(list(labels.values()), list(labels))
    for label, p in progress.items():  # a run at chance is named so, one that left it never is
        assert (p.text() in text) if p.at_chance else (f"{label} has not left chance" not in text), p.text()
    residual = {label: run.spec.residual for label, run in labels.items()}
    grads = gradient_finding({label: run.tables["grad_flow"] for label, run in labels.items()}, residual, progress)
    assert grads in text  # the sentence the findings give, and only a claim when they make one
    if "carry the gradient back" not in grads:
        assert "carry the gradient back" not in text
    tables, measured = response_tables(labels)
    assert measured == RESPONSES_EVAL
    responses = responses_finding(tables, residual, {label: 20 for label in labels}, progress, measured)
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
    findings = comparison_findings(trained)
    assert findings and all(f.text in alerts for f in findings)
    said = " ".join(f.text for f in findings)
    assert ("has not left chance" in alerts or "have not left chance" in alerts) == any(
        p.at_chance for p in run_progress(trained).values())
    for claim in ("trains worse than", "trains better than"):  # the pair's verdict only where the findings give it
        if claim not in said:
            assert claim not in alerts, claim
    assert "degradation problem." not in alerts.replace("not the degradation problem.", "")
