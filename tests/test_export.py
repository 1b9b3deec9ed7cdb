import re
import shutil

import pytest

from resnet_explorer import ModelSpec
from resnet_explorer.export import figure_to_html, figure_to_image, rows_to_csv, write_atomic, write_figure
from resnet_explorer.models.graph import build_graph
from resnet_explorer.plots import plot_block_graph

CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def fig():
    return plot_block_graph(build_graph(ModelSpec.from_name("resnet20")))


def test_html_is_self_contained(fig):
    html = figure_to_html(fig)
    assert "plotly" in html and len(html) > 1_000_000
    assert not re.search(r"<script[^>]+src=[\"']https?://", html)


@pytest.mark.skipif(CHROMIUM is None and not __import__("os").environ.get("CI"),
                    reason="static export needs Chromium (CI installs it, so CI never skips)")
def test_png_and_svg(fig, tmp_path):
    png = figure_to_image(fig, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    svg = figure_to_image(fig, "svg")
    assert svg.lstrip().startswith(b"<svg") and b"resnet20" in svg
    paths = write_figure(fig, tmp_path / "g", ("html", "png"))
    assert [p.name for p in paths] == ["g.html", "g.png"]


def test_csv_rows():
    assert rows_to_csv([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]) == "a,b\n1,x\n2,y\n"
    assert rows_to_csv([]) == ""


def test_write_atomic_leaves_no_temp(tmp_path):
    write_atomic(tmp_path / "sub" / "f.txt", "hello")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.txt"]
