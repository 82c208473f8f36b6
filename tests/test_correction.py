"""topobrain.correction against scipy and statsmodels; FDR calibration; properties; errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

from topobrain.correction import CorrectionResult, correct_pvalues, fdr_correction

RTOL = 1e-8
SM_NAMES = {"bh": "fdr_bh", "by": "fdr_by", "bonferroni": "bonferroni", "holm": "holm"}


def _pvalues(rng, n=500, n_signal=60):
    """A mixture: uniform nulls and small p-values from shifted z-scores (some ties)."""
    z = rng.normal(size=n)
    z[:n_signal] += 3.0
    p = st.norm.sf(z)
    p[n_signal:n_signal + 5] = p[n_signal]  # ties
    return rng.permutation(p)


@pytest.mark.parametrize("method", ["bh", "by", "bonferroni", "holm"])
@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_matches_statsmodels_multipletests(rng, method, alpha):
    mt = pytest.importorskip("statsmodels.stats.multitest")
    p = _pvalues(rng)
    res = correct_pvalues(p, method=method, alpha=alpha)
    reject, adjusted, _, _ = mt.multipletests(p, alpha=alpha, method=SM_NAMES[method])
    np.testing.assert_allclose(res.p_adjusted, adjusted, rtol=RTOL)
    np.testing.assert_array_equal(res.mask, reject)
    assert res.n_rejected == reject.sum()
    np.testing.assert_equal(res.threshold[0], p[reject].max() if reject.any() else np.nan)


@pytest.mark.parametrize("method", ["bh", "by"])
def test_matches_scipy_false_discovery_control(rng, method):
    p = _pvalues(rng, n=800)
    res = fdr_correction(p, method=method)
    np.testing.assert_allclose(res.p_adjusted, st.false_discovery_control(p, method=method),
                               rtol=RTOL)
    # statsmodels' names are accepted
    np.testing.assert_array_equal(fdr_correction(p, method=f"fdr_{method}").mask, res.mask)


def test_over_all_and_over_layer(rng):
    p2d = np.stack([_pvalues(rng, 200, 40), _pvalues(rng, 200, 5), rng.uniform(size=200)])
    as_dict = {"L0": p2d[0], "L1": p2d[1], "L2": p2d[2]}
    # all layers together == one flat family
    flat = correct_pvalues(p2d.ravel())
    both = correct_pvalues(p2d, over="all")
    dct = correct_pvalues(as_dict, over="all")
    np.testing.assert_allclose(both.p_adjusted, flat.p_adjusted.reshape(3, 200), rtol=1e-15)
    for i, k in enumerate(as_dict):
        np.testing.assert_allclose(dct.p_adjusted[k], both.p_adjusted[i], rtol=1e-15)
        np.testing.assert_array_equal(dct.mask[k], both.mask[i])
    assert both.groups == ("all",) and both.n_tests.tolist() == [600]
    assert dct.layers == ("L0", "L1", "L2")
    # each layer on its own
    per = correct_pvalues(p2d, over="layer")
    per_dict = correct_pvalues(as_dict, over="layer")
    for i, k in enumerate(as_dict):
        alone = correct_pvalues(p2d[i])
        np.testing.assert_allclose(per.p_adjusted[i], alone.p_adjusted, rtol=1e-15)
        np.testing.assert_allclose(per_dict.p_adjusted[k], alone.p_adjusted, rtol=1e-15)
        np.testing.assert_equal(per.threshold[i], alone.threshold[0])
    assert per.groups == (0, 1, 2) and per_dict.groups == ("L0", "L1", "L2")
    assert per.n_tests.tolist() == [200, 200, 200]
    # the two families differ on this data (layer 2 is pure noise, layer 0 rich in signal)
    assert per.n_rejected != both.n_rejected


def test_nan_is_excluded_and_counted(rng):
    p = _pvalues(rng, 300)
    holes = p.copy()
    holes[[3, 50, 299]] = np.nan
    before = holes.copy()
    for method in ["bh", "by", "bonferroni", "holm"]:
        res = correct_pvalues(holes, method=method)
        keep = ~np.isnan(holes)
        alone = correct_pvalues(holes[keep], method=method)
        np.testing.assert_allclose(res.p_adjusted[keep], alone.p_adjusted, rtol=1e-15)
        assert np.isnan(res.p_adjusted[~keep]).all() and not res.mask[~keep].any()
        assert res.n_excluded == 3 and res.n_tests.tolist() == [297]
    np.testing.assert_array_equal(holes, before)  # the caller's array is untouched
    res = correct_pvalues({"a": holes[:100], "b": holes[100:]}, over="layer")
    assert res.n_excluded == 3 and res.n_tests.tolist() == [98, 199]
    assert "n_excluded=3" in repr(res)


def test_mask_at_and_to_frame(rng):
    p = _pvalues(rng, 100)
    res = correct_pvalues(p, alpha=0.05)
    assert isinstance(res, CorrectionResult)
    np.testing.assert_array_equal(res.mask_at(0.05), res.mask)
    np.testing.assert_array_equal(res.mask_at(0.2), correct_pvalues(p, alpha=0.2).mask)
    frame = res.to_frame()
    assert list(frame.columns) == ["method", "unit", "p", "p_adjusted", "significant"]
    assert frame["significant"].sum() == res.n_rejected
    d = correct_pvalues({"a": p[:40], "b": p[40:]}, method="holm")
    df = d.to_frame()
    assert list(df["layer"].unique()) == ["a", "b"] and len(df) == 100
    assert set(d.mask_at(0.5)) == {"a", "b"}
    two = correct_pvalues(p.reshape(4, 25)).to_frame()
    assert two.loc[26, "layer"] == 1 and two.loc[26, "unit"] == 1
    with pytest.raises(Exception, match="cannot assign"):
        res.alpha = 0.1


# ----------------------------------------------------------------------- calibration


def test_bh_controls_fdr_and_holm_controls_fwer():
    rng = np.random.default_rng(11)
    n_sim, m, m1, alpha = 400, 200, 40, 0.1
    z = rng.normal(size=(n_sim, m))
    z[:, :m1] += 3.0
    p = st.norm.sf(z)
    fdp, fwer_holm, fwer_bh_null = [], [], []
    for s in range(n_sim):
        bh = fdr_correction(p[s], alpha=alpha).mask
        fdp.append(bh[m1:].sum() / max(bh.sum(), 1))
        fwer_holm.append(correct_pvalues(p[s], method="holm", alpha=alpha).mask[m1:].any())
        fwer_bh_null.append(fdr_correction(rng.uniform(size=m), alpha=alpha).mask.any())
    # BH: FDR = alpha * m0 / m = 0.08 under independence (sd of the mean about 0.004)
    assert abs(np.mean(fdp) - alpha * (m - m1) / m) < 0.015
    assert np.mean(fwer_holm) <= alpha + 0.03
    # under the global null BH's FWER equals alpha
    assert abs(np.mean(fwer_bh_null) - alpha) < 0.04


# ----------------------------------------------------------------------- properties

p_arrays = hnp.arrays(np.float64, hs.integers(1, 60),
                      elements=hs.floats(0.0, 1.0, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(p=p_arrays, seed=hs.integers(0, 2**32 - 1))
def test_adjusted_properties(p, seed):
    perm = np.random.default_rng(seed).permutation(p.size)
    masks = {}
    for method in ["bh", "by", "bonferroni", "holm"]:
        res = correct_pvalues(p, method=method, alpha=0.05)
        adj = res.p_adjusted
        assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adj[order]) >= -1e-15)  # monotone in p
        shuffled = correct_pvalues(p[perm], method=method, alpha=0.05)
        np.testing.assert_allclose(shuffled.p_adjusted, adj[perm], rtol=1e-12)
        masks[method] = res.mask
    # nested rejections: Bonferroni <= Holm <= BH and BY <= BH
    assert not (masks["bonferroni"] & ~masks["holm"]).any()
    assert not (masks["holm"] & ~masks["bh"]).any()
    assert not (masks["by"] & ~masks["bh"]).any()


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("p, kwargs, exc, match", [
    ([0.1, 1.2, -0.1], {}, ValueError, r"\[0, 1\].*2 value\(s\) outside, first 1.2"),
    ([0.1, np.inf], {}, ValueError, r"outside, first inf at index \(1,\)"),
    ({"a": [0.1], "b": [2.0]}, {}, ValueError, r"p\['b'\] holds 1 value"),
    ([], {}, ValueError, "holds no p-value"),
    ({}, {}, ValueError, "empty dict"),
    (["a", "b"], {}, TypeError, "p-values must be numbers"),
    ([0.1], {"method": "bhh"}, ValueError, "'method'.*Did you mean 'bh'"),
    ([0.1], {"over": "layers"}, ValueError, "'over'.*Did you mean 'layer'"),
    ([0.1], {"alpha": 1.5}, ValueError, "strictly between 0 and 1"),
    ([0.1], {"alpha": 0}, ValueError, "strictly between 0 and 1"),
    ([0.1], {"alpha": "0.05"}, TypeError, "alpha must be a number"),
])
def test_errors(p, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        correct_pvalues(p, **kwargs)


def test_fdr_correction_rejects_fwer_methods():
    with pytest.raises(ValueError, match="'method'.*'bh', 'by'"):
        fdr_correction([0.1, 0.2], method="holm")
    res = correct_pvalues([0.01, 0.02], method="holm")
    with pytest.raises(ValueError, match="strictly between"):
        res.mask_at(1.0)
