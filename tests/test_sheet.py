"""CorticalSheet: layouts, maps, distances, weights (against libpysal), errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from topobrain.sheet import CorticalSheet, grid_weights, toponets_shape, transform_weights

libpysal = pytest.importorskip("libpysal", reason="libpysal is the reference for grid weights")


# -- layouts ----------------------------------------------------------------------------
def test_identity_layout_is_row_major():
    sheet = CorticalSheet((3, 4))
    assert sheet.n_units == 12
    np.testing.assert_array_equal(sheet.positions[5], [1, 1])
    np.testing.assert_array_equal(sheet.cell_index, np.arange(12))


def test_permuted_layout_is_seeded_and_a_permutation():
    a = CorticalSheet((8, 8), layout="permuted", seed=3)
    b = CorticalSheet((8, 8), layout="permuted", seed=3)
    c = CorticalSheet((8, 8), layout="permuted", seed=4)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.array_equal(a.positions, c.positions)
    assert sorted(a.cell_index) == list(range(64))
    assert a.n_shared == 0


def test_given_positions_and_shared_cells_average():
    pos = np.array([[0, 0], [0, 0], [1, 1]])
    sheet = CorticalSheet((2, 2), layout=pos)
    assert sheet.n_shared == 1
    m = sheet.to_map(np.array([1.0, 3.0, 5.0]))
    assert m[0, 0] == 2.0 and m[1, 1] == 5.0
    assert np.isnan(m[0, 1]) and np.isnan(m[1, 0])
    np.testing.assert_array_equal(sheet.occupied, [[True, False], [False, True]])


def test_positions_from_csv(tmp_path):
    path = tmp_path / "pos.csv"
    path.write_text("layer,unit,x,y\nL,0,2,0\nL,1,0,1\nM,0,0,0\n")
    sheet = CorticalSheet.from_csv(path, "L", shape=(2, 3))
    np.testing.assert_array_equal(sheet.positions, [[0, 2], [1, 0]])
    with pytest.raises(ValueError, match="no positions for layer 'Z'.*'L', 'M'"):
        CorticalSheet.from_csv(path, "Z")
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,unit,col,row\nL,0,1,1\n")
    with pytest.raises(ValueError, match="missing"):
        CorticalSheet.from_csv(bad, "L")


def test_sheet_is_immutable():
    sheet = CorticalSheet((2, 2))
    with pytest.raises(AttributeError):  # frozen dataclass
        sheet.shape = (4, 1)
    with pytest.raises(ValueError):
        sheet.positions[0, 0] = 1


# -- errors ---------------------------------------------------------------------------
def test_unit_count_must_match_cells():
    with pytest.raises(ValueError, match=r"n_units is 100.*toponets_shape\(100\) = \(10, 10\)"):
        CorticalSheet((8, 8), n_units=100)


def test_positions_off_grid():
    with pytest.raises(ValueError, match=r"1 unit positions lie off the 2 x 2 grid.*unit 1"):
        CorticalSheet((2, 2), layout=np.array([[0, 0], [2, 0]]))


def test_positions_must_be_integer_pairs():
    with pytest.raises(ValueError, match=r"shape \(n_units, 2\)"):
        CorticalSheet((2, 2), layout=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="integer grid coordinates"):
        CorticalSheet((2, 2), layout=np.array([[0.5, 0.0]]))


def test_bad_layout_name_and_shape():
    with pytest.raises(ValueError, match="Allowed values are 'identity', 'permuted'"):
        CorticalSheet((2, 2), layout="random")
    with pytest.raises(ValueError, match="positive"):
        CorticalSheet((0, 2))


def test_to_map_wrong_length_hints_from_map():
    sheet = CorticalSheet((4, 4))
    with pytest.raises(ValueError, match=r"one entry per sheet unit \(16\).*sheet.from_map"):
        sheet.to_map(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"end with the sheet's shape \(4, 4\)"):
        sheet.from_map(np.zeros((3, 4)))


# -- round trips (property tests) -------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 9), seed=st.integers(0, 2**16),
       lead=st.integers(1, 3))
def test_map_round_trip(rows, cols, seed, lead):
    sheet = CorticalSheet((rows, cols), layout="permuted", seed=seed)
    values = np.random.default_rng(seed).normal(size=(lead, rows * cols))
    maps = sheet.to_map(values)
    assert maps.shape == (lead, rows, cols)
    np.testing.assert_array_equal(sheet.from_map(maps), values)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 8), cols=st.integers(1, 8),
       kind=st.sampled_from(["rook", "queen", "distance_band", "kernel"]))
def test_binary_weights_symmetric(rows, cols, kind):
    w = grid_weights((rows, cols), kind, transform="b")
    assert (abs(w - w.T) > 1e-15).nnz == 0
    assert w.diagonal().sum() == 0


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(2, 8), cols=st.integers(2, 8))
def test_row_standardised_rows_sum_to_one(rows, cols):
    w = grid_weights((rows, cols), "queen")
    np.testing.assert_allclose(np.asarray(w.sum(1)).ravel(), 1.0)


# -- reference: libpysal ----------------------------------------------------------------
@pytest.mark.parametrize("rook", [True, False])
def test_grid_weights_equal_libpysal_lat2w(rng, rook):
    for _ in range(5):
        rows, cols = (int(x) for x in rng.integers(2, 15, size=2))
        ref = libpysal.weights.lat2W(rows, cols, rook=rook)
        ref.transform = "r"
        ours = grid_weights((rows, cols), "rook" if rook else "queen", transform="r")
        np.testing.assert_allclose(ours.toarray(), ref.sparse.toarray(), rtol=0, atol=1e-15)
        ref.transform = "b"
        ours_b = grid_weights((rows, cols), "rook" if rook else "queen", transform="b")
        np.testing.assert_array_equal(ours_b.toarray(), ref.sparse.toarray())


def test_masked_weights_drop_cells_before_standardising():
    mask = np.ones((3, 3), dtype=bool)
    mask[1, 1] = False
    w = grid_weights((3, 3), "rook", mask=mask)
    assert w.shape == (8, 8)
    # the corner cell (0, 0) keeps 2 rook neighbours; the edge cell (0, 1) loses the centre
    np.testing.assert_allclose(w[0].toarray().ravel()[[1, 3]], [0.5, 0.5])
    np.testing.assert_allclose(w[1].toarray().ravel()[[0, 2]], [0.5, 0.5])


def test_sheet_weights_restricted_to_occupied_cells():
    sheet = CorticalSheet((3, 3), layout=np.array([[0, 0], [0, 1], [2, 2]]))
    w = sheet.weights("rook", transform="b")
    assert w.shape == (3, 3)
    np.testing.assert_array_equal(w.toarray(), [[0, 1, 0], [1, 0, 0], [0, 0, 0]])


def test_distance_band_and_kernel_values():
    w = grid_weights((5, 5), "distance_band", threshold=1.0, transform="b")
    rook = grid_weights((5, 5), "rook", transform="b")
    np.testing.assert_array_equal(w.toarray(), rook.toarray())
    k = grid_weights((5, 5), "kernel", bandwidth=1.0, transform="b")
    assert k[12, 13] == pytest.approx(np.exp(-0.5))
    assert k[12, 18] == pytest.approx(np.exp(-1.0))
    assert k[12, 12] == 0


def test_default_adjacency_is_queen_and_the_old_kind_name_warns():
    libpysal_queen = libpysal.weights.lat2W(4, 5, rook=False)
    libpysal_queen.transform = "r"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        default = grid_weights((4, 5))
        sheet_default = CorticalSheet((4, 5)).weights()
    np.testing.assert_allclose(default.toarray(), libpysal_queen.sparse.toarray(), atol=1e-15)
    np.testing.assert_array_equal(sheet_default.toarray(), default.toarray())
    for adjacency in ("rook", "queen", "distance_band", "kernel"):
        new = grid_weights((4, 5), adjacency=adjacency, transform="b")
        with pytest.warns(DeprecationWarning, match="'kind' parameter is deprecated.*use "
                                                   "adjacency="):
            old = grid_weights((4, 5), kind=adjacency, transform="b")
        np.testing.assert_array_equal(old.toarray(), new.toarray())
        with pytest.warns(DeprecationWarning, match="'kind' parameter"):
            old_sheet = CorticalSheet((4, 5)).weights(kind=adjacency)
        np.testing.assert_array_equal(old_sheet.toarray(),
                                      CorticalSheet((4, 5)).weights(adjacency).toarray())
    with pytest.raises(ValueError, match="'adjacency' parameter.*Did you mean 'queen'"):
        grid_weights((3, 3), "quen")


def test_transform_weights_keeps_caller_matrix():
    w = sp.csr_matrix(np.array([[0, 2.0], [2.0, 0]]))
    transform_weights(w, "r")
    assert w[0, 1] == 2.0


# -- geometry ---------------------------------------------------------------------------
def test_distances_and_units_within():
    sheet = CorticalSheet((4, 4))
    d = sheet.distances("euclidean")
    assert d[0, 5] == pytest.approx(np.sqrt(2))
    assert sheet.distances("linf")[0, 15] == 3
    np.testing.assert_array_equal(sheet.units_within((0, 0), 1), [0, 1, 4, 5])
    np.testing.assert_array_equal(sheet.units_within((0, 0), 1, metric="euclidean"), [0, 1, 4])


@pytest.mark.parametrize("n, shape", [(784, (28, 28)), (256, (16, 16)), (3072, (48, 64)),
                                      (13, (1, 13)), (12, (3, 4))])
def test_toponets_shape(n, shape):
    assert toponets_shape(n) == shape


def test_toponets_shape_rejects_zero():
    with pytest.raises(ValueError, match="positive"):
        toponets_shape(0)
