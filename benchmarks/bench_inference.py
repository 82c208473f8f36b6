"""Benchmark: label-permutation null of Moran's I, topobrain vs the straightforward loop.

One run: 1000 label permutations of a 480-item, 24-layer, 28 x 28 localizer (smooth
synthetic responses, 240 S and 240 N items), Moran's I (queen, row-standardised) of the
Welch t-map of every layer.

* topobrain: ``map_permutation_test(..., n_jobs=1)`` and ``n_jobs=2``.
* the peer: for each permutation and layer, ``scipy.stats.ttest_ind`` (Welch) then
  ``esda.Moran(t, w, permutations=0)``; timed on a subset of permutations (the same label
  vectors topobrain drew) and scaled to 1000. The subset's values are compared with ours.

Run: ``.venv/bin/python benchmarks/bench_inference.py``. The machine has 2 cores shared
with background work, so the n_jobs=2 speed-up is what this box gives, not a ceiling.
"""

from __future__ import annotations

import os
import time

import numpy as np
from scipy import ndimage, stats

from topobrain import inference
from topobrain._utils._permutation import as_seed_sequence, label_permutations
from topobrain.inference import map_permutation_test

N_ITEMS, N_LAYERS, SHAPE, N_PERM, SEED = 480, 24, (28, 28), 1000, 0
N_SUBSET = int(os.environ.get("BENCH_SUBSET", 10))


def make_data(rng):
    maps = rng.standard_normal((N_ITEMS, N_LAYERS, *SHAPE))
    maps = ndimage.gaussian_filter(maps, sigma=(0, 0, 1.5, 1.5), mode="wrap")
    labels = np.array(["S", "N"] * (N_ITEMS // 2))
    maps[labels == "S", :, 8:16, 8:16] += 0.02  # a weak S > N patch
    return maps, labels


def replay(maps, labels, n):
    """The first n label vectors map_permutation_test drew (the permutation core's
    documented draws: the first n of a run are those of a run with n)."""
    data = inference._prepare_responses(maps)
    design = inference._build_design(labels, "S - N", data.n_items, None, None, False)
    perms = label_permutations(as_seed_sequence(SEED), n, design.labels, strata=design.strata)
    return design, design.labels[perms.indices]


def main():
    import esda
    import libpysal

    rng = np.random.default_rng(1)
    maps, labels = make_data(rng)
    print(f"data: {N_ITEMS} items x {N_LAYERS} layers x {SHAPE[0]} x {SHAPE[1]} "
          f"({maps.nbytes / 1e6:.0f} MB), {N_PERM} label permutations, Moran's I per layer")

    t0 = time.perf_counter()
    res1 = map_permutation_test(maps, labels, "S - N", n_permutations=N_PERM, seed=SEED,
                                n_jobs=1, verbose=0)
    ours1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    res2 = map_permutation_test(maps, labels, "S - N", n_permutations=N_PERM, seed=SEED,
                                n_jobs=2, verbose=0)
    ours2 = time.perf_counter() - t0
    assert np.array_equal(res1.null, res2.null)

    w = libpysal.weights.lat2W(*SHAPE, rook=False)
    w.transform = "r"
    design, perms = replay(maps, labels, N_SUBSET)
    y = maps.reshape(N_ITEMS, N_LAYERS, -1)[design.rows]
    peer = np.empty((N_SUBSET, N_LAYERS))
    t0 = time.perf_counter()
    for i in range(N_SUBSET):
        g0 = perms[i] == 0
        for j in range(N_LAYERS):
            t = stats.ttest_ind(y[g0, j], y[~g0, j], equal_var=False).statistic
            peer[i, j] = esda.Moran(t, w, permutations=0).I
    loop = (time.perf_counter() - t0) / N_SUBSET * N_PERM
    err = np.abs(peer - res1.null[:N_SUBSET]).max()

    print(f"observed mean Moran's I {res1.observed_mean:.4f}; label null "
          f"{res1.null_mean_over_layers.mean():.4f} (sd {res1.null_mean_over_layers.std():.4f}),"
          f" z {res1.z_mean:.2f}, p {res1.p_mean:.4f}")
    print(f"max |topobrain - scipy+esda| over {N_SUBSET} x {N_LAYERS} null values: {err:.2e}")
    print(f"topobrain n_jobs=1: {ours1:8.2f} s")
    print(f"topobrain n_jobs=2: {ours2:8.2f} s   (speed-up from 2 jobs: {ours1 / ours2:.2f}x; "
          f"2 cores shared with background training)")
    print(f"scipy ttest_ind + esda Moran loop: {loop:8.2f} s (timed on {N_SUBSET} "
          f"permutations x {N_LAYERS} layers, scaled to {N_PERM})")
    print(f"speed-up vs the loop: {loop / ours1:.1f}x (n_jobs=1), {loop / ours2:.1f}x "
          f"(n_jobs=2); goal >= 50x")


if __name__ == "__main__":
    main()
