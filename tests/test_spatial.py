"""Spatial statistics: Moran's I, local Moran, Geary's C (against esda), distance profiles.

Reference tests build libpysal weights from the same restricted adjacency that the library
uses after dropping NaN cells and islands (computed here independently), then compare with
``esda.Moran``, ``esda.Moran_Local`` and ``esda.Geary`` at 1e-10.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import topobrain.spatial as spatial
from topobrain._utils._permutation import (
    BLOCK_SIZE,
    TIE_RTOL,
    as_seed_sequence,
    block_keys,
    n_blocks,
    stream,
)
from topobrain._utils._stats import moran_i_raw
from topobrain.sheet import CorticalSheet, grid_weights
from topobrain.spatial import (
    DistanceProfile,
    GearyResult,
    LocalMoranResult,
    MoranResult,
    distance_profile,
    gearys_c,
    local_morans_i,
    morans_i,
)

esda = pytest.importorskip("esda", reason="esda is the reference for Moran's I and Geary's C")
libpysal = pytest.importorskip("libpysal", reason="libpysal builds esda's weights")

RTOL = 1e-10
ATOL = 1e-12


# -- helpers ----------------------------------------------------------------------------
def smooth_map(rng, shape, scale=1.0, noise=1.0):
    """A random map with some spatial autocorrelation (box-blurred noise plus noise)."""
    a = rng.standard_normal((shape[0] + 2, shape[1] + 2))
    blur = sum(a[i:i + shape[0], j:j + shape[1]] for i in range(3) for j in range(3)) / 9.0
    return scale * blur + noise * 0.3 * rng.standard_normal(shape)


def with_holes(rng, m, kind, frac=0.1):
    """Random NaN cells plus a deliberate island at (r, c) whose neighbours are all NaN."""
    m = m.copy()
    m[rng.random(m.shape) < frac] = np.nan
    r, c = 2, 3
    m[r, c] = 1.0 if np.isnan(m[r, c]) else m[r, c]
    offs = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if kind == "queen":
        offs += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for dr, dc in offs:
        m[r + dr, c + dc] = np.nan
    return m


def reference_cells(m, kind):
    """Kept cells and binary adjacency after the NaN drop and island drop (independent)."""
    keep = ~np.isnan(m)
    adj = grid_weights(m.shape, kind, transform="b", mask=keep)
    idx = np.flatnonzero(keep.ravel())
    while True:
        deg = np.asarray(adj.sum(1)).ravel()
        if (deg > 0).all():
            break
        ok = deg > 0
        idx, adj = idx[ok], adj[ok][:, ok]
    return idx, sp.csr_matrix(adj)


def lp_weights(adj):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return libpysal.weights.WSP(sp.csr_matrix(adj)).to_W(silence_warnings=True)


def esda_moran(y, adj, transform="r", permutations=0, two_tailed=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return esda.Moran(y, lp_weights(adj), transformation=transform,
                          permutations=permutations, two_tailed=two_tailed)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


# -- global Moran's I against esda ------------------------------------------------------
@pytest.mark.parametrize("kind", ["rook", "queen"])
@pytest.mark.parametrize("transform", ["r", "b"])
def test_moran_matches_esda_with_nan_holes(rng, kind, transform):
    m = with_holes(rng, smooth_map(rng, (12, 13)), kind)
    idx, adj = reference_cells(m, kind)
    y = m.ravel()[idx]
    with pytest.warns(UserWarning, match=r"Dropped 1 island cells"):
        ours = morans_i(m, kind, transform=transform)
    with pytest.warns(UserWarning, match="island"):
        ours_d = morans_i(m, kind, transform=transform, alternative="directed")
    ref = esda_moran(y, adj, transform)
    ref1 = esda_moran(y, adj, transform, two_tailed=False)
    assert ours.n_cells == idx.size and ours.n_islands == 1
    close(ours.I, ref.I)
    close(ours.expected, ref.EI)
    close(ours.variance_norm, ref.VI_norm)
    close(ours.variance_rand, ref.VI_rand)
    close(ours.z_norm, ref.z_norm)
    close(ours.z_rand, ref.z_rand)
    close(ours.p_norm, ref.p_norm)      # two-sided == esda's default two_tailed=True
    close(ours.p_rand, ref.p_rand)
    close(ours_d.p_norm, ref1.p_norm)   # directed == esda two_tailed=False
    close(ours_d.p_rand, ref1.p_rand)


def test_default_weights_are_the_published_queen_lattice(rng):
    m = smooth_map(rng, (28, 28))
    ours = morans_i(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.Moran(m.ravel(), libpysal.weights.lat2W(28, 28, rook=False), permutations=0)
    close(ours.I, ref.I)
    close(ours.variance_rand, ref.VI_rand)
    assert ours.n_cells == 784 and ours.n_islands == 0


def test_batch_with_different_nan_patterns_equals_each_map(rng):
    maps = np.stack([smooth_map(rng, (10, 11)) for _ in range(5)])
    maps[1, 0, :4] = np.nan
    maps[3, 5:7, 5:7] = np.nan
    maps[4] = with_holes(rng, maps[4], "queen")
    with pytest.warns(UserWarning, match="island"):
        batch = morans_i(maps)
    assert batch.I.shape == (5,) and batch.n_maps == 5
    for k in range(5):
        idx, adj = reference_cells(maps[k], "queen")
        ref = esda_moran(maps[k].ravel()[idx], adj)
        close(batch.I[k], ref.I)
        close(batch.variance_rand[k], ref.VI_rand)
        close(batch.p_norm[k], ref.p_norm)
        assert batch.n_cells[k] == idx.size


def test_vector_with_sparse_mesh_weights_matches_esda(rng):
    from scipy.spatial import Delaunay

    pts = rng.random((150, 2))
    tri = Delaunay(pts)
    i = tri.simplices[:, [0, 1, 2, 0, 1, 2]].ravel()
    j = tri.simplices[:, [1, 2, 0, 2, 0, 1]].ravel()
    adj = sp.csr_matrix((np.ones(i.size), (i, j)), shape=(150, 150))
    adj.data[:] = 1.0
    y = np.sin(4 * pts[:, 0]) + 0.5 * rng.standard_normal(150)
    ours = morans_i(y, adj)
    ref = esda_moran(y, adj)
    close(ours.I, ref.I)
    close(ours.variance_norm, ref.VI_norm)
    close(ours.z_rand, ref.z_rand)
    # a libpysal W is accepted as weights too (its .sparse), and NaN cells drop
    close(morans_i(y, lp_weights(adj)).I, ref.I)
    y2 = y.copy()
    y2[[3, 40]] = np.nan
    keep = np.flatnonzero(~np.isnan(y2))
    sub = adj[keep][:, keep]
    close(morans_i(y2, adj).I, esda_moran(y2[keep], sub).I)


# -- Geary's C against esda -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rook", "queen"])
def test_geary_matches_esda_with_nan_holes(rng, kind):
    m = with_holes(rng, smooth_map(rng, (11, 12)), kind)
    idx, adj = reference_cells(m, kind)
    y = m.ravel()[idx]
    with pytest.warns(UserWarning, match="island"):
        ours = gearys_c(m, kind, alternative="directed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.Geary(y, lp_weights(adj), transformation="r", permutations=0)
    close(ours.C, ref.C)
    close(ours.expected, ref.EC)
    close(ours.variance_norm, ref.VC_norm)
    close(ours.variance_rand, ref.VC_rand)
    close(ours.z_norm, ref.z_norm)
    close(ours.z_rand, ref.z_rand)
    close(ours.p_norm, ref.p_norm)      # esda's Geary p is one-sided on the observed side
    close(ours.p_rand, ref.p_rand)
    assert isinstance(ours, GearyResult) and ours.statistic == ours.C


# -- local Moran against esda -----------------------------------------------------------
@pytest.mark.parametrize("kind", ["rook", "queen"])
def test_local_moran_matches_esda(rng, kind):
    m = with_holes(rng, smooth_map(rng, (12, 12)), kind)
    idx, adj = reference_cells(m, kind)
    y = m.ravel()[idx]
    with pytest.warns(UserWarning, match="island"):
        ours = local_morans_i(m, kind, n_permutations=999, seed=1, alternative="directed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.Moran_Local(y, lp_weights(adj), transformation="r", permutations=999,
                               seed=7)
    flat = lambda a: np.asarray(a).ravel()[idx]  # noqa: E731
    close(flat(ours.I), ref.Is)
    close(flat(ours.expected), ref.EI)
    close(flat(ours.variance), ref.VI)
    close(flat(ours.expected_cond), ref.EIc)
    close(flat(ours.variance_cond), ref.VIc)
    codes = {"HH": 1, "LH": 2, "LL": 3, "HL": 4}
    np.testing.assert_array_equal([codes[q] for q in flat(ours.quadrant)], ref.q)
    # dropped cells: NaN and no quadrant
    dropped = np.setdiff1d(np.arange(m.size), idx)
    assert np.isnan(ours.I.ravel()[dropped]).all()
    assert (ours.quadrant.ravel()[dropped] == "").all()
    # conditional-permutation p-values agree within Monte Carlo error
    p, q = flat(ours.p_sim), ref.p_sim
    se = np.sqrt(2 * np.maximum(p * (1 - p), 1e-3) / 999)
    assert np.mean(np.abs(p - q) > 4 * se + 0.003) < 0.02
    assert np.corrcoef(p, q)[0, 1] > 0.95
    # the conditional null's mean is E[I_i | z_i] = -z_i**2 w_i / n with standardised z
    # and w_i = 1 (row-standardised weights)
    zs = (y - y.mean()) / y.std()
    exact_mean = -(zs**2) / y.size
    se_mean = np.sqrt(flat(ours.variance_sim) / 999)
    assert np.mean(np.abs(flat(ours.expected_sim) - exact_mean) > 4 * se_mean) < 0.02


# -- permutation inference --------------------------------------------------------------
def test_permutation_p_values_agree_with_esda(rng):
    maps = np.stack([smooth_map(rng, (12, 12), scale=0.35) for _ in range(6)])
    ours = morans_i(maps, n_permutations=999, seed=2, alternative="directed")
    ours_g = gearys_c(maps, n_permutations=999, seed=2, alternative="directed")
    np.random.seed(11)  # esda permutes with numpy's global generator (tests only)
    adj = grid_weights((12, 12), "queen", transform="b")
    for k in range(6):
        ref = esda_moran(maps[k].ravel(), adj, permutations=999)
        p = ref.p_sim
        se = np.sqrt(2 * p * (1 - p) / 999)
        assert abs(ours.p_sim[k] - p) < 4.5 * se + 0.004, (k, ours.p_sim[k], p)
        se_mean = np.sqrt(2 * ref.VI_rand / 999)
        np.testing.assert_allclose(ours.expected_sim[k], ref.EI_sim, atol=4.5 * se_mean)
        np.testing.assert_allclose(ours.variance_sim[k], ref.VI_sim, rtol=0.3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refg = esda.Geary(maps[k].ravel(), lp_weights(adj), permutations=999)
        p = refg.p_sim
        se = np.sqrt(2 * p * (1 - p) / 999)
        assert abs(ours_g.p_sim[k] - p) < 4.5 * se + 0.004, (k, ours_g.p_sim[k], p)


def test_strongly_autocorrelated_map_is_significant(rng):
    m = np.add.outer(np.arange(14.0), np.arange(14.0)) + 0.5 * rng.standard_normal((14, 14))
    res = morans_i(m, n_permutations=499, seed=0)
    assert res.I > 0.8
    assert res.p_sim < 0.01 and res.p_norm < 0.01 and res.p_rand < 0.01
    greater = morans_i(m, n_permutations=499, seed=0, alternative="greater")
    assert greater.p_sim == pytest.approx(1 / 500)
    less = morans_i(m, n_permutations=499, seed=0, alternative="less")
    assert less.p_sim == pytest.approx(1.0)
    assert res.p_sim == pytest.approx(2 / 500)        # two-sided doubles the directed p
    g = gearys_c(m, n_permutations=499, seed=0, alternative="less")
    assert g.C < 0.3 and g.p_sim == pytest.approx(1 / 500) and g.p_rand < 1e-10


def test_null_calibration_p_uniform(rng):
    maps = rng.standard_normal((400, 10, 10))
    res = morans_i(maps, n_permutations=99, seed=5, alternative="greater")
    p = res.p_sim
    assert p.min() >= 1 / 100 and p.max() <= 1.0
    rate = np.mean(p <= 0.05)
    lo, hi = stats.binom.ppf([0.0005, 0.9995], 400, 0.05) / 400
    assert lo <= rate <= hi
    assert stats.kstest(p - 0.005, "uniform").pvalue > 1e-3  # discrete uniform, centred
    # the analytical randomisation test is calibrated too
    rate_rand = np.mean(res.p_rand <= 0.05)
    assert lo <= rate_rand <= hi + 0.02
    # and the permutation null's mean matches E[I] = -1 / (n - 1)
    assert abs(np.mean(res.expected_sim) - (-1 / 99)) < 0.003
    # the two-sided pseudo p-value (same seed, same null) is calibrated as well
    two = morans_i(maps, n_permutations=99, seed=5)
    np.testing.assert_array_equal(two.null, res.null)
    assert lo <= np.mean(two.p_sim <= 0.05) <= hi


def test_null_values_and_counts_equal_a_direct_computation(rng):
    """The compiled null equals Moran's I of the key-derived permutations, ties exact."""
    from topobrain._utils import _permnull

    # a binary map with binary weights: I takes few values, so many ties with observed
    m = rng.permutation(np.repeat([0.0, 1.0], 18)).reshape(6, 6)
    m[0, 0] = np.nan
    res = morans_i(m, "rook", n_permutations=300, seed=9, alternative="greater",
                   transform="b")
    keep = np.flatnonzero(~np.isnan(m.ravel()))
    y = m.ravel()[keep]
    n = y.size
    w = grid_weights(m.shape, "rook", transform="b", mask=~np.isnan(m))
    ss = as_seed_sequence(9)
    keys = np.concatenate([block_keys(ss, k) for k in range(n_blocks(300))])[:300]
    perms = _permnull.permutations(keys, n)
    exact = moran_i_raw(y[perms], w)
    np.testing.assert_allclose(res.null, exact, rtol=1e-12, atol=1e-14)
    obs = moran_i_raw(y, w)[0]
    tol = TIE_RTOL * max(1.0, abs(obs))  # the core's tie rule
    assert res.p_sim == (np.sum(exact >= obs - tol) + 1) / 301
    assert np.sum(np.abs(exact - obs) <= tol) > 3  # the test does exercise ties


def test_block_keys_are_the_cores_prefixes_and_blocks_differ():
    ss = as_seed_sequence(3)
    full = spatial._perm_keys(ss, 0, 1000)
    assert full.shape == (BLOCK_SIZE,) and full.dtype == np.uint64
    np.testing.assert_array_equal(full, block_keys(ss, 0, BLOCK_SIZE))
    np.testing.assert_array_equal(spatial._perm_keys(ss, 0, 10), full[:10])
    assert spatial._perm_keys(ss, 15, 1000).shape == (1000 - 15 * BLOCK_SIZE,)
    assert not np.intersect1d(full, spatial._perm_keys(ss, 1, 1000)).size


def test_streams_of_one_run_give_independent_nulls_and_the_seed_is_recorded(rng):
    m = smooth_map(rng, (8, 9))
    a = morans_i(m, n_permutations=200, seed=stream(11, "morans_i"))
    b = morans_i(m, n_permutations=200, seed=stream(11, "clusters"))
    assert not np.isin(a.null, b.null).all()
    assert a.params["spawn_key"] != b.params["spawn_key"]
    again = morans_i(m, n_permutations=200, seed=np.random.SeedSequence(
        a.params["seed"], spawn_key=a.params["spawn_key"]))
    np.testing.assert_array_equal(a.null, again.null)
    # an unseeded run records the entropy it drew, so it can be reproduced too
    free = morans_i(m, n_permutations=50)
    np.testing.assert_array_equal(free.null, morans_i(m, n_permutations=50,
                                                      seed=free.params["seed"]).null)
    assert morans_i(m).params["seed"] is None  # nothing drawn, nothing recorded


def test_seeded_null_is_identical_for_any_jobs_backend_and_batch(rng, monkeypatch):
    import joblib

    maps = np.stack([smooth_map(rng, (9, 10)) for _ in range(3)])
    base = morans_i(maps, n_permutations=150, seed=4)
    again = morans_i(maps, n_permutations=150, seed=4)
    np.testing.assert_array_equal(base.null, again.null)
    alone = morans_i(maps[1], n_permutations=150, seed=4)
    np.testing.assert_array_equal(base.null[1], alone.null)
    with joblib.parallel_config(backend="threading"):
        par = morans_i(maps, n_permutations=150, seed=4, n_jobs=2)
    np.testing.assert_array_equal(base.null, par.null)
    # jobs over blocks (threads preferred), also through the process-based backend
    np.testing.assert_array_equal(base.null, morans_i(maps, n_permutations=150, seed=4,
                                                      n_jobs=2).null)
    with joblib.parallel_config(backend="loky"):
        np.testing.assert_array_equal(
            base.null, morans_i(maps, n_permutations=150, seed=4, n_jobs=2).null)
    # one map shuffles its values directly, a batch gathers through shared indices
    geary = gearys_c(maps, n_permutations=150, seed=4)
    np.testing.assert_array_equal(
        geary.null[2], gearys_c(maps[2], n_permutations=150, seed=4).null)
    monkeypatch.setattr(spatial, "_CHUNK_ELEMENTS", 200)
    np.testing.assert_array_equal(base.null, morans_i(maps, n_permutations=150, seed=4).null)
    other = morans_i(maps, n_permutations=150, seed=5)
    assert not np.array_equal(base.null, other.null)
    gen = morans_i(maps, n_permutations=150, seed=np.random.default_rng(4))
    assert gen.null.shape == (3, 150) and isinstance(gen.params["seed"], int)
    np.testing.assert_array_equal(
        gen.null, morans_i(maps, n_permutations=150, seed=gen.params["seed"]).null)


def test_dask_backend_gets_the_null_blocks_and_gives_the_same_null(rng):
    distributed = pytest.importorskip("distributed", reason="dask.distributed (dev extra)")
    import joblib

    maps = np.stack([smooth_map(rng, (7, 8)) for _ in range(2)])
    ref = morans_i(maps, n_permutations=200, seed=2)
    ref_c = gearys_c(maps, n_permutations=200, seed=2)
    ref_l = local_morans_i(maps, n_permutations=99, seed=2, keep_null=True)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with joblib.parallel_config(backend="dask"), distributed.get_task_stream() as ts:
            res = morans_i(maps, n_permutations=200, seed=2, n_jobs=2)
            res_c = gearys_c(maps, n_permutations=200, seed=2, n_jobs=2)
            res_l = local_morans_i(maps, n_permutations=99, seed=2, keep_null=True, n_jobs=2)
        assert len(ts.data) > 0  # the null blocks ran on the dask workers
    np.testing.assert_array_equal(ref.null, res.null)
    np.testing.assert_array_equal(ref_c.null, res_c.null)
    np.testing.assert_array_equal(ref_l.null, res_l.null)
    np.testing.assert_array_equal(ref_l.p_sim, res_l.p_sim)


def test_given_weights_are_cached_by_content_never_stale(rng):
    n = 60
    a = sp.random(n, n, density=0.1, random_state=1, format="csr")
    a = ((a + a.T) > 0).astype(float).tocsr()
    x = rng.standard_normal(n)
    spatial._MATRIX_CACHE.clear()
    first = morans_i(x, a, n_permutations=50, seed=1)
    assert len(spatial._MATRIX_CACHE._items) == 1
    again = morans_i(x, a.copy(), n_permutations=50, seed=1)   # same content, new object
    assert len(spatial._MATRIX_CACHE._items) == 1
    np.testing.assert_array_equal(first.null, again.null)
    assert first.I == again.I
    a.data[:5] = 3.0                                              # changed in place
    changed = morans_i(x, a, n_permutations=50, seed=1)
    assert len(spatial._MATRIX_CACHE._items) == 2
    w = spatial.transform_weights(sp.csr_matrix(a), "r")
    assert changed.I == pytest.approx(moran_i_raw(x[None], w)[0], rel=1e-12)
    assert changed.I != first.I
    for k in range(6):                                            # bounded
        morans_i(x, a * (k + 2.0), transform="b")
    assert len(spatial._MATRIX_CACHE._items) == spatial._MATRIX_CACHE.maxsize


def test_local_batch_equals_single_and_keeps_null(rng):
    maps = np.stack([smooth_map(rng, (8, 9)) for _ in range(3)])
    maps[2, 0, 0] = np.nan
    batch = local_morans_i(maps, n_permutations=99, seed=3, keep_null=True)
    assert batch.I.shape == (3, 8, 9) and batch.null.shape == (3, 8, 9, 99)
    one = local_morans_i(maps[2], n_permutations=99, seed=3, keep_null=True)
    np.testing.assert_array_equal(batch.p_sim[2], one.p_sim)
    np.testing.assert_array_equal(batch.null[2], one.null)
    # chunks of cells through the core's dispatcher: the same numbers for any n_jobs
    two = local_morans_i(maps, n_permutations=99, seed=3, keep_null=True, n_jobs=2)
    np.testing.assert_array_equal(two.null, batch.null)
    np.testing.assert_array_equal(two.p_sim, batch.p_sim)
    assert np.isnan(batch.I[2, 0, 0]) and batch.quadrant[2, 0, 0] == ""
    ok = ~np.isnan(one.I)
    np.testing.assert_allclose(one.expected_sim[ok], one.null[ok].mean(-1), rtol=1e-10)
    p = one.p_sim[ok]
    assert p.min() >= 1 / 100 and p.max() <= 1


def test_local_two_sided_is_twice_directed_and_planted_cluster(rng):
    m = 0.3 * rng.standard_normal((10, 10))
    m[:4, :4] += 3.0
    d = local_morans_i(m, n_permutations=199, seed=0, alternative="directed")
    t = local_morans_i(m, n_permutations=199, seed=0)
    np.testing.assert_allclose(t.p_sim, np.minimum(1, 2 * d.p_sim))
    assert (d.quadrant[1:3, 1:3] == "HH").all()
    assert (d.p_sim[1:3, 1:3] < 0.01).all()


def test_local_statistics_sum_to_the_global_statistic(rng):
    m = with_holes(rng, smooth_map(rng, (9, 9)), "rook", frac=0.05)
    with pytest.warns(UserWarning, match="island"):
        glob = morans_i(m, "rook")
    with pytest.warns(UserWarning, match="island"):
        loc = local_morans_i(m, "rook", n_permutations=0)
    n = glob.n_cells
    # sum_i I_i = (n - 1) z'Wz / z'z and I = (n / S0) z'Wz / z'z, S0 = n (row-standardised)
    np.testing.assert_allclose(np.nansum(loc.I), (n - 1) * glob.I, rtol=1e-10)
    assert loc.n_cells == n and loc.n_islands == glob.n_islands == 1


def test_transform_none_keeps_the_given_weights(rng):
    m = smooth_map(rng, (7, 7))
    w = grid_weights((7, 7), "queen", transform="b")
    close(morans_i(m.ravel(), w, transform=None).I, morans_i(m, transform="b").I)
    k = grid_weights((7, 7), "kernel", transform="b", bandwidth=1.0)
    y = m.ravel()
    yc = y - y.mean()
    expected = (49 / k.sum()) * (yc @ (k @ yc)) / (yc @ yc)
    close(morans_i(y, k, transform=None).I, expected)


# -- the batched fast path --------------------------------------------------------------
def test_batch_uses_one_product_per_nan_pattern(rng, monkeypatch):
    calls = []

    def counting(z, w):
        calls.append(np.shape(z))
        return moran_i_raw(z, w)

    monkeypatch.setattr(spatial, "moran_i_raw", counting)
    maps = rng.standard_normal((24, 8, 8))
    maps[:, 0, 0] = np.nan
    morans_i(maps)
    assert calls == [(24, 63)]
    calls.clear()
    maps[5:, 7, 7] = np.nan
    morans_i(maps)
    assert sorted(calls) == [(5, 63), (19, 62)]


def test_cached_grid_weights_stay_correct(rng):
    m = smooth_map(rng, (9, 9))
    m[4, 4] = np.nan
    spatial._grid_group_weights.cache_clear()
    first = morans_i(m, n_permutations=20, seed=1)
    local_morans_i(m, n_permutations=20, seed=1)
    gearys_c(m, transform="b")
    again = morans_i(m, n_permutations=20, seed=1)
    assert spatial._grid_group_weights.cache_info().hits >= 2  # local, again
    np.testing.assert_array_equal(first.null, again.null)
    assert first.I == again.I
    idx, adj = reference_cells(m, "queen")
    close(again.I, esda_moran(m.ravel()[idx], adj).I)
    close(morans_i(m, transform="b").I, esda_moran(m.ravel()[idx], adj, "b").I)


# -- properties -------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), a=st.floats(0.01, 100), b=st.floats(-100, 100),
       neg=st.booleans())
def test_affine_invariance(seed, a, b, neg):
    r = np.random.default_rng(seed)
    m = smooth_map(r, (7, 8))
    a = -a if neg else a
    i0, i1 = morans_i(m).I, morans_i(a * m + b).I
    c0, c1 = gearys_c(m).C, gearys_c(a * m + b).C
    np.testing.assert_allclose(i1, i0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(c1, c0, rtol=1e-9, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_cell_order_invariance_and_p_range(seed):
    r = np.random.default_rng(seed)
    m = smooth_map(r, (6, 7))
    w = grid_weights((6, 7), "queen", transform="b")
    order = r.permutation(42)
    y = m.ravel()
    res = morans_i(y, w, n_permutations=49, seed=seed)
    res_p = morans_i(y[order], w[order][:, order])
    np.testing.assert_allclose(res_p.I, res.I, rtol=1e-10)
    assert 1 / 50 <= res.p_sim <= 1
    assert 0 < res.p_rand <= 1


# -- results ----------------------------------------------------------------------------
def test_results_same_fields_every_path_and_frames(rng):
    m = smooth_map(rng, (6, 6))
    plain = morans_i(m)
    perm = morans_i(m, n_permutations=19, seed=0)
    assert [f.name for f in dataclasses.fields(plain)] == [f.name for f in dataclasses.fields(perm)]
    assert plain.null is None and plain.p_sim is None and plain.z_sim is None
    assert perm.null.shape == (19,) and isinstance(perm.p_sim, float)
    assert isinstance(plain.I, float) and plain.n_maps is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.I = 0.0
    df = perm.to_frame()
    assert list(df["map"]) == [0] and df.loc[0, "moran_i"] == perm.I
    assert {"p_sim", "z_rand", "n_cells", "n_islands", "alternative"} <= set(df.columns)
    batch = morans_i(np.stack([m, m.T]), n_permutations=9, seed=0)
    assert len(batch.to_frame()) == 2 and batch.null.shape == (2, 9)
    assert "\n" not in repr(batch) and "MoranResult(n_maps=2" in repr(batch)
    assert len(gearys_c(m).to_frame()) == 1 and "GearyResult(" in repr(gearys_c(m))
    loc = local_morans_i(m, n_permutations=0)
    assert isinstance(loc, LocalMoranResult) and loc.p_sim is None and loc.null is None
    frame = loc.to_frame()
    assert len(frame) == 36 and {"row", "col", "local_i", "quadrant"} <= set(frame.columns)
    ds = local_morans_i(m, n_permutations=9, seed=0).to_xarray()
    assert ds["local_i"].dims == ("row", "col") and "p_sim" in ds
    assert isinstance(plain, MoranResult) and plain.params["adjacency"] == "queen"


def test_inputs_are_not_modified(rng):
    m = smooth_map(rng, (7, 7))
    m[0, 0] = np.nan
    w = grid_weights((7, 7), "queen", transform="b")
    m0, wd = m.copy(), w.data.copy()
    morans_i(m, n_permutations=9, seed=0)
    local_morans_i(m.ravel(), w, n_permutations=9, seed=0)
    gearys_c(m.ravel(), w)
    np.testing.assert_array_equal(m, m0)
    np.testing.assert_array_equal(w.data, wd)


def test_degenerate_maps_give_nan_with_a_warning(rng):
    with pytest.warns(UserWarning, match="constant"):
        res = morans_i(np.ones((5, 5)), n_permutations=9, seed=0)
    assert np.isnan(res.I) and np.isnan(res.p_sim)
    m = np.full((5, 5), np.nan)
    m[0, :3] = [1.0, 2.0, 3.0]
    with pytest.warns(UserWarning, match="fewer than 4 usable cells"):
        assert np.isnan(morans_i(m).I)


def test_maps_constant_to_rounding_give_nan_never_a_p_value(rng):
    # a map smoothed to constancy: 1e-15 of variation on a magnitude of 5 (issue #19, 4);
    # its Moran's I would be a ratio of rounding errors (0.91 with p = 4e-171 before)
    flat = 5.0 + 1e-15 * smooth_map(rng, (9, 9))
    real = smooth_map(rng, (9, 9))
    maps = np.stack([real, flat, 1e6 + real])  # a large offset with real variation is fine
    with pytest.warns(UserWarning, match="1 of 3 maps are constant over their cells "
                                         r"\(exactly, or to rounding"):
        res = morans_i(maps, n_permutations=19, seed=0)
    assert np.isnan(res.I[1]) and np.isnan(res.p_sim[1]) and np.isnan(res.p_rand[1])
    assert np.isnan(res.null[1]).all()
    np.testing.assert_allclose(res.I[[0, 2]], morans_i(real).I, rtol=1e-6)
    assert np.isfinite(res.p_sim[[0, 2]]).all()
    with pytest.warns(UserWarning, match="constant"):
        g = gearys_c(flat, n_permutations=19, seed=0)
    assert np.isnan(g.C) and np.isnan(g.p_sim) and np.isnan(g.z_rand)
    with pytest.warns(UserWarning, match="constant"):
        loc = local_morans_i(flat, n_permutations=19, seed=0)
    assert np.isnan(loc.I).all() and np.isnan(loc.p_sim).all()
    with pytest.warns(UserWarning, match="constant"):
        assert np.isnan(morans_i(flat.ravel(), grid_weights((9, 9), "queen")).I)


# -- the adjacency parameter and its old name -------------------------------------------
def test_adjacency_is_recorded_and_the_old_weights_name_warns_with_the_same_numbers(rng):
    m = with_holes(rng, smooth_map(rng, (9, 10)), "rook")
    w = grid_weights((9, 10), "queen", transform="b")
    cases = [(morans_i, "I"), (gearys_c, "C"), (local_morans_i, "I")]
    for fn, field_ in cases:
        for adj, recorded in (("rook", "rook"), ("queen", "queen"),
                              (w, f"custom sparse (90 x 90, {w.nnz} nonzero)")):
            values = m if isinstance(adj, str) else m.ravel()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # islands
                warnings.simplefilter("error", DeprecationWarning)
                new = fn(values, adjacency=adj, n_permutations=19, seed=3)
                positional = fn(values, adj, n_permutations=19, seed=3)
            with pytest.warns(DeprecationWarning, match="'weights' parameter is deprecated.*"
                                                       "use adjacency="), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # islands
                old = fn(values, weights=adj, n_permutations=19, seed=3)
            for res in (positional, old):
                np.testing.assert_array_equal(getattr(res, field_), getattr(new, field_))
                np.testing.assert_array_equal(res.p_sim, new.p_sim)
            assert new.params["adjacency"] == old.params["adjacency"] == recorded
    assert morans_i(smooth_map(rng, (5, 5))).params["adjacency"] == "queen"  # the default
    lw = lp_weights(grid_weights((5, 5), "rook", transform="b"))
    assert morans_i(rng.standard_normal(25), lw).params["adjacency"].startswith("libpysal W")
    with pytest.raises(TypeError, match="Got both weights= and adjacency="):
        morans_i(m, weights="rook", adjacency="queen")


# -- errors -----------------------------------------------------------------------------
def test_errors_name_the_problem(rng):
    m = rng.standard_normal((5, 5))
    w = grid_weights((5, 5), "queen")
    with pytest.raises(ValueError, match="'alternative'.*Did you mean 'two-sided'"):
        morans_i(m, alternative="two_sided")
    with pytest.raises(ValueError, match="'transform'"):
        morans_i(m, transform="x")
    with pytest.raises(ValueError, match="adjacency 'rok'.*'rook'"):
        morans_i(m, "rok")
    with pytest.raises(ValueError, match="n_permutations must be >= 0"):
        morans_i(m, n_permutations=-1)
    with pytest.raises(TypeError, match="n_permutations must be a non-negative int"):
        morans_i(m, n_permutations=9.5)
    with pytest.raises(TypeError, match="n_permutations"):
        morans_i(m, n_permutations=True)
    with pytest.raises(ValueError, match="pass adjacency=<scipy.sparse"):
        morans_i(m.ravel())
    with pytest.raises(ValueError, match=r"one entry per adjacency row \(25\)"):
        morans_i(np.ones(24), w)
    with pytest.raises(ValueError, match="square"):
        morans_i(np.ones(25), sp.csr_matrix(np.ones((25, 24))))
    with pytest.raises(ValueError, match="negative"):
        morans_i(np.ones(25), -w)
    bad = w.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        morans_i(np.ones(25), bad)
    with pytest.raises(TypeError, match="adjacency must be one of"):
        morans_i(m.ravel(), [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="non-finite"):
        morans_i(np.where(m > 1, np.inf, m))
    with pytest.raises(TypeError, match="values must be a numeric array"):
        morans_i(np.array(["a", "b"]), w)
    with pytest.raises(TypeError, match="seed"):
        morans_i(m, n_permutations=5, seed="x")
    with pytest.raises(TypeError, match="keep_null must be a bool"):
        local_morans_i(m, keep_null="yes")
    with pytest.raises(ValueError, match="square"):
        gearys_c(np.ones(4), np.ones((4, 5)))


# -- distance profile -------------------------------------------------------------------
def test_distance_profile_matches_brute_force(rng):
    sheet = CorticalSheet((5, 6), layout="permuted", seed=1)
    x = rng.standard_normal((40, 30))
    x[:, 3] = 2.0  # a constant unit: its pairs are left out
    prof = distance_profile(x, sheet)
    rounding = x.copy()
    rounding[:, 3] += 1e-15 * rng.standard_normal(40)  # constant to rounding: left out too
    np.testing.assert_array_equal(distance_profile(rounding, sheet).n_pairs, prof.n_pairs)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(x.T)
    d = sheet.distances()
    edges = prof.bin_edges
    np.testing.assert_allclose(edges, 0.5 + np.arange(edges.size))
    assert edges[-1] >= d.max()
    for b in range(edges.size - 1):
        vals, dists = [], []
        for i in range(30):
            for j in range(i + 1, 30):
                if edges[b] <= d[i, j] < edges[b + 1] and np.isfinite(r[i, j]):
                    vals.append(r[i, j])
                    dists.append(d[i, j])
        assert prof.n_pairs[b] == len(vals)
        if vals:
            np.testing.assert_allclose(prof.correlation[b], np.mean(vals), rtol=1e-10)
            np.testing.assert_allclose(prof.distance[b], np.mean(dists), rtol=1e-12)
    lam = np.linalg.eigvalsh(np.cov(x.T))
    np.testing.assert_allclose(prof.effective_dim, lam.sum() ** 2 / (lam**2).sum(), rtol=1e-8)
    diss = 1 - prof.correlation
    first = diss[np.isfinite(diss)][0]
    assert prof.smoothness == pytest.approx((np.nanmax(diss) - first) / np.nanmax(diss))
    assert isinstance(prof, DistanceProfile) and len(prof.to_frame()) == edges.size - 1


def test_distance_profile_smooth_map_and_options(rng):
    sheet = CorticalSheet((12, 12))
    pos = sheet.positions.astype(float)
    # responses driven by 6 smooth spatial patterns: neighbours correlate, far units less
    centres = rng.uniform(0, 12, (6, 2))
    patt = np.exp(-((pos[None] - centres[:, None]) ** 2).sum(-1) / 8.0)   # (6, units)
    x = rng.standard_normal((80, 6)) @ patt + 0.05 * rng.standard_normal((80, 144))
    smooth = distance_profile(x, sheet, max_distance=8)
    shuffled = distance_profile(x[:, rng.permutation(144)], sheet, max_distance=8)
    assert smooth.smoothness > 0.5 and abs(shuffled.smoothness) < 0.2
    assert smooth.correlation[0] > smooth.correlation[-1]
    assert smooth.effective_dim < 8   # six patterns plus a little noise
    arr = distance_profile(x, pos, bins=5, metric="linf")
    assert arr.bin_edges.size == 6 and arr.params["metric"] == "linf"
    sub1 = distance_profile(x, sheet, max_units=50, seed=2)
    sub2 = distance_profile(x, sheet, max_units=50, seed=2)
    assert sub1.n_units == 50
    np.testing.assert_array_equal(sub1.correlation, sub2.correlation)


def test_decay_distance_interpolates_the_half_point():
    d = np.array([1.0, 2.0, 3.0, 4.0])
    # 0.8 -> 0.5 -> 0.2: half of 0.8 (0.4) lies a third of the way from 2 to 3
    assert spatial.decay_distance(d, [0.8, 0.5, 0.2, 0.1]) == pytest.approx(2 + 1 / 3)
    assert spatial.decay_distance(d, [0.8, 0.5, 0.2, 0.1], level=0.25) == pytest.approx(3.0)
    assert spatial.decay_distance(d, [np.nan, 0.8, 0.6, 0.4]) == pytest.approx(4.0)
    assert np.isnan(spatial.decay_distance(d, [0.8, 0.7, 0.6, 0.5]))   # never halves
    assert np.isnan(spatial.decay_distance(d, [-0.1, 0.2, 0.1, 0.0]))  # starts <= 0
    assert np.isnan(spatial.decay_distance(d[:1], [0.5]))              # one bin


def test_distance_profile_errors(rng):
    sheet = CorticalSheet((3, 3))
    x = rng.standard_normal((10, 9))
    with pytest.raises(ValueError, match=r"responses must be 2D"):
        distance_profile(x[0], sheet)
    with pytest.raises(ValueError, match="responses have 8 units"):
        distance_profile(x[:, :8], sheet)
    with pytest.raises(ValueError, match="at least 3 items"):
        distance_profile(x[:2], sheet)
    with pytest.raises(ValueError, match="'metric'"):
        distance_profile(x, sheet, metric="manhattan")
    with pytest.raises(ValueError, match="bins must be"):
        distance_profile(x, sheet, bins=[3.0, 1.0])
    with pytest.raises(ValueError, match="'bins'"):
        distance_profile(x, sheet, bins="auto")
    with pytest.raises(ValueError, match="max_distance must be positive"):
        distance_profile(x, sheet, max_distance=0)
    with pytest.raises(ValueError, match="max_units must be at least 2"):
        distance_profile(x, sheet, max_units=1)
    with pytest.raises(TypeError, match="sheet must be a CorticalSheet"):
        distance_profile(x, object())
    with pytest.raises(ValueError, match="non-finite"):
        distance_profile(np.where(x > 1, np.nan, x), sheet)


# -- import hygiene ---------------------------------------------------------------------
def test_import_loads_neither_torch_nor_matplotlib():
    code = ("import sys, topobrain.spatial; "
            "print([m for m in ('torch', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_null_refuses_maps_beyond_int32_cells():
    huge = np.broadcast_to(np.zeros(1), (1, 2**31))  # no memory: a stride-0 view
    spec = spatial._NullSpec(xs=huge, ell=(), g=np.empty(0), a=np.ones(1), c=np.zeros(1),
                             obs=np.zeros(1), tol=np.zeros(1), w=None, kind="moran")
    with pytest.raises(ValueError, match="int32"):
        spatial._null_blocks(spec, [0], 1, 10)
