"""Every docstring example in the package runs, as the docs show it.

The Examples sections are part of the documentation (numpydoc renders them on the API
pages), so a stale one is a documentation bug: each module's doctests run here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import pytest

import topobrain

# modules whose import needs an optional extra that the dev install may lack are skipped
# with the reason; nothing else is
_OPTIONAL = {"topobrain.models.hf": "transformers"}


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(topobrain.__path__, prefix="topobrain."):
        if ".tests" in info.name or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_there_are_doctests():
    finder = doctest.DocTestFinder()
    n_examples = 0
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        n_examples += sum(len(t.examples) for t in finder.find(mod))
    assert n_examples >= 50, f"only {n_examples} docstring examples in the package"


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name, monkeypatch, tmp_path):
    extra = _OPTIONAL.get(name)
    if extra is not None:
        pytest.importorskip(extra, reason=f"{name} needs the optional {extra!r}")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    mod = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = doctest.testmod(
            mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
            report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
