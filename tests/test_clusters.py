"""Cluster tables, cluster permutation tests, TFCE and seed-and-grow.

References: MNE-Python's ``permutation_cluster_test`` / ``permutation_cluster_1samp_test``
(cluster masks, statistics, TFCE scores, null distributions and p-values with the same
permutations; within Monte Carlo error with different ones), scipy's ``ttest_ind``,
``ttest_1samp`` and ``f_oneway`` for the unit statistics, the shared kernels in
``topobrain._utils._stats`` for the fast two-group path.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats as st

from topobrain._utils._permutation import BLOCK_SIZE
from topobrain.clusters import (
    ClusterTable,
    ClusterTestResult,
    _StatEngine,
    cluster_forming_threshold,
    find_clusters,
    permutation_cluster_test,
    seed_and_grow,
    tfce,
)
from topobrain.sheet import grid_weights

mne = pytest.importorskip("mne", reason="MNE is the reference for the cluster tests")
from mne.stats.cluster_level import _find_clusters as mne_find_clusters  # noqa: E402
from mne.stats.cluster_level import _get_1samp_orders  # noqa: E402

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as hst  # noqa: E402

mne.set_log_level("ERROR")


# ----------------------------------------------------------------------- helpers


def _cluster_dict(masks, values):
    """{frozenset of flat cells: value} for comparing cluster lists in any order."""
    return {frozenset(np.flatnonzero(np.asarray(m).ravel()).tolist()): v
            for m, v in zip(masks, values, strict=False)}


def _our_clusters(res_or_table, values=None):
    table = res_or_table.clusters if isinstance(res_or_table, ClusterTestResult) else res_or_table
    vals = table.p_fwe if values is None else values
    return {frozenset(np.flatnonzero(table.mask(c).ravel()).tolist()): v
            for c, v in zip(table.cluster_id, vals, strict=False)}


def _mne_1samp_signs(n_items, n_perm, tail, seed):
    """MNE's own sign flips (its n_permutations includes the identity)."""
    orders, _, _ = _get_1samp_orders(n_items, n_perm, tail, np.random.default_rng(seed))
    return 2.0 * np.asarray(orders, dtype=float) - 1.0


def _mne_orders(n_items, n_perm, seed):
    """MNE's two-sample item orders, drawn exactly as it draws them."""
    rng = np.random.default_rng(seed)
    return np.array([rng.permutation(n_items) for _ in range(n_perm - 1)])


def _welch(a, b):
    return st.ttest_ind(a, b, equal_var=False, axis=0).statistic


def _pooled(a, b):
    return st.ttest_ind(a, b, equal_var=True, axis=0).statistic


def _one_sample(a):
    return st.ttest_1samp(a, 0.0, axis=0).statistic


def _smooth_noise(rng, shape, sigma=1.0):
    """Spatially smooth Gaussian noise over the last two axes (clusters are plausible)."""
    from scipy import ndimage

    x = rng.standard_normal(shape)
    return ndimage.gaussian_filter(x, sigma=(0,) * (len(shape) - 2) + (sigma, sigma))


def _random_mesh(rng, n_vertices=40, n_edges=70):
    i = rng.integers(0, n_vertices, n_edges)
    j = rng.integers(0, n_vertices, n_edges)
    keep = i != j
    a = sp.coo_matrix((np.ones(keep.sum()), (i[keep], j[keep])), shape=(n_vertices,) * 2)
    return sp.csr_matrix(((a + a.T) > 0).astype(float))


# ------------------------------------------------------------------ find_clusters


def test_find_clusters_table_by_hand():
    t = np.full((5, 7), 0.0)
    t[0, 0] = np.nan
    t[1, 1:4] = [3.25, 5.0, 3.5]
    t[2, 4] = 4.0  # touches (1, 3) at a corner only: queen links it, rook does not
    t[4, 0:2] = [-6.0, -3.5]
    rook = find_clusters(t, 3.0, adjacency="rook")
    frame = rook.to_frame()
    assert list(frame.columns) == ["layer", "cluster_id", "sign", "size", "mass",
                                   "peak_value", "peak_row", "peak_col", "centroid_row",
                                   "centroid_col"]
    assert frame["mass"].tolist() == [11.75, -9.5, 4.0]  # ordered by |mass|
    assert frame["sign"].tolist() == [1, -1, 1]
    assert frame["size"].tolist() == [3, 2, 1]
    assert frame.loc[0, ["peak_value", "peak_row", "peak_col"]].tolist() == [5.0, 1, 2]
    assert frame.loc[1, ["peak_value", "peak_row", "peak_col"]].tolist() == [-6.0, 4, 0]
    assert frame.loc[0, ["centroid_row", "centroid_col"]].tolist() == [1.0, 2.0]
    assert rook.labels.shape == (1, 5, 7)
    assert rook.labels[0, 1, 2] == 1 and rook.labels[0, 2, 4] == 3
    queen = find_clusters(t, 3.0, adjacency="queen")
    assert queen.to_frame()["size"].tolist() == [4, 2]
    assert find_clusters(t, 3.0, tail=1, adjacency="rook").to_frame()["sign"].tolist() == [1, 1]
    neg = find_clusters(t, 3.0, tail=-1, adjacency="rook")
    assert neg.to_frame()["mass"].tolist() == [-9.5]
    assert find_clusters(t, -3.0, tail=-1).to_frame()["mass"].tolist() == [-9.5]  # MNE spelling
    assert find_clusters(t, 3.0, min_size=2, adjacency="rook").to_frame()["size"].tolist() == [3, 2]
    # strict threshold, as MNE: a unit exactly at the threshold stays out
    assert find_clusters(t, 4.0, adjacency="rook").to_frame()["mass"].tolist() == [-6.0, 5.0]
    assert find_clusters(t, 3.25, adjacency="rook").to_frame()["mass"].tolist() == [-9.5, 8.5,
                                                                                4.0]
    assert "ClusterTable(3 clusters" in repr(rook)


@pytest.mark.parametrize("kind", ["rook", "queen"])
@pytest.mark.parametrize("tail", [0, 1, -1])
def test_find_clusters_equals_mne(rng, kind, tail):
    """Masks and masses equal MNE's clustering of the same map and adjacency."""
    for _ in range(3):
        x = _smooth_noise(rng, (3, 15, 17)) * 3
        x[1, 4, 4] = np.nan
        thr = 1.0
        table = find_clusters(x, thr, adjacency=kind, tail=tail)
        adj = sp.coo_array(grid_weights((15, 17), kind, transform="b"))
        for layer in range(3):
            xl = np.nan_to_num(x[layer].ravel(), nan=0.0)
            clusters, sums = mne_find_clusters(xl, thr if tail >= 0 else -thr, tail=tail,
                                               adjacency=adj)
            expected = _cluster_dict([np.isin(np.arange(xl.size), c) for c in clusters], sums)
            sel = table.layer_index == layer
            ours = {frozenset(np.flatnonzero((table.labels[layer] == c).ravel()).tolist()): m
                    for c, m in zip(table.cluster_id[sel], table.mass[sel], strict=False)}
            assert ours.keys() == expected.keys()
            for key in ours:
                np.testing.assert_allclose(ours[key], expected[key], rtol=1e-12)
            # the ndimage path of MNE (adjacency=None) is the rook lattice
            if kind == "rook":
                cl2, _ = mne_find_clusters(np.nan_to_num(x[layer]), thr if tail >= 0 else -thr,
                                           tail=tail)
                assert _cluster_dict(cl2, cl2).keys() == ours.keys()


def test_find_clusters_mesh_equals_mne(rng):
    adj = _random_mesh(rng, 60, 90)
    x = rng.standard_normal((2, 60)) * 2
    table = find_clusters(x, 1.0, adjacency=adj)
    frame = table.to_frame()
    assert "peak_vertex" in frame and "peak_row" not in frame and table.centroid is None
    for layer in range(2):
        clusters, sums = mne_find_clusters(x[layer], 1.0, tail=0, adjacency=sp.coo_array(adj))
        expected = _cluster_dict([np.isin(np.arange(60), c) for c in clusters], sums)
        sel = table.layer_index == layer
        ours = {frozenset(np.flatnonzero(table.labels[layer] == c).tolist()): m
                for c, m in zip(table.cluster_id[sel], table.mass[sel], strict=False)}
        assert ours.keys() == expected.keys()
        for key in ours:
            np.testing.assert_allclose(ours[key], expected[key], rtol=1e-12)
    # a sparse adjacency over a grid's cells also takes grid-shaped maps
    g = rng.standard_normal((2, 6, 8)) * 2
    via_sparse = find_clusters(g, 1.0, adjacency=grid_weights((6, 8), "queen", transform="b"))
    via_grid = find_clusters(g, 1.0, adjacency="queen")
    np.testing.assert_array_equal(via_sparse.labels, via_grid.labels)
    assert via_sparse.to_frame().equals(via_grid.to_frame())


def test_adjacency_default_forms_and_record(rng):
    """One default (queen, as Moran's I); names, sparse, dense and libpysal W agree;
    every result records the adjacency it used."""
    from topobrain._utils._adjacency import DEFAULT_ADJACENCY

    libpysal = pytest.importorskip("libpysal", reason="libpysal W is one accepted form")
    g = _smooth_noise(rng, (2, 6, 8)) * 3
    default = find_clusters(g, 1.0)
    queen = find_clusters(g, 1.0, adjacency="queen")
    assert DEFAULT_ADJACENCY == "queen"
    assert default.to_frame().equals(queen.to_frame())
    assert default.params["adjacency"] == "queen"
    assert find_clusters(g, 1.0, adjacency="rook").params["adjacency"] == "rook"
    w = libpysal.weights.lat2W(6, 8, rook=False)  # ids row-major, as the sheet's cells
    dense = grid_weights((6, 8), "queen", transform="b").toarray()
    for form in (w, dense, sp.csr_array(dense)):
        other = find_clusters(g, 1.0, adjacency=form)
        np.testing.assert_array_equal(other.labels, queen.labels)
        assert other.to_frame().equals(queen.to_frame())
    assert find_clusters(g, 1.0, adjacency=w).params["adjacency"].startswith("libpysal W (48 x 48")
    assert find_clusters(g, 1.0, adjacency=dense).params["adjacency"].startswith("dense (48 x 48")
    x = rng.standard_normal((8, 6, 8))
    for kw in ({}, {"adjacency": "rook"}):
        res = permutation_cluster_test(x, threshold=1.0, n_permutations=3, seed=0, **kw)
        assert res.params["adjacency"] == kw.get("adjacency", "queen")
        assert res.clusters.params["adjacency"] == res.params["adjacency"]
    assert seed_and_grow(rng.uniform(size=(6, 8))).params["adjacency"] == "queen"


def test_find_clusters_dict_and_no_mutation(rng):
    maps = {"attn.0": rng.standard_normal((5, 5)) * 3, "mlp.0": rng.standard_normal((5, 5)) * 3}
    before = {k: v.copy() for k, v in maps.items()}
    table = find_clusters(maps, 1.5)
    assert table.layers == ("attn.0", "mlp.0")
    assert set(table.to_frame()["layer"]) <= {"attn.0", "mlp.0"}
    for k in maps:
        np.testing.assert_array_equal(maps[k], before[k])
    stacked = find_clusters(np.stack(list(maps.values())), 1.5)
    np.testing.assert_array_equal(stacked.labels, table.labels)
    with pytest.raises(ValueError, match="read-only"):
        table.labels[0, 0, 0] = 7
    empty = find_clusters(np.zeros((4, 4)), 1.0)
    assert len(empty) == 0 and empty.to_frame().shape == (0, 10)


@settings(max_examples=40, deadline=None)
@given(seed=hst.integers(0, 2**31), thr=hst.floats(0.0, 2.0), kind=hst.sampled_from(
    ["rook", "queen"]))
def test_find_clusters_properties(seed, thr, kind):
    """Clusters partition the suprathreshold units; sizes and masses add up."""
    x = np.random.default_rng(seed).standard_normal((2, 7, 9)) * 2
    table = find_clusters(x, thr, adjacency=kind)
    supra = (x > thr) | (x < -thr)
    np.testing.assert_array_equal(table.labels > 0, supra)
    assert table.size.sum() == supra.sum()
    np.testing.assert_allclose(table.mass.sum(), x[supra].sum(), atol=1e-9)
    assert np.all(np.sign(table.mass) == table.sign)
    for c, li, s, pv, pu in zip(table.cluster_id, table.layer_index, table.sign,
                                table.peak_value, table.peak_unit, strict=False):
        vals = x[li][table.labels[li] == c]
        assert pv == (vals.max() if s > 0 else vals.min())
        assert x[li].ravel()[pu] == pv
    # flipping the map's sign flips the clusters' signs and masses
    flipped = find_clusters(-x, thr, adjacency=kind)
    assert sorted(flipped.mass.tolist()) == sorted((-table.mass).tolist())


def test_find_clusters_errors():
    x = np.zeros((4, 4))
    with pytest.raises(ValueError, match="Invalid adjacency 'quen'.*Did you mean 'queen'"):
        find_clusters(x, 1.0, adjacency="quen")
    with pytest.raises(TypeError, match="adjacency must be one of 'rook', 'queen', a scipy"):
        find_clusters(x, 1.0, adjacency=[1, 2])
    with pytest.raises(ValueError, match="Invalid adjacency 26"):
        find_clusters(x, 1.0, adjacency=26)
    with pytest.raises(ValueError, match="square"):
        find_clusters(np.zeros(6), 1.0, adjacency=sp.csr_matrix((6, 5)))
    with pytest.raises(ValueError, match="does not fit an adjacency over 7 vertices"):
        find_clusters(np.zeros(6), 1.0, adjacency=sp.eye(7, format="csr"))
    with pytest.raises(ValueError, match=r"n_rows, n_cols\) on a grid; got shape \(16,\)"):
        find_clusters(np.zeros(16), 1.0)
    with pytest.raises(ValueError, match="threshold must be >= 0 for tail=0"):
        find_clusters(x, -1.0)
    with pytest.raises(TypeError, match="threshold must be a number"):
        find_clusters(x, "2")
    for bad in (np.inf, np.nan):  # e.g. a threshold from a NaN df or a p of 0
        with pytest.raises(ValueError, match=r"threshold must be a finite value of the unit "
                           r"statistic \(>= 0.*got (inf|nan).*cluster_forming_threshold"):
            find_clusters(x, bad)
    with pytest.raises(ValueError, match="Invalid value for the 'tail'"):
        find_clusters(x, 1.0, tail=2)
    with pytest.raises(TypeError, match="tail must be -1, 0 or 1"):
        find_clusters(x, 1.0, tail="both")
    with pytest.raises(ValueError, match="min_size must be a positive integer"):
        find_clusters(x, 1.0, min_size=0)
    with pytest.raises(ValueError, match="infinite values"):
        find_clusters(np.full((3, 3), np.inf), 1.0)
    with pytest.raises(TypeError, match="numeric array"):
        find_clusters([["a", "b"]], 1.0)
    with pytest.raises(ValueError, match="same shape"):
        find_clusters({"a": np.zeros((3, 3)), "b": np.zeros((3, 4))}, 1.0)
    with pytest.raises(ValueError, match="empty dict"):
        find_clusters({}, 1.0)
    with pytest.raises(ValueError, match="cluster_id 5 is not in this table"):
        find_clusters(x, 1.0).mask(5)


# --------------------------------------------------------------------- unit statistics


@pytest.mark.parametrize("stat,equal_var", [("t", False), ("t", True), ("f", False)])
def test_fast_two_group_path_equals_kernels_and_scipy(rng, stat, equal_var):
    """Permuted statistics (index rows: ``labels[rows]`` are the permuted labels) equal
    scipy and the shared kernels; the observed one is the identity row of a block."""
    y = rng.standard_normal((23, 30)) * rng.uniform(0.5, 3, 30) + rng.uniform(-5, 5, 30)
    masks = np.zeros((2, 23), dtype=bool)
    masks[0, :10] = True
    masks[1, 12:] = True  # items 10 and 11 in no group
    engine = _StatEngine(y, masks, stat, equal_var)
    rows = np.array([rng.permutation(engine.n) for _ in range(7)])
    fast = engine.permuted(rows)
    used = y[masks.any(0)]
    for k, row in enumerate(rows):
        lab = engine.labels[row] == 0
        a, b = used[lab], used[~lab]
        if stat == "f":
            ref = st.f_oneway(a, b, axis=0).statistic
        else:
            ref = st.ttest_ind(a, b, equal_var=equal_var, axis=0).statistic
        np.testing.assert_allclose(fast[k], ref, rtol=1e-10)
    # the shared kernels give the same numbers
    from topobrain._utils._stats import one_way_f, two_sample_t

    lab = engine.labels[rows] == 0
    kmasks = np.stack([lab, ~lab], axis=1).astype(float)
    kernel = (one_way_f(used, kmasks)[0] if stat == "f"
              else two_sample_t(used, kmasks, equal_var=equal_var)[0])
    np.testing.assert_allclose(fast, kernel, rtol=1e-10)
    obs = engine.observed(rows, exact=False)
    if stat == "f":
        ref = st.f_oneway(y[masks[0]], y[masks[1]], axis=0).statistic
    else:
        ref = st.ttest_ind(y[masks[0]], y[masks[1]], equal_var=equal_var, axis=0).statistic
    np.testing.assert_allclose(obs, ref, rtol=1e-10)
    # the observed statistic is the identity row of a block-shaped call, bit for bit
    block = np.concatenate([np.arange(engine.n)[None], rows[:6]])
    np.testing.assert_array_equal(obs, engine.permuted(block)[0])


# --------------------------------------------- permutation tests against MNE, exact


@pytest.mark.parametrize("tail", [0, 1, -1])
@pytest.mark.parametrize("cluster_stat", ["mass", "size"])
def test_one_sample_equals_mne(rng, tail, cluster_stat):
    n_items, n_perm = 14, 150
    x = _smooth_noise(rng, (n_items, 11, 13)) * 2
    x[:, 1:4, 1:5] += 0.9
    x[:, 6:9, 7:11] -= 0.9
    thr = 2.0
    signs = _mne_1samp_signs(n_items, n_perm, tail, 11)
    t_obs, clusters, pv, h0 = mne.stats.permutation_cluster_1samp_test(
        x, threshold=thr if tail >= 0 else -thr, tail=tail, n_permutations=n_perm,
        t_power=1 if cluster_stat == "mass" else 0, rng=np.random.default_rng(11),
        out_type="mask")
    res = permutation_cluster_test(x, threshold=thr, tail=tail, cluster_stat=cluster_stat,
                                   adjacency="rook", permutations=signs)
    np.testing.assert_allclose(res.stat_map[0], t_obs, rtol=1e-10)
    np.testing.assert_allclose(res.stat_map[0], _one_sample(x), rtol=1e-10)
    assert len(clusters) >= (2 if tail == 0 else 1)
    expected = _cluster_dict(clusters, pv)
    ours = _our_clusters(res)
    assert ours.keys() == expected.keys()
    for key in ours:
        assert ours[key] == pytest.approx(expected[key], rel=1e-12)
    np.testing.assert_allclose(res.null_distribution, np.abs(h0[1:]), rtol=1e-9)
    assert res.params["n_permutations"] == n_perm - 1


@pytest.mark.parametrize("stat,equal_var,stat_fun", [
    ("f", False, None), ("t", False, _welch), ("t", True, _pooled)])
def test_two_sample_equals_mne(rng, stat, equal_var, stat_fun):
    """tail=1 (F's only tail; t's upper tail): masks, statistics, H0 and p equal MNE."""
    n0, n1, n_perm = 13, 17, 120
    a = _smooth_noise(rng, (n0, 12, 12)) * 2
    b = _smooth_noise(rng, (n1, 12, 12)) * 2
    a[:, 2:6, 3:8] += 1.2
    data = np.concatenate([a, b])
    groups = [np.arange(n0 + n1) < n0, np.arange(n0 + n1) >= n0]
    thr = 4.0 if stat == "f" else 1.8
    t_obs, clusters, pv, h0 = mne.stats.permutation_cluster_test(
        [a, b], threshold=thr, tail=1, stat_fun=stat_fun, n_permutations=n_perm,
        rng=np.random.default_rng(7), out_type="mask")
    res = permutation_cluster_test(data, groups, stat=stat, equal_var=equal_var,
                                   threshold=thr, tail=1, adjacency="rook",
                                   permutations=_mne_orders(n0 + n1, n_perm, 7))
    np.testing.assert_allclose(res.stat_map[0], t_obs, rtol=1e-10)
    assert len(clusters) >= 2
    expected = _cluster_dict(clusters, pv)
    ours = _our_clusters(res)
    assert ours.keys() == expected.keys()
    for key in ours:
        assert ours[key] == pytest.approx(expected[key], rel=1e-12)
    np.testing.assert_allclose(res.null_distribution, h0[1:], rtol=1e-9)


def test_two_sample_two_tailed_equals_mne_clustering(rng):
    """tail=0, two-sample t: the null is the largest |cluster mass| of each permutation.

    MNE's ``permutation_cluster_test`` keeps the largest *signed* cluster sum of each
    permutation (right for F, too lenient for two-tailed t), so its public null is not
    the reference here; the reference is MNE's own clustering of each permuted t map,
    and the observed clusters/statistics equal MNE's public output.
    """
    n0, n1, n_perm = 11, 12, 60
    data = _smooth_noise(rng, (n0 + n1, 10, 10)) * 2
    data[:n0, 1:4, 1:4] += 1.0
    data[:n0, 6:9, 5:9] -= 1.0
    groups = [np.arange(n0 + n1) < n0, np.arange(n0 + n1) >= n0]
    orders = _mne_orders(n0 + n1, n_perm, 3)
    res = permutation_cluster_test(data, groups, threshold=1.7, adjacency="rook",
                                   permutations=orders)
    t_obs, clusters, _, _ = mne.stats.permutation_cluster_test(
        [data[:n0], data[n0:]], threshold=1.7, tail=0, stat_fun=_welch, n_permutations=n_perm,
        rng=np.random.default_rng(3), out_type="mask")
    np.testing.assert_allclose(res.stat_map[0], t_obs, rtol=1e-10)
    ours = _our_clusters(res, res.clusters.mass)
    assert ours.keys() == _cluster_dict(clusters, clusters).keys()
    assert set(res.clusters.sign.tolist()) == {-1, 1}
    null = []
    g0 = groups[0]
    for order in orders:
        lab = np.empty(n0 + n1, bool)
        lab[order] = g0
        t = _welch(data[lab], data[~lab])
        _, sums = mne_find_clusters(t, 1.7, tail=0)
        null.append(np.abs(sums).max() if len(sums) else 0.0)
    np.testing.assert_allclose(res.null_distribution, null, rtol=1e-9)
    p_ref = [(1 + np.sum(np.asarray(null) >= abs(m))) / (n_perm) for m in res.clusters.mass]
    np.testing.assert_allclose(res.clusters.p_fwe, p_ref, rtol=1e-12)


def test_family_of_layers_equals_mne(rng):
    """family='all' is MNE on the stacked layers with no links between them;
    family='layer' is a separate MNE test per layer (same permutations)."""
    n_items, n_layers, n_perm = 12, 3, 80
    x = _smooth_noise(rng, (n_items, n_layers, 9, 9)) * 2 + 0.2
    x[:, 1, 2:5, 2:5] += 0.8
    signs = _mne_1samp_signs(n_items, n_perm, 0, 5)
    grid = grid_weights((9, 9), "queen", transform="b")
    block = sp.coo_array(sp.kron(sp.eye(n_layers), grid))
    _, clusters, pv, h0 = mne.stats.permutation_cluster_1samp_test(
        x.reshape(n_items, -1), threshold=1.6, adjacency=block, n_permutations=n_perm,
        rng=np.random.default_rng(5), out_type="mask")
    res = permutation_cluster_test(x, threshold=1.6, adjacency="queen", permutations=signs)
    assert res.stat_map.shape == (n_layers, 9, 9) and res.null_distribution.shape == (79,)
    ours = _our_clusters(res)
    expected = _cluster_dict(clusters, pv)
    assert ours.keys() == expected.keys()
    for key in ours:
        assert ours[key] == pytest.approx(expected[key], rel=1e-12)
    np.testing.assert_allclose(res.null_distribution, np.abs(h0[1:]), rtol=1e-9)

    per = permutation_cluster_test(x, threshold=1.6, adjacency="queen", family="layer",
                                   permutations=signs)
    assert per.null_distribution.shape == (n_layers, 79)
    for layer in range(n_layers):
        _, cl, pv_l, h0_l = mne.stats.permutation_cluster_1samp_test(
            x[:, layer].reshape(n_items, -1), threshold=1.6, adjacency=sp.coo_array(grid),
            n_permutations=n_perm, rng=np.random.default_rng(5), out_type="mask")
        np.testing.assert_allclose(per.null_distribution[layer], np.abs(h0_l[1:]), rtol=1e-9)
        sel = per.clusters.layer_index == layer
        ids, ps = per.clusters.cluster_id[sel], per.clusters.p_fwe[sel]
        ours_l = {frozenset(np.flatnonzero(per.clusters.labels[layer] == c).tolist()): p
                  for c, p in zip(ids, ps, strict=True)}
        exp_l = _cluster_dict(cl, pv_l)
        assert ours_l.keys() == exp_l.keys()
        for key in ours_l:
            assert ours_l[key] == pytest.approx(exp_l[key], rel=1e-12)


def test_mesh_one_sample_equals_mne(rng):
    adj = _random_mesh(rng, 50, 80)
    x = rng.standard_normal((13, 50)) + 0.3
    signs = _mne_1samp_signs(13, 100, 0, 2)
    _, clusters, pv, h0 = mne.stats.permutation_cluster_1samp_test(
        x, threshold=1.2, adjacency=sp.coo_array(adj), n_permutations=100,
        rng=np.random.default_rng(2), out_type="mask")
    res = permutation_cluster_test(x, threshold=1.2, adjacency=adj, permutations=signs)
    assert res.stat_map.shape == (1, 50)
    ours, expected = _our_clusters(res), _cluster_dict(clusters, pv)
    assert ours.keys() == expected.keys()
    for key in ours:
        assert ours[key] == pytest.approx(expected[key], rel=1e-12)
    np.testing.assert_allclose(res.null_distribution, np.abs(h0[1:]), rtol=1e-9)
    assert "peak_vertex" in res.to_frame()
    # TFCE on the mesh
    t_tfce, _, pv_t, h0_t = mne.stats.permutation_cluster_1samp_test(
        x, threshold={"start": 0, "step": 0.2}, adjacency=sp.coo_array(adj),
        n_permutations=100, rng=np.random.default_rng(2))
    tf = permutation_cluster_test(x, cluster_stat="tfce", adjacency=adj, permutations=signs)
    np.testing.assert_allclose(tf.tfce_map[0], t_tfce, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tf.p_fwe_map[0], pv_t, rtol=1e-12)
    np.testing.assert_allclose(tf.null_distribution, np.abs(h0_t[1:]), rtol=1e-12)
    assert list(tf.to_frame().columns) == ["layer", "vertex", "stat", "tfce", "p_fwe"]
    assert tf.to_xarray()["tfce"].dims == ("layer", "vertex")


def _mne_adjacency_equiv_data():
    """MNE's own exact one-sample case (``test_permutation_adjacency_equiv``): 6 subjects
    on a 2 x 4 grid, two strong effects."""
    x = np.random.RandomState(0).randn(6, 2, 4)
    x[:, :, 0:2] += 10
    x[:, 1, 3] += 20
    return x


@pytest.mark.parametrize("cluster_stat", ["mass", "size", "tfce"])
@pytest.mark.parametrize("tail", [0, 1, -1])
def test_exact_one_sample_mne_case(cluster_stat, tail):
    """n = 6: every sign pattern is enumerated (2**5 for tail 0, 2**6 one-sided).

    Reference: the exact permutation p from first principles (scipy's t and MNE's own
    clustering of every sign-flipped dataset), and MNE's public result on the same data:
    equal for tail 0 (p = 1/32 = 0.03125 for the effects, as MNE's test asserts); one-sided,
    MNE's enumeration drops the all-flipped pattern and counts the identity twice (its
    ``_get_1samp_orders`` takes the first ``bin_perm_rep`` row, all signs flipped, for the
    identity), so its p is ours + 1/64 whenever its second identity ties the observed
    statistic (its two t computations may differ in the last bits, and then it is ours).
    """
    x = _mne_adjacency_equiv_data()
    data = -x if tail == -1 else x  # the effects in the tested direction
    adj = sp.coo_array(grid_weights((2, 4), "rook", transform="b"))
    tfce_p = {"start": 0.01, "step": 1.0}
    if cluster_stat == "tfce":
        kw = dict(cluster_stat="tfce", tfce_params=tfce_p)
        mne_thr = {"start": 0.01, "step": 1.0}
    else:
        kw = dict(cluster_stat=cluster_stat, threshold=2.0)
        mne_thr = -2.0 if tail == -1 else 2.0
    res = permutation_cluster_test(data, tail=tail, adjacency="rook", n_permutations=1000,
                                   seed=0, verbose=0, **kw)
    space = 2 ** (6 - (tail == 0))
    assert res.params["exact"] and res.params["n_permutations"] == space
    assert res.null_distribution.shape == (space,)
    # first principles: the maximum statistic of every sign pattern (tail 0: first sign +1)
    patterns = 1.0 - 2.0 * np.array(list(np.ndindex(*(2,) * 6)), dtype=float)
    if tail == 0:
        patterns = patterns[patterns[:, 0] == 1]
    ref_null = []
    for s in patterns:
        t = _one_sample(data * s[:, None, None]).ravel()
        if cluster_stat == "tfce":  # MNE's TFCE of the positive side (tail -1: of -t)
            _, scores = mne_find_clusters(t * (-1 if tail == -1 else 1), mne_thr,
                                          tail=1 if tail == -1 else tail, adjacency=adj)
            ref_null.append(np.abs(scores).max())
        else:
            _, sums = mne_find_clusters(t, mne_thr, tail=tail, adjacency=adj,
                                        t_power=1 if cluster_stat == "mass" else 0)
            ref_null.append(np.abs(sums).max() if len(sums) else 0.0)
    ref_null = np.asarray(ref_null)
    np.testing.assert_allclose(np.sort(res.null_distribution), np.sort(ref_null), rtol=1e-9)
    if cluster_stat == "tfce":
        observed = np.abs(res.tfce_map.ravel())
        ours = res.p_fwe_map.ravel()
    else:
        observed = res.clusters.size if cluster_stat == "size" else np.abs(res.clusters.mass)
        ours = res.clusters.p_fwe
    # the identity comes first and reproduces the observed maximum bit for bit
    assert res.null_distribution[0] == observed.max()
    ref_p = np.array([np.mean(ref_null >= o * (1 - 1e-9)) for o in observed])
    np.testing.assert_array_equal(ours, ref_p)
    if cluster_stat == "size":  # another pattern also gives a 4-unit cluster: p doubles
        assert sorted(ours) == [2 / space, 13 / space if tail else 13 / 32]
    else:  # the smallest exact p: 0.03125 for tail 0, 0.015625 one-sided
        assert ours.min() == 1 / space
        assert np.sum(ours == 1 / space) == (5 if cluster_stat == "tfce" else 2)  # as MNE
    # MNE on the same data (its default 1024 permutations: the exact test too); its
    # tail -1 TFCE p-values are inverted, so that case runs MNE's tail 1 on -data
    flip = cluster_stat == "tfce" and tail == -1
    _, clusters, pv, h0 = mne.stats.permutation_cluster_1samp_test(
        -data if flip else data, threshold=mne_thr, tail=1 if flip else tail, adjacency=adj,
        t_power=0 if cluster_stat == "size" else 1, out_type="mask", rng=np.random.default_rng(0))
    assert h0.size == space
    if cluster_stat == "tfce":
        theirs = pv.ravel()
    else:
        theirs_d = _cluster_dict([c.ravel() for c in clusters], pv)
        ours_d = {frozenset(np.flatnonzero(res.clusters.mask(c).ravel()).tolist()): v
                  for c, v in zip(res.clusters.cluster_id, ours, strict=True)}
        assert ours_d.keys() == theirs_d.keys()
        theirs = np.array([theirs_d[k] for k in ours_d])
        ours = np.array(list(ours_d.values()))
    if tail == 0:
        np.testing.assert_array_equal(ours, theirs)
    else:
        extra = np.round((theirs - ours) * space)
        np.testing.assert_allclose((theirs - ours) * space, extra, atol=1e-9)
        assert set(extra.tolist()) <= {0.0, 1.0} and extra.max() == 1.0


# --------------------------------------------------------------------------- TFCE


@pytest.mark.parametrize("tail", [0, 1])
@pytest.mark.parametrize("params", [None, {"e": 0.66, "h": 1.5, "step": 0.13, "start": 0.1}])
def test_tfce_one_sample_equals_mne(rng, tail, params):
    n_items, n_perm = 12, 60
    x = _smooth_noise(rng, (n_items, 8, 9)) * 2 + 0.5
    x[:, 5:, :3] -= 1.2
    p = {"e": 0.5, "h": 2.0, "step": 0.2, "start": 0.0, **(params or {})}
    threshold = {"start": p["start"], "step": p["step"], "e_power": p["e"], "h_power": p["h"]}
    signs = _mne_1samp_signs(n_items, n_perm, tail, 9)
    t_tfce, _, pv, h0 = mne.stats.permutation_cluster_1samp_test(
        x, threshold=threshold, tail=tail, n_permutations=n_perm,
        rng=np.random.default_rng(9), out_type="mask")
    res = permutation_cluster_test(x, tail=tail, cluster_stat="tfce", tfce_params=params,
                                   adjacency="rook", permutations=signs)
    assert res.clusters is None and res.threshold is None and res.p_fwe is None
    np.testing.assert_allclose(res.tfce_map[0], t_tfce, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.null_distribution, np.abs(h0[1:]), rtol=1e-12)
    np.testing.assert_allclose(res.p_fwe_map[0].ravel(), pv, rtol=1e-12)
    # the stand-alone transform gives the same map
    np.testing.assert_allclose(tfce(res.stat_map, tail=tail, tfce_params=params,
                                    adjacency="rook"), res.tfce_map, rtol=1e-12)
    frame = res.to_frame()
    assert list(frame.columns) == ["layer", "row", "col", "stat", "tfce", "p_fwe"]
    assert len(frame) == 72


def test_tfce_negative_tail_and_two_sample_f_equal_mne(rng):
    n_items = 11
    x = _smooth_noise(rng, (n_items, 7, 7)) * 2 - 0.4
    # tail=-1: MNE counts heights downwards from 0 in steps of -0.2
    t_tfce, *_ = mne.stats.permutation_cluster_1samp_test(
        x, threshold={"start": 0, "step": -0.2}, tail=-1, n_permutations=8,
        rng=np.random.default_rng(0))
    np.testing.assert_allclose(tfce(_one_sample(x), tail=-1, adjacency="rook")[0], t_tfce,
                               rtol=1e-12, atol=1e-12)
    # negative tail p-values mirror the positive tail of the negated data
    signs = np.where(np.random.default_rng(4).random((30, n_items)) < 0.5, -1.0, 1.0)
    neg = permutation_cluster_test(x, tail=-1, cluster_stat="tfce", permutations=signs)
    pos = permutation_cluster_test(-x, tail=1, cluster_stat="tfce", permutations=signs)
    np.testing.assert_allclose(neg.p_fwe_map, pos.p_fwe_map, rtol=1e-12)
    np.testing.assert_allclose(neg.tfce_map, -pos.tfce_map, rtol=1e-12)
    # two-sample F with TFCE
    a, b = x[:5] + 1.0, x[5:]
    f_tfce, _, pv, h0 = mne.stats.permutation_cluster_test(
        [a, b], threshold={"start": 0, "step": 0.5}, tail=1, n_permutations=40,
        rng=np.random.default_rng(1), out_type="mask")
    res = permutation_cluster_test(np.concatenate([a, b]), [np.arange(11) < 5,
                                   np.arange(11) >= 5], stat="f", cluster_stat="tfce",
                                   tfce_params={"step": 0.5}, adjacency="rook",
                                   permutations=_mne_orders(11, 40, 1))
    np.testing.assert_allclose(res.tfce_map[0], f_tfce, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.null_distribution, h0[1:], rtol=1e-12)
    np.testing.assert_allclose(res.p_fwe_map[0].ravel(), pv, rtol=1e-12)


@pytest.mark.parametrize("stat", ["t", "f"])
def test_exact_two_sample_against_every_labelling(rng, stat):
    """4 + 4 items: 70 labellings <= n_permutations, so all are used, the identity first
    (reproducing the observed maximum bit for bit). Reference: every labelling through
    scipy's statistic and MNE's clustering, p = #{null >= observed} / 70."""
    from itertools import combinations

    x = _smooth_noise(rng, (8, 6, 7)) * 2
    x[:4, 1:4, 1:4] += 1.5
    groups = [np.arange(8) < 4, np.arange(8) >= 4]
    thr, tail = (3.0, 1) if stat == "f" else (1.5, 0)
    res = permutation_cluster_test(x, groups, stat=stat, threshold=thr, tail=tail,
                                   adjacency="rook", n_permutations=100, seed=1, verbose=0)
    assert res.params["exact"] and res.params["n_permutations"] == 70
    adj = sp.coo_array(grid_weights((6, 7), "rook", transform="b"))
    ref_null = []
    for first in combinations(range(8), 4):
        g0 = np.isin(np.arange(8), first)
        if stat == "f":
            t = st.f_oneway(x[g0], x[~g0], axis=0).statistic.ravel()
        else:
            t = _welch(x[g0], x[~g0]).ravel()
        _, sums = mne_find_clusters(t, thr, tail=tail, adjacency=adj)
        ref_null.append(np.abs(sums).max() if len(sums) else 0.0)
    ref_null = np.asarray(ref_null)
    np.testing.assert_allclose(np.sort(res.null_distribution), np.sort(ref_null), rtol=1e-9)
    observed = np.abs(res.clusters.mass)
    assert res.null_distribution[0] == observed.max()
    ref_p = np.array([np.mean(ref_null >= o * (1 - 1e-9)) for o in observed])
    np.testing.assert_array_equal(res.clusters.p_fwe, ref_p)
    assert res.clusters.p_fwe.min() <= 2 / 70  # the planted cluster


def test_tfce_negative_tail_differs_from_mne_on_purpose():
    """TFCE with tail -1: topobrain's p-values equal MNE's own for -data with tail +1
    (same sign flips); MNE 1.x's tail -1 counts ``H0 <= score`` with positive maxima in
    H0 and negative scores, so its p-values are inverted: on these data the strongest
    negative unit gets p = 0.978 from MNE and 0.023 here."""
    from scipy import ndimage

    rng = np.random.default_rng(12345)
    x = ndimage.gaussian_filter(rng.standard_normal((11, 7, 7)), sigma=(0, 1, 1)) * 2 - 0.4
    orders = _get_1samp_orders(11, 1024, 1, np.random.default_rng(0))[0]
    signs = 2.0 * np.asarray(orders, dtype=float) - 1.0
    ours = permutation_cluster_test(x, tail=-1, cluster_stat="tfce", adjacency="rook",
                                    permutations=signs, verbose=0)
    t_neg, _, pv_neg, _ = mne.stats.permutation_cluster_1samp_test(
        x, threshold={"start": 0, "step": -0.2}, tail=-1, n_permutations=1024,
        rng=np.random.default_rng(0))
    t_pos, _, pv_pos, _ = mne.stats.permutation_cluster_1samp_test(
        -x, threshold={"start": 0, "step": 0.2}, tail=1, n_permutations=1024,
        rng=np.random.default_rng(0))
    np.testing.assert_allclose(ours.tfce_map[0], t_neg, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.p_fwe_map[0].ravel(), pv_pos.ravel(), rtol=1e-12)
    strongest = np.argmin(t_neg.ravel())
    assert round(float(pv_neg.ravel()[strongest]), 3) == 0.978
    assert round(float(ours.p_fwe_map[0].ravel()[strongest]), 3) == 0.023
    assert not np.allclose(pv_neg, pv_pos)


def test_tfce_by_hand():
    """One 2-unit cluster of height 0.5, step 0.2: heights 0, 0.2, 0.4 (strictly below)."""
    x = np.zeros((3, 3))
    x[0, :2] = 0.5
    out = tfce(x, tail=1)
    expected = sum(h**2 * 0.2 * 2**0.5 for h in (0.2, 0.4))
    np.testing.assert_allclose(out[0, 0, :2], expected, rtol=1e-14)
    assert np.all(out[0].ravel()[2:] == 0)
    with pytest.raises(ValueError, match="Unknown TFCE parameter 'steps'.*Did you mean 'step'"):
        tfce(x, tfce_params={"steps": 1})
    with pytest.raises(ValueError, match="step'\\] must be > 0"):
        tfce(x, tfce_params={"step": -0.2})
    with pytest.raises(ValueError, match="start'\\] must be >= 0"):
        tfce(x, tfce_params={"start": -1})
    with pytest.raises(ValueError, match="'e' and 'h' must be >= 0"):
        tfce(x, tfce_params={"h": -1})
    with pytest.raises(TypeError, match="tfce_params must be a dict"):
        tfce(x, tfce_params=[0.5, 2])


# ----------------------------------------------------- Monte Carlo and calibration


def test_random_permutations_within_monte_carlo_error_of_mne(rng):
    n_items = 16
    x = _smooth_noise(rng, (n_items, 12, 12)) * 2 + 0.1
    x[:, 3:7, 3:7] += 0.45
    x[:, 8:11, 8:11] += 0.35
    n_perm = 1000
    _, clusters, pv, _ = mne.stats.permutation_cluster_1samp_test(
        x, threshold=2.0, n_permutations=n_perm, rng=np.random.default_rng(1),
        out_type="mask")
    res = permutation_cluster_test(x, threshold=2.0, adjacency="rook", n_permutations=n_perm - 1,
                                   seed=2)
    ours, expected = _our_clusters(res), _cluster_dict(clusters, pv)
    assert ours.keys() == expected.keys()
    assert any(0.01 < p < 0.9 for p in pv)  # some p-values carry Monte Carlo error
    for key in ours:
        p = (expected[key] + ours[key]) / 2  # two independent estimates of the same p
        sd = np.sqrt(2 * max(p * (1 - p), 1 / n_perm) / n_perm)
        assert abs(ours[key] - expected[key]) < 4.5 * sd


def test_planted_effect_found_and_noise_calibrated():
    rng = np.random.default_rng(0)
    n_items = 24
    groups = [np.arange(n_items) < 12, np.arange(n_items) >= 12]
    planted = _smooth_noise(rng, (n_items, 2, 10, 10))
    planted[:12, 1, 3:7, 3:7] += 1.2
    res = permutation_cluster_test(planted, groups, n_permutations=199, seed=1)
    best = res.clusters.to_frame().sort_values("p_fwe").iloc[0]
    assert best["layer"] == 1 and best["sign"] == 1 and best["p_fwe"] < 0.05
    assert res.p_fwe_map[1, 4, 4] < 0.05 and np.isnan(res.p_fwe_map[0]).mean() > 0.5
    tf = permutation_cluster_test(planted, groups, cluster_stat="tfce", n_permutations=199,
                                  seed=1)
    assert tf.p_fwe_map[1, 4, 4] < 0.05

    # pure noise: FWE-significant in about 5% of repeated experiments
    n_runs, hits = 300, 0
    for run in range(n_runs):
        noise = _smooth_noise(rng, (n_items, 2, 6, 6))
        r = permutation_cluster_test(noise, groups, n_permutations=99, seed=run,
                                     threshold=2.0)
        hits += bool(len(r.clusters) and r.clusters.p_fwe.min() < 0.05)
    rate = hits / n_runs
    # exact level with B = 99: P(p < 0.05) = 4 / 100; binomial 99.9% band over 300 runs
    assert 0.005 < rate < 0.09, rate


# ---------------------------------------------------------- properties and determinism


def test_progress_bar_and_log_at_info(rng, caplog, capsys):
    x = rng.standard_normal((12, 4, 4))  # 2**11 sign patterns: 150 random ones, 3 blocks
    with caplog.at_level("INFO", logger="topobrain"):
        permutation_cluster_test(x, threshold=1.0, n_permutations=150, seed=0)
        assert "cluster test: one-sample" in caplog.text and "150 permutations" in caplog.text
        assert "permutations" in capsys.readouterr().err  # the core dispatcher's tqdm bar
        caplog.clear()
        permutation_cluster_test(x, threshold=1.0, n_permutations=150, seed=0, verbose=0)
        assert caplog.text == "" and capsys.readouterr().err == ""
    permutation_cluster_test(x, threshold=1.0, n_permutations=150, seed=0)
    assert capsys.readouterr().err == ""  # the logger's default level (WARNING) is quiet


def test_same_seed_same_result_for_any_n_jobs(rng):
    x = _smooth_noise(rng, (10, 2, 6, 6)) + 0.3
    kw = dict(threshold=1.5, n_permutations=250, seed=123)
    one = permutation_cluster_test(x, n_jobs=1, **kw)
    from joblib import parallel_config

    with parallel_config(backend="threading"):  # the split differs; processes cost seconds
        two = permutation_cluster_test(x, n_jobs=2, **kw)
    again = permutation_cluster_test(x, seed=np.random.default_rng(9), threshold=1.5,
                                     n_permutations=250)
    np.testing.assert_array_equal(one.null_distribution, two.null_distribution)
    np.testing.assert_array_equal(one.clusters.p_fwe, two.clusters.p_fwe)
    assert one.params["seed"] == 123 and one.params["spawn_key"] == ()
    assert one.params["block_size"] == BLOCK_SIZE and not one.params["exact"]
    # the first blocks of a longer run are the same permutations
    longer = permutation_cluster_test(x, threshold=1.5, n_permutations=300, seed=123)
    np.testing.assert_array_equal(longer.null_distribution[:250], one.null_distribution)
    other = permutation_cluster_test(x, threshold=1.5, n_permutations=250, seed=124)
    assert not np.array_equal(other.null_distribution, one.null_distribution)
    # a named stream of the same seed (as the pipeline gives each test) is another null
    from topobrain._utils._permutation import stream

    named = permutation_cluster_test(x, threshold=1.5, n_permutations=250,
                                     seed=stream(123, "clusters"))
    assert named.params["seed"] == 123 and len(named.params["spawn_key"]) == 1
    assert not np.array_equal(named.null_distribution, one.null_distribution)
    again_named = permutation_cluster_test(x, threshold=1.5, n_permutations=250,
                                           seed=stream(123, "clusters"))
    np.testing.assert_array_equal(named.null_distribution, again_named.null_distribution)
    assert again.null_distribution.shape == (250,)


def test_null_identical_on_processes_and_dask(rng):
    """The same null with one job, two loky processes and a Dask LocalCluster (through
    ``joblib.parallel_config``, ``n_jobs=None``)."""
    distributed = pytest.importorskip("distributed", reason="dask.distributed (dev extra)")
    import joblib

    x = _smooth_noise(rng, (16, 2, 5, 5))
    groups = [np.arange(16) < 8, np.arange(16) >= 8]
    kw = dict(threshold=1.5, n_permutations=200, seed=5, verbose=0)
    one = permutation_cluster_test(x, groups, n_jobs=1, **kw)
    assert one.params["n_permutations"] == 200 and not one.params["exact"]
    two = permutation_cluster_test(x, groups, n_jobs=2, **kw)
    np.testing.assert_array_equal(one.null_distribution, two.null_distribution)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with joblib.parallel_config(backend="dask"):
            on_dask = permutation_cluster_test(x, groups, **kw)
        assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_array_equal(one.null_distribution, on_dask.null_distribution)
    np.testing.assert_array_equal(one.clusters.p_fwe, on_dask.clusters.p_fwe)


@settings(max_examples=15, deadline=None)
@given(seed=hst.integers(0, 2**31), n_perm=hst.integers(1, 130),
       cluster_stat=hst.sampled_from(["mass", "size", "tfce"]), tail=hst.sampled_from([0, 1]))
# the five tie cases of issue 17 (a permutation reproducing the observed split gave a max
# |mass| 1-2 ulp from the observed one, counted in one orientation of the groups only)
@example(seed=32242, n_perm=6, cluster_stat="mass", tail=0)
@example(seed=698, n_perm=48, cluster_stat="mass", tail=0)
@example(seed=35, n_perm=10, cluster_stat="mass", tail=0)
@example(seed=1646119, n_perm=7, cluster_stat="mass", tail=0)
@example(seed=314, n_perm=54, cluster_stat="mass", tail=0)
def test_p_values_properties(seed, n_perm, cluster_stat, tail):
    r = np.random.default_rng(seed)
    x = r.standard_normal((9, 5, 5)) + r.uniform(-0.5, 0.5)
    groups = [np.arange(9) < 4, np.arange(9) >= 4]
    # rook: the adjacency under which the five cases were found
    kw = dict(threshold=None if cluster_stat == "tfce" else 1.0, adjacency="rook", verbose=0)
    res = permutation_cluster_test(x, groups, tail=tail, cluster_stat=cluster_stat,
                                   n_permutations=n_perm, seed=seed, **kw)
    p = res.p_fwe_map[np.isfinite(res.p_fwe_map)]
    # 9 items in groups of 4 and 5: 126 labelings; from n_perm = 126 on, the exact test
    exact = n_perm >= 126
    assert res.params["exact"] == exact
    b = 126 if exact else n_perm
    assert np.all((p >= 1 / (b + (not exact)) - 1e-15) & (p <= 1))
    assert res.null_distribution.shape == (b,)
    # swapping the groups (tail 0) flips the statistic and keeps every p-value
    if tail == 0:
        swapped = permutation_cluster_test(x, groups[::-1], cluster_stat=cluster_stat,
                                           n_permutations=n_perm, seed=seed, **kw)
        np.testing.assert_allclose(swapped.stat_map, -res.stat_map, rtol=1e-10)
        np.testing.assert_allclose(swapped.p_fwe_map, res.p_fwe_map, rtol=1e-12)


def test_result_objects(rng):
    x = {"a": rng.standard_normal((12, 6, 6)) + 0.4, "b": rng.standard_normal((12, 6, 6))}
    x["b"][:, 0, 0] = np.nan  # no unit sits there
    before = {k: v.copy() for k, v in x.items()}
    res = permutation_cluster_test(x, threshold=1.0, n_permutations=20, seed=0)
    for k in x:
        np.testing.assert_array_equal(x[k], before[k])
    assert res.layers == ("a", "b")
    assert np.isnan(res.stat_map[1, 0, 0]) and res.clusters.labels[1, 0, 0] == 0
    frame = res.to_frame()
    assert list(frame.columns)[-1] == "p_fwe" and set(frame["layer"]) <= {"a", "b"}
    ds = res.to_xarray()
    assert ds["stat"].dims == ("layer", "row", "col") and list(ds["layer"].values) == ["a", "b"]
    assert "ClusterTestResult(one-sample" in repr(res)
    assert "n_permutations=20, " in repr(res)
    exact = permutation_cluster_test(x["a"][:5], threshold=1.0, n_permutations=20, seed=0)
    assert "n_permutations=16 (exact)" in repr(exact)  # 2**4 sign patterns for tail 0
    with pytest.raises(AttributeError):
        res.threshold = 3.0
    with pytest.raises(ValueError, match="read-only"):
        res.stat_map[0, 0, 0] = 1.0
    assert res.params["df"] == 11 and res.threshold == 1.0
    default = permutation_cluster_test(x, tail=1, n_permutations=5, seed=0)
    assert default.threshold == pytest.approx(st.t.ppf(0.95, 11), rel=1e-12)
    fk = permutation_cluster_test(np.concatenate([x["a"], x["a"][:6] + 1]),
                                  [np.arange(18) < 6, (np.arange(18) >= 6) & (np.arange(18) < 12),
                                   np.arange(18) >= 12], stat="f", n_permutations=20, seed=0)
    assert fk.params["df"] == (2, 15)
    assert fk.params["design"] == "3-group" and fk.threshold == pytest.approx(
        st.f.ppf(0.95, 2, 15))
    np.testing.assert_allclose(fk.stat_map[0], st.f_oneway(x["a"][:6], x["a"][6:12],
                               x["a"][:6] + 1, axis=0).statistic, rtol=1e-10)


def test_many_groups_f_equals_mne(rng):
    data = [rng.standard_normal((7, 8, 8)) + d for d in (0.0, 0.3, 0.9)]
    orders = _mne_orders(21, 50, 4)
    f, clusters, pv, h0 = mne.stats.permutation_cluster_test(
        data, threshold=2.5, n_permutations=50, rng=np.random.default_rng(4), out_type="mask")
    lab = np.repeat(np.arange(3), 7)
    res = permutation_cluster_test(np.concatenate(data), [lab == g for g in range(3)],
                                   stat="f", threshold=2.5, adjacency="rook",
                                   permutations=orders)
    np.testing.assert_allclose(res.stat_map[0], f, rtol=1e-10)
    np.testing.assert_allclose(res.null_distribution, h0[1:], rtol=1e-9)
    ours, expected = _our_clusters(res), _cluster_dict(clusters, pv)
    assert ours.keys() == expected.keys()
    for key in ours:
        assert ours[key] == pytest.approx(expected[key], rel=1e-12)


def test_permutation_test_errors(rng):
    x = rng.standard_normal((8, 4, 4))
    g = [np.arange(8) < 4, np.arange(8) >= 4]
    with pytest.raises(ValueError, match="Invalid value for the 'stat'"):
        permutation_cluster_test(x, g, stat="z")
    with pytest.raises(ValueError, match="Invalid value for the 'cluster_stat'.*'mass'"):
        permutation_cluster_test(x, g, cluster_stat="masss")
    with pytest.raises(ValueError, match="Invalid value for the 'family'"):
        permutation_cluster_test(x, g, family="layers")
    with pytest.raises(TypeError, match="equal_var must be True or False"):
        permutation_cluster_test(x, g, equal_var="yes")
    with pytest.raises(ValueError, match="F statistic is one-tailed"):
        permutation_cluster_test(x, g, stat="f", tail=0)
    with pytest.raises(ValueError, match="stat='f' needs groups"):
        permutation_cluster_test(x, stat="f")
    with pytest.raises(ValueError, match="stat='t' compares two groups"):
        permutation_cluster_test(x, [np.arange(8) < 3, (np.arange(8) >= 3) & (np.arange(8) < 6),
                                     np.arange(8) >= 6])
    with pytest.raises(ValueError, match=r"of shape \(n_groups, n_items\) = \(n_groups, 8\)"):
        permutation_cluster_test(x, np.ones(8, bool))
    with pytest.raises(ValueError, match="values other than 0/1"):
        permutation_cluster_test(x, np.full((2, 8), 3))
    with pytest.raises(ValueError, match="at least two masks"):
        permutation_cluster_test(x, [np.ones(8, bool)])
    with pytest.raises(ValueError, match="groups overlap: 1 items"):
        permutation_cluster_test(x, [np.arange(8) < 5, np.arange(8) >= 4])
    with pytest.raises(ValueError, match="at least 2 items; got group sizes \\[1, 7\\]"):
        permutation_cluster_test(x, [np.arange(8) < 1, np.arange(8) >= 1])
    with pytest.raises(ValueError, match="threshold is not used by TFCE"):
        permutation_cluster_test(x, g, cluster_stat="tfce", threshold=2.0)
    with pytest.raises(ValueError, match="tfce_params only applies"):
        permutation_cluster_test(x, g, tfce_params={"e": 1})
    with pytest.raises(TypeError, match="n_permutations must be an int"):
        permutation_cluster_test(x, g, n_permutations=10.5)
    with pytest.raises(ValueError, match="n_permutations must be at least 1"):
        permutation_cluster_test(x, g, n_permutations=0)
    with pytest.raises(ValueError, match="n_jobs must be None or a non-zero int; got 0"):
        permutation_cluster_test(x, g, n_jobs=0)
    with pytest.raises(TypeError, match="seed must be None, a non-negative int"):
        permutation_cluster_test(x, g, seed="abc")
    with pytest.raises(ValueError, match="seed must be (a )?non-negative"):
        permutation_cluster_test(x, g, seed=-3)
    with pytest.raises(ValueError, match=r"permutations must have shape \(n_permutations, 8\)"):
        permutation_cluster_test(x, g, permutations=np.zeros((5, 7), int))
    with pytest.raises(ValueError, match="must be permutations of 0..7"):
        permutation_cluster_test(x, g, permutations=np.zeros((5, 8), int))
    with pytest.raises(ValueError, match="signs, -1 or \\+1"):
        permutation_cluster_test(x, permutations=np.zeros((5, 8)))
    with pytest.raises(ValueError, match="leading item axis"):
        permutation_cluster_test(np.zeros(5))
    partial = x.copy()
    partial[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN for some items but not others in 1 units"):
        permutation_cluster_test(partial, g)
    partial[:, 1, 1] = np.inf
    with pytest.raises(ValueError, match="data holds 8 infinite values"):
        permutation_cluster_test(partial, g)
    with pytest.raises(ValueError, match="every cell is NaN"):
        permutation_cluster_test(np.full((8, 3, 3), np.nan))
    with pytest.raises(ValueError, match="at least 2 items"):
        permutation_cluster_test(x[:1])
    with pytest.raises(TypeError, match="sequence of boolean masks"):
        permutation_cluster_test(x, [np.ones(8, bool), np.ones(3, bool)])
    with pytest.raises(ValueError, match="each layer of the dict data"):
        permutation_cluster_test({"a": np.zeros((8, 4))})


def test_cluster_forming_threshold_equals_scipy_and_refuses_bad_input():
    np.testing.assert_allclose(cluster_forming_threshold(0.001, 37.5),
                               st.t.isf(0.0005, 37.5), rtol=1e-12)
    np.testing.assert_allclose(cluster_forming_threshold(0.01, 12, tail=1), st.t.isf(0.01, 12),
                               rtol=1e-12)
    np.testing.assert_allclose(cluster_forming_threshold(0.01, 12, tail=-1),
                               st.t.isf(0.01, 12), rtol=1e-12)  # a magnitude
    np.testing.assert_allclose(cluster_forming_threshold(0.001, (2, 30), stat="f"),
                               st.f.isf(0.001, 2, 30), rtol=1e-12)
    # the default threshold of the test is the p = 0.05 one (MNE's rule)
    x = np.random.default_rng(0).standard_normal((12, 4, 4))
    res = permutation_cluster_test(x, n_permutations=3, seed=0, verbose=0)
    assert res.threshold == cluster_forming_threshold(0.05, 11)
    for p in (0, 1, 1.5, np.nan, -0.1, "0.01"):
        with pytest.raises(ValueError, match=r"cluster-forming p must be a number in \(0, 1\)"):
            cluster_forming_threshold(p, 10)
    with pytest.raises(ValueError, match="df must be one finite number > 0.*got nan.*constant"):
        cluster_forming_threshold(0.001, np.nan)
    with pytest.raises(ValueError, match=r"df must be \(df_between, df_within\) > 0"):
        cluster_forming_threshold(0.001, 10, stat="f")
    with pytest.raises(ValueError, match="Invalid value for the 'stat'"):
        cluster_forming_threshold(0.001, 10, stat="z")


def test_constant_units_get_nan_with_a_warning(rng):
    """Units constant across items (exactly or to rounding) get no statistic, join no
    cluster and get no p-value; the rest of the test is unchanged."""
    x = rng.standard_normal((10, 5, 5)) + 0.5
    x[:, 2, 2] = 0.1
    x[:, 4, 4] = 3.0 + 1e-14 * rng.standard_normal(10)  # one-pass variance: a garbage t
    g = [np.arange(10) < 5, np.arange(10) >= 5]
    for groups, kw in ((None, {}), (g, {}), (g, {"stat": "f"}), (None, {"threshold": None,
                                                                     "cluster_stat": "tfce"})):
        kw = {"threshold": 0.5, **kw}
        with pytest.warns(UserWarning, match="2 of 25 units are constant across the items"):
            res = permutation_cluster_test(x, groups, n_permutations=20, seed=0, verbose=0,
                                           **kw)
        assert np.isnan(res.stat_map[0, 2, 2]) and np.isnan(res.stat_map[0, 4, 4])
        assert np.isnan(res.p_fwe_map[0, 2, 2]) and np.isnan(res.p_fwe_map[0, 4, 4])
        assert np.isfinite(res.stat_map).sum() == 23
        if res.clusters is not None:
            assert res.clusters.labels[0, 2, 2] == 0 and res.clusters.labels[0, 4, 4] == 0
        # the same as marking the two units NaN (no unit sits there)
        nan = x.copy()
        nan[:, [2, 4], [2, 4]] = np.nan
        ref = permutation_cluster_test(nan, groups, n_permutations=20, seed=0, verbose=0, **kw)
        np.testing.assert_array_equal(res.null_distribution, ref.null_distribution)
        np.testing.assert_array_equal(res.p_fwe_map, ref.p_fwe_map)
    with pytest.warns(UserWarning, match="16 of 16 units are constant"):
        flat = permutation_cluster_test(np.ones((6, 4, 4)), n_permutations=10, seed=0,
                                        verbose=0)
    assert flat.clusters.n_clusters == 0 and np.isnan(flat.stat_map).all()


# ------------------------------------------------------------------ seed and grow


def test_seed_and_grow_by_hand():
    p = np.full((4, 6), 0.5)
    p[0, 0:3] = [0.01, 0.001, 0.04]
    p[2, 4:6] = [0.02, 0.0001]
    p[3, 0] = 0.03
    p[1, 5] = np.nan
    t = np.where(p < 0.05, 5.0, 0.0)
    t[0, 2] = -4.0  # a negative unit beside a positive seed
    table = seed_and_grow(p, alpha=0.05, min_size=1)
    frame = table.to_frame()
    # seeds in order of p: (2,5) then (0,1) then (3,0)
    assert frame["size"].tolist() == [2, 3, 1]
    assert frame[["peak_row", "peak_col"]].values.tolist() == [[2, 5], [0, 1], [3, 0]]
    np.testing.assert_allclose(frame["peak_value"], -np.log10([0.0001, 0.001, 0.03]))
    assert table.params["method"] == "seed_and_grow"
    assert seed_and_grow(p, min_size=2).to_frame()["size"].tolist() == [2, 3]
    signed = seed_and_grow(p, stat_map=t)
    assert signed.to_frame()["size"].tolist() == [2, 2, 1, 1]
    assert signed.to_frame()["sign"].tolist() == [1, 1, 1, -1]  # (0, 2) is the last seed
    assert signed.to_frame()["mass"].tolist() == [10.0, 10.0, 5.0, -4.0]
    assert len(seed_and_grow(p, alpha=0.001)) == 1


@settings(max_examples=40, deadline=None)
@given(seed=hst.integers(0, 2**31), alpha=hst.floats(0.05, 0.6),
       kind=hst.sampled_from(["rook", "queen"]))
def test_seed_and_grow_is_components_of_significant_units(seed, alpha, kind):
    """Growing while p < alpha reaches exactly the connected component of the seed."""
    p = np.random.default_rng(seed).uniform(size=(2, 8, 7))
    grown = seed_and_grow(p, alpha=alpha, adjacency=kind)
    comps = find_clusters(alpha - p, 0.0, tail=1, adjacency=kind)
    assert _our_clusters(grown, grown.size).keys() == _our_clusters(comps, comps.size).keys()
    assert np.all(np.diff(grown.layer_index) >= 0)
    first = grown.peak_value[grown.layer_index == 0]
    assert np.all(np.diff(first) <= 0)  # seeds by increasing p


def test_seed_and_grow_mesh_and_errors(rng):
    adj = _random_mesh(rng, 30, 45)
    p = rng.uniform(size=30) * 0.1
    grown = seed_and_grow(p, adjacency=adj)
    comps = find_clusters(0.05 - p, 0.0, tail=1, adjacency=adj)
    assert _our_clusters(grown, grown.size).keys() == _our_clusters(comps, comps.size).keys()
    with pytest.raises(ValueError, match="p-values in \\[0, 1\\]"):
        seed_and_grow(np.full((3, 3), 2.0))
    with pytest.raises(ValueError, match="alpha must be in \\(0, 1\\]"):
        seed_and_grow(np.full((3, 3), 0.5), alpha=0)
    with pytest.raises(ValueError, match="stat_map must have the layout of p_map"):
        seed_and_grow(np.full((3, 3), 0.5), stat_map=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="min_size must be a positive integer"):
        seed_and_grow(np.full((3, 3), 0.5), min_size=1.5)


# ------------------------------------------------------------------------ imports


def test_clusters_module_imports_no_torch_or_matplotlib():
    code = ("import sys, topobrain.clusters; "
            "print(any(m in sys.modules for m in ('torch', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_public_names():
    import topobrain.clusters as mod

    assert sorted(mod.__all__) == ["ClusterTable", "ClusterTestResult",
                                   "cluster_forming_threshold", "find_clusters",
                                   "permutation_cluster_test", "seed_and_grow", "tfce"]
    assert ClusterTable.__dataclass_params__.frozen
