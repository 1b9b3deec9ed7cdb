import pytest
import torch

# One intra-op thread: the tests' tensors are tiny, and on a 2-core machine shared with the
# browser test's Streamlit server (or other jobs) two spinning threads made them 5-10x slower.
torch.set_num_threads(1)


def _scan_installed_components_once() -> None:
    """Every new AppTest scans the metadata of every installed package for Streamlit components (0.6-0.7 s
    each, ~5,000 metadata reads: 12 of test_app_architecture.py's 72 s under cProfile). The packages do not
    change while the tests run, so the first scan's answer is kept for the rest of the process."""
    import functools

    from streamlit.components.v2 import manifest_scanner

    manifest_scanner.scan_component_manifests = functools.cache(manifest_scanner.scan_component_manifests)


_scan_installed_components_once()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# The longest test files first (seconds each on the 2-core CI machine, from `--durations=0`): pytest-xdist
# hands whole files (--dist=loadfile) to whichever worker is free, in collection order (pyproject's
# --no-loadscope-reorder: by default xdist 3.8 reorders files by their number of tests, which sent the
# 3-test browser file, the longest, last: one worker 349 s, the other 241 s), so starting with
# the longest leaves only short files for the end and the two workers finish together (longest processing
# time first). Measured before: one worker 250 s of tests, the other 198 s. Order within a file is kept.
LONGEST_FIRST = (
    # the browser file: one server for its three tests (Home and Architecture, the tour's pages, the Train page
    # training a short run of the default and its twin); ~150 s of the two workers' ~600
    "tests/browser/test_browser.py",
    "tests/test_jobs.py",  # ~99 s: five real worker processes (train, stop, kill, two dead servers)
    "tests/test_distributed.py",  # ~94 s: three torchrun launches (the complete run, two Ctrl-C cases)
    "tests/test_app_train_inspect.py",  # ~68 s: ~44 of them the Train page training through the real worker
    "tests/test_app_compare_attribute.py",  # ~57 s
    "tests/test_app_explain.py",  # ~53 s: one real analysis child, the rest on a thread in-process
    "tests/test_app_architecture.py",  # ~51 s
    "tests/test_cli.py",  # ~42 s
    "tests/test_models.py",  # ~30 s
    "tests/test_graph.py",  # ~27 s
    "tests/test_hostile_inputs.py",
    "tests/test_app_pretrained.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order
