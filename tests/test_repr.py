"""Results render as HTML tables in notebooks (``_repr_html_``), every result with a
``to_frame`` alike."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from topobrain._utils._repr import FrameReprMixin, frame_html

RESULT_MODULES = ("glm", "correction", "spatial", "clusters", "inference", "selectivity",
                  "nulls", "compare", "brain")


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.tags, self._in = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in = tag in ("td", "th")

    def handle_data(self, data):
        if self._in and data.strip():
            self.cells.append(data.strip())


def test_frame_html_escapes_and_truncates():
    df = pd.DataFrame({"name": ["<b>x</b>", "y"] * 15, "value": np.arange(30) / 7})
    text = frame_html("Result(<x>)", df)
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert "Result(&lt;x&gt;)" in text and "First 20 of 30 rows" in text
    p = _Cells()
    p.feed(text)
    assert p.cells[:4] == ["name", "value", "<b>x</b>", "0"]
    assert p.tags.count("tr") == 21  # header + 20 rows


def _result_classes():
    out = []
    for name in RESULT_MODULES:
        mod = importlib.import_module(f"topobrain.{name}")
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr, None)
            if inspect.isclass(obj) and dataclasses.is_dataclass(obj) \
                    and hasattr(obj, "to_frame"):
                out.append(obj)
    return sorted(set(out), key=lambda c: c.__qualname__)


@pytest.mark.parametrize("cls", _result_classes(), ids=lambda c: c.__qualname__)
def test_every_result_with_a_frame_renders_in_notebooks(cls):
    assert issubclass(cls, FrameReprMixin), f"{cls.__qualname__} lacks _repr_html_"


def test_a_real_result_renders(rng):
    from topobrain.spatial import morans_i

    res = morans_i(rng.normal(size=(6, 6)))
    text = res._repr_html_()
    assert text.startswith("<div class='topobrain-result'>") and "<table" in text
    assert repr(res).split("(")[0] in text


def test_image_html_embeds_the_file(tmp_path):
    from topobrain._utils._repr import image_html

    png = tmp_path / "fig.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    tag = image_html(png)
    assert tag.startswith('<img alt="fig" src="data:image/png;base64,')
    with pytest.raises(ValueError, match="must be an image file"):
        image_html(tmp_path / "fig.pdf")
    with pytest.raises(FileNotFoundError, match="save the figure first"):
        image_html(tmp_path / "missing.png")


def test_localize_result_shows_summary_and_main_figure(tmp_path):
    from topobrain.pipeline import LocalizeResult

    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "main_S_minus_N.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (figures / "other.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    frame = pd.DataFrame({"model": ["m"], "layer": ["l0"], "morans_i": [0.5]})
    res = LocalizeResult(out=tmp_path, units=frame, layers=frame, clusters=frame.iloc[:0],
                         report=tmp_path / "report.html", settings=None, record={},
                         summary=["m, S - N: 3 of 4 units <are> selective."])
    text = res._repr_html_()
    assert "&lt;are&gt;" in text and text.count("<img") == 1
    assert 'alt="main_S_minus_N"' in text


def test_progress_bars_take_the_notebook_form_in_jupyter():
    """Every progress bar comes from ``tqdm.auto``, which draws a widget bar in Jupyter and
    a text bar in a terminal; a plain ``tqdm`` import would print text into notebooks."""
    import ast
    from pathlib import Path

    import topobrain

    offenders, users = [], []
    for path in Path(topobrain.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] == "tqdm":
                (users if node.module == "tqdm.auto" else offenders).append(path.name)
            elif isinstance(node, ast.Import):
                offenders += [path.name for a in node.names if a.name.split(".")[0] == "tqdm"]
    assert users, "no progress bars found: the check is looking in the wrong place"
    assert not offenders, offenders
