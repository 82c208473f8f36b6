"""The statistics never import torch or matplotlib (STYLE.md, section 1)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

STATS_MODULES = ["topobrain", "topobrain.sheet", "topobrain.contrast", "topobrain.glm",
                 "topobrain.correction", "topobrain.spatial", "topobrain.clusters",
                 "topobrain.inference", "topobrain.selectivity", "topobrain.brain",
                 "topobrain.nulls"]


@pytest.mark.parametrize("module", STATS_MODULES)
def test_statistics_do_not_load_torch_or_matplotlib(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not part of this build yet")
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'matplotlib') "
            f"if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"
