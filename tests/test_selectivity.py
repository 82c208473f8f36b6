"""Selectivity: F against scipy and statsmodels, join counts against esda, categorical
topography recovered when planted and not on a shuffled sheet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import ndimage
from scipy import stats as sps

from topobrain.selectivity import (
    category_joins,
    category_patches,
    category_permutation_test,
    condition_profile,
    join_counts,
    selectivity,
    unit_adjacency,
)
from topobrain.sheet import CorticalSheet, grid_weights


def _data(rng, n_per=(12, 9, 15), n_units=30):
    labels = np.repeat(["a", "b", "c"], n_per)
    scale = rng.uniform(0.5, 2, n_units)
    y = rng.normal(size=(labels.size, n_units)) * scale
    y[labels == "b", :5] += 3.0 * scale[:5]
    return y, labels


def test_f_and_p_equal_scipy_f_oneway(rng):
    y, labels = _data(rng)
    res = selectivity({"L0": y, "L1": y[:, ::-1] * 3 + 1}, labels)
    ref = sps.f_oneway(*[y[labels == c] for c in ("a", "b", "c")], axis=0)
    np.testing.assert_allclose(res.f["L0"], ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(res.p["L0"], ref.pvalue, rtol=1e-10)
    np.testing.assert_allclose(res.f["L1"], ref.statistic[::-1], rtol=1e-10)
    assert (res.df_between, res.df_within) == (2, labels.size - 3)


def test_f_equals_statsmodels_anova(rng):
    smf = pytest.importorskip("statsmodels.formula.api", reason="statsmodels is the reference")
    from statsmodels.stats.anova import anova_lm

    y, labels = _data(rng, n_units=4)
    res = selectivity(y, labels)
    for u in range(4):
        df = pd.DataFrame({"y": y[:, u], "g": labels})
        table = anova_lm(smf.ols("y ~ C(g)", df).fit())
        np.testing.assert_allclose(res.f["layer"][u], table.loc["C(g)", "F"], rtol=1e-10)
        np.testing.assert_allclose(res.p["layer"][u], table.loc["C(g)", "PR(>F)"], rtol=1e-10)
        ss = table["sum_sq"]
        np.testing.assert_allclose(res.eta_squared["layer"][u], ss["C(g)"] / ss.sum(),
                                   rtol=1e-10)


def test_preferred_margin_and_indices(rng):
    y, labels = _data(rng)
    res = selectivity(y, labels)
    means = np.stack([y[labels == c].mean(0) for c in res.conditions])
    np.testing.assert_array_equal(res.preferred["layer"], means.argmax(0))
    srt = np.sort(means, 0)
    np.testing.assert_allclose(res.margin["layer"], srt[-1] - srt[-2], rtol=1e-12)
    for k, c in enumerate(res.conditions):
        ref = sps.ttest_ind(y[labels == c], y[labels != c], equal_var=False)
        np.testing.assert_allclose(res.t_vs_rest["layer"][k], ref.statistic, rtol=1e-10)
        a, b = y[labels == c], y[labels != c]
        d = (a.mean(0) - b.mean(0)) / np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / 2)
        np.testing.assert_allclose(res.dprime["layer"][k], d, rtol=1e-10)
    # the planted units prefer b and are significant after FDR
    assert (res.preferred["layer"][:5] == res.conditions.index("b")).all()
    assert res.significant("layer")[:5].all()
    df = res.to_frame()
    assert {"layer", "unit", "preferred", "margin", "f", "p", "p_fdr", "t_vs_rest_b",
            "dprime_c"} <= set(df.columns)
    assert "3 layers" not in repr(res) and "SelectivityResult" in repr(res)


def test_constant_unit_gives_nan_and_is_never_significant(rng):
    y, labels = _data(rng)
    y[:, 3] = 2.0
    res = selectivity(y, labels)
    assert np.isnan(res.f["layer"][3]) and np.isnan(res.p["layer"][3])
    assert not res.significant("layer")[3]


@pytest.mark.parametrize("labels, msg", [
    (["a"] * 10, "at least two conditions"),
    (["a"] * 9 + ["b"], r"\['b'\] have fewer than 2 items"),
    (["a", "b"] * 4, r"one condition per item \(10\)"),
])
def test_bad_labels(rng, labels, msg):
    with pytest.raises(ValueError, match=msg):
        selectivity(rng.normal(size=(10, 3)), labels)


def test_nonfinite_and_shape_errors(rng):
    y = rng.normal(size=(10, 3))
    y[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite responses in 1 units"):
        selectivity(y, ["a", "b"] * 5)
    with pytest.raises(ValueError, match=r"\(n_items, n_units\)"):
        selectivity(np.zeros((2, 3, 4)), ["a", "b"])


def test_condition_profile(rng):
    y, labels = _data(rng)
    prof = condition_profile(y, labels, units=np.arange(5))
    assert list(prof["condition"]) == ["a", "b", "c"]
    b = prof.set_index("condition").loc["b"]
    assert b["mean"] > prof.set_index("condition").loc["a", "mean"]
    assert b["ci_low"] < b["mean"] < b["ci_high"]
    with pytest.raises(ValueError, match="No units selected"):
        condition_profile(y, labels, units=np.zeros(30, bool))


# -- join counts -------------------------------------------------------------------------
def test_join_counts_equal_esda(rng):
    esda = pytest.importorskip("esda", reason="esda is the reference for join counts")
    libpysal = pytest.importorskip("libpysal")
    for rook in (True, False):
        y = (rng.random(7 * 9) < 0.4).astype(int)
        w = libpysal.weights.lat2W(7, 9, rook=rook)
        ref = esda.Join_Counts(y, w, permutations=0)
        ours = join_counts(y, grid_weights((7, 9), "rook" if rook else "queen", transform="b"))
        assert (ours.bb, ours.ww, ours.bw, ours.J) == (ref.bb, ref.ww, ref.bw, ref.J)


def test_join_counts_rejects_non_binary():
    with pytest.raises(ValueError, match="binary map"):
        join_counts(np.array([0, 2]), grid_weights((1, 2), "rook", transform="b"))


def test_category_joins_equal_direct_count(rng):
    cat = rng.integers(-1, 4, size=(6, 8))
    w = grid_weights((6, 8), "queen", transform="b")
    same, expected = category_joins(cat.ravel(), w)
    direct = 0
    for r in range(6):
        for c in range(8):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                r2, c2 = r + dr, c + dc
                if 0 <= r2 < 6 and 0 <= c2 < 8 and cat[r, c] >= 0 and cat[r, c] == cat[r2, c2]:
                    direct += 1
    assert same == direct
    valid = cat[cat >= 0]
    n = valid.size
    counts = np.bincount(valid)
    # all joins between non-blank cells
    j_total = sum(1 for r in range(6) for c in range(8) for dr, dc in
                  ((0, 1), (1, 0), (1, 1), (1, -1))
                  if 0 <= r + dr < 6 and 0 <= c + dc < 8 and cat[r, c] >= 0
                  and cat[r + dr, c + dc] >= 0)
    assert expected == pytest.approx(j_total * (counts * (counts - 1)).sum() / (n * (n - 1)))


def _planted(rng, shuffle=False, n_items=60, shape=(10, 10)):
    """Three conditions, each preferred by one vertical stripe of the sheet."""
    labels = np.repeat(["x", "y", "z"], n_items // 3)
    sheet = CorticalSheet(shape)
    stripe = np.repeat(np.arange(3), int(np.ceil(shape[1] / 3)))[: shape[1]]
    pref = np.tile(stripe, (shape[0], 1)).ravel()
    noise = ndimage.gaussian_filter(rng.normal(size=(n_items, *shape)), (0, 1.5, 1.5))
    y = noise.reshape(n_items, -1) * 3
    for k in range(3):
        y[labels == "xyz"[k]] += 0.8 * (pref == k)
    if shuffle:
        y = y[:, rng.permutation(y.shape[1])]
    return y, labels, sheet


def test_planted_patches_recovered_and_shuffled_sheet_not(rng):
    y, labels, sheet = _planted(rng)
    w = unit_adjacency(sheet, "rook")
    res = category_permutation_test(y, labels, w, n_permutations=199, seed=1, verbose=0)
    # the label null keeps the units' smooth correlations: the true p here is ~0.004
    # (3,000 permutations), so 199 permutations give p = (1 + Binomial(199, 0.004)) / 200
    assert res.p[0] < 0.05 and res.observed[0] > 0.5
    sel = selectivity(y, labels)
    patches = category_patches(sheet.to_map(sel.preferred["layer"]), sel.conditions)
    assert set(patches["category"][:3]) == {"x", "y", "z"}
    assert (patches["size"][:3] >= 15).all()  # stripes of 4, 4 and 2 columns
    y2, labels2, _ = _planted(rng, shuffle=True)
    res2 = category_permutation_test(y2, labels2, w, n_permutations=199, seed=1)
    assert res2.p[0] > 0.05


def test_category_null_equals_public_functions_on_the_core_permutations(rng):
    """Each null value is selectivity()'s preferred map under the permuted labels, scored
    by category_joins (itself checked against a direct count above)."""
    from topobrain._utils import _permutation as core

    y, labels, sheet = _planted(rng, n_items=30, shape=(6, 6))
    w = unit_adjacency(sheet)
    res = category_permutation_test(y, labels, w, n_permutations=70, seed=3, verbose=0)
    perms = core.label_permutations(core.as_seed_sequence(3), 70, labels)
    for i in (None, 0, 33, 64, 69):
        lab = labels if i is None else labels[perms.indices[i]]
        pref = selectivity(y, lab).preferred["layer"]
        same, expected = category_joins(pref, w)
        got = res.observed[0] if i is None else res.null[i, 0]
        assert got == pytest.approx(same / expected - 1.0, rel=1e-12)
    assert res.to_frame().shape == (1, 6)
    assert res.params["seed"] == 3 and res.params["adjacency"].startswith("custom sparse")


def test_category_null_independent_of_block_size_and_n_jobs(rng):
    y, labels, sheet = _planted(rng, n_items=30, shape=(6, 6))
    w = unit_adjacency(sheet)
    kw = {"seed": 3, "verbose": 0}
    ref = category_permutation_test(y, labels, w, n_permutations=150, n_jobs=1, **kw)
    for block_size in (50, 100, 7):
        with pytest.warns(DeprecationWarning, match="block_size is deprecated"):
            other = category_permutation_test(y, labels, w, n_permutations=150,
                                              block_size=block_size, **kw)
        np.testing.assert_array_equal(ref.null, other.null)
    np.testing.assert_array_equal(
        ref.null, category_permutation_test(y, labels, w, n_permutations=150, n_jobs=2,
                                            **kw).null)
    # the first 50 permutations of 150 are those of a run with 50
    short = category_permutation_test(y, labels, w, n_permutations=50, **kw)
    np.testing.assert_array_equal(ref.null[:50], short.null)


def test_category_exact_when_few_arrangements(rng):
    y = rng.normal(size=(6, 9))
    labels = np.array(["a", "a", "b", "b", "c", "c"])  # 90 arrangements
    w = grid_weights((3, 3), "queen", transform="b")
    res = category_permutation_test(y, labels, w, n_permutations=500, seed=0, verbose=0)
    assert res.params["exact"] and res.null.shape == (90, 1)
    assert res.null[0, 0] == pytest.approx(res.observed[0], rel=1e-12)  # identity first
    assert res.p[0] == pytest.approx((res.null[:, 0] >= res.observed[0] - 1e-9).mean())


def test_selectivity_adjacency_aliases(rng):
    y, labels, sheet = _planted(rng, n_items=30, shape=(6, 6))
    with pytest.warns(DeprecationWarning, match="use adjacency="):
        old = unit_adjacency(sheet, kind="rook")
    assert (old != unit_adjacency(sheet, adjacency="rook")).nnz == 0
    assert (unit_adjacency(sheet) != unit_adjacency(sheet, "queen")).nnz == 0
    w = unit_adjacency(sheet)
    with pytest.warns(DeprecationWarning, match="use adjacency="):
        a = category_permutation_test(y, labels, weights=w, n_permutations=20, seed=0,
                                      verbose=0)
    b = category_permutation_test(y, labels, w, n_permutations=20, seed=0, verbose=0)
    np.testing.assert_array_equal(a.null, b.null)
    cat = np.array([[0, 0, 1], [1, 1, 0]])
    with pytest.warns(DeprecationWarning, match="use adjacency="):
        rook = category_patches(cat, connectivity="rook")
    assert len(rook) == len(category_patches(cat, adjacency="rook")) == 4
    assert len(category_patches(cat)) == 2  # queen: the diagonal joins
    with pytest.warns(DeprecationWarning):
        jc = join_counts(np.array([0, 1, 1]), weights=grid_weights((1, 3), "rook",
                                                                   transform="b"))
    assert (jc.bb, jc.bw, jc.J) == (1, 1, 2)
    with pytest.raises(ValueError, match="covers 4 locations"):
        category_permutation_test(y, labels, sp.eye(4), n_permutations=5)


def test_unit_adjacency_joins_shared_cells():
    sheet = CorticalSheet((2, 2), layout=np.array([[0, 0], [0, 0], [1, 1]]))
    adj = unit_adjacency(sheet, "rook").toarray()
    np.testing.assert_array_equal(adj, [[0, 1, 0], [1, 0, 0], [0, 0, 0]])


def test_category_test_without_permutations_reports_no_p(rng):
    y, labels, sheet = _planted(rng, n_items=30, shape=(6, 6))
    res = category_permutation_test(y, labels, unit_adjacency(sheet), n_permutations=0)
    assert np.isfinite(res.observed).all() and np.isnan(res.p).all()
    assert res.to_frame()["null_mean"].isna().all()
