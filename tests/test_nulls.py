"""Spatial nulls: spin permutations and Moran spectral randomisation, checked against brute
force, scipy and esda, with a calibration test for map-to-map correlations."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from topobrain.brain import BrainMap, Mesh, load_mesh, mesh_adjacency, restrict_adjacency
from topobrain.nulls import (
    SpatialNullResult,
    map_correlation,
    moran_eigenvectors,
    moran_surrogates,
    random_rotations,
    spatial_null_test,
    spin_permutations,
    spin_surrogates,
    variogram_surrogates,
)
from topobrain.sheet import grid_weights, transform_weights
from topobrain.spatial import morans_i

HAS_NILEARN = importlib.util.find_spec("nilearn") is not None


@pytest.fixture(scope="module")
def fsavg5():
    if not HAS_NILEARN:
        pytest.skip("nilearn is not installed: fsaverage5 comes from its wheel")
    return load_mesh("fsaverage5")


@pytest.fixture(scope="module")
def coarse_sphere(fsavg5):
    """The 642 vertices of fsaverage5 that are the icosahedron-3 vertices (a coarse,
    even sampling of the sphere)."""
    return fsavg5.sphere[:642] / 100.0


def sphere_field(xyz, rng, n_bumps=6, width=0.6):
    """A smooth random field on the sphere: a sum of Gaussian bumps of random sign."""
    centres = rng.standard_normal((n_bumps, 3))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    d = np.arccos(np.clip(xyz @ centres.T, -1, 1))
    return (np.exp(-(d**2) / (2 * width**2)) * rng.standard_normal(n_bumps)).sum(1)


# ---------------------------------------------------------------------- rotations
def test_random_rotations_are_haar(rng):
    r = random_rotations(4000, seed=rng)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    # a Haar rotation carries any fixed axis to a uniform point on the sphere:
    # its z component is uniform on [-1, 1] (Archimedes)
    z = (r @ np.array([0.0, 0.0, 1.0]))[:, 2]
    assert stats.kstest(z, stats.uniform(-1, 2).cdf).pvalue > 0.001
    # and the rotation angle has density (1 - cos t) / pi on [0, pi]
    angle = np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1))
    cdf = lambda t: (t - np.sin(t)) / np.pi  # noqa: E731
    assert stats.kstest(angle, cdf).pvalue > 0.001
    np.testing.assert_array_equal(random_rotations(3, seed=5), random_rotations(3, seed=5))


def test_spin_matches_brute_force_nearest_vertex(coarse_sphere):
    idx = spin_permutations(coarse_sphere, 5, seed=11)
    rots = random_rotations(5, seed=11)
    x = coarse_sphere - coarse_sphere.mean(0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for k, r in enumerate(rots):
        rotated = x @ r.T  # positions R x_v
        d = np.linalg.norm(x[:, None, :] - rotated[None, :, :], axis=-1)
        np.testing.assert_array_equal(idx[k], d.argmin(1))


def test_spin_right_hemisphere_is_mirrored(coarse_sphere):
    right = coarse_sphere * np.array([-1.0, 1.0, 1.0])
    both = np.vstack([coarse_sphere, right])
    hemi = np.repeat(["left", "right"], 642)
    idx = spin_permutations(both, 4, hemisphere=hemi, seed=3)
    np.testing.assert_array_equal(idx[:, 642:] - 642, idx[:, :642])
    assert idx[:, :642].max() < 642  # no value crosses hemispheres


def test_spin_keeps_autocorrelation_shuffle_does_not(fsavg5, rng):
    x = sphere_field(fsavg5.sphere / 100.0, rng, n_bumps=10, width=0.3)
    w = fsavg5.adjacency()
    spun = spin_surrogates(x, fsavg5, 20, seed=0)
    i0 = float(morans_i(x, w).I)
    i_spun = np.asarray(morans_i(spun, w).I)
    i_shuf = float(morans_i(rng.permutation(x), w).I)
    assert i0 > 0.9
    assert np.all(np.abs(i_spun - i0) < 0.02)
    assert abs(i_shuf) < 0.05
    # most vertices take distinct values: the reassignment is close to a permutation
    idx = spin_permutations(fsavg5, 3, seed=1)
    assert all(np.unique(row).size > 0.6 * fsavg5.n_vertices for row in idx)


def test_spin_errors(rng):
    mesh = Mesh(rng.random((4, 3)), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="has no sphere"):
        spin_permutations(mesh, 3)
    with pytest.raises(ValueError, match="n_permutations must be a positive integer"):
        spin_permutations(rng.standard_normal((10, 3)), 0)
    with pytest.raises(ValueError, match="'left' or 'right'"):
        spin_permutations(rng.standard_normal((10, 3)), 2, hemisphere=["up"] * 10)
    with pytest.raises(ValueError, match="one entry per sphere vertex"):
        spin_surrogates(np.zeros(5), rng.standard_normal((10, 3)), 2)


# ---------------------------------------------------------------------- Moran spectral
def test_moran_eigenvectors_against_naive_double_centring(rng):
    w = transform_weights(grid_weights((6, 7), "queen", transform="b"), "r")
    n = w.shape[0]
    ev = moran_eigenvectors(w)
    h = np.eye(n) - 1.0 / n
    ws = 0.5 * (w.toarray() + w.toarray().T)
    naive = np.linalg.eigvalsh(h @ ws @ h)
    # the naive spectrum is ours plus one zero for the constant vector
    k = np.argmin(np.abs(naive))
    np.testing.assert_allclose(ev.eigenvalues, np.delete(naive, k), atol=1e-10)
    v = ev.eigenvectors
    np.testing.assert_allclose(v.T @ v, np.eye(n - 1), atol=1e-10)
    np.testing.assert_allclose(v.sum(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(v.T @ ws @ v, np.diag(ev.eigenvalues), atol=1e-10)


@pytest.mark.parametrize("transform", ["r", "b"])
def test_singleton_msr_keeps_moran_mean_variance(fsavg5, rng, transform):
    d = np.linalg.norm(fsavg5.sphere - fsavg5.sphere[0], axis=1)
    patch = restrict_adjacency(fsavg5.adjacency(), d <= np.sort(d)[400])
    w = transform_weights(patch.adjacency, transform)
    x = rng.standard_normal(patch.n_kept)
    for _ in range(4):
        x = 0.5 * x + 0.5 * (transform_weights(patch.adjacency, "r") @ x)
    sur = moran_surrogates(x, w, 200, seed=0)
    ref = float(morans_i(x, w, transform=None).I)
    np.testing.assert_allclose(np.asarray(morans_i(sur, w, transform=None).I), ref, atol=1e-10)
    np.testing.assert_allclose(sur.mean(1), x.mean(), atol=1e-10)
    np.testing.assert_allclose(sur.var(1), x.var(), rtol=1e-10)
    # the surrogates are new maps: correlation with the original centred near 0
    r = np.array([np.corrcoef(x, s)[0, 1] for s in sur])
    assert abs(r.mean()) < 0.1 and r.std() > 0.02
    # esda on libpysal weights agrees on the surrogates' I
    esda = pytest.importorskip("esda")
    from libpysal.weights import WSP

    wl = WSP(patch.adjacency).to_W(silence_warnings=True)
    assert abs(esda.Moran(sur[0], wl, transformation=transform, permutations=0).I - ref) < 1e-10


def test_pair_msr_keeps_mean_and_variance(rng):
    w = transform_weights(grid_weights((8, 8), "rook", transform="b"), "r")
    x = rng.standard_normal(64)
    sur = moran_surrogates(x, w, 50, procedure="pair", seed=1)
    np.testing.assert_allclose(sur.mean(1), x.mean(), atol=1e-10)
    np.testing.assert_allclose(sur.var(1), x.var(), rtol=1e-10)
    assert not np.allclose(sur[0], x)
    ev = moran_eigenvectors(w)
    again = moran_surrogates(x, w, 50, procedure="pair", seed=1, eigenvectors=ev)
    np.testing.assert_allclose(again, sur, atol=1e-12)


def test_msr_errors(rng):
    w = grid_weights((4, 4), "rook", transform="b")
    with pytest.raises(ValueError, match="non-finite"):
        moran_surrogates(np.r_[np.nan, np.zeros(15)], w, 3)
    with pytest.raises(ValueError, match="must have shape \\(5, 5\\)"):
        moran_surrogates(np.zeros(5), w, 3)
    with pytest.raises(ValueError, match="'procedure'"):
        moran_surrogates(np.zeros(16), w, 3, procedure="triple")
    with pytest.raises(ValueError, match="n_surrogates must be a positive integer"):
        moran_surrogates(np.zeros(16), w, -1)
    big = sp.identity(20_000, format="csr")
    with pytest.raises(ValueError, match="exceed the limit"):
        moran_eigenvectors(big)


# ---------------------------------------------------------------------- tests, correlation
def test_map_correlation_statistic_matches_scipy(coarse_sphere, rng):
    x = sphere_field(coarse_sphere, rng)
    y = x + rng.standard_normal(x.size)
    res = map_correlation(x, y, mesh=coarse_sphere, n_permutations=99, seed=0)
    assert res.statistic == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    res_s = map_correlation(x, y, mesh=coarse_sphere, n_permutations=99, seed=0,
                            method="spearman")
    assert res_s.statistic == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    # the null statistics are the correlations of the spun maps
    spun = spin_surrogates(x, coarse_sphere, 99, seed=0)
    expect = [stats.pearsonr(s, y)[0] for s in spun]
    np.testing.assert_allclose(res.null_distribution, expect, atol=1e-12)
    assert 1 / 100 <= res.p_value <= 1
    assert res.p_value == pytest.approx((1 + np.sum(np.abs(expect) >= abs(res.statistic)))
                                        / 100)
    # NaN locations drop pairwise
    x2 = x.copy()
    x2[:40] = np.nan
    res2 = map_correlation(x2, y, mesh=coarse_sphere, n_permutations=19, seed=0,
                           method="spearman")
    assert res2.statistic == pytest.approx(stats.spearmanr(x[40:], y[40:])[0], abs=1e-12)
    assert isinstance(res, SpatialNullResult) and res.to_frame().shape[0] == 1


def test_spin_null_is_calibrated_naive_test_is_not(coarse_sphere, rng):
    """Independent smooth maps: spin p-values reject at about the nominal rate, the
    textbook Pearson test (independent locations) far too often."""
    n_rep, rej_spin, rej_naive = 60, 0, 0
    for i in range(n_rep):
        x = sphere_field(coarse_sphere, rng, n_bumps=4, width=0.7)
        y = sphere_field(coarse_sphere, rng, n_bumps=4, width=0.7)
        res = map_correlation(x, y, mesh=coarse_sphere, n_permutations=49, seed=i)
        rej_spin += res.p_value <= 0.05
        rej_naive += stats.pearsonr(x, y)[1] <= 0.05
    assert rej_spin / n_rep <= 0.15
    assert rej_naive / n_rep >= 0.4


def test_spatial_null_test_moran(rng):
    w = grid_weights((7, 7), "queen", transform="b")
    x = rng.standard_normal(49)
    stat = lambda v: float(morans_i(v, w, transform="b").I)  # noqa: E731
    res = spatial_null_test(x, stat, null="moran", adjacency=w, n_permutations=30, seed=0)
    # singleton MSR keeps Moran's I (for symmetric weights): every null value ties
    np.testing.assert_allclose(res.null_distribution, res.statistic, atol=1e-10)
    assert res.p_value == 1.0
    # a statistic that MSR does not keep: the maximum
    res_max = spatial_null_test(x, np.max, null="moran", adjacency=w, n_permutations=99,
                                seed=0, alternative="greater")
    assert 0.01 <= res_max.p_value <= 1 and res_max.null_sd > 0
    again = spatial_null_test(x, np.max, null="moran", adjacency=w, n_permutations=99, seed=0,
                              alternative="greater")
    np.testing.assert_array_equal(again.null_distribution, res_max.null_distribution)


def test_spatial_null_test_errors(rng):
    x = rng.standard_normal(10)
    with pytest.raises(ValueError, match="needs mesh="):
        spatial_null_test(x, np.mean, null="spin")
    with pytest.raises(ValueError, match="needs adjacency="):
        spatial_null_test(x, np.mean, null="moran")
    with pytest.raises(TypeError, match="callable"):
        spatial_null_test(x, "mean", mesh=rng.standard_normal((10, 3)))
    with pytest.raises(ValueError, match="'alternative'"):
        spatial_null_test(x, np.mean, mesh=rng.standard_normal((10, 3)), alternative="up")
    with pytest.raises(ValueError, match="same length"):
        map_correlation(x, x[:5], mesh=rng.standard_normal((10, 3)))
    with pytest.raises(ValueError, match="restrict x, y and adjacency"):
        map_correlation(np.r_[np.nan, x[1:]], x, null="moran",
                        adjacency=grid_weights((2, 5), "rook"))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), a=st.floats(0.1, 10), b=st.floats(-5, 5))
def test_map_correlation_properties(seed, a, b):
    rng = np.random.default_rng(seed)
    xyz = rng.standard_normal((80, 3))
    x, y = rng.standard_normal(80), rng.standard_normal(80)
    r1 = map_correlation(x, y, mesh=xyz, n_permutations=19, seed=seed % 1000)
    r2 = map_correlation(a * x + b, y, mesh=xyz, n_permutations=19, seed=seed % 1000)
    assert 1 / 20 <= r1.p_value <= 1
    assert r1.statistic == pytest.approx(r2.statistic, abs=1e-9)
    np.testing.assert_allclose(r1.null_distribution, r2.null_distribution, atol=1e-9)


def test_spin_on_brain_map_mesh(fsavg5, rng):
    bm = BrainMap(sphere_field(fsavg5.sphere / 100, rng), "surface", mesh=fsavg5)
    res = map_correlation(bm.values, bm.values, mesh=bm.mesh, n_permutations=9, seed=0)
    assert res.statistic == pytest.approx(1.0) and res.p_value == pytest.approx(0.1)


def test_mesh_adjacency_used_by_msr_is_symmetric():
    a = mesh_adjacency([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]])
    sur = moran_surrogates(np.arange(6.0), a, 5, seed=0)
    assert sur.shape == (5, 6)


# ---------------------------------------------------------------------- variogram
def _variogram(x, pos, edges):
    """Plain binned semivariogram over all pairs (a brute-force reference)."""
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    iu = np.triu_indices(len(x), 1)
    d, v = d[iu], 0.5 * (x[:, None] - x[None])[iu] ** 2
    k = np.digitize(d, edges) - 1
    return np.array([v[k == i].mean() for i in range(len(edges) - 1)])


def test_variogram_surrogates_match_variogram(coarse_sphere, rng):
    x = sphere_field(coarse_sphere, rng, n_bumps=8, width=0.4)
    x[:10] = np.nan
    sur = variogram_surrogates(x, coarse_sphere, 20, knn=150, seed=0)
    assert sur.shape == (20, 642) and np.isnan(sur[:, :10]).all()
    ok = np.isfinite(x)
    # rank matching: each surrogate holds exactly the map's values
    np.testing.assert_array_equal(np.sort(sur[:, ok], axis=1),
                                  np.broadcast_to(np.sort(x[ok]), (20, ok.sum())))
    # the variogram at short lags is close to the map's; a permutation's is flat
    edges = np.linspace(0.05, 0.5, 6)
    target = _variogram(x[ok], coarse_sphere[ok], edges)
    vs = np.mean([_variogram(s[ok], coarse_sphere[ok], edges) for s in sur], axis=0)
    vp = _variogram(rng.permutation(x[ok]), coarse_sphere[ok], edges)
    assert np.abs(vs - target).sum() < 0.5 * np.abs(vp - target).sum()
    # autocorrelation kept, correspondence with the map lost
    w = restrict_adjacency(sp.csr_matrix(
        (np.linalg.norm(coarse_sphere[:, None] - coarse_sphere[None], axis=-1) < 0.2)
        & ~np.eye(642, dtype=bool)), ok).adjacency
    xi = float(morans_i(x[ok], w).I)
    si = np.asarray(morans_i(sur[:, ok], w).I)
    assert xi > 0.7 and si.mean() > 0.6 * xi
    r = np.array([np.corrcoef(x[ok], s[ok])[0, 1] for s in sur])
    assert abs(r.mean()) < 0.15
    again = variogram_surrogates(x, coarse_sphere, 20, knn=150, seed=0)
    np.testing.assert_array_equal(again, sur)


def test_variogram_null_is_calibrated(fsavg5, rng):
    """Independent smooth maps on the 162 icosahedron-2 vertices: the variogram null
    rejects at about the nominal rate, the textbook Pearson test far too often."""
    sphere = fsavg5.sphere[:162] / 100.0
    n_rep, rej, rej_naive = 40, 0, 0
    opts = {"deltas": (0.1, 0.3, 0.5, 0.7, 0.9), "percentile": 50}
    for i in range(n_rep):
        x = sphere_field(sphere, rng, n_bumps=4, width=0.7)
        y = sphere_field(sphere, rng, n_bumps=4, width=0.7)
        res = map_correlation(x, y, null="variogram", mesh=sphere, n_permutations=39,
                              seed=i, null_options=opts)
        rej += res.p_value <= 0.05
        rej_naive += stats.pearsonr(x, y)[1] <= 0.05
    assert rej / n_rep <= 0.2
    assert rej_naive / n_rep >= 0.4


def test_variogram_errors(rng):
    pos = rng.random((30, 3))
    with pytest.raises(ValueError, match="one entry per position"):
        variogram_surrogates(np.zeros(5), pos, 2)
    with pytest.raises(ValueError, match="at least 10 finite"):
        variogram_surrogates(np.r_[np.zeros(5), np.full(25, np.nan)], pos, 2)
    with pytest.raises(ValueError, match="deltas must be fractions"):
        variogram_surrogates(rng.random(30), pos, 2, deltas=(0.5, 1.5))
    with pytest.raises(ValueError, match="null='variogram' needs mesh="):
        map_correlation(rng.random(30), rng.random(30), null="variogram")
    with pytest.raises(TypeError, match="null_options are for null='variogram'"):
        map_correlation(rng.random(30), rng.random(30), mesh=pos, null_options={"knn": 5})


# ---------------------------------------------------------------------- the permutation core
def test_surrogates_identical_for_any_n_jobs_and_backend(rng):
    """Every surrogate block comes from its own seeded generator: the same numbers for
    n_jobs 1 and 2, a configured threading backend, and the prefix of a longer run."""
    import joblib

    xyz = rng.standard_normal((300, 3))
    x = sphere_field(xyz / np.linalg.norm(xyz, axis=1, keepdims=True), rng)
    w = grid_weights((6, 7), "queen", transform="b")
    m = rng.standard_normal(42)
    pos = rng.random((60, 2))
    v = rng.standard_normal(60)
    opts = {"deltas": (0.3, 0.6), "knn": 30, "n_samples": 60}
    makers = {
        "spin": lambda n, **kw: spin_permutations(xyz, n, seed=4, verbose=0, **kw),
        "moran": lambda n, **kw: moran_surrogates(m, w, n, seed=4, verbose=0, **kw),
        "moran_pair": lambda n, **kw: moran_surrogates(m, w, n, procedure="pair", seed=4,
                                                       verbose=0, **kw),
        "variogram": lambda n, **kw: variogram_surrogates(v, pos, n, seed=4, verbose=0,
                                                          **opts, **kw),
    }
    for name, make in makers.items():
        ref = make(130, n_jobs=1)
        np.testing.assert_array_equal(ref, make(130, n_jobs=2), err_msg=name)
        with joblib.parallel_config(backend="threading", n_jobs=2):
            np.testing.assert_array_equal(ref, make(130), err_msg=name)
        np.testing.assert_array_equal(ref[:70], make(70, n_jobs=1), err_msg=name)
    rot = random_rotations(130, seed=4)
    np.testing.assert_array_equal(rot[:5], random_rotations(5, seed=4))
    res1 = map_correlation(x, x, mesh=xyz, n_permutations=99, seed=2, n_jobs=1, verbose=0)
    res2 = map_correlation(x, x, mesh=xyz, n_permutations=99, seed=2, n_jobs=2, verbose=0)
    np.testing.assert_array_equal(res1.null_distribution, res2.null_distribution)
    assert res1.params["seed"] == 2 and res1.params["spawn_key"] == ()


def test_p_values_follow_the_core_rule(rng):
    """spatial_null_test and map_correlation p-values equal the core's rule applied to
    the returned null (two-sided: centred distance, or |r| for correlations)."""
    from topobrain._utils._permutation import permutation_pvalue

    w = grid_weights((7, 7), "queen", transform="b")
    x = rng.standard_normal(49)
    for alt in ("greater", "less", "two-sided"):
        res = spatial_null_test(x, np.max, null="moran", adjacency=w, n_permutations=60,
                                seed=1, alternative=alt, verbose=0)
        d = res.null_distribution
        if alt == "two-sided":
            mu = d.mean()
            ref = permutation_pvalue(abs(res.statistic - mu), np.abs(d - mu), "greater")
            brute = (1 + np.sum(np.abs(d - mu) >= abs(res.statistic - mu))) / (1 + d.size)
        else:
            ref = permutation_pvalue(res.statistic, d, alt)
            brute = (1 + np.sum(d >= res.statistic if alt == "greater"
                                else d <= res.statistic)) / (1 + d.size)
        assert res.p_value == pytest.approx(float(ref)) == pytest.approx(brute)
    y = rng.standard_normal(49)
    corr = map_correlation(x, y, null="moran", adjacency=w, n_permutations=60, seed=1,
                           verbose=0)
    d = corr.null_distribution
    assert corr.p_value == pytest.approx((1 + np.sum(np.abs(d) >= abs(corr.statistic)))
                                         / (1 + d.size))


def test_weights_is_a_deprecated_alias_of_adjacency(rng):
    w = grid_weights((5, 5), "rook", transform="b")
    x = rng.standard_normal(25)
    with pytest.warns(DeprecationWarning, match="use adjacency="):
        old = moran_surrogates(x, weights=w, n_surrogates=10, seed=0, verbose=0)
    np.testing.assert_array_equal(old, moran_surrogates(x, w, 10, seed=0, verbose=0))
    with pytest.warns(DeprecationWarning, match="use adjacency="):
        res = spatial_null_test(x, np.max, null="moran", weights=w, n_permutations=10,
                                seed=0, verbose=0)
    assert res.null_distribution.shape == (10,)
