"""The Train page's defaults in headless Chromium, as a new user meets them: resnet20, then its plain twin,
Inspect and Compare, and every sentence checked against the findings computed from the run folders.
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


def test_train_default_and_its_twin_claims_only_what_the_runs_show(server, page, runs_dir):
    """The Train page's defaults as a new user meets them: resnet20, then its plain twin one toggle away.
    Both must leave chance, and no page may call their gap the degradation problem, or claim for the
    residual net an advantage that the findings (computed here from the run folders) do not. Compare
    opens on the run just trained, then on it and its twin."""
    from resnet_explorer.reports.compare import RESPONSES_EVAL, comparison_findings, response_tables, run_progress
    from resnet_explorer.reports.findings import gradient_finding, responses_finding
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
