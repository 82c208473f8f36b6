"""
A custom map statistic in the label-permutation test
====================================================

Any function of a map can be tested against the label-permutation null. Here: the
fraction of a layer's sheet covered by its largest connected region of t > 2, a
"biggest patch" statistic, computed on every permuted t-map as on the observed one.
"""

# %%
import numpy as np
from scipy import ndimage

from topobrain.extract import extract
from topobrain.inference import map_permutation_test
from topobrain.models import load
from topobrain.plotting import plot_null_distributions
from topobrain.stimuli import load_stimuli


def largest_patch(t_map):
    """Share of the sheet's cells in the largest 8-connected region of t > 2."""
    labels, n = ndimage.label(np.nan_to_num(t_map) > 2, structure=np.ones((3, 3)))
    if n == 0:
        return 0.0
    return float(np.bincount(labels.ravel())[1:].max() / np.isfinite(t_map).sum())


acts = extract(load("topolm-tiny"), load_stimuli("langloc"), verbose=0)
res = map_permutation_test(acts, None, "S - N", statistic=largest_patch,
                           n_permutations=200, seed=0, verbose=0)
print(res)

# %%
plot_null_distributions(res.null, res.observed, res.layers)
