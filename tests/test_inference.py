"""Tests of topobrain.inference: label-permutation nulls of map statistics and split-half
reliability. References: scipy.stats (t-tests, correlations), esda (Moran's I, Geary's C),
statsmodels (OLS t), topobrain.glm / clusters / correction / spatial (the public functions
that own each statistic)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage, stats

from topobrain import inference
from topobrain._utils import _permutation as core
from topobrain._utils._stats import two_sample_t
from topobrain.clusters import find_clusters
from topobrain.correction import fdr_correction
from topobrain.glm import design_matrix, fit_glm, welch_t
from topobrain.inference import (
    PermutationResult,
    SplitHalfResult,
    map_permutation_test,
    map_reliability,
    split_half_reliability,
)
from topobrain.sheet import CorticalSheet

esda = pytest.importorskip("esda", reason="esda is the reference for Moran's I (peers extra)")
libpysal = pytest.importorskip("libpysal", reason="libpysal builds esda's weights (peers extra)")

LABELS = np.array(["S"] * 20 + ["N"] * 20)


def smooth_items(rng, n_items, shape, sigma):
    """Items whose maps are smoothed white noise: neighbouring units correlate."""
    z = rng.standard_normal((n_items, *shape))
    return ndimage.gaussian_filter(z, sigma=(0,) * (z.ndim - 2) + (sigma, sigma), mode="wrap")


def lat_w(shape, rook=False):
    w = libpysal.weights.lat2W(*shape, rook=rook)
    w.transform = "r"
    return w


def replay_permutations(result_kwargs, maps, labels, contrast="S - N", groups=None):
    """The label vectors the test drew, rebuilt from the documented seeding scheme (the
    permutation core's label permutations of the design)."""
    data = inference._prepare_responses(maps)
    design = inference._build_design(labels, contrast, data.n_items, groups, None, False)
    ss = core.as_seed_sequence(result_kwargs["seed"])
    n = result_kwargs["n_permutations"]
    if design.labels is None:  # one-sample: the core's sign flips of the design's strata
        return design, core.sign_flips(ss, n, design.rows.size, strata=design.strata).signs
    perms = core.label_permutations(ss, n, design.labels, strata=design.strata)
    return design, design.labels[perms.indices]


# ------------------------------------------------------------------ unit statistic kernels
@pytest.mark.parametrize("equal_var", [False, True])
def test_flat_two_sample_t_matches_kernel_and_scipy(rng, equal_var):
    y = rng.standard_normal((37, 50)) * rng.uniform(0.5, 3, 50) + rng.normal(0, 5, 50)
    labels = (np.arange(37) >= 15).astype(int)  # 15 in group 0
    idx = np.argsort(rng.random((6, 37)), axis=1)  # random index permutations
    group0 = labels[idx] == 0
    t, df = core.permuted_two_sample_t(y, idx, labels, equal_var=equal_var, return_df=True)
    t_ref, df_ref = two_sample_t(y, np.stack([group0, ~group0], axis=1), equal_var=equal_var)
    np.testing.assert_allclose(t, t_ref, rtol=1e-10)
    np.testing.assert_allclose(np.broadcast_to(df, t.shape), np.broadcast_to(df_ref, t.shape),
                               rtol=1e-10)
    for i in range(6):
        sc = stats.ttest_ind(y[group0[i]], y[~group0[i]], equal_var=equal_var)
        np.testing.assert_allclose(t[i], sc.statistic, rtol=1e-9)


# ------------------------------------------------------------------ observed = direct function
def test_observed_morans_i_equals_esda_on_welch_map(rng):
    maps = smooth_items(rng, 40, (9, 11), 1.2).reshape(40, 1, 9, 11)
    maps = np.concatenate([maps, rng.standard_normal((40, 1, 9, 11))], axis=1)
    maps[:, 1, 0, :3] = np.nan  # cells without a unit in layer 1
    res = map_permutation_test(maps, LABELS, "S - N", n_permutations=10, seed=1, verbose=0)
    for j in range(2):
        y = maps[:, j].reshape(40, -1)
        keep = np.isfinite(y).all(0)
        t = welch_t(y[:, keep], LABELS, "S - N").t
        w = libpysal.weights.lat2W(9, 11, rook=False)
        w_sub = libpysal.weights.w_subset(w, list(np.flatnonzero(keep)))
        w_sub.transform = "r"
        ref = esda.Moran(t, w_sub, permutations=0).I
        np.testing.assert_allclose(res.observed[j], ref, rtol=1e-10)
    np.testing.assert_allclose(res.observed_mean, res.observed.mean())


def test_null_equals_scipy_ttest_then_esda_moran_loop(rng):
    """The straightforward loop of the issue (scipy t, esda Moran per permutation)."""
    maps = smooth_items(rng, 40, (6, 7), 1.0)
    kw = {"n_permutations": 70, "seed": 5}
    res = map_permutation_test(maps, LABELS, "S - N", verbose=0, **kw)
    design, perms = replay_permutations(kw, maps, LABELS)
    w = lat_w((6, 7))
    y = maps.reshape(40, -1)[design.rows]
    for i in (0, 33, 63, 64, 69):  # both blocks, both block edges
        g0 = perms[i] == 0
        t = stats.ttest_ind(y[g0], y[~g0], equal_var=False).statistic
        np.testing.assert_allclose(res.null[i, 0], esda.Moran(t, w, permutations=0).I,
                                   rtol=1e-9)


def test_morans_i_equals_spatial_module_with_and_without_islands(rng):
    spatial = pytest.importorskip("topobrain.spatial")
    maps = smooth_items(rng, 40, (8, 8), 1.0)
    maps[:, 0, 2] = maps[:, 1, 2] = maps[:, 1, 0] = np.nan  # cell (0, 0): an island
    kw = {"n_permutations": 12, "seed": 4}
    for weights in ("queen", "rook"):
        res = map_permutation_test(maps, LABELS, "S - N", adjacency=weights, verbose=0, **kw)
        design, perms = replay_permutations(kw, maps, LABELS)
        y = maps.reshape(40, -1)
        ok = np.isfinite(y).all(0)
        for i, lab in ((None, None), (7, perms[7])):
            g0 = design.labels == 0 if lab is None else lab == 0
            t = np.full(64, np.nan)
            t[ok] = stats.ttest_ind(y[g0][:, ok], y[~g0][:, ok], equal_var=False).statistic
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                ref = spatial.morans_i(t.reshape(8, 8), weights).I
            got = res.observed[0] if lab is None else res.null[i, 0]
            np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_distance_band_weights_equal_esda(rng):
    maps = smooth_items(rng, 40, (6, 6), 1.0)
    res = map_permutation_test(maps, LABELS, "S - N", adjacency="distance_band",
                               n_permutations=5, seed=0, verbose=0)
    t = welch_t(maps.reshape(40, -1), LABELS, "S - N").t
    coords = np.argwhere(np.ones((6, 6)))
    w = libpysal.weights.DistanceBand(coords, threshold=1.5, binary=True, silence_warnings=True)
    w.transform = "r"
    np.testing.assert_allclose(res.observed[0], esda.Moran(t, w, permutations=0).I,
                               rtol=1e-10)


def test_smoothness_equals_brute_force_variogram(rng):
    maps = smooth_items(rng, 40, (6, 7), 1.0)
    maps[:, 2, 3] = np.nan
    res = map_permutation_test(maps, LABELS, "S - N", statistic="smoothness",
                               n_permutations=5, seed=0, verbose=0)
    t = np.full(42, np.nan)
    y = maps.reshape(40, -1)
    ok = np.isfinite(y).all(0)
    t[ok] = welch_t(y[:, ok], LABELS, "S - N").t
    rows, cols = np.divmod(np.flatnonzero(ok), 7)
    vals = t[ok]
    sums, counts = {}, {}
    for i in range(vals.size):
        for j in range(vals.size):
            if i != j:
                b = int(np.floor(np.hypot(rows[i] - rows[j], cols[i] - cols[j]) + 0.5))
                sums[b] = sums.get(b, 0.0) + (vals[i] - vals[j]) ** 2
                counts[b] = counts.get(b, 0) + 1
    curve = np.array([sums[b] / counts[b] for b in sorted(sums)])
    np.testing.assert_allclose(res.observed[0], (curve.max() - curve[0]) / curve.max(),
                               rtol=1e-9)
    smooth = map_permutation_test(smooth_items(rng, 40, (6, 7), 2.0) + 3 * _bump(
        (6, 7), 2.0) * (LABELS == "S")[:, None, None], LABELS, "S - N",
        statistic="smoothness", n_permutations=50, seed=0, verbose=0)
    assert smooth.observed[0] > res.observed[0]


def test_gearys_c_observed_and_null_against_esda(rng):
    maps = smooth_items(rng, 40, (7, 7), 1.0)
    kw = {"n_permutations": 5, "seed": 2}
    res = map_permutation_test(maps, LABELS, "S - N", statistic="gearys_c", verbose=0, **kw)
    assert res.params["alternative"] == "less"
    design, perms = replay_permutations(kw, maps, LABELS)
    y = maps.reshape(40, -1)
    t_obs = welch_t(y, LABELS, "S - N").t
    w = lat_w((7, 7))
    np.testing.assert_allclose(res.observed[0], esda.Geary(t_obs, w, permutations=0).C,
                               rtol=1e-9)
    from topobrain.spatial import gearys_c

    np.testing.assert_allclose(res.observed[0], gearys_c(t_obs.reshape(7, 7)).C, rtol=1e-12)
    t = stats.ttest_ind(y[perms[3] == 0], y[perms[3] == 1], equal_var=False).statistic
    np.testing.assert_allclose(res.null[3, 0], esda.Geary(t, w, permutations=0).C, rtol=1e-9)


@pytest.mark.parametrize("threshold", [2.0, -1.5])
@pytest.mark.parametrize("name", ["n_clusters", "max_cluster_size", "max_cluster_mass"])
def test_cluster_statistics_equal_find_clusters(rng, name, threshold):
    maps = smooth_items(rng, 40, (10, 10), 1.0)
    maps[:20, 2:6, 2:6] += 0.8
    res = map_permutation_test(maps, LABELS, "S - N", statistic=name, threshold=threshold,
                               n_permutations=20, seed=0, verbose=0)
    t_map = welch_t(maps.reshape(40, -1), LABELS, "S - N").t.reshape(10, 10)
    tail = 1 if threshold > 0 else -1
    table = find_clusters(t_map, abs(threshold), adjacency="queen", tail=tail)
    expected = {
        "n_clusters": table.n_clusters,
        "max_cluster_size": table.size.max(initial=0),
        "max_cluster_mass": np.abs(table.mass).max(initial=0.0),
    }[name]
    np.testing.assert_allclose(res.observed[0], expected, rtol=1e-12)


def test_fraction_selective_equals_welch_plus_fdr(rng):
    maps = rng.standard_normal((40, 2, 6, 6))
    maps[:20, :, :2] += 1.5
    res = map_permutation_test(maps, LABELS, "S - N", statistic="fraction_selective",
                               n_permutations=10, seed=0, verbose=0)
    fixed = map_permutation_test(maps, LABELS, "S - N", statistic="fraction_selective",
                                 threshold=2.5, n_permutations=10, seed=0, verbose=0)
    for j in range(2):
        wt = welch_t(maps[:, j].reshape(40, -1), LABELS, "S - N", alternative="greater")
        expected = fdr_correction(wt.p, alpha=0.05).mask.mean()
        np.testing.assert_allclose(res.observed[j], expected, rtol=1e-12)
        np.testing.assert_allclose(fixed.observed[j], (wt.t > 2.5).mean(), rtol=1e-12)


def test_callable_statistic_sees_the_t_map(rng):
    maps = rng.standard_normal((40, 5, 6))
    maps[:, 0, 0] = np.nan

    def corner(m):
        assert m.shape == (5, 6) and np.isnan(m[0, 0])
        return float(m[4, 5])

    res = map_permutation_test(maps, LABELS, "S - N", statistic=corner, n_permutations=8,
                               seed=0, verbose=0)
    t = welch_t(maps.reshape(40, -1)[:, 1:], LABELS, "S - N").t
    np.testing.assert_allclose(res.observed[0], t[-1], rtol=1e-12)
    assert res.statistic == "corner" and res.params["alternative"] == "greater"


def test_activations_input_places_units_by_their_sheets(rng):
    extract = pytest.importorskip("topobrain.extract")
    shape = (5, 6)
    sheets = {"a": CorticalSheet(shape, layout="permuted", seed=3, name="a")}
    pos = np.stack(np.divmod(np.arange(34) % 30, 6), axis=1)  # 4 units share cells
    sheets["b"] = CorticalSheet(shape, layout=pos, name="b")
    data = {"a": rng.standard_normal((40, 30)), "b": rng.standard_normal((40, 34))}
    acts = extract.Activations.from_arrays(data, sheets, labels=list(LABELS))
    res = map_permutation_test(acts, None, "S - N", n_permutations=10, seed=0, verbose=0)
    assert res.layers == ["a", "b"]
    w = lat_w(shape)
    for j, name in enumerate(["a", "b"]):
        t = welch_t(data[name], LABELS, "S - N").t
        m = sheets[name].to_map(t).ravel()
        np.testing.assert_allclose(res.observed[j], esda.Moran(m, w, permutations=0).I,
                                   rtol=1e-10)
    # the same numbers from the plain maps of the permuted layer
    plain = map_permutation_test(acts.to_maps("a"), LABELS, "S - N", n_permutations=10,
                                 seed=0, verbose=0)
    np.testing.assert_allclose(plain.null[:, 0], res.null[:, 0], rtol=1e-12)


# ------------------------------------------------------------------ other unit statistics
def test_one_sample_sign_flips(rng):
    maps = rng.standard_normal((40, 6, 6)) + 0.2
    res = map_permutation_test(maps, LABELS, "-S", n_permutations=64, seed=0, verbose=0)
    assert res.params["scheme"] == "sign flip"
    t = -stats.ttest_1samp(maps[:20].reshape(20, -1), 0.0).statistic
    w = lat_w((6, 6))
    np.testing.assert_allclose(res.observed[0], esda.Moran(t, w, permutations=0).I, rtol=1e-9)
    design, signs = replay_permutations({"n_permutations": 64, "seed": 0}, maps, LABELS, "-S")
    t5 = -stats.ttest_1samp(maps[:20].reshape(20, -1) * signs[5][:, None], 0.0).statistic
    np.testing.assert_allclose(res.null[5, 0], esda.Moran(t5, w, permutations=0).I, rtol=1e-9)


def test_one_sample_groups_flip_together(rng):
    maps = rng.standard_normal((40, 4, 4))
    groups = np.repeat(np.arange(10), 4)
    data = inference._prepare_responses(maps)
    design = inference._build_design(LABELS, "S", 40, groups, None, False)
    signs = design.permutations(core.as_seed_sequence(0), 50).signs
    g = groups[design.rows]
    for gid in np.unique(g):
        assert (signs[:, g == gid] == signs[:, g == gid][:, :1]).all()
    assert data.n_items == 40


def test_covariates_give_the_glm_t(rng):
    statsmodels = pytest.importorskip("statsmodels.api", reason="statsmodels OLS reference")
    maps = rng.standard_normal((40, 5, 5))
    cov = rng.standard_normal(40)
    maps += 0.7 * cov[:, None, None]
    res = map_permutation_test(maps, LABELS, "S - N", covariates={"length": cov},
                               n_permutations=6, seed=0, verbose=0)
    assert res.params["unit_statistic"] == "ols_t"
    y = maps.reshape(40, -1)
    x = np.column_stack([LABELS == "S", LABELS == "N", cov - cov.mean()]).astype(float)
    t = np.array([statsmodels.OLS(y[:, u], x).fit().t_test([1, -1, 0]).tvalue.item()
                  for u in range(25)])
    np.testing.assert_allclose(
        t, fit_glm(y, design_matrix(list(LABELS), covariates={"length": cov}))
        .contrast("S - N").t, rtol=1e-8)
    np.testing.assert_allclose(res.observed[0], esda.Moran(t, lat_w((5, 5)),
                                                           permutations=0).I, rtol=1e-8)
    # the null: the same GLM after permuting the labels among the contrast's items only
    labels3 = LABELS.copy()
    labels3[::8] = "J"
    res3 = map_permutation_test(maps, labels3, "S - N", covariates={"length": cov},
                                n_permutations=6, seed=0, verbose=0)
    data = inference._prepare_responses(maps)
    design = inference._build_design(labels3, "S - N", 40, None, {"length": cov}, False)
    codes = design.labels[design.permutations(core.as_seed_sequence(0), 6).indices]
    names = np.asarray(design.names)
    for i in (0, 5):
        perm_labels = names[codes[i]]
        assert (perm_labels[labels3 == "J"] == "J").all()
        t = fit_glm(y, design_matrix(list(perm_labels), covariates={"length": cov})) \
            .contrast("S - N").t
        np.testing.assert_allclose(res3.null[i, 0], esda.Moran(t, lat_w((5, 5)),
                                                               permutations=0).I, rtol=1e-8)
    assert data.n_items == 40


# ------------------------------------------------------------------ exchangeability
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(4, 40), n_groups=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_permutations_stay_within_groups(n, n_groups, seed):
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(n) < 0.5, "S", "N")
    labels[:2], labels[2:4] = "S", "N"
    groups = rng.integers(0, n_groups, n)
    design = inference._build_design(labels, "S - N", n, groups, None, False)
    perms = design.labels[design.permutations(core.as_seed_sequence(seed), 30).indices]
    g = groups[design.rows]
    for gid in np.unique(g):
        sel = g == gid
        assert (np.sort(perms[:, sel], axis=1) == np.sort(design.labels[sel])).all()


def test_homogeneous_groups_leave_nothing_to_permute(rng):
    """With each group holding one condition, every within-group permutation is the
    identity: the exact null is the observed value alone and p is 1; without groups it
    is not."""
    maps = smooth_items(rng, 40, (6, 6), 1.0)
    maps[:20] += 0.5
    groups = np.repeat(["a", "b"], 20)
    with pytest.warns(UserWarning, match="only 1 distinct label permutation"):
        res = map_permutation_test(maps, LABELS, "S - N", groups=groups, n_permutations=30,
                                   seed=0, verbose=0)
    assert res.null.shape == (1, 1) and res.params["exact"]
    np.testing.assert_allclose(res.null[:, 0], res.observed[0], rtol=1e-12)
    assert res.p[0] == 1.0 and res.params["groups"] == 2
    free = map_permutation_test(maps, LABELS, "S - N", n_permutations=30, seed=0, verbose=0)
    assert np.ptp(free.null[:, 0]) > 0


# ------------------------------------------------------------------ calibration
def test_calibration_under_spatially_smooth_null(rng):
    """No condition effect, spatially smooth items: the label null is calibrated; esda's
    randomisation p on the same maps calls nearly every map clustered."""
    n_data = 100
    w = lat_w((12, 12))
    ours, theirs = np.empty(n_data), np.empty(n_data)
    for d in range(n_data):
        maps = smooth_items(rng, 40, (12, 12), 1.0)
        res = map_permutation_test(maps, LABELS, "S - N", n_permutations=99, seed=d,
                                   verbose=0)
        ours[d] = res.p_mean
        t = welch_t(maps.reshape(40, -1), LABELS, "S - N").t
        theirs[d] = esda.Moran(t, w, permutations=0, two_tailed=False).p_rand
    low, high = stats.binom.ppf([0.0005, 0.9995], n_data, 0.05)
    assert low <= (ours < 0.05).sum() <= high
    assert (theirs < 0.05).mean() > 0.5
    assert stats.kstest(ours, "uniform").pvalue > 0.001


def _bump(shape, sigma):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    b = np.exp(-((rr - (shape[0] - 1) / 2) ** 2 + (cc - (shape[1] - 1) / 2) ** 2)
               / (2 * sigma**2))
    return b / b.std()


def test_planted_broad_effect_is_detected(rng):
    for d in range(5):
        maps = smooth_items(rng, 40, (12, 12), 1.0)
        maps[:20] += maps.std() * _bump((12, 12), 3.0)
        res = map_permutation_test(maps, LABELS, "S - N", n_permutations=199, seed=d,
                                   verbose=0)
        assert res.p_mean < 0.01 and res.z_mean > 2


def test_effect_no_broader_than_the_noise_is_invisible_to_morans_i(rng):
    """Moran's I is scale-free: a strong effect with the noise's own smoothness leaves the
    map as autocorrelated as the null's; the effect's size is found by other statistics."""
    n_data, hits = 10, 0
    for d in range(n_data):
        maps = smooth_items(rng, 40, (12, 12), 1.0)
        effect = ndimage.gaussian_filter(rng.standard_normal((12, 12)), 1.0, mode="wrap")
        maps[:20] += 2.0 * maps.std() * effect / effect.std()
        moran = map_permutation_test(maps, LABELS, "S - N", n_permutations=199, seed=d,
                                     verbose=0)
        hits += moran.p_mean < 0.05
        size = map_permutation_test(maps, LABELS, "S - N", statistic="fraction_selective",
                                    n_permutations=199, seed=d, verbose=0)
        assert size.p_mean < 0.05 and size.observed[0] > 0.1
    assert hits <= stats.binom.ppf(0.999, n_data, 0.05)


# ------------------------------------------------------------------ p-values and seeds
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n_perm=st.integers(1, 150),
       alternative=st.sampled_from(["greater", "less", "two-sided"]))
def test_p_values_in_range(seed, n_perm, alternative):
    rng = np.random.default_rng(seed)
    maps = rng.standard_normal((12, 2, 4, 4))
    labels = ["S"] * 6 + ["N"] * 6
    res = map_permutation_test(maps, labels, "S - N", n_permutations=n_perm, seed=seed,
                               alternative=alternative, verbose=0)
    for p in (*res.p, res.p_mean):
        assert 1.0 / (n_perm + 1) <= p <= 1.0
    assert res.null.shape == (n_perm, 2) and res.null_mean_over_layers.shape == (n_perm,)


def test_p_value_definition(rng):
    maps = smooth_items(rng, 40, (6, 6), 1.0)
    res = map_permutation_test(maps, LABELS, "S - N", n_permutations=99, seed=0, verbose=0)
    null, obs = res.null[:, 0], res.observed[0]
    assert res.p[0] == pytest.approx((1 + (null >= obs).sum()) / 100)
    less = map_permutation_test(maps, LABELS, "S - N", n_permutations=99, seed=0,
                                alternative="less", verbose=0)
    both = map_permutation_test(maps, LABELS, "S - N", n_permutations=99, seed=0,
                                alternative="two-sided", verbose=0)
    assert less.p[0] == pytest.approx((1 + (null <= obs).sum()) / 100)
    assert both.p[0] == pytest.approx(min(1.0, 2 * min(res.p[0], less.p[0])))
    np.testing.assert_allclose(res.z, (obs - null.mean()) / null.std(ddof=1))


def test_seed_reproducibility_and_prefix_property(rng):
    maps = rng.standard_normal((40, 5, 5))
    a = map_permutation_test(maps, LABELS, "S - N", n_permutations=150, seed=7, verbose=0)
    b = map_permutation_test(maps, LABELS, "S - N", n_permutations=150, seed=7, verbose=0)
    c = map_permutation_test(maps, LABELS, "S - N", n_permutations=100, seed=7, verbose=0)
    d = map_permutation_test(maps, LABELS, "S - N", n_permutations=150, seed=8, verbose=0)
    np.testing.assert_array_equal(a.null, b.null)
    np.testing.assert_allclose(a.null[:100], c.null, rtol=1e-12)
    assert not np.array_equal(a.null, d.null)
    e = map_permutation_test(maps, LABELS, "S - N", n_permutations=10, seed=None, verbose=0)
    f = map_permutation_test(maps, LABELS, "S - N", n_permutations=10,
                             seed=e.params["seed"], verbose=0)
    np.testing.assert_array_equal(e.null, f.null)
    g = map_permutation_test(maps, LABELS, "S - N", n_permutations=10,
                             seed=np.random.default_rng(3), verbose=0)
    assert g.null.shape == (10, 1)


def test_inputs_are_not_modified(rng):
    maps = rng.standard_normal((40, 5, 5))
    maps[:, 0, 0] = np.nan
    before = maps.copy()
    labels = list(LABELS)
    groups = np.tile([0, 1], 20)
    map_permutation_test(maps, labels, "S - N", groups=groups, n_permutations=5, seed=0,
                         verbose=0)
    split_half_reliability(maps, labels, "S - N", n_splits=3, seed=0)
    np.testing.assert_array_equal(maps, before)
    assert labels == list(LABELS) and (groups == np.tile([0, 1], 20)).all()


# ------------------------------------------------------------------ parallel
# every map statistic (cheap settings): the null may not depend on n_jobs, chunks, backend
STATISTIC_CASES = [
    {"statistic": "morans_i"},
    {"statistic": "gearys_c"},
    {"statistic": "smoothness"},
    {"statistic": "n_clusters", "threshold": 1.0},
    {"statistic": "max_cluster_size", "threshold": 1.0},
    {"statistic": "max_cluster_mass", "threshold": -1.0},
    {"statistic": "fraction_selective"},
    {"statistic": "fraction_selective", "threshold": 1.5},
]


@pytest.mark.parametrize("case", STATISTIC_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_identical_for_any_n_jobs_and_chunking(rng, case):
    maps = rng.standard_normal((40, 2, 6, 6))
    kw = {"n_permutations": 130, "seed": 11, "verbose": 0, **case}
    ref = map_permutation_test(maps, LABELS, "S - N", n_jobs=1, **kw)
    for n_jobs, chunk in ((2, None), (1, 64), (2, 100), (1, 1000)):
        other = map_permutation_test(maps, LABELS, "S - N", n_jobs=n_jobs, chunk_size=chunk,
                                     **kw)
        np.testing.assert_array_equal(ref.null, other.null)
        np.testing.assert_array_equal(ref.p, other.p)
    # a joblib backend configured around the call takes over (n_jobs=None)
    import joblib

    with joblib.parallel_config(backend="threading", n_jobs=2):
        threaded = map_permutation_test(maps, LABELS, "S - N", **kw)
    np.testing.assert_array_equal(ref.null, threaded.null)


def test_one_sample_null_identical_for_any_n_jobs(rng):
    maps = rng.standard_normal((40, 5, 5)) + 0.1
    kw = {"n_permutations": 100, "seed": 2, "verbose": 0}
    ref = map_permutation_test(maps, LABELS, "S", n_jobs=1, **kw)
    other = map_permutation_test(maps, LABELS, "S", n_jobs=2, chunk_size=30, **kw)
    np.testing.assert_array_equal(ref.null, other.null)


def test_dask_local_cluster_gives_the_same_null(rng):
    distributed = pytest.importorskip("distributed", reason="dask.distributed (dev extra)")
    import joblib

    maps = rng.standard_normal((40, 2, 6, 6))
    kw = {"n_permutations": 130, "seed": 3, "verbose": 0}
    refs = [map_permutation_test(maps, LABELS, "S - N", n_jobs=1, **kw, **case)
            for case in STATISTIC_CASES]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with joblib.parallel_config(backend="dask"):
            got = [map_permutation_test(maps, LABELS, "S - N", n_jobs=None, **kw, **case)
                   for case in STATISTIC_CASES]
        assert len(client.scheduler_info()["workers"]) == 2
    for ref, res in zip(refs, got, strict=True):
        np.testing.assert_array_equal(ref.null, res.null)


def test_default_n_jobs_is_none():
    import inspect

    sig = inspect.signature(map_permutation_test)
    assert sig.parameters["n_jobs"].default is None


# ------------------------------------------------------------------ exact tests
def test_small_design_is_enumerated_exactly(rng):
    """3 + 3 items: all 20 label vectors, the identity first; p = #{>= observed} / 20,
    checked against a brute-force loop over itertools.combinations with scipy and esda."""
    import itertools

    maps = smooth_items(rng, 6, (5, 5), 1.0)
    labels = ["S"] * 3 + ["N"] * 3
    with pytest.warns(UserWarning, match="enumerates all of them"):
        res = map_permutation_test(maps, labels, "S - N", n_permutations=1000, seed=0,
                                   verbose=0)
    assert res.params["exact"] and res.null.shape == (20, 1)
    assert res.params["n_permutations"] == 20 and res.params["n_permutations_requested"] == 1000
    w = lat_w((5, 5))
    y = maps.reshape(6, -1)
    brute = []
    for group0 in itertools.combinations(range(6), 3):
        g0 = np.isin(np.arange(6), group0)
        t = stats.ttest_ind(y[g0], y[~g0], equal_var=False).statistic
        brute.append(esda.Moran(t, w, permutations=0).I)
    np.testing.assert_allclose(np.sort(res.null[:, 0]), np.sort(brute), rtol=1e-10)
    np.testing.assert_allclose(res.null[0, 0], res.observed[0], rtol=1e-12)  # identity first
    n_ge = (np.asarray(brute) >= res.observed[0] - 1e-9).sum()
    assert res.p[0] == pytest.approx(n_ge / 20)
    # swapping the groups negates every t-map and leaves Moran's I unchanged: the same
    # p-value whichever way round (the swapped grouping ties with the observed one)
    with pytest.warns(UserWarning, match="enumerates"):
        swapped = map_permutation_test(maps, labels, "N - S", n_permutations=1000, seed=0,
                                       verbose=0)
    np.testing.assert_array_equal(swapped.p, res.p)


def test_one_sample_exact_sign_flips(rng):
    maps = rng.standard_normal((5, 4, 4)) + 1.0
    labels = ["S"] * 5
    with pytest.warns(UserWarning, match="32 distinct sign flips"):
        res = map_permutation_test(maps, labels, "S", statistic="fraction_selective",
                                   threshold=0.5, n_permutations=100, seed=0, verbose=0)
    assert res.null.shape == (32, 1) and res.params["exact"]
    y = maps.reshape(5, -1)
    brute = []
    for bits in itertools_product_signs(5):
        t = stats.ttest_1samp(y * bits[:, None], 0.0).statistic
        brute.append((t > 0.5).mean())
    np.testing.assert_allclose(np.sort(res.null[:, 0]), np.sort(brute), rtol=1e-12)
    assert res.p[0] == pytest.approx((np.asarray(brute) >= res.observed[0] - 1e-9).mean())


def itertools_product_signs(n):
    import itertools

    return [np.array(s, dtype=float) for s in itertools.product([1.0, -1.0], repeat=n)]


# ------------------------------------------------------------------ adjacency
def test_weights_is_a_deprecated_alias_of_adjacency(rng):
    maps = smooth_items(rng, 40, (6, 6), 1.0)
    kw = {"n_permutations": 20, "seed": 0, "verbose": 0}
    new = map_permutation_test(maps, LABELS, "S - N", adjacency="rook", **kw)
    with pytest.warns(DeprecationWarning, match="use adjacency="):
        old = map_permutation_test(maps, LABELS, "S - N", weights="rook", **kw)
    np.testing.assert_array_equal(new.null, old.null)
    assert new.params["adjacency"] == old.params["adjacency"] == "rook"
    assert map_permutation_test(maps, LABELS, "S - N", **kw).params["adjacency"] == "queen"
    with pytest.raises(TypeError, match="pass only adjacency"):
        map_permutation_test(maps, LABELS, "S - N", weights="rook", adjacency="queen", **kw)


def test_sparse_adjacency_equals_esda_and_find_clusters(rng):
    """A custom graph over the sheet's cells: Moran's I equals esda with the same graph
    (restricted to the occupied cells, row-standardised), cluster sizes equal
    find_clusters on the occupied cells' values."""
    import scipy.sparse as sp

    maps = smooth_items(rng, 40, (6, 6), 1.0)
    maps[:, 0, 0] = np.nan  # one empty cell
    a = sp.random(36, 36, density=0.12, random_state=1, format="csr")
    a = ((a + a.T) > 0).astype(float)
    a.setdiag(0)
    a.eliminate_zeros()
    res = map_permutation_test(maps, LABELS, "S - N", adjacency=a, n_permutations=5, seed=0,
                               verbose=0)
    assert res.params["adjacency"].startswith("custom sparse (36 x 36")
    y = maps.reshape(40, -1)
    ok = np.isfinite(y).all(0)
    t = welch_t(y[:, ok], LABELS, "S - N").t
    sub = a[ok][:, ok]
    w = libpysal.weights.WSP(sp.csr_matrix(sub)).to_W(silence_warnings=True)
    w.transform = "r"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.Moran(t, w, permutations=0).I
    np.testing.assert_allclose(res.observed[0], ref, rtol=1e-10)
    size = map_permutation_test(maps, LABELS, "S - N", adjacency=a, statistic="max_cluster_size",
                                threshold=0.5, n_permutations=5, seed=0, verbose=0)
    table = find_clusters(t[None, :], 0.5, adjacency=sp.csr_matrix(sub), tail=1)
    expect = float(np.max(table.size)) if len(table.size) else 0.0
    assert size.observed[0] == expect
    with pytest.raises(ValueError, match="covers 25 locations"):
        map_permutation_test(maps, LABELS, "S - N", adjacency=sp.eye(25, format="csr"),
                             n_permutations=5, verbose=0)


# ------------------------------------------------------------------ near-constant maps
def test_near_constant_map_gives_nan_with_a_warning(rng):
    """Units that are positive affine copies of one response vector have the same Welch t:
    the t-map is constant up to rounding, its Moran's I undefined (NaN, never a p)."""
    base = rng.standard_normal(40)
    scale = rng.uniform(1.0, 2.0, (6, 6))
    shift = rng.uniform(-3, 3, (6, 6))
    layer0 = base[:, None, None] * scale + shift
    layer1 = smooth_items(rng, 40, (6, 6), 1.0)
    maps = np.stack([layer0, layer1], axis=1)
    with pytest.warns(UserWarning, match="constant up to rounding"):
        res = map_permutation_test(maps, LABELS, "S - N", n_permutations=30, seed=0, verbose=0)
    assert np.isnan(res.observed[0]) and np.isnan(res.p[0]) and np.isnan(res.z[0])
    assert np.isnan(res.null[:, 0]).all()
    assert np.isfinite(res.p[1])
    assert res.observed_mean == pytest.approx(res.observed[1])
    np.testing.assert_allclose(res.null_mean_over_layers, res.null[:, 1])
    assert 0 < res.p_mean <= 1


# ------------------------------------------------------------------ results
def test_result_frame_and_repr(rng):
    maps = rng.standard_normal((40, 14, 4, 4))
    res = map_permutation_test(maps, LABELS, "S - N", n_permutations=20, seed=0, verbose=0)
    assert isinstance(res, PermutationResult)
    frame = res.to_frame()
    assert list(frame.columns) == ["layer", "statistic", "observed", "null_mean", "null_sd",
                                   "z", "p", "n_permutations", "alternative"]
    assert len(frame) == 14
    np.testing.assert_allclose(frame["null_sd"], res.null.std(0, ddof=1))
    full = res.to_frame(include_mean=True)
    assert full.iloc[-1]["layer"] == "mean" and full.iloc[-1]["p"] == res.p_mean
    text = repr(res)
    assert "morans_i" in text and "..." in text and len(text.splitlines()) < 20
    with pytest.raises(Exception, match="cannot assign|frozen"):
        res.p_mean = 0.0


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"statistic": "morans"}, ValueError, "Did you mean 'morans_i'"),
        ({"statistic": 3}, TypeError, "statistic must be"),
        ({"statistic": "n_clusters"}, ValueError, "needs a cluster-forming threshold"),
        ({"n_permutations": 0}, ValueError, "n_permutations must be at least 1"),
        ({"n_permutations": 2.5}, TypeError, "n_permutations must be an integer"),
        ({"alternative": "bigger"}, ValueError, "'alternative' parameter"),
        ({"seed": "x"}, TypeError, "seed must be"),
        ({"seed": -1}, ValueError, "seed must be non-negative"),
        ({"n_jobs": 0}, ValueError, "non-zero"),
        ({"adjacency": "king"}, ValueError, "Invalid adjacency 'king'"),
        ({"threshold": "high", "statistic": "n_clusters"}, TypeError, "threshold must be"),
        ({"alpha": 1.5, "statistic": "fraction_selective"}, ValueError, "alpha must be"),
        ({"groups": [0, 1]}, ValueError, "one exchangeability-group label per item"),
        ({"equal_var": "yes"}, TypeError, "equal_var must be True or False"),
        ({"covariates": {"len": np.ones(3)}}, ValueError, "one value per item"),
    ],
)
def test_option_errors(rng, kwargs, error, match):
    maps = rng.standard_normal((40, 4, 4))
    with pytest.raises(error, match=match):
        map_permutation_test(maps, LABELS, "S - N", verbose=0, **kwargs)


def test_input_errors(rng):
    maps = rng.standard_normal((40, 4, 4))
    with pytest.raises(ValueError, match="sheet.to_map"):
        map_permutation_test(maps.reshape(40, 16), LABELS, "S - N")
    with pytest.raises(TypeError, match="responses must be maps"):
        map_permutation_test("maps.npy", LABELS, "S - N")
    bad = maps.copy()
    bad[3, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN in some items but not others"):
        map_permutation_test(bad, LABELS, "S - N")
    bad[3, 1, 1] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        map_permutation_test(bad, LABELS, "S - N")
    with pytest.raises(ValueError, match="one label per item"):
        map_permutation_test(maps, LABELS[:10], "S - N")
    with pytest.raises(TypeError, match="single string"):
        map_permutation_test(maps, "S", "S - N")
    with pytest.raises(ValueError, match="unknown condition"):
        map_permutation_test(maps, LABELS, "S - X")
    with pytest.raises(ValueError, match="at least 2 items"):
        map_permutation_test(maps, ["S"] + ["N"] * 39, "S - N")
    with pytest.raises(ValueError, match="single condition and no covariates"):
        map_permutation_test(maps, LABELS, "S + N")
    const = np.ones((40, 4, 4))
    with pytest.raises(ValueError, match="at least 3 are needed"):
        map_permutation_test(const, LABELS, "S - N")
    with pytest.raises(TypeError, match="conditions is required"):
        map_permutation_test(maps, None, "S - N")


def test_too_few_distinct_permutations_warns(rng):
    maps = rng.standard_normal((6, 4, 4))
    with pytest.warns(UserWarning, match="20 distinct label permutations"):
        map_permutation_test(maps, ["S"] * 3 + ["N"] * 3, "S - N", n_permutations=50, seed=0,
                             verbose=0)


# ------------------------------------------------------------------ split-half reliability
def test_odd_even_split_against_scipy(rng):
    pattern = ndimage.gaussian_filter(rng.standard_normal((7, 7)), 1.0)
    maps = rng.standard_normal((40, 2, 7, 7))
    maps[:20] += pattern / pattern.std()
    labels = np.array(["S", "N"] * 20)
    maps = maps[np.argsort(labels == "N", kind="stable")][np.argsort(
        np.argsort(labels == "N", kind="stable"))]
    res = split_half_reliability(maps, labels, "S - N", method="odd_even")
    assert isinstance(res, SplitHalfResult) and res.n_splits == 1
    y = maps.reshape(40, 2, 49)
    pos = np.flatnonzero(labels == "S")
    neg = np.flatnonzero(labels == "N")
    a = np.r_[pos[0::2], neg[0::2]]
    b = np.r_[pos[1::2], neg[1::2]]
    for j in range(2):
        ta = welch_t(y[a, j], labels[a], "S - N").t
        tb = welch_t(y[b, j], labels[b], "S - N").t
        r = stats.pearsonr(ta, tb).statistic
        np.testing.assert_allclose(res.r[j], r, rtol=1e-9)
        np.testing.assert_allclose(res.reliability[j], 2 * r / (1 + r), rtol=1e-9)
    sp = split_half_reliability(maps, labels, "S - N", method="odd_even",
                                correlation="spearman", spearman_brown=False)
    ta = welch_t(y[a, 0], labels[a], "S - N").t
    tb = welch_t(y[b, 0], labels[b], "S - N").t
    np.testing.assert_allclose(sp.reliability[0], stats.spearmanr(ta, tb).statistic,
                               rtol=1e-9)


def test_random_splits_reliable_signal_and_null(rng):
    pattern = ndimage.gaussian_filter(rng.standard_normal((8, 8)), 1.0)
    maps = rng.standard_normal((40, 2, 8, 8))
    maps[:20, 0] += 2 * pattern / pattern.std()  # layer 0: a real contrast map
    res = split_half_reliability(maps, LABELS, "S - N", n_splits=30, seed=1)
    again = split_half_reliability(maps, LABELS, "S - N", n_splits=30, seed=1)
    np.testing.assert_array_equal(res.r_half, again.r_half)
    assert res.r_half.shape == (30, 2)
    assert res.reliability[0] > 0.8
    assert abs(res.r[1]) < 0.15  # no contrast: halves do not agree
    np.testing.assert_allclose(res.r, res.r_half.mean(0))
    frame = res.to_frame()
    assert list(frame.columns[:4]) == ["layer", "r_half", "r_half_sd", "reliability"]
    assert "reliability" in repr(res)


def test_split_half_one_sample_and_glm_against_direct(rng):
    maps = rng.standard_normal((40, 5, 5))
    maps[:20] += rng.standard_normal((5, 5))
    y = maps.reshape(40, -1)
    one = split_half_reliability(maps, LABELS, "S", method="odd_even")
    a, b = np.arange(0, 20, 2), np.arange(1, 20, 2)
    r = stats.pearsonr(stats.ttest_1samp(y[a], 0).statistic,
                       stats.ttest_1samp(y[b], 0).statistic).statistic
    np.testing.assert_allclose(one.r[0], r, rtol=1e-9)
    cov = rng.standard_normal(40)
    glm_res = split_half_reliability(maps, LABELS, "S - N", method="odd_even",
                                     covariates={"c": cov})
    assert glm_res.params["unit_statistic"] == "ols_t"
    halves = [np.r_[np.arange(0, 20, 2), np.arange(20, 40, 2)],
              np.r_[np.arange(1, 20, 2), np.arange(21, 40, 2)]]
    t = [fit_glm(y[h], design_matrix(list(LABELS[h]), covariates={"c": cov[h]}))
         .contrast("S - N").t for h in halves]
    np.testing.assert_allclose(glm_res.r[0], stats.pearsonr(*t).statistic, rtol=1e-9)


def test_split_half_with_groups_keeps_groups_whole(rng):
    maps = rng.standard_normal((40, 5, 5))
    groups = np.repeat(np.arange(8), 5)
    labels = np.array(["S", "N", "S", "N", "S"] * 8)
    data = inference._prepare_responses(maps)
    design = inference._build_design(labels, "S - N", data.n_items, groups, None, False)
    halves = inference._half_assignments(design, "random", 10, core.as_seed_sequence(0), True)
    for gid in range(8):
        sel = groups[design.rows] == gid
        assert (halves[:, sel] == halves[:, sel][:, :1]).all()
    res = split_half_reliability(maps, labels, "S - N", groups=groups, n_splits=10, seed=0)
    assert res.params["groups"] == 8


def test_map_reliability_against_numpy(rng):
    truth = rng.standard_normal((3, 6, 6))
    a = truth + rng.standard_normal((3, 6, 6))
    b = truth + rng.standard_normal((3, 6, 6))
    a[0, 0, 0] = np.nan
    res = map_reliability(a, b, layers=["x", "y", "z"])
    for j in range(3):
        ok = np.isfinite(a[j]) & np.isfinite(b[j])
        r = np.corrcoef(a[j][ok], b[j][ok])[0, 1]
        np.testing.assert_allclose(res.r[j], r, rtol=1e-10)
        np.testing.assert_allclose(res.reliability[j], 2 * r / (1 + r), rtol=1e-10)
    assert res.layers == ["x", "y", "z"]
    vec = map_reliability(a[1].ravel(), b[1].ravel(), correlation="spearman")
    np.testing.assert_allclose(vec.r[0], stats.spearmanr(a[1].ravel(), b[1].ravel())
                               .statistic, rtol=1e-10)
    with pytest.raises(ValueError, match="same shape"):
        map_reliability(a, b[:2])
    with pytest.raises(ValueError, match="fewer than 3"):
        map_reliability(np.array([1.0, 2.0, np.nan]), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="'correlation' parameter"):
        map_reliability(a, b, correlation="kendall")
    with pytest.raises(TypeError, match="real numbers"):
        map_reliability(a.astype(complex), b)


def test_split_half_errors(rng):
    maps = rng.standard_normal((40, 4, 4))
    with pytest.raises(ValueError, match="exactly one split"):
        split_half_reliability(maps, LABELS, "S - N", method="odd_even", n_splits=5)
    with pytest.raises(ValueError, match="'method' parameter"):
        split_half_reliability(maps, LABELS, "S - N", method="halves")
    with pytest.raises(ValueError, match="A half has only"):
        split_half_reliability(maps[:6], ["S", "S", "S", "N", "N", "N"], "S - N",
                               method="odd_even")


# ------------------------------------------------------------------ import hygiene
def test_import_pulls_no_torch_or_matplotlib():
    code = ("import sys, topobrain.inference; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_docstring_examples_run():
    import doctest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = doctest.testmod(inference, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_reliability_of_near_constant_maps_is_nan_with_a_warning(rng):
    truth = rng.standard_normal((2, 6, 6))
    a = truth + 0.3 * rng.standard_normal((2, 6, 6))
    b = truth + 0.3 * rng.standard_normal((2, 6, 6))
    a[0] = 2.0 + 1e-15 * rng.standard_normal((6, 6))  # constant up to rounding
    with pytest.warns(UserWarning, match="constant up to rounding"):
        res = map_reliability(a, b)
    assert np.isnan(res.r[0]) and np.isfinite(res.r[1])
    assert res.reliability_mean == pytest.approx(res.reliability[1])
    # split halves: a layer whose t-maps are constant up to rounding in every split
    base = rng.standard_normal(40)
    layer0 = base[:, None, None] * rng.uniform(1.0, 2.0, (5, 5)) + rng.uniform(-3, 3, (5, 5))
    maps = np.stack([layer0, rng.standard_normal((40, 5, 5))], axis=1)
    with pytest.warns(UserWarning, match="constant up to rounding"):
        half = split_half_reliability(maps, LABELS, "S - N", n_splits=4, seed=0)
    assert np.isnan(half.r[0]) and np.isfinite(half.r[1])
