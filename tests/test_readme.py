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


def test_readme_limits_table_states_the_values_in_limits_py():
    from resnet_explorer import limits

    section = (ROOT / "README.md").read_text().split("## Limits", 1)[1]
    for value in (limits.MAX_UNITS, limits.MAX_PARAMS, limits.MAX_CLASSES, limits.MAX_IN_CHANNELS,
                  limits.MAX_GROUPS, limits.MAX_WIDTH_PER_GROUP, limits.MAX_TRAIN_IMAGES, limits.MAX_TEST_IMAGES,
                  limits.MAX_IMAGE_SIZE, limits.MAX_BATCH_SIZE, limits.MAX_STEPS, limits.MAX_EPOCHS, limits.MAX_SEED,
                  limits.MAX_IMAGE_PIXELS, limits.MAX_ATTRIBUTE_SAMPLES, limits.ATTRIBUTE_BATCH,
                  limits.MAX_LESION_IMAGES, limits.MAX_LESION_DRAWS, limits.MAX_LESION_CONFIGS, limits.MAX_PATH_IMAGES,
                  limits.MAX_PATH_DRAWS, limits.MAX_PATH_PASSES, limits.MAX_LANDSCAPE_GRID,
                  limits.MAX_LANDSCAPE_IMAGES, limits.MAX_CHECKPOINT_BYTES, limits.MAX_USER_IMAGES,
                  limits.MAX_WORLD_SIZE, limits.MAX_PICKLE_BYTES, limits.MAX_PICKLE_NODES, limits.MAX_PICKLE_DEPTH,
                  limits.MAX_RUN_JSON_BYTES, limits.MAX_CIFAR_FILE_BYTES, limits.MAX_PATH_CHARS):
        assert f"{value:,}" in section, value
    assert f"{limits.MAX_DATA_BYTES / 1e9:.0f} GB" in section
    assert f"{limits.MIN_WIDTH_MULTIPLIER:g}–{limits.MAX_WIDTH_MULTIPLIER:g}" in section
    from resnet_explorer.ui.widgets import MAX_DEPTH, MAX_LINK_CHARACTERS

    assert f"{MAX_DEPTH:,} bottleneck" in section and f"{MAX_LINK_CHARACTERS:,} characters" in section
    assert ("one per device" in section) == (limits.JOBS_PER_DEVICE == 1)
