"""The Train page in headless Chromium, as a user meets it: a short run of the default model (fewer steps,
set in the form), then its plain twin one toggle away with the same settings, Inspect and Compare, and every
sentence about chance and about the twins checked against the findings computed from the run folders.

The runs are short on purpose: whether the defaults themselves leave chance, on every seed and thread
count, is measured by bench/train_defaults.py, and tests/test_defaults_measured.py holds the defaults to
the config it measured. What is checked here is what the pages say about whatever the runs reached: a run
at chance is named so, and no page claims for it, or for the pair, what the findings do not.
"""

from __future__ import annotations

from playwright.sync_api import expect

from .helpers import (
    go_to,
    no_exception,
    page_text,
    settle,
    shot,
    train_on_the_page,
)

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
    Compare opens on the run just trained, then on it and its twin."""
    from resnet_explorer.reports.compare import RESPONSES_EVAL, comparison_findings, response_tables, run_progress
    from resnet_explorer.reports.findings import gradient_finding, responses_finding
    from resnet_explorer.runs import list_runs, load_run

    def runs():
        return [load_run(r["path"], with_model=False) for r in reversed(list_runs(runs_dir))]

    page.goto(f"{server}/Train")
    settle(page)
    no_exception(page)
    set_steps(page)  # everything else as the page opens
    train_on_the_page(page, runs_dir, 1)
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
    train_on_the_page(page, runs_dir, 2)

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
