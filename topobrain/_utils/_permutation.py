"""THE permutation core: seeds, streams, blocks, draws, p-values and the dispatcher.

Every permutation test of topobrain (map statistics, clusters, Moran's I nulls,
selectivity, spatial surrogates, lesion controls) draws its null here, so that they all
follow the same five rules.

Seed rule
    ``seed`` (None, a non-negative int, a :class:`numpy.random.SeedSequence` or a
    :class:`numpy.random.Generator`) becomes one root ``SeedSequence`` through
    :func:`as_seed_sequence`: None draws fresh OS entropy, an int ``s`` gives
    ``SeedSequence(s)``, a SeedSequence is used as it is, a Generator contributes one
    63-bit integer (so seeding with a Generator advances it once).
Stream rule
    Two tests of one run must not share permutations. :func:`stream` gives each test a
    named child of the root, ``SeedSequence(root.entropy, spawn_key=(*root.spawn_key,
    key(name)))`` with ``key(name) = 2**32 + crc32(name)``: the child depends only on the
    seed and the name, and since block indices stay below ``2**32`` no stream key can
    equal a block key.
Block rule
    Random draws come in fixed blocks of :data:`BLOCK_SIZE`; block ``b`` of a sequence
    ``ss`` is seeded by ``SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, b))``. A
    block's content therefore depends only on ``(ss, b)``: never on ``n_jobs``, chunking,
    block-size arguments or the joblib backend (threads, loky, Dask). The draws of a
    test are taken from blocks 0, 1, 2, ... in order, so the first ``m`` permutations of
    a run with ``n_permutations = B`` are those of a run with ``n_permutations = m``.
Exact rule
    When the space of distinct permutations (label vectors, or sign patterns) holds no
    more than ``n_permutations`` elements, the whole space is enumerated, the identity
    first; the p-value is then exact, ``#{null at least as extreme} / B`` with the
    identity inside the null. Otherwise draws are without duplicates and never the
    identity (the observed statistic is counted once, by the ``+1`` of the p-value);
    for spaces of ``2**63`` elements or more, the draws are independent and a duplicate
    has probability below ``B**2 / 2**64``, which is neglected.
    One-sample sign flips follow MNE-Python 1.x (``_get_1samp_orders``): a statistic that
    is symmetric under flipping every sign (a two-sided test on ``|t|``) enumerates the
    ``2**(n-1)`` patterns with the first sign fixed (``symmetric=True``); a one-sided
    test enumerates all ``2**n``. For ``n = 6`` and a two-sided test the smallest exact
    p is ``1/32 = 0.03125``, as MNE gives.
Tie rule
    :func:`permutation_pvalue` counts a null value as "at least as extreme" when it lies
    within ``TIE_RTOL * max(1, |observed|)`` of the observed statistic. A permutation
    that reproduces the observed grouping yields the observed statistic up to rounding
    only (another summation order, another BLAS call): the tolerance counts such ties,
    in either orientation of the groups, while any real difference between statistics
    is many orders of magnitude larger.

References
----------
.. [1] Phipson, B., & Smyth, G. K. (2010). Permutation p-values should never be zero.
   Statistical Applications in Genetics and Molecular Biology, 9(1), 39.
.. [2] Nichols, T. E., & Holmes, A. P. (2002). Nonparametric permutation tests for
   functional neuroimaging: a primer with examples. Human Brain Mapping, 15(1), 1-25.
.. [3] Winkler, A. M., Webster, M. A., Vidaurre, D., Nichols, T. E., & Smith, S. M.
   (2015). Multi-level block permutation. NeuroImage, 123, 253-268.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "BLOCK_SIZE",
    "TIE_RTOL",
    "Alternative",
    "PermutationSet",
    "as_seed_sequence",
    "block_keys",
    "block_rng",
    "block_seed",
    "centred_moments",
    "identity_permutation",
    "label_permutations",
    "n_blocks",
    "permutation_pvalue",
    "permuted_one_sample_t",
    "permuted_two_sample_t",
    "run_blocks",
    "seed_record",
    "sign_flips",
    "stream",
]

#: Permutations per seeded block. Part of the definition of every null: changing it
#: changes the numbers, so it is a constant, never an option.
BLOCK_SIZE: int = 64

#: Relative tolerance of a tie in :func:`permutation_pvalue`: ``|null - observed| <=
#: TIE_RTOL * max(1, |observed|)`` counts as "at least as extreme". Statistics of one
#: permutation computed in two summation orders differ by a few ulps times the number
#: of terms (~1e-12 relative for 10^4 terms, more through a one-pass variance), which
#: 1e-9 covers with margin; statistics of different permutations of continuous data
#: differ by far more.
TIE_RTOL: float = 1e-9

Alternative = Literal["greater", "less", "two-sided"]
_ALTERNATIVES = ("greater", "less", "two-sided")

#: Spaces of at least this many elements are drawn without a duplicate check.
_DEDUP_LIMIT = 2**63
_STREAM_BIT = 1 << 32  # stream keys are >= 2**32, block indices below it


# ---------------------------------------------------------------------------------------
# Seeds, streams, blocks
# ---------------------------------------------------------------------------------------
def as_seed_sequence(seed) -> np.random.SeedSequence:
    """The one seed rule: ``seed`` -> the root :class:`numpy.random.SeedSequence`.

    Parameters
    ----------
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        None: fresh OS entropy. A non-negative int ``s``: ``SeedSequence(s)``. A
        SeedSequence: itself. A Generator: ``SeedSequence(int(gen.integers(2**63)))``
        (the generator advances by one draw).

    Returns
    -------
    numpy.random.SeedSequence

    Raises
    ------
    TypeError
        For any other type (bool included).
    ValueError
        For a negative int.

    Examples
    --------
    >>> as_seed_sequence(7).entropy
    7
    >>> ss = np.random.SeedSequence(1)
    >>> as_seed_sequence(ss) is ss
    True
    """
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(2**63)))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            "seed must be None, a non-negative int, a numpy.random.SeedSequence or a "
            f"numpy.random.Generator; got {type(seed).__name__}."
        )
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative (an int >= 0); got {int(seed)}.")
    return np.random.SeedSequence(int(seed))


def _name_key(name: str) -> int:
    """Stable key of a stream name: ``2**32 + crc32(name)`` (never a block index)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a stream name must be a non-empty str; got {name!r}.")
    return _STREAM_BIT | zlib.crc32(name.encode("utf-8"))


def stream(seed, name: str) -> np.random.SeedSequence:
    """A named, independent child of the run's root seed.

    Parameters
    ----------
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        The run's seed (see :func:`as_seed_sequence`).
    name : str
        The test's name (``"morans_i"``, ``"clusters"``, ...).

    Returns
    -------
    numpy.random.SeedSequence
        ``SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 2**32 + crc32(name)))``.

    Examples
    --------
    >>> a, b = stream(0, "morans_i"), stream(0, "clusters")
    >>> a.entropy == b.entropy == 0, a.spawn_key != b.spawn_key
    (True, True)
    """
    root = as_seed_sequence(seed)
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, _name_key(name)))


def seed_record(ss: np.random.SeedSequence) -> dict:
    """What a result's ``params`` records to reproduce ``ss``: entropy and spawn key."""
    return {"seed": ss.entropy, "spawn_key": tuple(int(k) for k in ss.spawn_key)}


def block_seed(ss: np.random.SeedSequence, b: int) -> np.random.SeedSequence:
    """The seed of block ``b``: ``SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, b))``."""
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, int(b)))


def block_rng(ss: np.random.SeedSequence, b: int) -> np.random.Generator:
    """The generator of block ``b`` (PCG64 seeded by :func:`block_seed`)."""
    return np.random.default_rng(block_seed(ss, b))


def block_keys(ss: np.random.SeedSequence, b: int, size: int = BLOCK_SIZE) -> np.ndarray:
    """``size`` 64-bit keys of block ``b`` for compiled engines, uint64 array."""
    return block_seed(ss, b).generate_state(int(size), np.uint64)


def n_blocks(n_permutations: int) -> int:
    """Number of blocks holding ``n_permutations`` permutations."""
    return -(-int(n_permutations) // BLOCK_SIZE)


# ---------------------------------------------------------------------------------------
# Draws
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PermutationSet:
    """The permutations (or sign flips) of one test.

    Attributes
    ----------
    indices : ndarray of int64, shape (B, n) or None
        Label permutations: row ``i`` permutes the items, ``labels[indices[i]]`` is the
        ``i``-th permuted label vector. None for sign flips.
    signs : ndarray of float64, shape (B, n) or None
        Sign flips: +1 or -1 per item. None for label permutations.
    exact : bool
        True when the whole space was enumerated (``B`` = its size, the identity first);
        p-values then use ``permutation_pvalue(..., exact=True)``.
    n_distinct : int or None
        Size of the space of distinct label vectors or sign patterns (None when at least
        ``2**63``).
    """

    indices: np.ndarray | None
    signs: np.ndarray | None
    exact: bool
    n_distinct: int | None

    @property
    def rows(self) -> np.ndarray:
        """``indices`` or ``signs``, whichever the set holds."""
        return self.indices if self.indices is not None else self.signs

    @property
    def n_permutations(self) -> int:
        """Number of permutations ``B``."""
        return int(self.rows.shape[0])

    def __len__(self) -> int:
        return self.n_permutations

    def block(self, b: int) -> np.ndarray:
        """Rows of block ``b`` (``BLOCK_SIZE`` rows, fewer in the last block)."""
        return self.rows[b * BLOCK_SIZE:(b + 1) * BLOCK_SIZE]

    @property
    def n_blocks(self) -> int:
        return n_blocks(self.n_permutations)


def _check_count(n_permutations) -> int:
    if isinstance(n_permutations, (bool, np.bool_)) or not isinstance(n_permutations,
                                                                      numbers.Integral):
        raise TypeError(f"n_permutations must be an int; got {type(n_permutations).__name__}.")
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be at least 1; got {int(n_permutations)}.")
    return int(n_permutations)


def _codes(values, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one entry per item ({n}); got shape {arr.shape}.")
    return np.unique(arr, return_inverse=True)[1].reshape(-1).astype(np.int64)


def identity_permutation(n: int) -> np.ndarray:
    """The identity as a one-row index array, shape (1, n) (for the observed statistic)."""
    return np.arange(int(n), dtype=np.int64)[None, :]


def _label_space(codes: np.ndarray, strata: np.ndarray) -> int:
    total = 1
    for s in np.unique(strata):
        lab = codes[strata == s]
        rest = int(lab.size)
        for c in np.unique(lab, return_counts=True)[1]:
            total *= math.comb(rest, int(c))
            rest -= int(c)
    return total


def _stratum_arrangements(values: np.ndarray) -> list[np.ndarray]:
    """Every distinct arrangement of the multiset ``values`` (one array each)."""
    m = values.size
    distinct, counts = np.unique(values, return_counts=True)
    out = []

    def fill(free: tuple, k: int, current: np.ndarray):
        if k == distinct.size:
            out.append(current.copy())
            return
        for chosen in itertools.combinations(free, int(counts[k])):
            current[list(chosen)] = distinct[k]
            rest = tuple(p for p in free if p not in chosen)
            fill(rest, k + 1, current)

    fill(tuple(range(m)), 0, np.empty(m, dtype=values.dtype))
    return out


def _enumerate_labelings(codes: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """All distinct label vectors (permuting within strata) as index rows, identity first."""
    n = codes.size
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    per = [_stratum_arrangements(codes[g]) for g in groups]
    rows = []
    for combo in itertools.product(*per):
        lab = np.empty(n, dtype=np.int64)
        for g, arr in zip(groups, combo, strict=True):
            lab[g] = arr
        rows.append(lab)
    labelings = np.asarray(rows, dtype=np.int64).reshape(len(rows), n)
    idx = np.empty_like(labelings)
    for g in groups:
        # positions with label v receive the items of label v, both in increasing order
        src = g[np.argsort(codes[g], kind="stable")]
        dst = g[np.argsort(labelings[:, g], axis=1, kind="stable")]
        np.put_along_axis(idx, dst, np.broadcast_to(src, dst.shape), axis=1)
    first = int(np.flatnonzero((labelings == codes).all(1))[0])
    order = np.r_[first, np.delete(np.arange(len(rows)), first)]
    return np.ascontiguousarray(idx[order])


def _unique_rows(draw_block: Callable[[int], tuple], n_permutations: int,
                 dedup: bool, seen: set | None = None) -> np.ndarray:
    """Rows from blocks 0, 1, ... in order, skipping rows whose key is in ``seen`` (the
    identity) or came before, when ``dedup``; ``draw_block(b)`` returns ``(rows, keys)``
    (keys: one hashable per row, or None)."""
    out, total, b = [], 0, 0
    seen = set() if seen is None else set(seen)
    while total < n_permutations:
        rows, keys = draw_block(b)
        b += 1
        if dedup:
            keep = []
            for i, key in enumerate(keys):
                if key not in seen:
                    seen.add(key)
                    keep.append(i)
            rows = rows[keep]
        rows = rows[: n_permutations - total]
        out.append(rows)
        total += rows.shape[0]
    return np.concatenate(out, axis=0)


def label_permutations(ss: np.random.SeedSequence, n_permutations: int, labels, *,
                       strata=None) -> PermutationSet:
    """Label permutations of a design, exact or drawn without duplicates.

    Parameters
    ----------
    ss : numpy.random.SeedSequence
        The test's sequence (:func:`as_seed_sequence` or :func:`stream`).
    n_permutations : int
        Number of permutations ``B`` wanted.
    labels : array-like of shape (n,)
        Label of each item (any hashable values); two permutations giving the same label
        vector count as one.
    strata : array-like of shape (n,), optional
        Exchangeability group of each item: labels are permuted within groups only.

    Returns
    -------
    PermutationSet
        ``indices`` of shape ``(B, n)``. When the number of distinct label vectors is at
        most ``n_permutations`` they are all enumerated (``exact=True``, identity first,
        ``B`` = their number); otherwise ``B = n_permutations`` distinct, non-identity
        label vectors (block ``b`` of ``ss`` draws ``BLOCK_SIZE`` candidates).

    Examples
    --------
    >>> ps = label_permutations(as_seed_sequence(0), 100, ["a", "a", "b", "b"])
    >>> ps.exact, ps.n_permutations, ps.indices[0].tolist()  # all 6, identity first
    (True, 6, [0, 1, 2, 3])
    >>> label_permutations(as_seed_sequence(0), 100, [0] * 10 + [1] * 10).exact
    False
    """
    n_permutations = _check_count(n_permutations)
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be one-dimensional (one per item); got shape {lab.shape}.")
    n = lab.size
    codes = _codes(lab, n, "labels")
    st = np.zeros(n, np.int64) if strata is None else _codes(strata, n, "strata")
    space = _label_space(codes, st)
    n_distinct = space if space < _DEDUP_LIMIT else None
    if space <= n_permutations:
        return PermutationSet(_enumerate_labelings(codes, st), None, True, space)
    base = np.argsort(st, kind="stable")
    code_dtype = np.int8 if codes.max(initial=0) < 127 else np.int64
    small = codes.astype(code_dtype)
    dedup = n_distinct is not None
    identity_key = small.tobytes()

    def draw_block(b):
        rng = block_rng(ss, b)
        keys = rng.random((BLOCK_SIZE, n)) + st[None, :]
        order = np.argsort(keys, axis=1)
        idx = np.empty((BLOCK_SIZE, n), dtype=np.int64)
        idx[:, base] = order
        if not dedup:
            return idx, None
        lab_rows = np.ascontiguousarray(small[idx])
        row_keys = [r.tobytes() for r in lab_rows]
        return idx, row_keys

    # the identity counts as seen from the start: it is never drawn
    rows = _unique_rows(draw_block, n_permutations, dedup, seen={identity_key})
    return PermutationSet(rows, None, False, n_distinct)


def sign_flips(ss: np.random.SeedSequence, n_permutations: int, n: int, *, strata=None,
               symmetric: bool = False) -> PermutationSet:
    """Sign flips of a one-sample design, exact or drawn without duplicates.

    Parameters
    ----------
    ss : numpy.random.SeedSequence
        The test's sequence.
    n_permutations : int
        Number of sign patterns ``B`` wanted.
    n : int
        Number of items.
    strata : array-like of shape (n,), optional
        Items of one stratum flip together (whole-block sign flips); by default every
        item flips on its own.
    symmetric : bool, default=False
        True when the statistic is unchanged by flipping every sign (a two-sided test
        on ``|t|``): the first stratum's sign is then fixed to +1, which halves the
        space without losing a distinct statistic (MNE's convention for ``tail=0``).

    Returns
    -------
    PermutationSet
        ``signs`` of shape ``(B, n)``. Exact (identity first, ``B = 2**m`` or
        ``2**(m-1)`` for ``m`` strata, in MNE's ``bin_perm_rep`` order, a set bit
        meaning -1) when that is at most ``n_permutations``; otherwise distinct
        non-identity patterns.

    Examples
    --------
    >>> flips = sign_flips(as_seed_sequence(0), 1000, 6, symmetric=True)
    >>> flips.exact, flips.n_permutations  # MNE's exact two-sided test for n = 6
    (True, 32)
    """
    n_permutations = _check_count(n_permutations)
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive number of items; got {n!r}.")
    n = int(n)
    st = np.arange(n) if strata is None else _codes(strata, n, "strata")
    m = int(st.max()) + 1
    free = m - 1 if symmetric else m  # number of strata whose sign varies
    space = 2**free
    n_distinct = space if space < _DEDUP_LIMIT else None
    shifts = np.arange(m - 1, -1, -1, dtype=np.uint64)  # first stratum = highest bit

    def to_signs(codes_arr):
        bits = (codes_arr.astype(np.uint64)[:, None] >> shifts[None, :]) & np.uint64(1)
        per_stratum = 1.0 - 2.0 * bits.astype(np.float64)
        return per_stratum[:, st]

    if space <= n_permutations:
        return PermutationSet(None, to_signs(np.arange(space, dtype=np.uint64)), True, space)
    if n_distinct is not None:
        def draw_block(b):
            c = block_rng(ss, b).integers(1, space, size=BLOCK_SIZE, dtype=np.uint64)
            return c, [int(v) for v in c]

        codes_arr = _unique_rows(draw_block, n_permutations, True)
        return PermutationSet(None, to_signs(codes_arr), False, n_distinct)

    def draw_bits(b):
        bits = block_rng(ss, b).integers(0, 2, size=(BLOCK_SIZE, m))
        if symmetric:
            bits[:, 0] = 0
        return (1.0 - 2.0 * bits)[:, st], None

    return PermutationSet(None, _unique_rows(draw_bits, n_permutations, False), False, None)


# ---------------------------------------------------------------------------------------
# The p-value rule
# ---------------------------------------------------------------------------------------
def permutation_pvalue(observed, null, alternative: Alternative = "greater", *,
                       exact: bool = False) -> np.ndarray:
    """THE permutation p-value of topobrain.

    Parameters
    ----------
    observed : float or ndarray of shape S
        Observed statistic(s).
    null : ndarray of shape (B, *S) (or broadcastable to it)
        The statistic under each permutation. Non-finite values are left out of ``B``.
    alternative : {"greater", "less", "two-sided"}, default="greater"
        ``"two-sided"`` is ``min(1, 2 min(p_greater, p_less))``; a test on ``|stat|``
        (cluster max-statistics) passes absolute values with ``"greater"`` instead.
    exact : bool, default=False
        True when ``null`` is the whole enumerated space, identity included: then
        ``p = #{null at least as extreme} / B``. Otherwise the observed statistic is
        counted once more: ``p = (1 + #{...}) / (1 + B)`` (Phipson & Smyth, 2010).

    Returns
    -------
    ndarray of shape S
        p-values in (0, 1]; NaN where the observed value is NaN or no null value is
        finite. A null value within ``TIE_RTOL * max(1, |observed|)`` of the observed
        one counts as at least as extreme (see the module's tie rule).

    Examples
    --------
    >>> null = np.array([0.1, 0.5, 0.9, 2.0])
    >>> float(permutation_pvalue(0.9, null, "greater"))  # (1 + 2) / (1 + 4)
    0.6
    >>> float(permutation_pvalue(np.nextafter(0.9, 0), null, "greater"))  # a tie
    0.6
    >>> float(permutation_pvalue(2.0, null, "greater", exact=True))  # 1 / 4
    0.25
    """
    if alternative not in _ALTERNATIVES:
        listed = ", ".join(repr(a) for a in _ALTERNATIVES)
        raise ValueError(f"Invalid value for the 'alternative' parameter. Allowed values are "
                         f"{listed}, but got {alternative!r} instead.")
    obs = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if null.ndim == 0:
        raise ValueError("null must have a leading permutation axis; got a scalar.")
    valid = np.isfinite(null)
    n = valid.sum(0)
    tol = TIE_RTOL * np.maximum(1.0, np.abs(obs))
    with np.errstate(invalid="ignore", divide="ignore"):
        ge = ((null >= obs - tol) & valid).sum(0)
        le = ((null <= obs + tol) & valid).sum(0)
        if exact:
            p_greater, p_less = ge / n, le / n
        else:
            p_greater, p_less = (1.0 + ge) / (1.0 + n), (1.0 + le) / (1.0 + n)
    if alternative == "greater":
        p = p_greater
    elif alternative == "less":
        p = p_less
    else:
        p = np.minimum(1.0, 2.0 * np.minimum(p_greater, p_less))
    p = np.where(np.isfinite(obs) & (n > 0), p, np.nan)
    return p


# ---------------------------------------------------------------------------------------
# The dispatcher
# ---------------------------------------------------------------------------------------
# joblib backends that run on this machine; any other (dask, ray, ...) gets the work
# through joblib whatever the number of jobs
_LOCAL_BACKENDS = ("LokyBackend", "ThreadingBackend", "MultiprocessingBackend",
                   "SequentialBackend")


def _jobs(n_jobs) -> tuple[int, bool]:
    """(number of jobs, whether the active joblib backend runs on this machine)."""
    if n_jobs is not None and int(n_jobs) == 1:
        return 1, True
    if n_jobs is None and "joblib" not in sys.modules:
        return 1, True  # no joblib.parallel_config can be active: skip joblib's import
    from joblib.parallel import get_active_backend

    backend, cfg_jobs = get_active_backend()
    local = type(backend).__name__ in _LOCAL_BACKENDS
    jobs = n_jobs if n_jobs is not None else cfg_jobs
    if jobs is None:
        return 1, local
    jobs = int(jobs)
    if jobs < 0:
        jobs = max(1, (os.cpu_count() or 1) + 1 + jobs)
    return max(1, jobs), local


def check_n_jobs(n_jobs) -> int | None:
    """Validate ``n_jobs`` (None or a non-zero int) and return it."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be None or a non-zero int; got {type(n_jobs).__name__}.")
    if int(n_jobs) == 0:
        raise ValueError("n_jobs must be None or a non-zero int; got 0. Use 1 for no "
                         "parallelism, -1 for all cores.")
    return int(n_jobs)


def run_blocks(func: Callable[[list], Any], blocks: Iterable, *, n_jobs: int | None = None,
               threads: bool = False, verbose: int = 1, desc: str = "permutations",
               chunk_size: int | None = None) -> list:
    """THE dispatcher: ``func(block_list)`` over chunks of ``blocks``, in block order.

    Parameters
    ----------
    func : callable
        Takes a list of blocks (usually block indices) and returns one result.
    blocks : iterable
        The blocks, in order.
    n_jobs : int or None, default=None
        Parallel jobs. None follows joblib's active configuration (one job by default),
        so ``joblib.parallel_config(backend="dask")`` sends the chunks to a Dask cluster.
    threads : bool, default=False
        Run the chunks in a local thread pool (for kernels that release the GIL) when
        the active joblib backend runs on this machine and more than one job is asked.
    verbose : int, default=1
        A tqdm progress bar over chunks when truthy and there is more than one chunk.
    desc : str
        The bar's label.
    chunk_size : int, optional
        Blocks per chunk; by default about four chunks per job. Never changes results.

    Returns
    -------
    list
        ``func``'s result for each chunk, in block order.
    """
    blocks = list(blocks)
    if not blocks:
        return []
    n_jobs = check_n_jobs(n_jobs)
    jobs, local = _jobs(n_jobs)
    if chunk_size is None:
        workers = jobs
        if not local:
            from joblib import effective_n_jobs

            workers = max(1, effective_n_jobs(n_jobs))
        per = max(1, -(-len(blocks) // (4 * workers)))
    else:
        per = max(1, int(chunk_size))
    chunks = [blocks[i:i + per] for i in range(0, len(blocks), per)]
    if local and (jobs <= 1 or len(chunks) == 1):
        results = (func(c) for c in chunks)
    elif local and threads:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=min(jobs, len(chunks)))
        results = _closing(pool, pool.map(func, chunks))
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=n_jobs if not local else jobs, return_as="generator")
        results = parallel(delayed(func)(c) for c in chunks)
    if verbose and len(chunks) > 1:
        from tqdm.auto import tqdm

        results = tqdm(results, total=len(chunks), desc=desc, unit="chunk", leave=False)
    return list(results)


def _closing(pool, iterator):
    try:
        yield from iterator
    finally:
        pool.shutdown(wait=True)


# ---------------------------------------------------------------------------------------
# Fast permuted t statistics
# ---------------------------------------------------------------------------------------
def centred_moments(y: np.ndarray) -> tuple:
    """Centred responses, their squares and both column sums (shared by every block of
    :func:`permuted_two_sample_t`)."""
    yc = y - y.mean(0)
    yc2 = yc * yc
    return yc, yc2, yc.sum(0), yc2.sum(0)


def _rows(perms) -> np.ndarray:
    return perms.rows if isinstance(perms, PermutationSet) else np.asarray(perms)


def permuted_two_sample_t(y: np.ndarray, perms, labels, *, equal_var: bool = False,
                          return_df: bool = False, moments: tuple | None = None):
    """Two-sample t (group 0 minus group 1) of every unit under many label permutations.

    Parameters
    ----------
    y : ndarray of shape (n, n_units)
        Responses of the items.
    perms : PermutationSet or ndarray of int, shape (k, n)
        Index rows (``labels[perms[i]]`` is the ``i``-th label vector); the identity
        (:func:`identity_permutation`) gives the observed statistic, computed by this
        same arithmetic.
    labels : ndarray of shape (n,)
        0 for the items of the first group, 1 for the second.
    equal_var : bool, default=False
        Student's pooled-variance t (True) or Welch's t (False).
    return_df : bool, default=False
        Also return the degrees of freedom.
    moments : tuple, optional
        :func:`centred_moments` of ``y``, to share between blocks.

    Returns
    -------
    t : ndarray of shape (k, n_units)
        NaN where both groups are constant.
    df : ndarray of shape (k, n_units) (only with ``return_df``)

    Notes
    -----
    Group sums come from one flat ``(k, n) @ (n, n_units)`` product of the centred
    responses; the second group's are the totals minus the first's; variances are
    one-pass on centred data (accurate to ~1e-12 relative for responses of ordinary
    dynamic range).
    """
    idx = _rows(perms)
    lab = np.asarray(labels)
    m0 = (lab[idx] == 0).astype(np.float64)
    n = y.shape[0]
    yc, yc2, t1, t2 = centred_moments(y) if moments is None else moments
    n0 = m0.sum(1, keepdims=True)
    n1 = n - n0
    s1 = m0 @ yc  # becomes mean0
    s2 = m0 @ yc2  # becomes v0
    with np.errstate(divide="ignore", invalid="ignore"):
        mean1 = np.subtract(t1, s1)
        mean1 /= n1
        v1 = np.subtract(t2, s2)
        s1 /= n0
        mean0 = s1
        tmp = mean0 * mean0
        tmp *= n0
        s2 -= tmp
        s2 /= n0 - 1
        v0 = np.maximum(s2, 0.0, out=s2)
        np.multiply(mean1, mean1, out=tmp)
        tmp *= n1
        v1 -= tmp
        v1 /= n1 - 1
        np.maximum(v1, 0.0, out=v1)
        df = None
        if equal_var:
            if return_df:
                df = np.broadcast_to(n0 + n1 - 2.0, v0.shape).copy()
            v0 *= (n0 - 1) / (n0 + n1 - 2.0)
            v1 *= (n1 - 1) / (n0 + n1 - 2.0)
            v0 += v1
            v0 *= 1.0 / n0 + 1.0 / n1
            se = np.sqrt(v0, out=v0)
        else:
            v0 /= n0
            v1 /= n1
            if return_df:
                df = (v0 + v1) ** 2 / (v0 * v0 / (n0 - 1) + v1 * v1 / (n1 - 1))
            v0 += v1
            se = np.sqrt(v0, out=v0)
        mean0 -= mean1
        t = np.divide(mean0, se, out=mean0)
    t[~(se > 0)] = np.nan
    return (t, df) if return_df else t


def permuted_one_sample_t(y: np.ndarray, signs) -> np.ndarray:
    """One-sample t (mean against 0) of every unit under many sign flips.

    Parameters
    ----------
    y : ndarray of shape (n, n_units)
    signs : PermutationSet or ndarray of shape (k, n)
        +1/-1 per item; a row of ones gives the observed statistic, computed by this
        same arithmetic.

    Returns
    -------
    ndarray of shape (k, n_units)
        ``mean / (sd / sqrt(n))`` with ``mean = signs @ y / n`` and the one-pass
        ``sd = sqrt((sum(y**2) - n mean**2) / (n - 1))`` (``sum(y**2)`` does not change
        under a flip); NaN where ``sd`` is 0.
    """
    s = np.asarray(_rows(signs), dtype=np.float64)
    n = y.shape[0]
    mean = s @ y
    mean /= n
    s2 = (y * y).sum(0)
    var = s2[None, :] - n * mean * mean
    np.maximum(var, 0.0, out=var)
    var /= n - 1
    sd = np.sqrt(var, out=var)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / np.sqrt(n))
    t[~(sd > 0)] = np.nan
    return t
