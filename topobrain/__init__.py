"""topobrain: neuroimaging-style analysis of topographic language models.

Run localizer stimuli through a model whose units sit on a 2D cortical sheet, turn
unit responses into maps, and analyse them as an fMRI pipeline would: GLM contrasts,
multiple-comparison correction, Moran's I, cluster statistics and brain comparison.

Subpackages load on first use (``topobrain.spatial``, ``topobrain.extract`` ...), so
``import topobrain`` stays light; ``topobrain.extract(model, stimuli)`` runs the
activation harness.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("activations", "brain", "clusters", "compare", "contrast", "correction",
               "extract", "glm", "inference", "models", "nulls", "pipeline", "plotting",
               "readout", "report", "selectivity", "sheet", "spatial", "stimuli")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'topobrain' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
