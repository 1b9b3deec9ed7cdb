import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"TEST_COMMAND='([^']+)'", ci).group(1)
    assert command in (ROOT / "README.md").read_text()
    assert "pytest" in command


def test_readme_app_command_installs_and_runs_app():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -r requirements.txt && .venv/bin/streamlit run app.py" in readme
