"""The permutation core: seed, stream and block rules, exact enumeration, the p-value
rule, the dispatcher and the fast permuted t statistics (against scipy and MNE)."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from topobrain._utils import _permutation as P
from topobrain._utils._stats import near_constant


# ---------------------------------------------------------------------------------------
# seed rule, streams, blocks
# ---------------------------------------------------------------------------------------
def test_seed_rule():
    assert P.as_seed_sequence(7).entropy == 7
    ss = np.random.SeedSequence(3, spawn_key=(1, 2))
    assert P.as_seed_sequence(ss) is ss
    a = P.as_seed_sequence(np.random.default_rng(5))
    b = P.as_seed_sequence(np.random.default_rng(5))
    assert a.entropy == b.entropy == int(np.random.default_rng(5).integers(2**63))
    assert P.as_seed_sequence(None).entropy != P.as_seed_sequence(None).entropy
    assert P.as_seed_sequence(np.int64(9)).entropy == 9


@pytest.mark.parametrize("bad, exc, match", [
    (-1, ValueError, "non-negative"),
    (1.5, TypeError, "got float"),
    (True, TypeError, "got bool"),
    ("0", TypeError, "got str"),
])
def test_seed_rule_errors(bad, exc, match):
    with pytest.raises(exc, match=match):
        P.as_seed_sequence(bad)


def test_stream_rule():
    s1 = P.stream(11, "morans_i")
    assert s1.entropy == 11
    assert s1.spawn_key == (2**32 + __import__("zlib").crc32(b"morans_i"),)
    assert P.stream(11, "morans_i").spawn_key == s1.spawn_key
    assert P.stream(11, "clusters").spawn_key != s1.spawn_key
    # a child of a SeedSequence keeps its parent's key
    parent = np.random.SeedSequence(4, spawn_key=(3,))
    assert P.stream(parent, "x").spawn_key[0] == 3
    # stream keys never collide with block keys
    assert s1.spawn_key[0] >= 2**32
    with pytest.raises(TypeError, match="stream name"):
        P.stream(0, "")


def test_streams_of_one_seed_share_no_permutations():
    labels = np.repeat([0, 1], 20)
    a = P.label_permutations(P.stream(0, "morans_i"), 1000, labels)
    b = P.label_permutations(P.stream(0, "clusters"), 1000, labels)
    ka = {labels[r].tobytes() for r in a.indices}
    kb = {labels[r].tobytes() for r in b.indices}
    assert len(ka & kb) == 0
    fa = P.sign_flips(P.stream(0, "morans_i"), 500, 40)
    fb = P.sign_flips(P.stream(0, "clusters"), 500, 40)
    assert not ({r.tobytes() for r in fa.signs} & {r.tobytes() for r in fb.signs})


def test_block_rule_and_prefix():
    ss = P.as_seed_sequence(123)
    assert P.block_seed(ss, 3).spawn_key == (3,)
    k1, k2 = P.block_keys(ss, 2), P.block_keys(ss, 2, 10)
    assert k1.dtype == np.uint64 and k1.shape == (P.BLOCK_SIZE,)
    np.testing.assert_array_equal(k1[:10], k2)
    assert P.block_rng(ss, 1).random() == P.block_rng(ss, 1).random()
    assert P.n_blocks(1) == 1 and P.n_blocks(64) == 1 and P.n_blocks(65) == 2
    labels = np.repeat([0, 1, 2], 10)
    full = P.label_permutations(ss, 300, labels)
    part = P.label_permutations(ss, 77, labels)
    np.testing.assert_array_equal(full.indices[:77], part.indices)
    flips = P.sign_flips(ss, 300, 30)
    np.testing.assert_array_equal(flips.signs[:50], P.sign_flips(ss, 50, 30).signs)


# ---------------------------------------------------------------------------------------
# draws: exact enumeration, no duplicates, strata
# ---------------------------------------------------------------------------------------
def test_exact_label_enumeration_matches_brute_force():
    labels = np.array(["a", "b", "a", "c", "b", "a"])
    ps = P.label_permutations(P.as_seed_sequence(0), 1000, labels)
    space = math.factorial(6) // (math.factorial(3) * math.factorial(2))
    assert ps.exact and ps.n_distinct == space and ps.n_permutations == space
    seen = {tuple(labels[r]) for r in ps.indices}
    brute = set(itertools.permutations(labels.tolist()))
    assert seen == brute  # all distinct label vectors, each once
    np.testing.assert_array_equal(ps.indices[0], np.arange(6))  # identity first
    assert all(sorted(r) == list(range(6)) for r in ps.indices.tolist())


def test_exact_enumeration_with_strata():
    labels = np.array([0, 1, 0, 1, 1, 0, 0])
    strata = np.array([0, 0, 0, 1, 1, 1, 1])
    ps = P.label_permutations(P.as_seed_sequence(0), 10_000, labels, strata=strata)
    assert ps.exact and ps.n_permutations == math.comb(3, 1) * math.comb(4, 2)
    for r in ps.indices:
        np.testing.assert_array_equal(strata[r], strata)  # moves stay within strata
    assert len({tuple(labels[r]) for r in ps.indices}) == ps.n_permutations


def test_random_draws_distinct_and_never_identity():
    labels = np.repeat([0, 1], 6)  # 924 label vectors
    ps = P.label_permutations(P.as_seed_sequence(5), 900, labels)
    assert not ps.exact and ps.n_distinct == 924 and ps.n_permutations == 900
    keys = [labels[r].tobytes() for r in ps.indices]
    assert len(set(keys)) == 900 and labels.tobytes() not in keys
    flips = P.sign_flips(P.as_seed_sequence(5), 1000, 10)  # 1024 patterns
    assert not flips.exact and flips.n_distinct == 1024
    rows = {r.tobytes() for r in flips.signs}
    assert len(rows) == 1000 and np.ones(10).tobytes() not in rows
    big = P.label_permutations(P.as_seed_sequence(5), 10, np.repeat([0, 1], 40))
    assert big.n_distinct is None and big.n_permutations == 10


def test_sign_flip_strata_flip_together():
    strata = np.array([0, 0, 1, 1, 2])
    f = P.sign_flips(P.as_seed_sequence(1), 100, 5, strata=strata)
    assert f.exact and f.n_permutations == 8
    np.testing.assert_array_equal(f.signs[:, 0], f.signs[:, 1])
    np.testing.assert_array_equal(f.signs[:, 2], f.signs[:, 3])


@pytest.mark.parametrize("tail", [-1, 0, 1])
def test_one_sample_exact_matches_mne(tail):
    """Exact sign-flip max-|t| test equals MNE's permutation_t_test exactly (n = 6)."""
    mne_stats = pytest.importorskip("mne.stats")
    rng = np.random.default_rng(tail + 10)
    x = rng.standard_normal((6, 5)) + np.array([3.0, 0.5, 0.0, -0.5, -3.0])
    symmetric = tail == 0
    flips = P.sign_flips(P.as_seed_sequence(0), 10_000, 6, symmetric=symmetric)
    assert flips.exact and flips.n_permutations == (32 if symmetric else 64)
    obs = P.permuted_one_sample_t(x, np.ones((1, 6)))[0]
    t = P.permuted_one_sample_t(x, flips)
    if tail == 0:
        p = P.permutation_pvalue(np.abs(obs), np.abs(t).max(1)[:, None], "greater", exact=True)
    elif tail == 1:
        p = P.permutation_pvalue(obs, t.max(1)[:, None], "greater", exact=True)
    else:
        p = P.permutation_pvalue(obs, t.min(1)[:, None], "less", exact=True)
    t_mne, p_mne, _ = mne_stats.permutation_t_test(x, n_permutations=10_000, tail=tail,
                                                   verbose=False)
    np.testing.assert_allclose(obs, t_mne, rtol=1e-10)
    if tail == 0:  # MNE's max-|t| null is the same statistic; one-sided MNE uses max|t| too
        np.testing.assert_allclose(p, p_mne, rtol=0, atol=1e-12)
        assert p.min() == pytest.approx(1 / 32)


# ---------------------------------------------------------------------------------------
# the p-value rule
# ---------------------------------------------------------------------------------------
def test_pvalue_rule():
    null = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert P.permutation_pvalue(2.0, null, "greater")[0] == pytest.approx(3 / 5)
    assert P.permutation_pvalue(2.0, null, "less")[0] == pytest.approx(4 / 5)
    assert P.permutation_pvalue(2.0, null, "two-sided")[0] == pytest.approx(1.0)
    assert P.permutation_pvalue(3.0, null, "greater", exact=True)[0] == pytest.approx(1 / 4)
    assert P.permutation_pvalue(0.0, null, "two-sided")[0] == pytest.approx(4 / 5)
    # non-finite null values leave B; NaN observed gives NaN
    with_nan = np.array([[0.0], [np.nan], [np.inf], [3.0]])
    assert P.permutation_pvalue(3.0, with_nan, "greater")[0] == pytest.approx(2 / 3)
    assert np.isnan(P.permutation_pvalue(np.nan, null, "greater")[0])
    assert np.isnan(P.permutation_pvalue(1.0, np.full((3, 1), np.nan), "greater")[0])
    with pytest.raises(ValueError, match="alternative"):
        P.permutation_pvalue(1.0, null, "bigger")


@pytest.mark.parametrize("obs", [2.5, -1e5, 1e-3, 7.0e8])
def test_ties_within_one_ulp_count(obs):
    for off in (np.nextafter(obs, np.inf), np.nextafter(obs, -np.inf)):
        null = np.array([[off], [obs - 1.0 - abs(obs)], [obs + 1.0 + abs(obs)]])
        assert P.permutation_pvalue(obs, null, "greater")[0] == pytest.approx(3 / 4)
        assert P.permutation_pvalue(obs, null, "less")[0] == pytest.approx(3 / 4)
    # a real difference (well above TIE_RTOL) does not tie
    far = np.array([[obs + 1e-6 * max(1.0, abs(obs))]])
    assert P.permutation_pvalue(obs, far, "less")[0] == pytest.approx(1 / 2)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 200), seed=st.integers(0, 2**32 - 1),
       alt=st.sampled_from(["greater", "less", "two-sided"]))
def test_pvalue_bounds(b, seed, alt):
    rng = np.random.default_rng(seed)
    null = rng.standard_normal((b, 3))
    p = P.permutation_pvalue(rng.standard_normal(3), null, alt)
    assert np.all(p > 0) and np.all(p <= 1) and np.all(p >= 1 / (b + 1) - 1e-15)


# ---------------------------------------------------------------------------------------
# fast permuted t statistics (scipy as the reference) and the identity
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("equal_var", [False, True])
def test_permuted_two_sample_t_matches_scipy(rng, equal_var):
    y = rng.standard_normal((13, 7)) * 3 + 10
    labels = np.array([0] * 6 + [1] * 7)
    perms = P.label_permutations(P.as_seed_sequence(2), 20, labels)
    t, df = P.permuted_two_sample_t(y, perms, labels, equal_var=equal_var, return_df=True)
    for i, r in enumerate(perms.indices):
        lab = labels[r]
        ref = stats.ttest_ind(y[lab == 0], y[lab == 1], equal_var=equal_var)
        np.testing.assert_allclose(t[i], ref.statistic, rtol=1e-10)
        np.testing.assert_allclose(df[i], ref.df, rtol=1e-10)
    obs = P.permuted_two_sample_t(y, P.identity_permutation(13), labels, equal_var=equal_var)
    ref = stats.ttest_ind(y[:6], y[6:], equal_var=equal_var).statistic
    np.testing.assert_allclose(obs[0], ref, rtol=1e-10)


def test_permuted_one_sample_t_matches_scipy(rng):
    y = rng.standard_normal((9, 5)) + 0.3
    flips = P.sign_flips(P.as_seed_sequence(3), 40, 9)
    t = P.permuted_one_sample_t(y, flips)
    for i, s in enumerate(flips.signs):
        np.testing.assert_allclose(t[i], stats.ttest_1samp(y * s[:, None], 0).statistic,
                                   rtol=1e-10)


def test_identity_in_a_block_ties_with_observed(rng):
    """The exact null holds the identity: its statistic ties with the observed one (same
    function, another batch) and the exact p counts it."""
    y = rng.standard_normal((6, 50)) * 1e3 + 5e3
    flips = P.sign_flips(P.as_seed_sequence(0), 64, 6, symmetric=True)
    obs = P.permuted_one_sample_t(y, np.ones((1, 6)))[0]
    null = np.abs(P.permuted_one_sample_t(y, flips)).max(1)
    p = P.permutation_pvalue(np.abs(obs).max(), null, "greater", exact=True)
    assert p >= 1 / 32
    labels = np.repeat([0, 1], 4)
    perms = P.label_permutations(P.as_seed_sequence(0), 100, labels)
    y2 = rng.standard_normal((8, 30))
    obs2 = P.permuted_two_sample_t(y2, P.identity_permutation(8), labels)[0]
    null2 = np.abs(P.permuted_two_sample_t(y2, perms, labels)).max(1)
    stat = np.abs(obs2).max()
    p_swap = P.permutation_pvalue(stat, null2, "greater", exact=True)
    assert p_swap >= 2 / 70  # the identity and the swapped groups both count


# ---------------------------------------------------------------------------------------
# the dispatcher
# ---------------------------------------------------------------------------------------
def _square_blocks(blocks):
    return [b * b for b in blocks]


@pytest.mark.parametrize("kw", [dict(n_jobs=None), dict(n_jobs=1), dict(n_jobs=2),
                                dict(n_jobs=2, threads=True), dict(n_jobs=1, chunk_size=3)])
def test_run_blocks_order_and_invariance(kw):
    out = P.run_blocks(_square_blocks, range(17), verbose=0, **kw)
    assert [v for part in out for v in part] == [b * b for b in range(17)]


def test_run_blocks_under_a_joblib_backend():
    from joblib import parallel_config

    with parallel_config(backend="threading", n_jobs=2):
        out = P.run_blocks(_square_blocks, range(9), verbose=0)
    assert [v for part in out for v in part] == [b * b for b in range(9)]
    assert P.run_blocks(_square_blocks, [], verbose=0) == []
    with pytest.raises(ValueError, match="n_jobs"):
        P.run_blocks(_square_blocks, range(3), n_jobs=0)


# ---------------------------------------------------------------------------------------
# near_constant
# ---------------------------------------------------------------------------------------
def test_near_constant():
    maps = np.stack([np.full((4, 4), 3.0), np.arange(16.0).reshape(4, 4),
                     np.full((4, 4), 1e6) + np.random.default_rng(0).normal(0, 1e-6, (4, 4)),
                     np.arange(16.0).reshape(4, 4) * 1e-30])
    maps[1, 0, 0] = np.nan
    np.testing.assert_array_equal(near_constant(maps, axis=(1, 2)), [True, False, True, False])
    assert near_constant(np.array([np.nan, 2.0]))  # fewer than two finite values


# ---------------------------------------------------------------------------------------
# the hypothesis profiles of tests/conftest.py
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ci, derandomized", [("true", True), ("", False)])
def test_hypothesis_profile_follows_ci(ci, derandomized):
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    env["CI"] = ci
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import conftest; "
            "from hypothesis import settings; print(settings.default.derandomize)")
    out = subprocess.run([sys.executable, "-c", code, str(tests)], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(derandomized)


# ---------------------------------------------------------------------------------------
# shared parameter docs (topobrain._utils._docs)
# ---------------------------------------------------------------------------------------
def test_fill_doc():
    from topobrain._utils._docs import docdict, fill_doc

    def f():
        """Sum 95% of it.

        Parameters
        ----------
        %(seed)s
        %(n_permutations)s
        """

    fill_doc(f)
    assert "%(" not in f.__doc__ and "Sum 95% of it." in f.__doc__
    first = docdict["seed"].splitlines()[0]
    assert f"\n        {first}\n" in f.__doc__
    assert "\n            Seeds the permutations." in f.__doc__  # body indented one level more

    def g():
        """%(no_such_entry)s"""

    with pytest.raises(KeyError, match="no_such_entry"):
        fill_doc(g)


def test_shared_docs_filled_in_statistics_modules():
    import inspect

    from topobrain import inference, nulls, selectivity

    for module in (inference, nulls, selectivity):
        for name in module.__all__:
            obj = getattr(module, name)
            doc = inspect.getdoc(obj) or ""
            assert "%(" not in doc, f"{module.__name__}.{name} has an unfilled doc entry"


def test_docstring_examples_run():
    import doctest

    from topobrain import nulls, selectivity
    from topobrain._utils import _docs, _stats

    for module in (P, _stats, _docs, nulls, selectivity):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), level=st.sampled_from([0.0, 1e-14, 1e-11, 1e-9, 1.0]),
       nan_frac=st.sampled_from([0.0, 0.3]))
def test_near_constant_equals_its_definition(seed, level, nan_frac):
    """The fast screen never changes the answer: nanstd <= 1e-10 * max|x| (or < 2 finite)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 1.0, (6, 1))
    x = x + level * rng.standard_normal((6, 40)) * np.abs(x)
    x[rng.random(x.shape) < nan_frac] = np.nan
    x[0, :] = np.nan if nan_frac else x[0, :]
    finite = np.isfinite(x)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = (finite.sum(1) < 2) | (np.nanstd(x, axis=1)
                                     <= 1e-10 * np.nanmax(np.abs(np.where(finite, x, 0)), 1))
    np.testing.assert_array_equal(near_constant(x, axis=1), ref)


def test_hypothesis_fresh_profile_has_no_database():
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["HYPOTHESIS_PROFILE"] = "fresh"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import conftest; "
            "from hypothesis import settings; "
            "print(settings.default.database is None, settings.default.derandomize)")
    out = subprocess.run([sys.executable, "-c", code, str(tests)], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True False"
