"""The HTML report: self-contained (data-URI images, inline CSS), escaped, with settings,
sentences, tables and figures; rendered in a real headless Chromium (every image loads,
no console error, a non-blank screenshot)."""

from __future__ import annotations

import base64
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from _browser import Browser, find_chromium

from topobrain import plotting
from topobrain.report import Section, Table, render_report, write_report

REPO = Path(__file__).resolve().parents[1]
NASTY = '<script>alert("x")</script> & a<b'
SETTINGS = {"model": "topolm-tiny", "contrast": "S - N", "alpha": 0.05,
            "n_permutations": 200, "note": "t > 3 & p < .05 <ok>"}


class _Page(HTMLParser):
    """Tags with their attributes and the text under each tag name (entities decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.text: dict[str, list[str]] = {}
        self.rows: list[list[str]] = []
        self.decl = None

    def handle_decl(self, decl):
        self.decl = decl

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("img", "meta", "br", "link"):
            return
        self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th") and self.rows:
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        if not self.stack:
            return
        self.text.setdefault(self.stack[-1], []).append(data)
        if self.stack[-1] in ("td", "th") and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data.strip()

    def all(self, tag):
        return [a for t, a in self.tags if t == tag]


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _make_report(folder: Path, rng) -> dict:
    """Two sections, sentences, a table with NaN and special characters, two PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    t = rng.normal(scale=2, size=(8, 8))
    t[0, :3] = np.nan
    [png1, _] = plotting.save_figure(plotting.plot_sheet_map(t, outline=t > 2,
                                                             cbar_label="Welch t"),
                                     folder / "tmap", dpi=60)
    layers = pd.DataFrame({"layer": ["l0", "l1", "l2"] * 2,
                           "model": ["topolm-tiny"] * 3 + ["control"] * 3,
                           "morans_i": [0.5, 0.4, np.nan, 0.1, 0.05, 0.02]})
    [png2] = plotting.save_figure(plotting.plot_morans_by_layer(layers, brain_reference=0.96),
                                  folder / "morans", svg=False, dpi=60)
    table = pd.DataFrame({"layer": ["l0", NASTY, "l2"], "morans_i": [0.51234567, np.nan, 0.02],
                          "p <.05 & 'fwe'": [True, False, True], "n_units": [10, 20, 30]})
    sections = [
        Section("Main results & <summary>",
                sentences=["topolm-tiny: 12 of 64 units (18.8%) are selective (p < 0.05).",
                           "Moran's I > control's \"I\" in 2 of 3 layers."]),
        Section("Contrast S - N", tables=[("Layers: S - N <table>", table)],
                figures=[("t-maps & outlines", png1), ("Moran's I by layer", png2)]),
    ]
    path = write_report(folder / "report.html", title="topobrain: S - N <run>",
                        settings=SETTINGS, sections=sections)
    return {"path": path, "sections": sections, "table": table, "pngs": [png1, png2],
            "html": path.read_text("utf-8")}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = _make_report(tmp_path_factory.mktemp("report"), np.random.default_rng(7))
    plt.close("all")
    return out


# --------------------------------------------------------------------------- HTML
def test_write_report_is_atomic_and_equals_render(report):
    path = report["path"]
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "morans.png", "report.html", "tmap.png", "tmap.svg"]  # no temp file left
    assert report["html"] == render_report(title="topobrain: S - N <run>", settings=SETTINGS,
                                           sections=report["sections"])


def test_report_is_self_contained(report):
    text = report["html"]
    page = _parse(text)
    # no reference to anything outside the file: no links, external scripts, stylesheets
    # or URLs; the one script (table sorting) is inline
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", text, re.I)
    assert "href=" not in text and "url(" not in text and "@import" not in text
    assert page.all("script") == [{}] and page.all("link") == [] and page.all("iframe") == []
    imgs = page.all("img")
    assert len(imgs) == 2
    for img, png in zip(imgs, report["pngs"], strict=True):
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        assert base64.b64decode(img["src"][len(prefix):], validate=True) == png.read_bytes()
        assert img["alt"] == png.stem
    # the CSS is inline
    assert len(page.text["style"]) == 1 and "font-family" in page.text["style"][0]


def test_report_structure_and_escaping(report):
    page = _parse(report["html"])
    assert page.decl.lower() == "doctype html"
    assert page.all("meta") == [{"charset": "utf-8"}, {
        "name": "viewport", "content": "width=device-width, initial-scale=1"}]
    assert page.text["title"] == ["topobrain: S - N <run>"]
    assert page.text["h1"] == ["topobrain: S - N <run>"]
    assert page.text["h2"] == ["Main results & <summary>", "Contrast S - N", "Settings"]
    # tables are collapsed under their caption
    assert [t.strip() for t in page.text["summary"]] == ["Layers: S - N <table>",
                                                         "Settings of this run"]
    assert [s.strip() for s in page.text["li"]] == report["sections"][0].sentences
    assert [s.strip() for s in page.text["figcaption"]] == ["t-maps & outlines",
                                                           "Moran's I by layer"]
    # the nasty cell and column name come back as text, never as markup
    assert NASTY not in report["html"] and len(page.all("script")) == 1
    start = next(k for k, r in enumerate(page.rows) if r and r[0] == "layer")
    assert page.rows[start] == ["layer", "morans_i", "p <.05 & 'fwe'", "n_units"]
    assert page.rows[start + 1:start + 4] == [["l0", "0.5123", "True", "10"],
                    [NASTY, "–", "False", "20"],     # NaN shown as a dash
                    ["l2", "0.02", "True", "30"]]


def test_report_settings_table(report):
    page = _parse(report["html"])
    tables = page.all("table")
    assert {"class": "settings"} in tables
    settings_rows = page.rows[-len(SETTINGS):]
    assert settings_rows == [[k, str(v)] for k, v in SETTINGS.items()]


def test_report_long_table_note_and_image_types(tmp_path, rng):
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    ax.set_xlabel("x (units)")
    svg = plotting.save_figure(fig, tmp_path / "curve")[1]
    big = pd.DataFrame({"unit": np.arange(75), "t": rng.normal(size=75)})
    text = render_report(title="t", settings={}, sections=[
        Section("s", tables=[("all units", big)], figures=[("svg", svg)])])
    page = _parse(text)
    assert "First 60 of 75 rows" in text
    assert len([r for r in page.rows if len(r) == 2 and r[0].isdigit()]) == 60
    (img,) = page.all("img")
    head = "data:image/svg+xml;base64,"
    assert img["src"].startswith(head)
    assert base64.b64decode(img["src"][len(head):]) == svg.read_bytes()


def test_report_figure_errors(tmp_path):
    (tmp_path / "fig.pdf").write_bytes(b"%PDF")
    with pytest.raises(ValueError, match="must be an image file"):
        render_report(title="t", settings={},
                      sections=[Section("s", figures=[("c", tmp_path / "fig.pdf")])])
    with pytest.raises(FileNotFoundError, match="does not exist: save the figure first"):
        render_report(title="t", settings={},
                      sections=[Section("s", figures=[("c", tmp_path / "missing.png")])])


# --------------------------------------------------------------------------- browser
_BROKEN_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>broken</title>
</head><body><h1>negative control</h1><img src="no_such_figure.png" alt="missing">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="truncated">
<script>console.error("deliberate error"); undefined_function();</script></body></html>"""


@pytest.fixture(scope="module")
def browser_results(report, tmp_path_factory):
    """One Chromium for the module: the report and a deliberately broken page."""
    if find_chromium() is None:
        pytest.skip("no chromium executable (/usr/bin/chromium or on PATH): the headless-"
                    "browser test needs Debian's chromium; `.ci/run` installs it "
                    "(apt-get install chromium)")
    out = tmp_path_factory.mktemp("browser")
    broken = out / "broken.html"
    broken.write_text(_BROKEN_PAGE, encoding="utf-8")
    with Browser(timeout=60) as browser:
        good = browser.render(report["path"], out / "report_screenshot.png")
        bad = browser.render(broken, out / "broken.png")
    return good, bad


def test_report_renders_in_headless_chromium(browser_results, report):
    good, _ = browser_results
    assert good["console_errors"] == []
    assert good["n_images"] == 2
    assert good["images_ok"], good["broken_images"]
    assert good["title"] == "topobrain: S - N <run>"
    shot = good["screenshot"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(shot)
    assert img.shape[:2] == (2000, 1200)
    rgb = np.round(img[..., :3] * 255).astype(np.int64)
    colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    assert len(colours) > 100  # text, tables and the colour maps, not a blank page
    # the diverging map's reds and blues are on screen: the figures were painted
    r, g, b = (img[..., k] for k in range(3))
    assert np.any((r > 0.6) & (b < 0.4) & (g < 0.4)) and np.any((b > 0.6) & (r < 0.4))
    if os.environ.get("TOPOBRAIN_SAVE_SCREENSHOT"):
        (REPO / "figures").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "figures" / "report_screenshot.png")


def test_browser_check_catches_broken_images_and_console_errors(browser_results):
    _, bad = browser_results
    assert bad["n_images"] == 2
    assert not bad["images_ok"]
    assert bad["broken_images"] == ["no_such_figure.png", "data:image/png;base64,iVBORw0KGgo="]
    errors = "\n".join(bad["console_errors"])
    assert "deliberate error" in errors
    assert "undefined_function" in errors
    assert "no_such_figure.png" in errors


def test_report_reading_order_and_collapsed_tables(report):
    """Sentences, then figures, then the tables, each collapsed with its row count."""
    text = report["html"]
    i_sentence = text.index("are selective")
    i_figure = text.index("<figure>")
    i_details = text.index("<details>")
    assert i_sentence < i_figure < i_details
    assert "open" not in re.findall(r"<details[^>]*>", text)[0]
    assert "(3 rows)" in text


def test_table_default_columns_and_csv_link():
    df = pd.DataFrame({"layer": ["a", "b"], "t": [1.0, 2.0], "df": [10.0, 11.0],
                       "p": [0.1, 0.01]})
    text = render_report(title="t", settings={}, sections=[Section("s", tables=[
        Table("Units", df, columns=["layer", "t"], csv="units.csv")])])
    page = _parse(text)
    heads = [(a.get("class"), None) for t, a in page.tags if t == "th"]
    assert [c for c, _ in heads] == [None, None, "extra", "extra"]
    (table,) = [a for t, a in page.tags if t == "table" and "sortable" in a.get("class", "")]
    assert table["class"] == "sortable compact"  # the extra columns start hidden
    assert 'href="units.csv"' in text and "show all 4 columns" in text
    # every column named in columns= that the frame lacks is ignored, not an error
    text = render_report(title="t", settings={}, sections=[Section("s", tables=[
        Table("Units", df, columns=["layer", "missing"])])])
    assert "show all 4 columns" in text
    with pytest.raises(TypeError, match="Table objects or"):
        render_report(title="t", settings={}, sections=[Section("s", tables=[df])])


_SORT_JS = """(() => {
  const table = document.querySelector('table.sortable');
  const col = Array.from(table.tHead.rows[0].cells).findIndex(c => c.textContent === 'n');
  const read = () => Array.from(table.tBodies[0].rows).map(r => r.cells[col].textContent);
  table.tHead.rows[0].cells[col].click();
  const up = read();
  table.tHead.rows[0].cells[col].click();
  return {up: up, down: read()};
})()"""

_SCREEN_JS = """(() => {
  const img = document.querySelector('figure img').getBoundingClientRect();
  const doc = document.documentElement;
  return {img_top: img.top, img_bottom: img.bottom, scroll_width: doc.scrollWidth,
          client_width: doc.clientWidth};
})()"""


def test_report_sorts_on_click_and_first_screen_shows_a_figure(tmp_path, rng):
    if find_chromium() is None:
        pytest.skip("no chromium executable: `.ci/run` installs Debian's chromium")
    [png] = plotting.save_figure(plotting.plot_sheet_map(rng.normal(size=(16, 16))),
                                 tmp_path / "main", svg=False, dpi=80)
    wide = pd.DataFrame({f"column_{k}": rng.normal(size=12) for k in range(17)})
    wide.insert(0, "n", [10, 2, 33, 4, np.nan, 5, 100, 7, 8, 9, 1, 3])
    path = write_report(tmp_path / "report.html", title="topobrain localizer", settings={},
                        sections=[Section("Main results", sentences=[
                            "model, S - N: 120 of 256 units are selective."] * 3,
                            figures=[("main figure", png)]),
                            Section("Tables", tables=[Table("Layers", wide,
                                                            columns=["n", "column_0"])])])
    with Browser(timeout=60) as browser:
        out = browser.render(path, tmp_path / "shot.png", width=1280, height=800,
                             evaluate=[_SORT_JS, _SCREEN_JS])
    assert out["console_errors"] == []
    sort, screen = out["evaluated"]
    assert sort["up"] == ["1", "2", "3", "4", "5", "7", "8", "9", "10", "33", "100", "–"]
    assert sort["down"] == ["100", "33", "10", "9", "8", "7", "5", "4", "3", "2", "1", "–"]
    assert screen["img_top"] < 800  # a figure on the first screen
    assert screen["scroll_width"] <= screen["client_width"]  # no horizontal scroll bar
