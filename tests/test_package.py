"""The package surface: lazy submodules, ``topobrain.extract`` callable, version."""

from __future__ import annotations

import subprocess
import sys

import pytest

import topobrain


def test_lazy_submodules_and_dir():
    assert "spatial" in dir(topobrain)
    assert topobrain.sheet.CorticalSheet is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        topobrain.nope  # noqa: B018


def test_import_topobrain_is_light():
    code = "import sys, topobrain; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_extract_module_is_callable():
    from topobrain.extract import extract

    assert callable(topobrain.extract)
    assert topobrain.extract.extract is extract
    with pytest.raises(ValueError, match="No bundled model named 'no-such-model'"):
        topobrain.extract("no-such-model", ["a sentence"])
