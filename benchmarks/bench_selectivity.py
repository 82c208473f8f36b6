"""Selectivity maps: topobrain.selectivity vs scipy.stats.f_oneway(axis=0) + a plain numpy pass.

24 layers x 784 units x 4 conditions x 160 items (40 per condition), one run, one
process. Prints both wall times and the ratio (goal: topobrain at least as fast).
"""

from __future__ import annotations

import time

import numpy as np
from scipy import stats as sps

from topobrain.selectivity import selectivity


def straightforward(layers, labels):
    conds = list(dict.fromkeys(labels))
    out = {}
    for name, y in layers.items():
        groups = [y[labels == c] for c in conds]
        f = sps.f_oneway(*groups, axis=0)
        means = np.stack([g.mean(0) for g in groups])
        order = np.argsort(-means, 0)
        cols = np.arange(y.shape[1])
        margin = means[order[0], cols] - means[order[1], cols]
        t_rest = np.stack([sps.ttest_ind(y[labels == c], y[labels != c], equal_var=False).statistic
                           for c in conds])
        dprime = np.stack([(y[labels == c].mean(0) - y[labels != c].mean(0))
                           / np.sqrt((y[labels == c].var(0, ddof=1)
                                      + y[labels != c].var(0, ddof=1)) / 2) for c in conds])
        out[name] = (f.statistic, f.pvalue, order[0], margin, t_rest, dprime)
    return out


def main():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.array(["S", "W", "J", "N"]), 40)
    layers = {f"layer.{i // 2}.{'attn' if i % 2 == 0 else 'mlp'}": rng.normal(size=(160, 784))
              for i in range(24)}
    selectivity(layers, labels)  # warm-up
    t0 = time.perf_counter()
    ours = selectivity(layers, labels)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = straightforward(layers, labels)
    t_ref = time.perf_counter() - t0
    name = next(iter(layers))
    np.testing.assert_allclose(ours.f[name], ref[name][0], rtol=1e-10)
    print(f"topobrain.selectivity: {t_ours * 1e3:.1f} ms")
    print(f"scipy f_oneway + numpy: {t_ref * 1e3:.1f} ms")
    print(f"ratio (reference / topobrain): {t_ref / t_ours:.2f}x")


if __name__ == "__main__":
    main()
