"""topobrain.glm against statsmodels, nilearn and scipy; calibration; properties; errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

from topobrain.glm import (
    ContrastResult,
    GLMResult,
    RankDeficiencyError,
    design_matrix,
    fit_glm,
    p_to_z,
    welch_t,
)

RTOL = 1e-8


def _stimuli(rng, n_per=(14, 12, 10), conditions=("S", "N", "J")):
    labels = np.repeat(conditions, n_per)
    rng.shuffle(labels)
    n = labels.size
    return pd.DataFrame({
        "item_id": [f"it{i:03d}" for i in range(n)],
        "condition": labels,
        "n_words": rng.integers(5, 15, n).astype(float),
        "log_freq": rng.normal(3.0, 1.0, n),
        "run": rng.integers(1, 4, n),
    })


def _activations(rng, n_items, n_units=25):
    y = rng.normal(2.0, 1.5, (n_items, n_units)) * rng.uniform(0.5, 3.0, n_units)
    return y


class _StimulusSetLike:
    def __init__(self, frame):
        self._frame = frame

    def to_frame(self):
        return self._frame.copy()


# ----------------------------------------------------------------------------- design


def test_design_matrix_one_hot_covariates_nuisance(rng):
    stim = _stimuli(rng)
    d = design_matrix(stim, covariates=["n_words", "log_freq"], nuisance="run")
    run_levels = list(pd.unique(stim["run"]))
    expected = (["S", "N", "J"] if stim["condition"].iloc[0] == "S" else
                list(pd.unique(stim["condition"])))
    assert list(d.columns[:3]) == expected
    assert list(d.columns[3:5]) == ["n_words", "log_freq"]
    assert list(d.columns[5:]) == [f"run[{lv}]" for lv in run_levels[1:]]
    assert d.index.name == "item_id" and d.index[0] == "it000"
    # one-hot conditions
    for c in ["S", "N", "J"]:
        np.testing.assert_array_equal(d[c].to_numpy(), (stim["condition"] == c).to_numpy())
    # centred covariates and nuisance
    np.testing.assert_allclose(d["n_words"], stim["n_words"] - stim["n_words"].mean())
    assert abs(d[f"run[{run_levels[1]}]"].sum()) < 1e-12
    assert d.attrs["conditions"] == expected
    assert d.attrs["covariates"] == ["n_words", "log_freq"]
    # the same design from a StimulusSet-like object and from labels + a covariate dict
    d2 = design_matrix(_StimulusSetLike(stim), covariates=["n_words", "log_freq"],
                       nuisance="run")
    pd.testing.assert_frame_equal(d, d2)
    d3 = design_matrix(list(stim["condition"]), covariates={"n_words": stim["n_words"]},
                       center_covariates=False)
    np.testing.assert_array_equal(d3["n_words"], stim["n_words"])
    assert d3.index.name == "item"


def test_design_matrix_categorical_order():
    cond = pd.Categorical(["N", "S", "N", "S"], categories=["S", "N", "unused"])
    d = design_matrix(pd.DataFrame({"condition": cond}))
    assert list(d.columns) == ["S", "N"]


def test_design_matrix_rank_deficiency_names_columns():
    # the run is nested in the condition: run[2] == N (up to the intercept)
    stim = pd.DataFrame({"condition": ["S", "S", "S", "N", "N", "N"],
                         "run": [1, 1, 1, 2, 2, 2]})
    with pytest.raises(RankDeficiencyError, match=r"'run\[2\]' = combination of \['S', 'N'\]"
                       ) as info:
        design_matrix(stim, nuisance="run")
    assert info.value.columns == ["run[2]"]
    # a covariate equal to a condition indicator
    with pytest.raises(ValueError, match=r"rank deficient.*'dup'"):
        design_matrix(stim, covariates={"dup": [1, 1, 1, 0, 0, 0]}, center_covariates=False)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(stimuli=pd.DataFrame({"cond": ["a", "b"]})), ValueError,
     "must have a 'condition' column.*Did you mean 'cond'"),
    (dict(stimuli=42), TypeError, "a sequence of condition labels; got int"),
    (dict(stimuli="SSNN"), TypeError, "sequence of condition labels; got str"),
    (dict(stimuli=[["S", "N"], ["S", "N"]]), ValueError, "one-dimensional"),
    (dict(stimuli=["S", None, "N"]), ValueError, "without a condition label"),
    (dict(stimuli=[]), ValueError, "holds no items"),
    (dict(stimuli=["S", "N"], covariates="n_words"), TypeError, "need stimuli with columns"),
    (dict(stimuli=pd.DataFrame({"condition": ["S", "N", "S"], "n_words": [1, 2, 3]}),
          covariates="n_word"), ValueError, "not a column.*Did you mean 'n_words'"),
    (dict(stimuli=pd.DataFrame({"condition": ["S", "N", "S"], "kind": ["a", "b", "c"]}),
          covariates="kind"), TypeError, "must be numeric.*nuisance='kind'"),
    (dict(stimuli=["S", "N", "S"], covariates={"x": [1.0, np.nan, 2.0]}), ValueError,
     r"NaN or infinite.*items \[1\]"),
    (dict(stimuli=["S", "N", "S"], covariates={"x": [1.0, 2.0]}), ValueError,
     r"one value per item \(3\)"),
    (dict(stimuli=["S", "N", "S"], covariates={"S": [1.0, 2.0, 4.0]}), ValueError,
     "Two design columns are named 'S'"),
    (dict(stimuli=["S", "N", "S"], covariates=3.0), TypeError, "covariate must be None"),
    (dict(stimuli=["S", "N", "S", "N"], nuisance={"run": [1, None, 2, 2]}), ValueError,
     "missing values"),
])
def test_design_matrix_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        design_matrix(**kwargs)


def test_to_frame_must_return_dataframe():
    class Bad:
        def to_frame(self):
            return [1, 2]

    with pytest.raises(TypeError, match="to_frame\\(\\) must return a pandas DataFrame"):
        design_matrix(Bad())


# ------------------------------------------------------------------ OLS vs statsmodels


def test_fit_glm_matches_statsmodels_ols(rng):
    sm = pytest.importorskip("statsmodels.api")
    stim = _stimuli(rng)
    design = design_matrix(stim, covariates=["n_words", "log_freq"], nuisance="run")
    y = _activations(rng, len(stim), 20)
    y_before = y.copy()
    res = fit_glm(y, design)
    assert isinstance(res, GLMResult)
    np.testing.assert_array_equal(y, y_before)
    x = design.to_numpy()
    c_t = design.columns.get_indexer(["S", "N"])
    vec = np.zeros(x.shape[1])
    vec[c_t] = [1.0, -1.0]
    fmat = np.zeros((2, x.shape[1]))
    fmat[0, c_t] = [1, -1]
    fmat[1, design.columns.get_loc("J")] = 1
    fmat[1, design.columns.get_loc("N")] = -1
    con_t = res.contrast("S - N")
    con_g = res.contrast("S - N", alternative="greater")
    con_l = res.contrast("S - N", alternative="less")
    con_f = res.contrast(["S - N", "J - N"])
    con_cov = res.contrast("n_words")
    assert con_t.stat == "t" and con_f.stat == "F" and con_f.t is None
    for j in range(y.shape[1]):
        fit = sm.OLS(y[:, j], x).fit()
        np.testing.assert_allclose(res.betas[:, j], fit.params, rtol=RTOL)
        np.testing.assert_allclose(res.sigma2[j], fit.scale, rtol=RTOL)
        assert res.df_resid == fit.df_resid
        tt = fit.t_test(vec)
        np.testing.assert_allclose(con_t.effect[j], tt.effect[0], rtol=RTOL)
        np.testing.assert_allclose(con_t.se[j], tt.sd[0, 0], rtol=RTOL)
        np.testing.assert_allclose(con_t.t[j], tt.tvalue[0, 0], rtol=RTOL)
        np.testing.assert_allclose(con_t.p[j], tt.pvalue, rtol=RTOL)
        one_sided = st.t.sf(tt.tvalue[0, 0], fit.df_resid)
        np.testing.assert_allclose(con_g.p[j], one_sided, rtol=RTOL)
        np.testing.assert_allclose(con_l.p[j], 1 - one_sided, rtol=RTOL)
        np.testing.assert_allclose(con_t.cohen_d[j], tt.effect[0] / np.sqrt(fit.scale),
                                   rtol=RTOL)
        # regressor t-values: the covariate's own t and p
        k = design.columns.get_loc("n_words")
        np.testing.assert_allclose(con_cov.t[j], fit.tvalues[k], rtol=RTOL)
        np.testing.assert_allclose(con_cov.p[j], fit.pvalues[k], rtol=RTOL)
        ft = fit.f_test(fmat)
        np.testing.assert_allclose(con_f.f[j], np.squeeze(ft.fvalue), rtol=RTOL)
        np.testing.assert_allclose(con_f.p[j], ft.pvalue, rtol=RTOL)
        assert con_f.df_num == ft.df_num and con_f.df == ft.df_denom
    # z: same tail probability as t
    np.testing.assert_allclose(con_t.z, st.norm.isf(st.t.sf(con_t.t, res.df_resid)),
                               rtol=RTOL)
    np.testing.assert_allclose(con_f.z, st.norm.isf(con_f.p), rtol=RTOL)


def test_contrast_vector_and_string_agree(rng):
    labels = np.repeat(["a", "b", "c"], 8)
    y = rng.normal(size=(24, 6))
    res = fit_glm(y, design_matrix(labels))
    by_str = res.contrast("0.5*a + 0.5*b - c")
    by_vec = res.contrast([0.5, 0.5, -1.0])
    by_dict = res.contrast({"a": 0.5, "b": 0.5, "c": -1})
    np.testing.assert_allclose(by_str.t, by_vec.t, rtol=1e-12)
    np.testing.assert_allclose(by_str.t, by_dict.t, rtol=1e-12)
    # a one-row matrix is a t contrast
    assert res.contrast(np.array([[1.0, -1.0, 0.0]])).stat == "t"
    # a rank-deficient F matrix uses its rank
    f = res.contrast([[1, -1, 0], [0, 1, -1], [1, 0, -1]])
    assert f.df_num == 2
    f2 = res.contrast([[1, -1, 0], [0, 1, -1]])
    np.testing.assert_allclose(f.f, f2.f, rtol=1e-10)


# -------------------------------------------------------------------- OLS vs nilearn


def test_fit_glm_matches_nilearn_run_glm(rng):
    pytest.importorskip("nilearn")
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.first_level import run_glm

    stim = _stimuli(rng)
    design = design_matrix(stim, covariates=["n_words"], nuisance="run")
    x = design.to_numpy()
    y = _activations(rng, len(stim), 60)
    labels, results = run_glm(y, x, noise_model="ols")
    ours = fit_glm(y, design)
    vec = ours.contrast("S - J").weights
    nl = compute_contrast(labels, results, vec, stat_type="t")
    ct = ours.contrast(vec, alternative="greater")
    np.testing.assert_allclose(ct.effect, nl.effect_size().ravel(), rtol=RTOL)
    np.testing.assert_allclose(ct.se ** 2, nl.effect_variance(), rtol=RTOL)
    np.testing.assert_allclose(ct.t, nl.stat(), rtol=RTOL)
    np.testing.assert_allclose(ct.p, nl.p_value(), rtol=RTOL)  # nilearn: upper tail
    np.testing.assert_allclose(ct.z, nl.z_score(), rtol=RTOL)
    fmat = np.vstack([ours.contrast("S - N").weights, ours.contrast("J - N").weights])
    nf = compute_contrast(labels, results, fmat, stat_type="F")
    cf = ours.contrast(fmat)
    np.testing.assert_allclose(cf.f, nf.stat(), rtol=RTOL)
    np.testing.assert_allclose(cf.p, nf.p_value(), rtol=RTOL)


# ------------------------------------------------------------------ Welch vs scipy


@pytest.mark.parametrize("equal_var", [False, True])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_t_matches_scipy_ttest_ind(rng, equal_var, alternative):
    labels = np.array(["S"] * 17 + ["N"] * 23 + ["X"] * 5)
    rng.shuffle(labels)
    y = _activations(rng, labels.size, 40)
    y[labels == "S"] *= 1.7  # unequal variances
    y[labels == "S", :10] += 1.0
    res = welch_t(y, labels, "S - N", equal_var=equal_var, alternative=alternative)
    ref = st.ttest_ind(y[labels == "S"], y[labels == "N"], axis=0, equal_var=equal_var,
                       alternative=alternative)
    np.testing.assert_allclose(res.t, ref.statistic, rtol=RTOL)
    np.testing.assert_allclose(res.p, ref.pvalue, rtol=RTOL)
    np.testing.assert_allclose(res.df, ref.df, rtol=RTOL)
    diff = y[labels == "S"].mean(0) - y[labels == "N"].mean(0)
    np.testing.assert_allclose(res.effect, diff, rtol=RTOL)
    np.testing.assert_allclose(res.se, diff / ref.statistic, rtol=RTOL)
    a, b = y[labels == "S"], y[labels == "N"]
    pooled = np.sqrt(((len(a) - 1) * a.var(0, ddof=1) + (len(b) - 1) * b.var(0, ddof=1))
                     / (len(a) + len(b) - 2))
    np.testing.assert_allclose(res.cohen_d, res.effect / pooled, rtol=RTOL)
    assert res.params["method"] == ("student" if equal_var else "welch")
    assert res.params["n_positive"] == 17 and res.params["n_negative"] == 23


def test_welch_t_pools_sides(rng):
    labels = np.repeat(["J", "W", "N", "other"], [9, 11, 12, 4])
    y = rng.normal(size=(labels.size, 15))
    res = welch_t(y, labels, "0.5*J + 0.5*W - N")
    pos = np.isin(labels, ["J", "W"])
    ref = st.ttest_ind(y[pos], y[labels == "N"], axis=0, equal_var=False)
    np.testing.assert_allclose(res.t, ref.statistic, rtol=RTOL)
    np.testing.assert_allclose(res.p, ref.pvalue, rtol=RTOL)
    assert res.params["positive"] == ["J", "W"]
    # conditions from stimuli (a DataFrame or a StimulusSet-like object) give the same test
    stim = pd.DataFrame({"condition": labels})
    np.testing.assert_array_equal(welch_t(y, stim, "0.5*J + 0.5*W - N").t, res.t)
    np.testing.assert_array_equal(
        welch_t(y, _StimulusSetLike(stim), "0.5*J + 0.5*W - N").t, res.t)
    with pytest.warns(UserWarning, match="unequal weights are ignored"):
        welch_t(y, labels, "2*J + W - N")


def test_welch_t_and_glm_agree_for_two_groups(rng):
    """Student's t equals the OLS contrast when the design holds only the two groups."""
    labels = np.repeat(["S", "N"], [13, 19])
    y = rng.normal(size=(32, 12))
    a = welch_t(y, labels, "S - N", equal_var=True)
    b = fit_glm(y, design_matrix(labels)).contrast("S - N")
    np.testing.assert_allclose(a.t, b.t, rtol=1e-10)
    np.testing.assert_allclose(a.p, b.p, rtol=1e-9)
    np.testing.assert_allclose(a.cohen_d, b.cohen_d, rtol=1e-10)


@pytest.mark.parametrize("contrast, match", [
    ("S", "no negative condition.*fit_glm"),
    ("-N", "no positive condition"),
    ("S - Q", "unknown condition.*"),
])
def test_welch_t_contrast_errors(rng, contrast, match):
    labels = np.repeat(["S", "N"], 5)
    with pytest.raises(ValueError, match=match):
        welch_t(rng.normal(size=(10, 3)), labels, contrast)


def test_welch_t_input_errors(rng):
    y = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="conditions has 9 labels but Y has 10 items"):
        welch_t(y, ["S", "N"] * 4 + ["S"], "S - N")
    with pytest.raises(ValueError, match=r"at least 2 items; got 1 positive"):
        welch_t(y, ["S"] + ["N"] * 9, "S - N")
    with pytest.raises(ValueError, match="Invalid value for the 'alternative'"):
        welch_t(y, ["S", "N"] * 5, "S - N", alternative="two_sided")
    with pytest.raises(TypeError, match="equal_var must be True or False"):
        welch_t(y, ["S", "N"] * 5, "S - N", equal_var="yes")


# ------------------------------------------------------------------ degenerate units


def test_constant_units_are_nan_warned_and_counted(rng):
    from topobrain.correction import fdr_correction

    labels = np.repeat(["S", "N"], 10)
    y = rng.normal(size=(20, 8))
    y[:, 2] = 3.7
    y[:, 5] = 0.0
    with pytest.warns(UserWarning, match="fit_glm: 2 of 8 units have no variance"):
        res = fit_glm(y, design_matrix(labels))
    con = res.contrast("S - N")
    assert con.n_degenerate == 2
    assert np.isnan(con.t[[2, 5]]).all() and np.isnan(con.p[[2, 5]]).all()
    assert np.isnan(con.z[[2, 5]]).all() and np.isfinite(np.delete(con.t, [2, 5])).all()
    assert np.isnan(con.cohen_d[[2, 5]]).all() and con.degenerate[[2, 5]].all()
    np.testing.assert_allclose(con.effect[[2, 5]], 0.0, atol=1e-12)
    f = res.contrast([[1, 0], [0, 1]])
    assert np.isnan(f.f[[2, 5]]).all() and np.isnan(f.p[[2, 5]]).all()
    corr = fdr_correction(con.p)
    assert corr.n_excluded == 2 and corr.n_tests.tolist() == [6]
    with pytest.warns(UserWarning, match="welch_t: 2 of 8 units"):
        w = welch_t(y, labels, "S - N")
    assert np.isnan(w.t[[2, 5]]).all() and np.isnan(w.p[[2, 5]]).all()
    assert w.n_degenerate == 2 and w.degenerate[[2, 5]].all()
    # a unit constant within each group (but not overall) has no within-group variance
    y2 = rng.normal(size=(20, 3))
    y2[:, 1] = np.where(labels == "S", 1.0, 2.0)
    with pytest.warns(UserWarning, match="1 of 3 units"):
        w2 = welch_t(y2, labels, "S - N")
    assert np.isnan(w2.t[1]) and np.isfinite(w2.t[[0, 2]]).all()


def test_constant_unit_without_intercept_in_design(rng):
    y = rng.normal(size=(15, 4))
    y[:, 0] = 2.0
    x = rng.normal(size=(15, 2))
    with pytest.warns(UserWarning, match="1 of 4 units"):
        res = fit_glm(y, x)
    assert np.isnan(res.contrast([1, 0]).t[0])


def test_nonfinite_activations_name_layers_and_units(rng):
    labels = np.repeat(["S", "N"], 6)
    layers = {"block0.attn": rng.normal(size=(12, 7)), "block0.mlp": rng.normal(size=(12, 7))}
    layers["block0.mlp"][3, 4] = np.nan
    layers["block0.mlp"][5, 6] = np.inf
    layers["block0.attn"][0, 2] = -np.inf
    pattern = (r"3 NaN or infinite value\(s\) in 3 unit\(s\): layer 'block0.attn': unit\(s\) "
               r"\[2\]; layer 'block0.mlp': unit\(s\) \[4, 6\]")
    with pytest.raises(ValueError, match=pattern):
        fit_glm(layers, design_matrix(labels))
    with pytest.raises(ValueError, match=pattern):
        welch_t(layers, labels, "S - N")
    y = rng.normal(size=(12, 5))
    y[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"1 unit\(s\): unit 3\. Remove"):
        fit_glm(y, design_matrix(labels))


# ------------------------------------------------------------------ shapes and layers


def test_layers_dict_array_and_xarray_agree(rng):
    xr = pytest.importorskip("xarray")
    labels = np.repeat(["S", "N"], [9, 8])
    a = rng.normal(size=(17, 3, 10))
    d = {"L0": a[:, 0], "L1": a[:, 1], "L2": a[:, 2]}
    from_dict = fit_glm(d, design_matrix(labels)).contrast("S - N")
    from_arr = fit_glm(a, design_matrix(labels)).contrast("S - N")
    da = xr.DataArray(a.transpose(1, 2, 0), dims=("layer", "unit", "item"),
                      coords={"layer": ["L0", "L1", "L2"]})
    from_xr = fit_glm(da, design_matrix(labels)).contrast("S - N")
    assert from_dict.t.shape == (3, 10) and from_dict.layers == ("L0", "L1", "L2")
    assert from_arr.layers is None and from_xr.layers == ("L0", "L1", "L2")
    np.testing.assert_allclose(from_dict.t, from_arr.t, rtol=1e-12)
    np.testing.assert_allclose(from_xr.t, from_arr.t, rtol=1e-12)
    single = fit_glm(a[:, 1], design_matrix(labels)).contrast("S - N")
    np.testing.assert_allclose(from_dict.t[1], single.t, rtol=1e-12)
    w = welch_t(d, labels, "S - N")
    assert w.t.shape == (3, 10) and w.df.shape == (3, 10)
    frame = w.to_frame()
    assert len(frame) == 30 and list(frame["layer"].unique()) == ["L0", "L1", "L2"]
    assert frame.loc[13, "unit"] == 3 and frame.loc[13, "layer"] == "L1"
    np.testing.assert_allclose(frame["t"], w.t.ravel())


def test_float32_and_blocks(rng, monkeypatch):
    """Blocks of units give the same numbers as one block; float32 input is upcast."""
    import topobrain.glm as glm

    labels = np.repeat(["S", "N"], 20)
    y = rng.normal(size=(40, 300)).astype(np.float32)
    whole = fit_glm(y, design_matrix(labels)).contrast("S - N")
    monkeypatch.setattr(glm, "_BLOCK_BYTES", 8 * 40 * 64)  # blocks of 64 units
    blocked = fit_glm(y, design_matrix(labels)).contrast("S - N")
    wt = welch_t(y, labels, "S - N")
    np.testing.assert_allclose(whole.t, blocked.t, rtol=1e-12)
    ref = st.ttest_ind(y[:20].astype(float), y[20:].astype(float), equal_var=False)
    np.testing.assert_allclose(wt.t, ref.statistic, rtol=RTOL)


def test_result_frames_and_repr(rng):
    labels = np.repeat(["S", "N"], 8)
    res = fit_glm(rng.normal(size=(16, 5)), labels)  # labels build the design
    assert res.columns == ("S", "N") and res.conditions == ("S", "N")
    gf = res.to_frame()
    assert list(gf.columns) == ["unit", "beta_S", "beta_N", "sigma2", "df", "degenerate"]
    con = res.contrast("S - N")
    assert isinstance(con, ContrastResult)
    cf = con.to_frame()
    assert list(cf.columns) == ["contrast", "unit", "t", "p", "z", "effect", "se", "cohen_d",
                                "df", "degenerate"]
    assert (cf["contrast"] == "S - N").all() and len(cf) == 5
    ff = res.contrast(["S", "N"]).to_frame()
    assert {"f", "effect_0", "se_1", "df_num"} <= set(ff.columns)
    assert "GLMResult(units=(5,)" in repr(res)
    assert repr(con).startswith("ContrastResult('S - N', t, units=(5,)")
    with pytest.raises(Exception, match="cannot assign"):
        con.t = None


# ---------------------------------------------------------------------- fit errors


def test_fit_glm_errors(rng):
    labels = np.repeat(["S", "N"], 5)
    d = design_matrix(labels)
    y = rng.normal(size=(10, 4))
    with pytest.raises(ValueError, match="design has 10 rows but Y has 4 items"):
        fit_glm(y.T, d)
    with pytest.raises(ValueError, match=r"shape \(n_items, n_units\).*got shape \(10,\)"):
        fit_glm(y[:, 0], d)
    with pytest.raises(TypeError, match="must hold numbers"):
        fit_glm(np.array([["a"] * 4] * 10), d)
    with pytest.raises(TypeError, match="columns must be numeric"):
        fit_glm(y, pd.DataFrame({"a": ["x"] * 10}))
    with pytest.raises(ValueError, match="no residual degrees of freedom"):
        fit_glm(y, rng.normal(size=(10, 10)))
    with pytest.raises(RankDeficiencyError, match="'x2' = combination of \\['x0', 'x1'\\]"):
        x = rng.normal(size=(10, 2))
        fit_glm(y, np.column_stack([x, x.sum(1)]))
    with pytest.raises(ValueError, match="same shape"):
        fit_glm({"a": y, "b": y[:, :2]}, d)
    with pytest.raises(ValueError, match="empty dict"):
        fit_glm({}, d)
    res = fit_glm(y, d)
    with pytest.raises(ValueError, match="unknown condition.*Did you mean 'N'"):
        res.contrast("S - Nn")
    with pytest.raises(ValueError, match=r"one weight per design column \(2"):
        res.contrast([1, -1, 0])
    with pytest.raises(ValueError, match="all zeros"):
        res.contrast([[1, -1], [0, 0]])
    with pytest.raises(ValueError, match="F contrast.*has no direction"):
        res.contrast(["S", "N"], alternative="greater")
    with pytest.raises(ValueError, match="Invalid value for the 'alternative'.*'less'"):
        res.contrast("S - N", alternative="lesser")
    with pytest.raises(TypeError, match="contrast must be a string"):
        res.contrast(object())


# ---------------------------------------------------------------------- calibration


def test_null_p_values_are_uniform_and_planted_effects_found():
    rng = np.random.default_rng(7)
    labels = np.repeat(["S", "N", "X"], [12, 10, 8])
    y = rng.standard_normal((30, 4000))
    cov = {"w": rng.normal(size=30)}
    res = fit_glm(y, design_matrix(labels, covariates=cov)).contrast("S - N")
    w = welch_t(y, labels, "S - N")
    for p in (res.p, w.p):
        assert st.kstest(p, "uniform").pvalue > 0.01
        assert abs(np.mean(p < 0.05) - 0.05) < 0.015
    # F over three conditions: uniform too
    f = fit_glm(y, design_matrix(labels)).contrast(["S - N", "X - N"])
    assert f.df_num == 2 and st.kstest(f.p, "uniform").pvalue > 0.01
    # one-sided: also uniform under the null
    assert st.kstest(fit_glm(y, design_matrix(labels)).contrast(
        "S - N", alternative="greater").p, "uniform").pvalue > 0.01
    # planted effect on 200 units
    y2 = y.copy()
    y2[labels == "S", :200] += 2.5
    hit = welch_t(y2, labels, "S - N").p[:200] < 1e-3
    assert hit.mean() > 0.85


# ----------------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(scale=hs.floats(0.01, 100.0), shift=hs.floats(-1e3, 1e3), flip=hs.booleans(),
       seed=hs.integers(0, 2**32 - 1))
def test_t_is_affine_invariant_and_order_invariant(scale, shift, flip, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(["S", "N"], [7, 9])
    y = rng.normal(size=(16, 4))
    a = -scale if flip else scale
    base = fit_glm(y, design_matrix(labels)).contrast("S - N")
    moved = fit_glm(a * y + shift, design_matrix(labels)).contrast("S - N")
    np.testing.assert_allclose(moved.t, np.sign(a) * base.t, rtol=1e-6)
    assert np.all((base.p > 0) & (base.p <= 1))
    perm = rng.permutation(16)
    shuffled = welch_t(y[perm], labels[perm], "S - N")
    np.testing.assert_allclose(shuffled.t, welch_t(y, labels, "S - N").t, rtol=1e-10)


@settings(max_examples=30, deadline=None)
@given(p=hs.floats(1e-300, 1.0), sign=hs.floats(-5, 5))
def test_p_to_z_matches_scipy(p, sign):
    assert np.isclose(p_to_z(p), st.norm.isf(p), rtol=1e-10)
    assert np.isclose(p_to_z(p, alternative="less"), st.norm.ppf(p), rtol=1e-10)
    z2 = p_to_z(p, alternative="two-sided", sign=sign)
    assert np.isclose(abs(z2), st.norm.isf(p / 2), rtol=1e-10)
    if sign < 0:
        assert z2 <= 0


def test_p_to_z_errors():
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        p_to_z([0.5, 1.5])
    with pytest.raises(ValueError, match="'alternative'"):
        p_to_z(0.5, alternative="upper")


def test_extreme_t_keeps_finite_z(rng):
    labels = np.repeat(["S", "N"], 30)
    y = rng.normal(size=(60, 2)) * 0.01
    y[labels == "S", 0] += 1.0  # t around 300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        con = fit_glm(y, design_matrix(labels)).contrast("S - N")
    assert con.t[0] > 100 and con.p[0] >= 0
    assert con.z[0] > 0


def test_activations_container_and_dataframe_inputs(rng):
    from topobrain.activations import Activations
    from topobrain.sheet import CorticalSheet

    labels = np.repeat(["S", "N"], [6, 7])
    data = {"b0.attn": rng.normal(size=(13, 4)), "b0.mlp": rng.normal(size=(13, 4))}
    sheets = {k: CorticalSheet((2, 2), name=k) for k in data}
    acts = Activations.from_arrays(data, sheets, labels=labels)
    from_acts = welch_t(acts, acts.labels, "S - N")
    from_dict = welch_t(data, labels, "S - N")
    assert from_acts.layers == ("b0.attn", "b0.mlp")
    np.testing.assert_allclose(from_acts.t, from_dict.t, rtol=1e-12)
    glm_acts = fit_glm(acts, design_matrix(acts.labels)).contrast("S - N")
    np.testing.assert_allclose(glm_acts.t, fit_glm(data, labels).contrast("S - N").t,
                               rtol=1e-12)
    frame = pd.DataFrame(data["b0.mlp"])
    np.testing.assert_allclose(welch_t(frame, labels, "S - N").t, from_dict.t[1], rtol=1e-12)
