"""Lesions: silence sheet units and measure what the model loses.

- :mod:`~topobrain.lesion._interventions`: :class:`Lesion` and :func:`ablate` (hooks);
- :mod:`~topobrain.lesion.targets`: which units (top k% by t, FDR, clusters, discs,
  squares, masks), from activations or a ``topobrain localize`` folder;
- :mod:`~topobrain.lesion.controls`: matched random units, patches, magnitude-matched;
- :mod:`~topobrain.lesion.measures`: surprisal, held-out loss, minimal pairs;
- :mod:`~topobrain.lesion.experiment`: :func:`run_lesions`, behind ``topobrain lesion``.
"""

from ._interventions import Lesion, Mode, ablate, sheet_sites
from .controls import CONTROL_KINDS, draw_controls, z_and_p
from .experiment import LesionResult, run_lesions, summarize
from .measures import (
                       Scores,
                       item_surprisal,
                       minimal_pair_accuracy,
                       reference_means,
                       score_sequences,
                       text_loss,
                       text_windows,
                       tokenize_items,
)
from .targets import (
                       LocalizerMaps,
                       cluster_units,
                       disc,
                       largest_cluster,
                       localizer_maps,
                       parse_target,
                       read_localizer,
                       significant_units,
                       square,
                       top_units,
)

__all__ = ["Lesion", "Mode", "ablate", "sheet_sites", "CONTROL_KINDS", "draw_controls",
           "z_and_p", "LesionResult", "run_lesions", "summarize", "Scores",
           "item_surprisal", "minimal_pair_accuracy", "reference_means", "score_sequences",
           "text_loss", "text_windows", "tokenize_items", "LocalizerMaps", "cluster_units",
           "disc", "largest_cluster", "localizer_maps", "parse_target", "read_localizer",
           "significant_units", "square", "top_units"]
