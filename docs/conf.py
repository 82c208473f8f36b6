"""Sphinx configuration for the topobrain documentation.

Built offline by ``make docs`` into ``docs/_build/html`` with warnings as errors. The
example gallery is executed at build time, so every figure and printed table in it is
made by the code beside it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import topobrain

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # local extensions (none yet) and the gallery helpers

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

project = "topobrain"
author = "the topobrain developers"
copyright = "2026, the topobrain developers"
version = release = topobrain.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the built site: the docs work offline
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "sg_execution_times.rst", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.json"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
nitpicky = False

# -- autodoc / autosummary / numpydoc ---------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "inherited-members": False,
                           "show-inheritance": False}
autodoc_typehints = "none"  # numpydoc sections carry the types
autodoc_mock_imports: list[str] = []
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# no network at build time: intersphinx inventories are not fetched
intersphinx_mapping: dict = {}

# -- sphinx-gallery ---------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|_helpers\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "capture_repr": ("_repr_html_", "__repr__"),
    "show_memory": False,
    "min_reported_time": 0,
    "reset_modules": ("matplotlib",),
    "plot_gallery": "True",
    # the timing pages load jQuery and DataTables from a CDN: not in an offline site
    "write_computation_times": False,
}

# -- HTML -------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"topobrain {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
    # offline build: nothing is fetched from the web when a page opens
    "icon_links": [],
}
# an explicit colour mode: with none stored, the theme's script logs a console error
html_context = {"default_mode": "light"}
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None

# -- the API reference is generated from the modules' __all__ ---------------------------
import _gen_api  # noqa: E402

_gen_api.write(HERE / "api.rst")

# numpydoc turns each module's References into citations that the module text need not
# cite; the reference list itself is the point
suppress_warnings = ["ref.citation"]
