"""Write ``api.rst``: every public name of every public module, grouped by module.

Run by ``conf.py`` at each build, so the reference never misses a name that a module's
``__all__`` exports.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

MODULES = [
    ("topobrain.sheet", "Cortical sheets and adjacency"),
    ("topobrain.stimuli", "Stimuli"),
    ("topobrain.models", "Models, losses and loaders"),
    ("topobrain.activations", "Activations"),
    ("topobrain.extract", "Extraction"),
    ("topobrain.readout", "Readout smoothing"),
    ("topobrain.glm", "GLM"),
    ("topobrain.correction", "Multiple-comparison correction"),
    ("topobrain.contrast", "Contrasts"),
    ("topobrain.spatial", "Spatial statistics"),
    ("topobrain.clusters", "Clusters and TFCE"),
    ("topobrain.inference", "Label-permutation inference"),
    ("topobrain.selectivity", "Selectivity"),
    ("topobrain.brain", "Brain maps"),
    ("topobrain.nulls", "Spatial nulls"),
    ("topobrain.compare", "Model against brain"),
    ("topobrain.lesion", "Lesions"),
    ("topobrain.pipeline", "Pipeline"),
    ("topobrain.plotting", "Plotting"),
    ("topobrain.report", "Report"),
]


def _public(mod) -> list[str]:
    names = list(getattr(mod, "__all__", []))
    out = []
    for name in names:
        obj = getattr(mod, name, None)
        if obj is None or inspect.ismodule(obj):
            continue
        home = getattr(obj, "__module__", None)
        # a name re-exported from another listed module is documented there
        if home and home != mod.__name__ and any(home == m for m, _ in MODULES) \
                and name in getattr(importlib.import_module(home), "__all__", []):
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj) or callable(obj)):
            continue  # constants are described in the module docstrings
        out.append(name)
    return out


def write(path: Path) -> None:
    lines = ["API reference", "=============", "",
             "Every public name, grouped by module. The statistics take arrays and an "
             "``adjacency``; results are frozen dataclasses with ``to_frame()``.", ""]
    for modname, title in MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        names = _public(mod)
        if not names:
            continue
        lines += [title, "-" * len(title), "", f".. automodule:: {modname}",
                  "   :no-members:", "   :no-index:", "",
                  f".. currentmodule:: {modname}", "", ".. autosummary::",
                  "   :toctree: generated/", "   :nosignatures:", ""]
        lines += [f"   {n}" for n in names] + [""]
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
