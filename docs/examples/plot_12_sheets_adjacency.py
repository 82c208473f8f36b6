"""
Sheets, layouts and the one adjacency
=====================================

A cortical sheet places a layer's units on a grid. Every statistic takes the same
``adjacency``: ``"queen"`` (eight neighbours, the default and TopoLM's choice for
Moran's I) or ``"rook"`` (four), a sparse matrix, or a libpysal ``W``. The same map
has a different Moran's I under the two, which is why results record the one used.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from topobrain.plotting import plot_sheet_map
from topobrain.sheet import CorticalSheet
from topobrain.spatial import morans_i

rng = np.random.default_rng(0)
identity = CorticalSheet((16, 16), name="identity")
permuted = CorticalSheet((16, 16), layout="permuted", seed=0, name="permuted")
rows, cols = identity.positions.T
smooth_values = np.sin(rows / 3.0) + np.cos(cols / 4.0) + 0.3 * rng.standard_normal(256)

fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
plot_sheet_map(identity.to_map(smooth_values), ax=axes[0], title="identity layout")
plot_sheet_map(permuted.to_map(smooth_values), ax=axes[1], title="permuted layout")

# %%
for sheet in (identity, permuted):
    for adjacency in ("queen", "rook"):
        res = morans_i(sheet.to_map(smooth_values), adjacency=adjacency,
                       n_permutations=199, seed=0)
        print(f"{sheet.name:9s} {adjacency:6s} I = {res.I:.3f}  p = {res.p_sim:.3f}")
