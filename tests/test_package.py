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


def test_pipeline_public_api_is_pinned():
    """The pipeline's public pieces (what analyses and users import) stay where they are."""
    import topobrain.pipeline as pipeline

    assert sorted(pipeline.__all__) == sorted([
        "RUN_FILE", "STREAMS", "ContrastAnalysis", "LocalizeResult", "LocalizeSettings",
        "UnitStatistics", "analyse_contrast", "distance_profiles", "localize",
        "run_localizer", "unit_statistics"])
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None
    assert pipeline.STREAMS == ("morans_i", "clusters", "selectivity")


def test_import_pipeline_and_plotting_stay_light():
    """Importing the localizer or the figures loads neither torch nor pyplot."""
    code = ("import sys, topobrain.pipeline, topobrain.plotting; "
            "print('torch' in sys.modules, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
