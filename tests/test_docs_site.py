"""The built documentation site works in a real browser, offline.

``make docs`` builds ``docs/_build/html``; ``.ci/run`` builds it after the test suite and
then runs this module with ``TOPOBRAIN_REQUIRE_DOCS=1``, so that in CI a missing or
broken site fails. In a plain ``make test`` the site is usually not built yet and these
tests skip, saying so.
"""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

SITE = Path(os.environ.get("TOPOBRAIN_DOCS_HTML",
                           Path(__file__).resolve().parents[1] / "docs" / "_build" / "html"))
REQUIRED = os.environ.get("TOPOBRAIN_REQUIRE_DOCS") == "1"
GALLERY_PAGES = ("auto_examples/plot_01_localizer.html", "auto_examples/plot_04_clusters_tfce.html")


def _site() -> Path:
    if not (SITE / "index.html").is_file():
        if REQUIRED:
            pytest.fail(f"no documentation site at {SITE}: `make docs` must build it first")
        pytest.skip(f"the documentation site is not built ({SITE}); run `make docs`")
    return SITE


class _Links(HTMLParser):
    """Collects link targets (href, src) and element ids of one page."""

    def __init__(self):
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if a.get(key) and not (tag == "link" and a.get("rel") in ("preconnect",)):
                self.targets.append(a[key])


def _parse(page: Path) -> _Links:
    p = _Links()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def test_no_broken_internal_links():
    site = _site()
    # _static holds the theme's template fragments (Jinja macros), not pages
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)
    assert len(pages) > 20
    parsed = {page: _parse(page) for page in pages}
    broken = []
    for page, links in parsed.items():
        for target in links.targets:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or target.startswith(("mailto:", "javascript:")):
                continue
            path = unquote(parts.path)
            dest = (page.parent / path).resolve() if path else page
            if dest.is_dir():
                dest = dest / "index.html"
            if not dest.exists():
                broken.append(f"{page.relative_to(site)} -> {target}")
                continue
            if parts.fragment and dest.suffix == ".html":
                ids = parsed[dest].ids if dest in parsed else _parse(dest).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)} -> {target} (no such anchor)")
    assert not broken, f"{len(broken)} broken internal links, e.g. {broken[:10]}"


def test_no_external_requests_needed():
    """Scripts, styles and images are all served from the site itself (it works offline)."""
    site = _site()
    external = []
    for page in sorted(p for p in site.rglob("*.html") if "_static" not in p.parts):
        p = _Links()
        text = page.read_text(encoding="utf-8")
        p.feed(text)
        for tag_target in p.targets:
            parts = urlsplit(tag_target)
            if parts.scheme in ("http", "https") and tag_target.endswith(
                    (".js", ".css", ".png", ".svg", ".woff", ".woff2")):
                external.append(f"{page.relative_to(site)}: {tag_target}")
    assert not external, external[:10]


def test_gallery_pages_exist_with_figures():
    site = _site()
    pages = sorted((site / "auto_examples").glob("plot_*.html"))
    assert len(pages) >= 12, [p.name for p in pages]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "sphx-glr" in text


@pytest.mark.slow
def test_pages_render_in_chromium(tmp_path):
    site = _site()
    from _browser import Browser, find_chromium

    if find_chromium() is None:
        if REQUIRED:
            pytest.fail("no chromium to check the documentation site with")
        pytest.skip("no chromium executable (apt-get install chromium)")
    with Browser() as browser:
        for rel in ("index.html", *GALLERY_PAGES):
            out = browser.render(site / rel, tmp_path / (rel.replace("/", "_") + ".png"),
                                 width=1280, height=900)
            assert out["console_errors"] == [], (rel, out["console_errors"])
            assert out["images_ok"], (rel, out["broken_images"])
            if rel != "index.html":
                assert out["n_images"] >= 1, rel
