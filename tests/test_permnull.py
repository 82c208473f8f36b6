"""The compiled permutation-null kernels against plain Python transcriptions.

The permutation stream is checked bit for bit against a pure-Python Fisher-Yates with the
same splitmix64 draws, and for uniformity; the vectorised lane quadratic forms against a
scalar loop (bitwise) and a sparse product (1e-12); the full kernel against the
statistics of the key-derived permutations.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from topobrain._utils import _permnull
from topobrain._utils._stats import moran_i_raw

M64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def reference_permutation(key: int, n: int) -> np.ndarray:
    """Inside-out Fisher-Yates, j_i = floor(r_i * (i + 1) / 2**64), in Python integers."""
    perm = [0] * n
    for i in range(1, n):
        r = _splitmix64((key + i * 0x9E3779B97F4A7C15) & M64)
        j = (r * (i + 1)) >> 64
        perm[i] = perm[j]
        perm[j] = i
    return np.array(perm, dtype=np.int64)


def random_upper(rng, n, density=0.2):
    u = sp.random(n, n, density=density, random_state=rng, format="csr")
    u = sp.triu(u, k=0).tocsr()
    u.data = rng.standard_normal(u.nnz)
    return u


def scalar_lane_forms(y, u):
    """The kernel's arithmetic, one lane at a time, rows in ell_groups order."""
    rows, cols, vals, row_ptr, ent_ptr, widths = _permnull.ell_groups(u)
    out = []
    for b in range(y.shape[1]):
        q = 0.0
        e = 0
        for g in range(widths.size):
            for r in range(row_ptr[g], row_ptr[g + 1]):
                t = 0.0
                for _ in range(widths[g]):
                    t = t + float(vals[e]) * float(y[cols[e], b])
                    e += 1
                q = q + float(y[rows[r], b]) * t
        out.append(q)
    return np.array(out)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1001])
def test_permutation_stream_equals_a_python_transcription(n, rng):
    keys = rng.integers(0, 2**64, size=5, dtype=np.uint64, endpoint=False)
    keys[0] = 0
    keys[1] = np.uint64(2**64 - 1)
    got = _permnull.permutations(keys, n)
    assert got.shape == (5, n) and got.dtype == np.int32
    for k, row in zip(keys, got, strict=True):
        np.testing.assert_array_equal(row, reference_permutation(int(k), n))
        np.testing.assert_array_equal(np.sort(row), np.arange(n))


def test_permutations_are_uniform(rng):
    n, draws = 4, 24_000
    keys = rng.integers(0, 2**63, size=draws, dtype=np.uint64)
    perms = _permnull.permutations(keys, n)
    index = {p: i for i, p in enumerate(itertools.permutations(range(n)))}
    counts = np.bincount([index[tuple(p)] for p in perms], minlength=24)
    assert stats.chisquare(counts).pvalue > 1e-4
    # every cell lands everywhere equally often at a larger n, too
    big = _permnull.permutations(keys[:2000], 40)
    pos = np.zeros((40, 40))
    np.add.at(pos, (big, np.broadcast_to(np.arange(40), big.shape)), 1)
    assert stats.chisquare(pos.ravel()).pvalue > 1e-4
    # consecutive keys give unrelated permutations
    a = _permnull.permutations(np.arange(500, dtype=np.uint64), 40)
    same = (a[1:] == a[:-1]).mean()
    assert abs(same - 1 / 40) < 0.01


def test_ell_groups_round_trip(rng):
    keep = np.ones(30)
    keep[5] = 0  # an empty row
    u = sp.csr_matrix(sp.diags(keep) @ random_upper(rng, 30))
    u.eliminate_zeros()
    rows, cols, vals, row_ptr, ent_ptr, widths = _permnull.ell_groups(u)
    rebuilt = np.zeros(u.shape)
    for g in range(widths.size):
        for k, r in enumerate(rows[row_ptr[g]:row_ptr[g + 1]]):
            e = ent_ptr[g] + k * widths[g]
            rebuilt[r, cols[e:e + widths[g]]] = vals[e:e + widths[g]]
    np.testing.assert_array_equal(rebuilt, u.toarray())
    assert 5 not in rows and np.all(np.diff(widths) > 0)
    empty = _permnull.ell_groups(sp.csr_matrix((4, 4)))
    assert all(a.size == 0 for a in (empty[0], empty[1], empty[2], empty[5]))


def test_lane_quadratic_forms_equal_scalar_bits_and_sparse_products(rng):
    u = random_upper(rng, 60)
    y = rng.standard_normal((60, _permnull.LANES))
    got = np.array(_permnull.lane_quadratic_forms(y, *_permnull.ell_groups(u)))
    np.testing.assert_array_equal(got, scalar_lane_forms(y, u))
    np.testing.assert_allclose(got, np.einsum("ib,ib->b", y, u @ y), rtol=1e-12, atol=1e-12)


def _run(xs, keys, u, a, c, g):
    out = np.full((xs.shape[0], keys.size), np.nan)
    _permnull.null_statistics(np.ascontiguousarray(xs), keys, a, c, g,
                              *_permnull.ell_groups(u), out)
    return out


@pytest.mark.parametrize("n_perm", [1, 8, 13, 40])
def test_null_statistics_equal_the_statistics_of_the_permutations(n_perm, rng):
    n = 37
    w = random_upper(rng, n, 0.15)
    w = (w + w.T).tocsr()
    w.data = np.abs(w.data)
    u = sp.triu(w + w.T, k=1).tocsr() + sp.diags(w.diagonal())
    u = sp.csr_matrix(u)
    xs = rng.standard_normal((3, n))
    xs -= xs.mean(1, keepdims=True)
    keys = rng.integers(0, 2**63, size=n_perm, dtype=np.uint64)
    s0 = w.sum()
    a = np.full(3, n / s0) / (xs * xs).sum(1)
    got = _run(xs, keys, u, a, np.zeros(3), np.empty(0))
    perms = _permnull.permutations(keys, n)
    for j in range(3):
        np.testing.assert_allclose(got[j], moran_i_raw(xs[j][perms], w), rtol=1e-12,
                                   atol=1e-14)
        # one map alone (values shuffled directly) gives the same bits as in a batch
        np.testing.assert_array_equal(_run(xs[j:j + 1], keys, u, a[j:j + 1], np.zeros(1),
                                           np.empty(0))[0], got[j])
    # the squared term (Geary's): c * sum_i g_i y_i^2
    gw = rng.random(n)
    c = rng.standard_normal(3)
    with_sq = _run(xs, keys, u, a, c, gw)
    sq = np.einsum("i,jpi->jp", gw, xs[:, perms] ** 2)
    np.testing.assert_allclose(with_sq, got + c[:, None] * sq, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(_run(xs[1:2], keys, u, a[1:2], c[1:2], gw)[0], with_sq[1])


def test_null_statistics_of_a_permutation_prefix_are_a_prefix(rng):
    """A statistic depends on its own key only: not on the lane group it falls in."""
    n = 20
    u = random_upper(rng, n, 0.3)
    xs = rng.standard_normal((1, n))
    keys = rng.integers(0, 2**63, size=21, dtype=np.uint64)
    a, c, g = np.ones(1), np.zeros(1), np.empty(0)
    full = _run(xs, keys, u, a, c, g)
    np.testing.assert_array_equal(_run(xs, keys[:5], u, a, c, g), full[:, :5])
    np.testing.assert_array_equal(_run(xs, keys[3:], u, a, c, g), full[:, 3:])
