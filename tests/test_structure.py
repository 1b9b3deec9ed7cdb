"""Module boundaries: no module reaches into another module's private (underscore) names.

Read with `ast`, never imported: every .py file under resnet_explorer/ and pages/, app.py and home.py. A
private name is one that starts with "_" and is not a dunder ("__version__" is public). Banned:
`from X import _name` and `X._name` where X is a project module (or a name imported from one).
External libraries' private names (`torch._foreach_norm`) are not this test's business.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "resnet_explorer"


def source_files() -> list[Path]:
    files = (sorted((ROOT / PACKAGE).rglob("*.py")) + sorted((ROOT / "pages").glob("*.py"))
             + [ROOT / "app.py", ROOT / "home.py"])
    return [f for f in files if "__pycache__" not in f.parts]


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_project(module: str | None, level: int) -> bool:
    """A relative import, or an absolute one of the package."""
    return level > 0 or module == PACKAGE or (module or "").startswith(PACKAGE + ".")


def violations(source: str, filename: str = "<string>") -> list[str]:
    """Each private-name use across a project module boundary in `source`, as "file:line: what"."""
    tree = ast.parse(source, filename)
    project_names: set[str] = set()  # local names bound to project modules or to names imported from them
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and is_project(node.module, node.level):
            where = "." * node.level + (node.module or "")
            for alias in node.names:
                if is_private(alias.name):
                    found.append(f"{filename}:{node.lineno}: from {where} import {alias.name}")
                project_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if is_project(alias.name, 0):
                    project_names.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in project_names:
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [v for path in source_files() for v in violations(path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_source_files_are_all_there():
    names = {p.relative_to(ROOT).as_posix() for p in source_files()}
    assert {"app.py", f"{PACKAGE}/runs/store.py", f"{PACKAGE}/plots/training.py", "pages/3_Inspect.py"} <= names


def test_the_package_root_keeps_only_the_public_api_and_leaf_helpers():
    """Modules are grouped by job (cli, models, data, training, analysis, plots, runs, reports, jobs, ui); the
    root holds the public API, `python -m`'s entry and the helpers every group may use, and nothing that imports
    a group."""
    root = ROOT / PACKAGE
    modules = {p.name for p in root.glob("*.py")}
    assert modules == {"__init__.py", "__main__.py", "limits.py", "devices.py", "formats.py", "export.py",
                       "pickle_guard.py"}, modules
    groups = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert groups == {"cli", "models", "data", "training", "analysis", "plots", "runs", "reports", "jobs", "ui"}, groups
    for leaf in ("limits.py", "devices.py", "formats.py", "pickle_guard.py"):
        tree = ast.parse((root / leaf).read_text())
        imported = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]
        assert all(node.module in {"limits", "devices", "formats"} and node.level == 1 for node in imported), leaf


@pytest.mark.parametrize("source", [
    "from .training import _log_axis",
    "from resnet_explorer.plots.training import _wrap as wrap",
    "from ..runs import _read_info, list_runs",
    "from . import training\ntraining._log_axis(fig, 'y')",
    "import resnet_explorer.plots.training\nresnet_explorer.plots.training._wrap('x')",
    "import resnet_explorer.runs as runs\nruns._section({}, 'data')",
    "from resnet_explorer.runs import Run\nRun._private",
])
def test_planted_violations_are_caught(source):
    assert violations(source)


@pytest.mark.parametrize("source", [
    "import torch\ntorch._foreach_norm([])",
    "from torch.nn.modules import _functions",
    "from . import __version__",
    "from .training import run_styles\nrun_styles.__doc__",
    "class A:\n    def f(self):\n        return self._x",
    "import numpy as np\nnp._NoValue",
])
def test_allowed_uses_pass(source):
    assert not violations(source)
