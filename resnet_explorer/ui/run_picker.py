"""The run picker that Inspect, Attribute and Compare share.

A run is a row of `resnet_explorer.runs.list_runs` (newest first). Each page passes its own `load`
(cached tables, a model kept per session, ...) and gets back the runs it could load; a run that
cannot be loaded (damaged or vanished files: ``ValueError`` or ``OSError``) is named in an
``st.error`` and left out, and the page goes on with the others.

Widget keys, from the page's ``key_prefix``:

- ``{prefix}_run``: the run (`pick_runs`);
- ``{prefix}_other_{run id}``: the run beside it, its twin by default (`pick_runs` with ``with_twin``);
  one key per main run, so each run reopens with its own twin;
- ``{prefix}_runs``: the runs (`pick_many`), set ahead of time with `preselect`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import streamlit as st

from ..runs import data_label, find_twin, is_imported, list_runs, run_label, unique_labels

T = TypeVar("T")
NO_RUNS = "No runs yet: train one on the Train page (or `python -m resnet_explorer train`)."
TWIN_LABEL = "Second run (its twin is picked when there is one)"
TRAIN_PAGE = "pages/2_Train.py"


@dataclass(frozen=True)
class Picked(Generic[T]):
    """A chosen run: its `list_runs` row and what the page's `load` returned for it."""

    row: dict[str, Any]
    run: T

    @property
    def id(self) -> str:
        return self.row["id"]


def row_label(row: dict[str, Any]) -> str:
    """A `list_runs` row's label ("resnet20 · shapes-easy 16px · ab12", `runs.run_label`)."""
    label = row.get("label")
    return label if isinstance(label, str) and label else run_label(row, str(row.get("id", "?")), row.get("model"))


def row_labels(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each row's label by id, told apart where two collide (`runs.unique_labels`: the whole id)."""
    pairs = [(row_label(r), r.get("full_label") or row_label(r)) for r in rows]
    return dict(zip((r["id"] for r in rows), unique_labels(pairs)))


def describe(row: dict[str, Any], label: str | None = None) -> str:
    """A run as every picker shows it: its label (`row_label`, or `label`), then its state:
    "resnet20 · shapes-easy 16px · ab12 (done, 250/250 steps)"; "(imported)" for imported weights (no steps)."""
    label = label or row_label(row)
    if is_imported(row):
        return f"{label} (imported)"
    steps, total = row.get("steps"), row.get("total_steps")
    done = f"{steps}/{total}" if total else f"{steps}"
    return f"{label} ({row.get('status') or 'unknown'}, {done} steps)"


def shown_names(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """What a picker shows for each row, by id: `describe` with labels told apart (`row_labels`)."""
    labels = row_labels(rows)
    return {r["id"]: describe(r, labels[r["id"]]) for r in rows}


def mixed_data(rows: Sequence[dict[str, Any]]) -> str | None:
    """A warning when the runs were trained on different data (`runs.data_label`, imported runs aside); else None."""
    counts: dict[str, int] = {}
    for row in rows:
        if not is_imported(row):
            label = row.get("data_label") or data_label(row)
            counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        return None
    parts = "; ".join(f"{label}: {n} run{'s' if n > 1 else ''}" for label, n in counts.items())
    return (f"These runs were trained on different data ({parts}), so their losses and errors do not compare "
            "like for like.")


def warn_mixed_data(rows: Sequence[dict[str, Any]]) -> None:
    """`mixed_data`'s warning on the page, when there is one."""
    text = mixed_data(rows)
    if text:
        st.warning(text, icon=":material/warning:")


def best_finished(runs: Sequence[dict[str, Any]]) -> str | None:
    """The id of the finished run (status done) with the most steps, the newest of those; None if none finished.
    Imported runs were not trained here, so they are never it."""
    done = [r for r in runs if r.get("status") == "done" and not is_imported(r)]
    if not done:
        return None
    return max(done, key=lambda r: r.get("steps") or 0)["id"]  # max keeps the first (newest) of equals


def no_runs(runs: Sequence[dict[str, Any]], message: str = NO_RUNS, link: bool = True) -> None:
    """When there is no run: say so, link the Train page (`link`) and stop the page."""
    if runs:
        return
    st.info(message)
    if link:
        st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/play_arrow:")
    st.stop()


def load_each(rows: Sequence[dict[str, Any]], load: Callable[[dict[str, Any]], T]) -> list[Picked[T]]:
    """`load` on each row; a run that fails is named in an `st.error` and left out."""
    picked = []
    for row in rows:
        try:
            picked.append(Picked(row, load(row)))
        except (ValueError, OSError) as err:  # a damaged or vanished run: say what is wrong, keep the page
            st.error(f"{err}. Choose another run.")
    return picked


def pick_runs(
    key_prefix: str,
    runs: Sequence[dict[str, Any]],
    load: Callable[[dict[str, Any]], T],
    *,
    with_twin: bool = True,
    default: str | None = None,
    label: str = "Run",
    twin_label: str = TWIN_LABEL,
) -> list[Picked[T]]:
    """A run and, `with_twin`, a second one beside it (its twin by `find_twin`, else none); both loaded.

    Args:
        key_prefix: the page's widget-key prefix ("inspect", "attr").
        runs: `list_runs` rows (newest first), or the page's subset of them; none: `no_runs`.
        load: reads one row's run; ``ValueError``/``OSError`` mean it is damaged.
        default: the id chosen on the first visit (the newest run when absent or unknown).

    Returns:
        ``[main]`` or ``[main, second]``. When the main run fails to load, its error is shown and the page
        stops there, its pickers still on screen to choose another.
    """
    no_runs(runs)
    by_id = {r["id"]: r for r in runs}
    names = shown_names(list(by_id.values()))
    ids = list(by_id)
    columns = st.columns(2) if with_twin else [st.container()]
    main_id = columns[0].selectbox(label, ids, index=ids.index(default) if default in by_id else 0,
                                   format_func=names.__getitem__, key=f"{key_prefix}_run")
    other_id = None
    if with_twin:
        twin_id = find_twin(list(runs), main_id)
        options = [None] + [i for i in ids if i != main_id]
        other_id = columns[1].selectbox(
            twin_label, options, index=options.index(twin_id) if twin_id in options else 0,
            format_func=lambda i: "none" if i is None else names[i], key=f"{key_prefix}_other_{main_id}",
        )
    picked = load_each([by_id[main_id]], load)
    if not picked:
        st.stop()
    return picked + (load_each([by_id[other_id]], load) if other_id is not None else [])


def pick_many(
    key_prefix: str,
    runs: Sequence[dict[str, Any]],
    load: Callable[[dict[str, Any]], T],
    *,
    label: str = "Runs",
    link_param: str | None = "runs",
) -> list[Picked[T]]:
    """Any number of runs, in the order chosen, loaded; those that fail are named and left out.

    With `link_param`, the URL's ``?runs=id,id`` chooses them on the first visit (unknown ids are
    named in an ``st.warning`` and dropped) and the choice is written back to it, so the link reopens the same comparison.
    """
    key = f"{key_prefix}_runs"
    by_id = {r["id"]: r for r in runs}
    missing: list[str] = []
    if f"{key}_next" in st.session_state:  # `preselect`
        st.session_state[key] = st.session_state.pop(f"{key}_next")
    if key not in st.session_state:  # first visit: the link's runs, else none
        linked = [i for i in (st.query_params.get(link_param) or "").split(",") if i] if link_param else []
        st.session_state[key] = [i for i in linked if i in by_id]
        missing = [i for i in linked if i not in by_id]
    else:  # runs deleted since
        st.session_state[key] = [i for i in st.session_state[key] if i in by_id]
    names = shown_names(list(by_id.values()))
    chosen = st.multiselect(label, list(by_id), key=key, format_func=names.__getitem__)
    if missing:
        st.warning(f"Not found, left out: run{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                   "from the link.")
    if link_param:
        if chosen:
            st.query_params[link_param] = ",".join(chosen)
        else:
            st.query_params.pop(link_param, None)
    return load_each([by_id[i] for i in chosen], load)


def preselect(key_prefix: str, run_ids: Sequence[str]) -> None:
    """Choose these runs in `pick_many`'s picker the next time it is drawn, on this page or another.

    The picker takes them just before it is drawn (a widget's value set from a page that does not draw it
    would be lost). The app's choice is remembered, so `user_chose` can tell it from the user's own."""
    st.session_state[f"{key_prefix}_runs_next"] = list(run_ids)  # `pick_many` sets its widget from it
    st.session_state[f"{key_prefix}_preselected"] = list(run_ids)


def user_chose(key_prefix: str) -> bool:
    """Whether the user has chosen runs in `pick_many`'s picker: some are chosen, and not as `preselect` left them."""
    chosen = st.session_state.get(f"{key_prefix}_runs_next", st.session_state.get(f"{key_prefix}_runs"))
    return bool(chosen) and list(chosen) != st.session_state.get(f"{key_prefix}_preselected")


def compare_after_training(job: Any, root: str | Path) -> list[str]:
    """Preselect, for Compare, the run a Train job has just made and its twin (`find_twin`), when there is
    one, unless the user has chosen runs there: so Compare opens on the pair just trained.

    Args:
        job: a `jobs.TrainingJob` that has ended; a run it made and that ended "done" or "stopped" counts.
        root: the runs folder it trained into.

    Returns:
        The ids preselected (the run, then its twin); [] when nothing was (no run, the run still training, the
        user's choice stands, or this job's runs were preselected before). Called where a Train job ends and
        when Compare opens: a user who leaves Train between the run's end and the job's finds Compare the same.
    """
    snap = job.snapshot()
    run_id = snap.get("run_id")
    if st.session_state.get("compare_after_job") == getattr(job, "id", run_id):
        return []  # done once for this job (the Train page's end, or Compare opened after it)
    if not run_id or snap.get("status") not in ("done", "stopped"):  # the run has ended (its process may not yet)
        return []
    st.session_state["compare_after_job"] = getattr(job, "id", run_id)
    if user_chose("compare"):
        return []
    rows = list_runs(root)
    if not any(r["id"] == run_id for r in rows):
        return []
    twin = find_twin(rows, run_id)
    ids = [run_id] + ([twin] if twin else [])
    preselect("compare", ids)
    return ids
