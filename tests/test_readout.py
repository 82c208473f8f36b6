"""Tests for the fMRI-like readout (topobrain.readout).

References: a direct float64 double loop over cells written here (normalised Gaussian
convolution, NaN-aware) and scipy.ndimage.gaussian_filter on full maps away from edges.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.ndimage import gaussian_filter

from topobrain.activations import Activations
from topobrain.readout import (
    check_fwhm,
    fwhm_to_sigma,
    max_fwhm,
    smooth,
    smooth_maps,
    smooth_units,
)
from topobrain.sheet import CorticalSheet


def direct_reference(m: np.ndarray, fwhm: float, truncate: float = 4.0) -> np.ndarray:
    """For each finite cell: sum_j w_ij x_j / sum_j w_ij over finite cells j within the
    truncation square, w_ij = exp(-d_ij^2 / (2 sigma^2)). NaN elsewhere."""
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    radius = int(truncate * sigma + 0.5)
    n_rows, n_cols = m.shape
    out = np.full(m.shape, np.nan)
    for r in range(n_rows):
        for c in range(n_cols):
            if np.isnan(m[r, c]):
                continue
            num = den = 0.0
            for rr in range(max(0, r - radius), min(n_rows, r + radius + 1)):
                for cc in range(max(0, c - radius), min(n_cols, c + radius + 1)):
                    if np.isnan(m[rr, cc]):
                        continue
                    w = math.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * sigma**2))
                    num += w * m[rr, cc]
                    den += w
            out[r, c] = num / den
    return out


def random_maps(rng, n, shape, p_nan=0.2):
    maps = rng.normal(size=(n, *shape))
    maps[rng.random(maps.shape) < p_nan] = np.nan
    return maps


# --------------------------------------------------------------------------- reference
@pytest.mark.parametrize("fwhm", [0.5, 1.0, 2.0, 3.7])
@pytest.mark.parametrize("truncate", [4.0, 2.0])
def test_matches_direct_float64_reference_with_holes(rng, fwhm, truncate):
    maps = random_maps(rng, 3, (7, 9))
    got = smooth_maps(maps, fwhm, truncate=truncate)
    assert got.shape == maps.shape and got.dtype == np.float64
    for k in range(3):
        ref = direct_reference(maps[k], fwhm, truncate)
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(maps[k]))
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-14)


def test_per_item_holes_differ(rng):
    """Each item's own NaN pattern is used (not the first item's)."""
    maps = random_maps(rng, 4, (6, 6), p_nan=0.3)
    got = smooth_maps(maps, 2.0)
    for k in range(4):
        np.testing.assert_allclose(got[k], direct_reference(maps[k], 2.0), rtol=1e-12)


@pytest.mark.parametrize("fwhm", [1.0, 2.0, 3.0])
def test_matches_scipy_gaussian_filter_away_from_edges(rng, fwhm):
    m = rng.normal(size=(24, 26))
    sigma = fwhm_to_sigma(fwhm)
    radius = int(4.0 * sigma + 0.5)
    ref = gaussian_filter(m, sigma, truncate=4.0)
    got = smooth_maps(m, fwhm)
    inner = (slice(radius, m.shape[0] - radius), slice(radius, m.shape[1] - radius))
    np.testing.assert_allclose(got[inner], ref[inner], rtol=1e-12, atol=1e-13)
    # near the edges the normalised convolution differs from scipy's reflection
    assert not np.allclose(got[0], ref[0], rtol=1e-6)


def test_fwhm_is_the_full_width_at_half_maximum():
    """A single bright cell spreads into the Gaussian itself: half the peak at fwhm / 2."""
    m = np.zeros((31, 31))
    m[15, 15] = 1.0
    for fwhm in (2.0, 4.0, 6.0):
        out = smooth_maps(m, fwhm)
        half = int(fwhm / 2)
        assert out[15, 15 + half] / out[15, 15] == pytest.approx(0.5, rel=1e-12)
        assert out[15 - half, 15] / out[15, 15] == pytest.approx(0.5, rel=1e-12)
    assert fwhm_to_sigma(2.0) == pytest.approx(2.0 / 2.354820045030949, rel=1e-12)


# --------------------------------------------------------------------------- properties
finite_maps = arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 6),
                                           st.integers(2, 6)),
                     elements=st.floats(-1e3, 1e3, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(maps=finite_maps, fwhm=st.floats(0.1, 5.0), a=st.floats(-5, 5), b=st.floats(-5, 5),
       holes=st.integers(0, 2**32 - 1))
def test_affine_equivariance_constants_and_nan_positions(maps, fwhm, a, b, holes):
    fwhm = min(fwhm, max_fwhm(maps.shape[-2:]))  # wider is refused (tested below)
    rng = np.random.default_rng(holes)
    maps = maps.copy()
    maps[rng.random(maps.shape) < 0.25] = np.nan
    before = maps.copy()
    out = smooth_maps(maps, fwhm)
    np.testing.assert_array_equal(maps, before)  # the input is never modified
    np.testing.assert_array_equal(np.isnan(out), np.isnan(maps))
    scale = 1 + np.nanmax(np.abs(maps), initial=0.0)
    np.testing.assert_allclose(smooth_maps(a * maps + b, fwhm), a * out + b,
                               atol=1e-9 * scale * (1 + abs(a)) + 1e-9 * abs(b))
    # a smoothed value is a weighted mean: inside the range of the map's values
    finite = ~np.isnan(out)
    if finite.any():
        lo, hi = np.nanmin(maps), np.nanmax(maps)
        assert np.all(out[finite] >= lo - 1e-9 * scale) and np.all(out[finite] <= hi + 1e-9 * scale)
    const = np.where(np.isnan(maps), np.nan, 3.25)
    np.testing.assert_allclose(smooth_maps(const, fwhm)[finite], 3.25, rtol=1e-13)


def test_fwhm_zero_is_the_identity(rng):
    maps = random_maps(rng, 2, (4, 5))
    out = smooth_maps(maps, 0)
    np.testing.assert_array_equal(out, maps)
    assert out is not maps


# --------------------------------------------------------------------------- sheets
def test_empty_cells_stay_nan_and_do_not_pull_neighbours(rng):
    # 10 units on a 4 x 4 grid: 6 cells hold no unit
    cells = rng.choice(16, size=10, replace=False)
    sheet = CorticalSheet((4, 4), layout=np.stack(np.divmod(cells, 4), axis=1))
    values = rng.normal(size=(5, 10)) + 10.0  # far from zero: a zero-filled hole would show
    out = smooth_units(values, sheet, 2.0)
    assert out.shape == (5, 10)
    maps = sheet.to_map(values)
    for k in range(5):
        ref_map = direct_reference(maps[k], 2.0)
        np.testing.assert_allclose(out[k], sheet.from_map(ref_map), rtol=1e-12)
        assert np.all(np.isnan(sheet.to_map(out[k])[~sheet.occupied]))
    # every value is a weighted mean of real values, never diluted by an empty cell
    assert out.min() >= values.min() - 1e-12 and out.max() <= values.max() + 1e-12


def test_units_sharing_a_cell_are_averaged_then_share_the_smoothed_value(rng):
    pos = np.array([[0, 0], [0, 0], [0, 1], [1, 0], [1, 1], [1, 1], [2, 2]])
    sheet = CorticalSheet((3, 3), layout=pos)
    values = rng.normal(size=(4, 7))
    out = smooth_units(values, sheet, 2.0)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    np.testing.assert_array_equal(out[:, 4], out[:, 5])
    avg = sheet.to_map(values)
    np.testing.assert_allclose(avg[:, 0, 0], values[:, :2].mean(1), rtol=1e-14)
    for k in range(4):
        np.testing.assert_allclose(out[k], sheet.from_map(direct_reference(avg[k], 2.0)),
                                   rtol=1e-12)


def test_a_nan_unit_stays_nan_and_is_left_out(rng):
    sheet = CorticalSheet((5, 5))
    values = rng.normal(size=(2, 25))
    values[0, 7] = np.nan
    out = smooth_units(values, sheet, 2.0)
    assert np.isnan(out[0, 7]) and not np.isnan(out[1, 7])
    assert np.isfinite(np.delete(out[0], 7)).all()
    np.testing.assert_allclose(out[0], sheet.from_map(direct_reference(sheet.to_map(values[0]),
                                                                        2.0)), rtol=1e-12)


# --------------------------------------------------------------------------- Activations
def _acts(rng, n_items=6):
    sheets = {"l0": CorticalSheet((5, 6), layout="permuted", seed=3, name="l0"),
              "l1": CorticalSheet((4, 4), layout=np.stack(np.divmod(np.arange(12), 4), axis=1),
                                  name="l1")}
    data = {"l0": rng.normal(size=(n_items, 30)), "l1": rng.normal(size=(n_items, 12))}
    return Activations.from_arrays(data, sheets, item_ids=[f"x{k}" for k in range(n_items)],
                                   labels=["S", "N"] * (n_items // 2),
                                   params={"model": "m"}), data


def test_smooth_activations_layer_by_layer(rng):
    acts, data = _acts(rng)
    out = smooth(acts, fwhm=2.0)
    assert isinstance(out, Activations)
    assert out.layers == acts.layers
    assert list(out.item_ids) == list(acts.item_ids)
    assert list(out.labels) == list(acts.labels)
    assert out.params["smoothing_fwhm"] == 2.0 and out.params["model"] == "m"
    for layer in acts.layers:
        assert out.sheets[layer] is acts.sheets[layer]
        sheet = acts.sheets[layer]
        maps = sheet.to_map(data[layer])
        ref = np.stack([sheet.from_map(direct_reference(m, 2.0)) for m in maps])
        np.testing.assert_allclose(out[layer], ref, rtol=1e-12)
        # the input activations are unchanged
        np.testing.assert_array_equal(acts[layer], data[layer])
    assert smooth(acts, fwhm=0) is acts
    assert "smoothing_fwhm=2.0" in repr(out)


def test_constant_units_pass_through(rng):
    """Nothing is standardised or dropped: a unit constant across items stays finite and
    in place; when every unit is constant across items, so is the smoothed map."""
    acts, data = _acts(rng)
    data = {k: v.copy() for k, v in data.items()}
    data["l0"][:, 4] = 1.5
    with_const = acts.replace(data)
    out = smooth(with_const, 2.0)
    assert np.isfinite(out["l0"]).all() and out["l0"].shape == (6, 30)
    flat = acts.replace({k: np.tile(rng.normal(size=(1, v.shape[1])), (6, 1))
                         for k, v in data.items()})
    out = smooth(flat, 2.0)
    for layer in out.layers:
        np.testing.assert_allclose(out[layer], np.broadcast_to(out[layer][:1], out[layer].shape),
                                   rtol=0, atol=0)
        assert np.ptp(out[layer], axis=0).max() == 0.0


def test_smoothing_twice_warns(rng):
    acts, _ = _acts(rng)
    once = smooth(acts, 2.0)
    with pytest.warns(UserWarning, match="already smoothed .*FWHM 2.0.* about 2.83 units"):
        twice = smooth(once, 2.0)
    assert twice.params["smoothing_fwhm"] == pytest.approx(math.sqrt(8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth(acts, 1.0)


# --------------------------------------------------------------------------- errors
def test_bad_input(rng):
    acts, data = _acts(rng)
    with pytest.raises(ValueError, match="fwhm must be a finite number >= 0"):
        smooth(acts, fwhm=-1.0)
    with pytest.raises(ValueError, match="fwhm must be a finite number >= 0"):
        smooth_maps(np.zeros((3, 3)), fwhm=float("inf"))
    with pytest.raises(TypeError, match="fwhm must be a number"):
        smooth(acts, fwhm="2")
    with pytest.raises(ValueError, match="truncate must be a positive"):
        smooth_maps(np.zeros((3, 3)), truncate=0)
    with pytest.raises(TypeError, match="acts must be Activations"):
        smooth(data["l0"], 2.0)
    with pytest.raises(ValueError, match=r"maps must have shape \(..., n_rows, n_cols\)"):
        smooth_maps(np.zeros(5), 2.0)
    bad = np.zeros((3, 3))
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="maps holds 1 non-finite values"):
        smooth_maps(bad, 2.0)
    with pytest.raises(TypeError, match="sheet must be a CorticalSheet"):
        smooth_units(np.zeros(4), (2, 2), 2.0)
    with pytest.raises(ValueError, match="one entry per sheet unit"):
        smooth_units(np.zeros(5), CorticalSheet((2, 2)), 2.0)


# --------------------------------------------------------------------------- the FWHM bound
def test_the_fwhm_is_bounded_by_the_sheet_diagonal(rng):
    assert max_fwhm((28, 28)) == pytest.approx(39.5979797, rel=1e-7)
    assert max_fwhm(CorticalSheet((3, 4))) == 5.0
    sheets = {"big": CorticalSheet((6, 8), name="big"), "small": CorticalSheet((3, 4),
                                                                               name="small")}
    assert check_fwhm(5, sheets) == 5.0 and check_fwhm(0, sheets) == 0.0
    msg = (r"fwhm must be between 0 and 5 sheet units \(the diagonal of the 3 x 4 grid of "
           r"layer 'small'\); got 1e\+09, which would smooth every map into one value")
    with pytest.raises(ValueError, match=msg):
        check_fwhm(1e9, sheets)
    with pytest.raises(ValueError, match="between 0 and 5 sheet units"):
        check_fwhm(5.01, CorticalSheet((3, 4)))
    acts, _ = _acts(rng)
    limit = min(max_fwhm(s) for s in acts.sheets.values())
    for call in (lambda f: smooth(acts, f),
                 lambda f: smooth_maps(rng.normal(size=(2, *acts.sheets["l0"].shape)), f),
                 lambda f: smooth_units(acts["l0"], acts.sheets["l0"], f)):
        with pytest.raises(ValueError, match=r"fwhm must be between 0 and [\d.]+ sheet units"):
            call(1e9)
    smooth(acts, limit)  # the bound itself is allowed
    # why: at the bound a map keeps its structure, far beyond it only rounding is left
    m = rng.normal(size=(6, 8))
    at_bound = smooth_maps(m, max_fwhm(m.shape))
    assert np.std(at_bound) > 1e-2 * np.std(m)
    beyond = direct_reference(m, 1e9)
    assert np.std(beyond) <= 1e-12 * max(abs(np.mean(beyond)), 1e-300) + 1e-15



def test_localize_refuses_a_huge_fwhm_before_any_forward_pass(tmp_path):
    """Library level (the CLI flag is a thin shell over it): nothing runs, nothing is
    written."""
    pipeline = pytest.importorskip("topobrain.pipeline")

    class NoForward:
        name = "stand-in"
        identity = "stand-in-identity"
        context_length = 32
        vocab_size = 100
        bos_token_id = None
        pad_token_id = 0
        sheets = {"layer.0.mlp": CorticalSheet((4, 4), name="layer.0.mlp")}
        layer_names = list(sheets)
        calls = 0

        def tokenize(self, texts):
            type(self).calls += 1
            return [[1, 2] for _ in texts]

        def activations(self, input_ids, mask=None, layers=None):  # pragma: no cover
            type(self).calls += 1
            raise AssertionError("a forward pass ran")

    with pytest.raises(ValueError, match=r"fwhm must be between 0 and 5\.657 sheet units"):
        pipeline.localize(NoForward(), "langloc", "S - N", out=tmp_path / "run",
                          smooth_fwhm=1e9, n_permutations=0, verbose=0)
    assert NoForward.calls == 0
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
