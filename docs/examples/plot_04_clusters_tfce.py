"""
Cluster tables, cluster permutation tests and TFCE
==================================================

Plant a blob of signal in noisy one-sample data on a 28 x 28 sheet, list the clusters of
the thresholded t-map, test them against the permutation distribution of the maximum
cluster mass, and enhance the map threshold-free.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from topobrain.clusters import find_clusters, permutation_cluster_test, tfce
from topobrain.plotting import plot_sheet_map

rng = np.random.default_rng(0)
n_subjects, shape = 12, (28, 28)
rows, cols = np.mgrid[: shape[0], : shape[1]]
blob = np.exp(-((rows - 9) ** 2 + (cols - 18) ** 2) / (2 * 3.0**2))
data = 0.9 * blob + rng.standard_normal((n_subjects, *shape))

# %%
# The one-sample test: clusters of t above the threshold, FWE p from 500 sign flips.
res = permutation_cluster_test(data, threshold=3.1, tail=1, adjacency="queen",
                               n_permutations=500, seed=0, verbose=0)
res.clusters.to_frame().round(3)

# %%
# The thresholded clusters and the TFCE map of the same t-map.
t_map = res.stat_map[0]  # (n_layers, n_rows, n_cols): one layer here
table = find_clusters(t_map, 3.1, adjacency="queen", tail=1)
enhanced = tfce(t_map, adjacency="queen", tail=1).reshape(shape)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
plot_sheet_map(t_map, ax=axes[0], title=f"t ({table.n_clusters} clusters)",
               outline=res.p_fwe_map[0] < 0.05)
plot_sheet_map(enhanced, ax=axes[1], title="TFCE")
