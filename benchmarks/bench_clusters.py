"""Cluster permutation test: topobrain vs MNE-Python on the same data, in one process.

A two-sample test on 24 layers of 28 x 28 units (TopoLM's sheets) and 480 items
(240 per condition), 1000 permutations (MNE counts the observed labelling among its
``n_permutations``; topobrain takes 999 random ones, the same null size), F statistic
(MNE's default ``f_oneway``) with the same cluster-forming threshold and rook adjacency,
cluster mass, one null per layer (MNE is run once per layer), ``n_jobs=1`` for both and
BLAS limited to one thread for both (threadpoolctl), so each side gets one core.
MNE gets the sparse adjacency, its faster path here (the lattice path of
``adjacency=None`` clusters the same units). Prints both times, the ratio, and how
the answers agree (same clusters; p-values within Monte Carlo error, the permutations
differ). Wall-clock and CPU (process) times are both printed: on a busy machine the CPU
times are the steadier comparison.

Run: ``.venv/bin/python benchmarks/bench_clusters.py``
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

try:  # installed with scikit-learn/scipy stacks; without it BLAS keeps its threads
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    from contextlib import nullcontext

    def threadpool_limits(limits=None):
        return nullcontext()

from topobrain.clusters import permutation_cluster_test
from topobrain.sheet import grid_weights

N_ITEMS, N_LAYERS, SHAPE, N_PERM, THRESHOLD = 480, 24, (28, 28), 1000, 4.0


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((N_ITEMS, N_LAYERS) + SHAPE)
    data = ndimage.gaussian_filter(data, sigma=(0, 0, 1.0, 1.0))  # smooth sheets
    data /= data.std()
    data[: N_ITEMS // 2, ::3, 5:12, 5:12] += 0.12  # an effect in every third layer
    data[: N_ITEMS // 2, 1::3, 15:20, 18:26] -= 0.1
    return data


def main():
    import mne

    mne.set_log_level("ERROR")
    data = make_data()
    groups = [np.arange(N_ITEMS) < N_ITEMS // 2, np.arange(N_ITEMS) >= N_ITEMS // 2]
    adjacency = sp.coo_array(grid_weights(SHAPE, "rook", transform="b"))

    t0, c0 = time.perf_counter(), time.process_time()
    ours = permutation_cluster_test(data, groups, stat="f", threshold=THRESHOLD,
                                    cluster_stat="mass", family="layer", adjacency="rook",
                                    n_permutations=N_PERM - 1, seed=0, n_jobs=1, verbose=0)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0

    t_mne = c_mne = 0.0
    mne_out = []
    for layer in range(N_LAYERS):
        a = data[groups[0], layer].reshape(-1, SHAPE[0] * SHAPE[1])
        b = data[groups[1], layer].reshape(-1, SHAPE[0] * SHAPE[1])
        t0, c0 = time.perf_counter(), time.process_time()
        out = mne.stats.permutation_cluster_test(
            [a, b], threshold=THRESHOLD, tail=1, adjacency=adjacency, n_permutations=N_PERM,
            rng=np.random.default_rng(layer), n_jobs=1, out_type="mask")
        t_mne += time.perf_counter() - t0
        c_mne += time.process_time() - c0
        mne_out.append(out)

    # agreement: same statistic, same clusters, p within Monte Carlo error
    max_stat_diff, same_clusters, n_clusters, worst_z = 0.0, True, 0, 0.0
    for layer, (f_obs, clusters, pv, _) in enumerate(mne_out):
        max_stat_diff = max(max_stat_diff, float(np.nanmax(
            np.abs(ours.stat_map[layer].ravel() - f_obs)) / np.abs(f_obs).max()))
        sel = ours.clusters.layer_index == layer
        mine = {frozenset(np.flatnonzero(ours.clusters.labels[layer] == c).tolist()): p
                for c, p in zip(ours.clusters.cluster_id[sel], ours.clusters.p_fwe[sel],
                                strict=True)}
        theirs = {frozenset(np.flatnonzero(c).tolist()): p
                  for c, p in zip(clusters, pv, strict=True)}
        same_clusters &= mine.keys() == theirs.keys()
        n_clusters += len(theirs)
        for key in mine.keys() & theirs.keys():
            p = (mine[key] + theirs[key]) / 2  # two independent estimates of one p
            sd = np.sqrt(2 * max(p * (1 - p), 1.0 / N_PERM) / N_PERM)
            worst_z = max(worst_z, abs(mine[key] - theirs[key]) / sd)

    print(f"two-sample cluster test, {N_LAYERS} layers of {SHAPE[0]}x{SHAPE[1]} units, "
          f"{N_ITEMS} items, {N_PERM} permutations, F > {THRESHOLD}, n_jobs=1")
    print(f"topobrain: {t_ours:8.2f} s wall ({t_ours / N_LAYERS:.3f} s per layer), "
          f"{c_ours:8.2f} s CPU")
    print(f"MNE      : {t_mne:8.2f} s wall ({t_mne / N_LAYERS:.3f} s per layer), "
          f"{c_mne:8.2f} s CPU")
    print(f"speed-up : {t_mne / t_ours:8.1f}x wall-clock, {c_mne / c_ours:.1f}x CPU time")
    print(f"agreement: max F difference {max_stat_diff:.1e} of the largest F; identical clusters "
          f"{same_clusters} ({n_clusters} clusters); largest p difference "
          f"{worst_z:.2f} Monte Carlo SD")


if __name__ == "__main__":
    with threadpool_limits(limits=1):
        main()
