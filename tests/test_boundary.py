import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_explorer"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_ui_imports_streamlit():
    offenders = [
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
        if "streamlit" in imported_modules(p) and p.relative_to(PACKAGE).parts[0] != "ui"
    ]
    assert offenders == []
    assert "streamlit" in imported_modules(PACKAGE / "ui" / "state.py")  # the check sees imports
