"""Spatial statistics of maps: Moran's I, local Moran's I, Geary's C, distance profiles.

Every function here takes values plus an ``adjacency``, so it never cares whether a map
is a 28 x 28 model sheet or a 32k-vertex cortical mesh:

* a 2D map ``(n_rows, n_cols)`` (or a batch ``(n_maps, n_rows, n_cols)``) with NaN where no
  unit sits: the adjacency defaults to queen contiguity on its grid (TopoLM's published
  choice, the package's one default for sheets) and can be ``"rook"``;
* a vector ``(n_cells,)`` (or a batch ``(n_maps, n_cells)``) with a ``(n_cells, n_cells)``
  weights matrix (``scipy.sparse``, a dense array, or any object whose ``.sparse``
  attribute is one, such as a libpysal ``W``).

Every result records the adjacency it used in ``params["adjacency"]``. The old parameter
name ``weights=`` still works for one release, with a ``DeprecationWarning``.

NaN cells are dropped with their weights: the binary adjacency (or the given weights) is
restricted to the kept cells first, then cells left without any neighbour ("islands")
are dropped with a warning that counts them, then the weights are transformed
(row-standardised by default, ``transform="b"`` for binary, ``None`` to keep them as
given). This equals esda run on libpysal weights built on the kept cells.

A batch is computed at once: maps that share a NaN pattern share one weights matrix and
one sparse product; other patterns are grouped and each group is computed the same way.

Pseudo p-values
---------------
With ``B`` permutations and ``b_ge`` (``b_le``) of the permuted statistics at or above (at
or below) the observed one, ``alternative`` selects:

* ``"greater"``: ``(b_ge + 1) / (B + 1)``;
* ``"less"``: ``(b_le + 1) / (B + 1)``;
* ``"directed"``: ``(min(b_ge, b_le) + 1) / (B + 1)``, the one-sided p-value in the tail
  the observed statistic happens to fall in. This is esda's ``p_sim`` (the tail is chosen
  from the data, so under the null it is about half a two-sided p-value: use it to compare
  with esda or published numbers, not to test);
* ``"two-sided"`` (default): ``min(1, 2 * directed)``.

The normal-approximation p-values follow the same rule: ``"two-sided"`` is
``2 * sf(|z|)`` (esda ``Moran(two_tailed=True)``, its default), ``"directed"`` is
``sf(|z|)`` (esda ``two_tailed=False``, and esda's ``Geary`` and local ``p_z_sim``).
The counts follow the permutation core's p-value rule
(:func:`topobrain._utils._permutation.permutation_pvalue`): a permuted statistic within
``TIE_RTOL * max(1, |observed|)`` of the observed one counts as a tie, on both sides.

Permutations follow the core's seed and block rules: ``seed`` becomes one
``numpy.random.SeedSequence`` (:func:`~topobrain._utils._permutation.as_seed_sequence`;
a pipeline passes each test its own named stream), permutations come in fixed blocks of
:data:`~topobrain._utils._permutation.BLOCK_SIZE`, and block ``k`` gives each of its
permutations a 64-bit key (``block_keys``), from which a compiled Fisher-Yates shuffle
(:mod:`topobrain._utils._permnull`, numba) derives it. The blocks run through the core's
dispatcher (``run_blocks``, in a thread pool for local joblib backends: the kernel
releases the GIL). The numbers therefore do not depend on ``n_jobs``, chunking or the
joblib backend; every map of a group sees the same cell permutations, and a map gets the
same null, bit for bit, alone as inside a batch. The global null is computed in double
precision with a fixed order of operations per permutation; a permuted statistic within
the rounding bound of the observed one is recomputed with the observed statistic's own
arithmetic, so counts and ties are exact. The conditional null of local Moran's I is
computed in double precision with numpy draws from the core's block generators
(``block_rng``).

A map whose values are constant over its kept cells, exactly or to rounding (its
standard deviation at most ``1e-10`` of its largest magnitude:
:func:`topobrain._utils._stats.near_constant`), has no spatial structure to measure: its
statistics and p-values are NaN, with a warning.

References
----------
.. [1] Moran, P. A. P. (1950). Notes on continuous stochastic phenomena. Biometrika,
   37(1/2), 17-23.
.. [2] Geary, R. C. (1954). The contiguity ratio and statistical mapping. The
   Incorporated Statistician, 5(3), 115-145.
.. [3] Cliff, A. D., & Ord, J. K. (1981). Spatial Processes: Models and Applications.
   Pion. (Moments of I and C under normality and randomisation.)
.. [4] Anselin, L. (1995). Local indicators of spatial association - LISA. Geographical
   Analysis, 27(2), 93-115.
.. [5] Sokal, R. R., Oden, N. L., & Thomson, B. A. (1998). Local spatial autocorrelation
   in a biological model. Geographical Analysis, 30(4), 331-354.
.. [6] Rathi, N., Mehrer, J., AlKhamissi, B., Binhuraib, T., Blauch, N. M., & Schrimpf, M.
   (2025). TopoLM: brain-like spatio-functional organization in a topographic language
   model. ICLR 2025.
.. [7] Margalit, E., Lee, H., Finzi, D., DiCarlo, J. J., Grill-Spector, K., & Yamins,
   D. L. K. (2024). A unifying framework for functional organization in early and higher
   ventral visual cortex. Neuron, 112(14), 2435-2451 (TDANN).
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr

from ._utils._adjacency import (
    DEFAULT_ADJACENCY,
    adjacency_name,
    check_adjacency,
    deprecated_alias,
    user_stacklevel,
)
from ._utils._docs import fill_doc
from ._utils._hashing import hash_arrays
from ._utils._permutation import (
    BLOCK_SIZE,
    as_seed_sequence,
    block_keys,
    block_rng,
    n_blocks,
    permutation_pvalue,
    run_blocks,
    seed_record,
)
from ._utils._repr import FrameReprMixin
from ._utils._sparse import submatrix
from ._utils._stats import moran_i_raw, near_constant
from ._utils._validation import check_finite, check_option
from .sheet import CorticalSheet, grid_weights, transform_weights

__all__ = [
    "DistanceProfile",
    "GearyResult",
    "LocalMoranResult",
    "MoranResult",
    "decay_distance",
    "distance_profile",
    "gearys_c",
    "local_morans_i",
    "morans_i",
]

Alternative = Literal["two-sided", "greater", "less", "directed"]
Transform = Literal["r", "b"]
_ALTERNATIVES = ("two-sided", "greater", "less", "directed")
_TRANSFORMS = ("r", "b", None)

# Elements per working array in the null computations (memory and cache bound only; any
# value gives identical numbers).
_CHUNK_ELEMENTS = 1 << 17


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------
def _fmt(x) -> str:
    if x is None:
        return "None"
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        return f"{float(a):.4g}"
    if a.size == 0 or np.all(np.isnan(a)):
        return "nan"
    return f"[{np.nanmin(a):.4g} .. {np.nanmax(a):.4g}]"


def _frame_columns(result, names: dict[str, str], n_maps: int) -> dict[str, Any]:
    cols: dict[str, Any] = {"map": np.arange(n_maps)}
    for attr, col in names.items():
        val = getattr(result, attr)
        if val is None:
            cols[col] = np.full(n_maps, np.nan)
        else:
            cols[col] = np.broadcast_to(np.asarray(val), (n_maps,)).copy()
    return cols


class _GlobalResultMixin:
    """What MoranResult and GearyResult share: the batch size and the tidy table."""

    _stat: str  # the statistic's field: "I" or "C"
    _stat_column: str  # its column in to_frame()
    _expected_column: str

    @property
    def statistic(self):
        """Alias of the statistic's field (``I`` or ``C``)."""
        return getattr(self, self._stat)

    @property
    def n_maps(self) -> int | None:
        """Number of maps of a batch, ``None`` for a single map."""
        a = np.asarray(self.statistic)
        return None if a.ndim == 0 else int(a.shape[0])

    def to_frame(self):
        """One row per map: the statistic, moments, z, p-values, counts, parameters."""
        import pandas as pd

        names = {self._stat: self._stat_column, "expected": self._expected_column}
        names.update({k: k for k in (
            "variance_norm", "variance_rand", "z_norm", "z_rand", "p_norm", "p_rand",
            "p_sim", "expected_sim", "variance_sim", "z_sim", "p_z_sim", "n_cells",
            "n_islands")})
        df = pd.DataFrame(_frame_columns(self, names, self.n_maps or 1))
        df["alternative"] = self.params.get("alternative")
        df["n_permutations"] = self.params.get("n_permutations")
        return df


@dataclass(frozen=True, eq=False)
class MoranResult(_GlobalResultMixin, FrameReprMixin):
    """Global Moran's I of one map or a batch of maps, with its inference.

    Scalars (0-d) for one map; arrays of shape ``(n_maps,)`` for a batch. Fields that
    need permutations are ``None`` when ``n_permutations == 0``.

    Attributes
    ----------
    I : float or ndarray of shape (n_maps,)
        Moran's I. NaN for a constant map or one with fewer than 4 usable cells.
    expected : float or ndarray
        ``E[I] = -1 / (n - 1)`` under the null.
    variance_norm, variance_rand : float or ndarray
        Variance of I under normality and under randomisation (Cliff & Ord).
    z_norm, z_rand : float or ndarray
        ``(I - E[I]) / sqrt(variance)``.
    p_norm, p_rand : float or ndarray
        Normal-approximation p-values with the sidedness of ``params["alternative"]``.
    null : ndarray of shape (n_permutations,) or (n_maps, n_permutations), or None
        Moran's I of the permuted maps.
    p_sim : float or ndarray, or None
        Pseudo p-value (see the module docstring for each ``alternative``).
    expected_sim, variance_sim : float or ndarray, or None
        Mean and (population) variance of ``null``.
    z_sim, p_z_sim : float or ndarray, or None
        ``(I - expected_sim) / sqrt(variance_sim)`` and its normal p-value.
    n_cells, n_islands : int or ndarray of int
        Cells used, and cells dropped as islands (no neighbour after the NaN drop).
    params : dict
        ``alternative``, ``n_permutations``, ``seed`` and ``spawn_key`` (the permutation
        core's record of the seed sequence; None without permutations), ``transform``,
        ``adjacency`` (``"queen"``, ``"rook"`` or a description of the matrix).
    """

    I: Any  # noqa: E741  (the statistic's published name)
    expected: Any
    variance_norm: Any
    variance_rand: Any
    z_norm: Any
    z_rand: Any
    p_norm: Any
    p_rand: Any
    null: np.ndarray | None
    p_sim: Any
    expected_sim: Any
    variance_sim: Any
    z_sim: Any
    p_z_sim: Any
    n_cells: Any
    n_islands: Any
    params: dict = field(default_factory=dict)

    _stat = "I"
    _stat_column = "moran_i"
    _expected_column = "expected_i"

    def __repr__(self) -> str:
        lead = "" if self.n_maps is None else f"n_maps={self.n_maps}, "
        sim = "" if self.p_sim is None else f", p_sim={_fmt(self.p_sim)}"
        return (
            f"MoranResult({lead}I={_fmt(self.I)}, expected={_fmt(self.expected)}, "
            f"z_rand={_fmt(self.z_rand)}, p_rand={_fmt(self.p_rand)}{sim}, "
            f"n_cells={_fmt(self.n_cells)}, alternative={self.params.get('alternative')!r}, "
            f"n_permutations={self.params.get('n_permutations')})"
        )


@dataclass(frozen=True, eq=False)
class GearyResult(_GlobalResultMixin, FrameReprMixin):
    """Global Geary's C of one map or a batch of maps, with its inference.

    ``C < 1`` means positive spatial autocorrelation, so for Geary ``alternative="less"``
    is the test for smooth maps. Shapes and ``None`` rules as :class:`MoranResult`.

    Attributes
    ----------
    C : float or ndarray of shape (n_maps,)
        Geary's C.
    expected : float or ndarray
        ``E[C] = 1``.
    variance_norm, variance_rand, z_norm, z_rand, p_norm, p_rand : float or ndarray
        Moments under normality and randomisation, z-scores and normal p-values.
    null, p_sim, expected_sim, variance_sim, z_sim, p_z_sim : ndarray or None
        Permutation inference, as for :class:`MoranResult`.
    n_cells, n_islands : int or ndarray of int
    params : dict
        As for :class:`MoranResult`.
    """

    C: Any
    expected: Any
    variance_norm: Any
    variance_rand: Any
    z_norm: Any
    z_rand: Any
    p_norm: Any
    p_rand: Any
    null: np.ndarray | None
    p_sim: Any
    expected_sim: Any
    variance_sim: Any
    z_sim: Any
    p_z_sim: Any
    n_cells: Any
    n_islands: Any
    params: dict = field(default_factory=dict)

    _stat = "C"
    _stat_column = "geary_c"
    _expected_column = "expected_c"

    def __repr__(self) -> str:
        lead = "" if self.n_maps is None else f"n_maps={self.n_maps}, "
        sim = "" if self.p_sim is None else f", p_sim={_fmt(self.p_sim)}"
        return (
            f"GearyResult({lead}C={_fmt(self.C)}, z_rand={_fmt(self.z_rand)}, "
            f"p_rand={_fmt(self.p_rand)}{sim}, n_cells={_fmt(self.n_cells)}, "
            f"alternative={self.params.get('alternative')!r}, "
            f"n_permutations={self.params.get('n_permutations')})"
        )


@dataclass(frozen=True, eq=False)
class LocalMoranResult(FrameReprMixin):
    """Local Moran's I (LISA) of every cell, with conditional-permutation inference.

    Per-cell arrays have the cells' shape of the input: ``(n_rows, n_cols)`` for a map,
    ``(n_cells,)`` for a vector, with a leading ``n_maps`` axis for a batch. Dropped cells
    (NaN or islands) hold NaN (and ``""`` in ``quadrant``).

    Attributes
    ----------
    I : ndarray
        ``I_i = (n - 1) z_i (W z)_i / sum(z**2)`` with centred ``z`` (esda's scaling).
    quadrant : ndarray of str
        ``"HH"``, ``"LH"``, ``"LL"`` or ``"HL"``: sign of ``z_i`` then of its spatial lag
        (``H`` for > 0). esda's ``q`` codes 1, 2, 3, 4 in that order.
    expected, variance : ndarray
        Analytical moments under total randomisation (Sokal et al. 1998, A3-A4).
    expected_cond, variance_cond : ndarray
        Analytical moments under conditional randomisation (Sokal et al. 1998, A7-A8).
    p_sim : ndarray or None
        Conditional-permutation pseudo p-values (z_i fixed, the other values permuted).
    expected_sim, variance_sim, z_sim, p_z_sim : ndarray or None
        Moments of the conditional null, the z-score and its normal p-value.
    null : ndarray of shape (..., n_permutations) or None
        Permuted local statistics, kept only with ``keep_null=True``.
    n_cells, n_islands : int or ndarray of int
    params : dict
        As for :class:`MoranResult`, plus ``cell_shape``.
    """

    I: np.ndarray  # noqa: E741
    quadrant: np.ndarray
    expected: np.ndarray
    variance: np.ndarray
    expected_cond: np.ndarray
    variance_cond: np.ndarray
    p_sim: np.ndarray | None
    expected_sim: np.ndarray | None
    variance_sim: np.ndarray | None
    z_sim: np.ndarray | None
    p_z_sim: np.ndarray | None
    null: np.ndarray | None
    n_cells: Any
    n_islands: Any
    params: dict = field(default_factory=dict)

    @property
    def statistic(self):
        """Alias of :attr:`I`."""
        return self.I

    def __repr__(self) -> str:
        shape = tuple(np.shape(self.I))
        counts = {q: int((self.quadrant == q).sum()) for q in ("HH", "LH", "LL", "HL")}
        sig = ""
        if self.p_sim is not None:
            sig = f", n_p_sim<.05={int(np.nansum(self.p_sim < 0.05))}"
        return (
            f"LocalMoranResult(shape={shape}, I={_fmt(self.I)}, quadrants={counts}{sig}, "
            f"alternative={self.params.get('alternative')!r}, "
            f"n_permutations={self.params.get('n_permutations')})"
        )

    def _cell_axes(self) -> tuple[int, ...]:
        return tuple(self.params.get("cell_shape", np.shape(self.I)))

    def to_frame(self):
        """One row per kept cell (x map): ``map``, ``cell``, ``row``/``col`` for maps,
        ``local_i``, ``quadrant``, moments and p-values."""
        import pandas as pd

        cell_shape = self._cell_axes()
        n_cells_total = int(np.prod(cell_shape))
        arr = lambda a: None if a is None else np.asarray(a).reshape(-1, n_cells_total)  # noqa: E731
        local = arr(self.I)
        n_maps = local.shape[0]
        cols = {
            "map": np.repeat(np.arange(n_maps), n_cells_total),
            "cell": np.tile(np.arange(n_cells_total), n_maps),
        }
        if len(cell_shape) == 2:
            r, c = np.divmod(cols["cell"], cell_shape[1])
            cols["row"], cols["col"] = r, c
        for attr, col in [("I", "local_i"), ("quadrant", "quadrant"),
                          ("expected", "expected_i"), ("variance", "variance_i"),
                          ("expected_cond", "expected_cond"), ("variance_cond", "variance_cond"),
                          ("p_sim", "p_sim"), ("expected_sim", "expected_sim"),
                          ("variance_sim", "variance_sim"), ("z_sim", "z_sim"),
                          ("p_z_sim", "p_z_sim")]:
            val = arr(getattr(self, attr))
            cols[col] = np.full(n_maps * n_cells_total, np.nan) if val is None else val.ravel()
        df = pd.DataFrame(cols)
        df = df[df["quadrant"] != ""].reset_index(drop=True)
        df["alternative"] = self.params.get("alternative")
        return df

    def to_xarray(self):
        """The per-cell fields as an ``xarray.Dataset`` with dims ``(map,) row, col`` (maps)
        or ``(map,) cell`` (vectors)."""
        import xarray as xr

        cell_shape = self._cell_axes()
        cell_dims = ("row", "col") if len(cell_shape) == 2 else ("cell",)
        lead = np.shape(self.I)[: np.ndim(self.I) - len(cell_shape)]
        dims = (("map",) if lead else ()) + cell_dims
        data = {}
        for attr in ("I", "quadrant", "expected", "variance", "expected_cond",
                     "variance_cond", "p_sim", "expected_sim", "variance_sim", "z_sim",
                     "p_z_sim"):
            val = getattr(self, attr)
            if val is not None:
                data["local_i" if attr == "I" else attr] = (dims, np.asarray(val))
        return xr.Dataset(data, attrs={k: str(v) for k, v in self.params.items()})


@dataclass(frozen=True, eq=False)
class DistanceProfile(FrameReprMixin):
    """Correlation of unit responses as a function of sheet distance.

    Attributes
    ----------
    bin_edges : ndarray of shape (n_bins + 1,)
        Distance bin edges, in sheet units (or the positions' units).
    distance : ndarray of shape (n_bins,)
        Mean distance of the pairs in each bin (NaN for an empty bin).
    correlation : ndarray of shape (n_bins,)
        Mean Pearson correlation (over items) of the unit pairs in each bin.
    correlation_sem : ndarray of shape (n_bins,)
        Its standard error (pairs treated as independent: a descriptive band only).
    n_pairs : ndarray of int, shape (n_bins,)
        Unit pairs with a finite correlation in each bin.
    smoothness : float
        TDANN smoothness ``(max(d) - d[0]) / max(d)`` of the dissimilarity curve
        ``d = 1 - correlation`` (``d[0]``: the first non-empty bin). Near 1 when close
        units respond alike and far ones do not; near 0 for a map without topography.
    effective_dim : float
        Participation ratio ``(sum lambda)**2 / sum(lambda**2)`` of the eigenvalues of the
        units' covariance over items (all units, never subsampled).
    n_units, n_items : int
        Units used for the curve (after ``max_units``) and items.
    params : dict
    """

    bin_edges: np.ndarray
    distance: np.ndarray
    correlation: np.ndarray
    correlation_sem: np.ndarray
    n_pairs: np.ndarray
    smoothness: float
    effective_dim: float
    n_units: int
    n_items: int
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"DistanceProfile(n_bins={self.distance.size}, smoothness={self.smoothness:.4g}, "
            f"effective_dim={self.effective_dim:.4g}, n_units={self.n_units}, "
            f"n_items={self.n_items})"
        )

    def to_frame(self):
        """One row per distance bin."""
        import pandas as pd

        return pd.DataFrame({
            "bin_lower": self.bin_edges[:-1], "bin_upper": self.bin_edges[1:],
            "distance": self.distance, "correlation": self.correlation,
            "correlation_sem": self.correlation_sem, "n_pairs": self.n_pairs,
            "smoothness": self.smoothness, "effective_dim": self.effective_dim,
        })


# ---------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------
@dataclass
class _Input:
    flat: np.ndarray            # (n_maps, n_cells) float64, a private copy
    batch: bool
    cell_shape: tuple           # (n_rows, n_cols) for grid maps, (n_cells,) for vectors
    grid_kind: str | None       # "queen"/"rook" when the weights are the grid's
    base: sp.csr_matrix | None  # given weights over all cells (None for grid weights)
    adjacency: str              # what params["adjacency"] records (adjacency_name)

    @functools.cached_property
    def base_digest(self) -> str:
        """SHA-256 of the given weights (validated CSR arrays): their cache key."""
        return hash_arrays(np.asarray(self.base.shape), self.base.indptr, self.base.indices,
                           self.base.data, prefix="spatial.weights")


def _prepare(values, adjacency) -> _Input:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"values must be a numeric array (a map, a vector or a batch of them); got "
            f"{type(values).__name__} ({exc})."
        ) from None
    check_finite(arr, "values", allow_nan=True)
    adj = check_adjacency(adjacency)
    if isinstance(adj, str):
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"Without an adjacency matrix, values must be a 2D map (n_rows, n_cols) or a "
                f"batch of maps (n_maps, n_rows, n_cols); got shape {arr.shape}. For a vector "
                f"or a mesh, pass adjacency=<scipy.sparse matrix of shape (n_cells, n_cells)>."
            )
        batch = arr.ndim == 3
        cell_shape = tuple(arr.shape[-2:])
        flat = arr.reshape(-1, cell_shape[0] * cell_shape[1]).copy()
        return _Input(flat, batch, cell_shape, adj, None, adj)
    w = sp.csr_matrix(adj)  # a validated private copy: float64, no zeros, sorted indices
    n = w.shape[0]
    if arr.ndim in (1, 2) and arr.shape[-1] == n:
        batch = arr.ndim == 2
        cell_shape = (n,)
    elif arr.ndim in (2, 3) and arr.shape[-2] * arr.shape[-1] == n:
        batch = arr.ndim == 3
        cell_shape = tuple(arr.shape[-2:])
    else:
        raise ValueError(
            f"values must have one entry per adjacency row ({n}) on the last axis (a vector "
            f"or a batch (n_maps, {n})), or be maps whose cells number {n}; got shape "
            f"{arr.shape}."
        )
    flat = arr.reshape(-1, n).copy()
    return _Input(flat, batch, cell_shape, None, w, adjacency_name(adjacency))


def _drop_islands(idx: np.ndarray, w) -> tuple[np.ndarray, sp.csr_matrix, int]:
    """Drop cells without any neighbour, repeatedly (asymmetric weights can make new ones)."""
    w = sp.csr_matrix(w)
    w.eliminate_zeros()
    n_islands = 0
    while True:
        island = np.diff(w.indptr) == 0
        if not island.any():
            break
        n_islands += int(island.sum())
        ok = np.flatnonzero(~island)
        idx, w = idx[ok], submatrix(w, ok)
        w.eliminate_zeros()
    return idx, sp.csr_matrix(w), n_islands


def _transform(w: sp.csr_matrix, transform) -> sp.csr_matrix:
    if transform is None:
        out = w.copy()
    else:
        out = transform_weights(w, transform)
    out.sort_indices()
    return out


class _Weights:
    """Weights of one group of maps: kept cells, transformed weights and derived sums.

    Shared through a cache for grid weights: never modified after construction.
    """

    def __init__(self, idx: np.ndarray, w: sp.csr_matrix, n_islands: int):
        idx.setflags(write=False)
        self.idx, self.w, self.n_islands = idx, w, n_islands
        self._sums = self._upper = self._rc = self._sym = None

    @property
    def sym(self) -> sp.csr_matrix:
        """``W + W'``."""
        if self._sym is None:
            self._sym = (self.w + self.w.T).tocsr()
        return self._sym

    @property
    def sums(self) -> tuple[float, float, float]:
        if self._sums is None:
            self._sums = _weight_sums(self.w, self.sym, self.row_col)
        return self._sums

    @property
    def row_col(self) -> np.ndarray:
        """Row plus column sums of the weights, shape (n,)."""
        if self._rc is None:
            w = self.w
            self._rc = np.asarray(w.sum(axis=1)).ravel() + np.asarray(w.sum(axis=0)).ravel()
        return self._rc

    @property
    def upper(self) -> tuple[tuple, float, int]:
        """The upper form U grouped by row length (``_permnull.ell_groups``), the bound rho
        on |x|'|U||x| / |x|^2, and U's longest row."""
        if self._upper is None:
            from ._utils._permnull import ell_groups

            u = _upper_form(self.w, self.sym)
            absu = abs(u)
            rho = 0.5 * float(np.max(np.asarray(absu.sum(0)).ravel()
                                     + np.asarray(absu.sum(1)).ravel()))
            k_row = int(np.max(np.diff(u.indptr))) if u.nnz else 0
            self._upper = (ell_groups(u), rho, k_row)
        return self._upper


_GRID_CACHE_CELLS = 1 << 14  # grids up to 128 x 128 are cached (a few MB at most each)


def _grid_group_weights_nocache(shape, kind, transform, packed: bytes) -> _Weights:
    n = shape[0] * shape[1]
    keep = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=n).astype(bool)
    w = grid_weights(shape, kind, transform="b", mask=keep.reshape(shape))
    idx, w, isl = _drop_islands(np.flatnonzero(keep), w)
    return _Weights(idx, _transform(w, transform) if idx.size else w, isl)


_grid_group_weights = functools.lru_cache(maxsize=16)(_grid_group_weights_nocache)


def _group_weights(inp: _Input, keep: np.ndarray, transform) -> _Weights:
    """The binary adjacency (or the given weights) restricted to the kept cells, islands
    dropped, then transformed; cached (grid weights by shape, given weights by content)."""
    if inp.grid_kind is not None:
        fn = (_grid_group_weights if keep.size <= _GRID_CACHE_CELLS
              else _grid_group_weights_nocache)
        return fn(tuple(inp.cell_shape), inp.grid_kind, transform, np.packbits(keep).tobytes())
    key = (inp.base_digest, transform, np.packbits(keep).tobytes())
    return _MATRIX_CACHE.get(key, lambda: _matrix_group_weights(inp.base, keep, transform))


def _matrix_group_weights(base: sp.csr_matrix, keep: np.ndarray, transform) -> _Weights:
    idx0 = np.flatnonzero(keep)
    idx, w, isl = _drop_islands(idx0, submatrix(base, idx0))
    return _Weights(idx, _transform(w, transform) if idx.size else w, isl)


class _ContentCache:
    """The last few ``_Weights`` built from given weights matrices, keyed by content.

    The key is the matrix's SHA-256 (1.4 ms for a 32k-vertex mesh, where rebuilding the
    restricted, transformed weights and their upper form takes about 10 ms), the transform
    and the kept cells, so a matrix changed in place is a new key, never a stale hit.
    """

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, build):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def clear(self):
        with self._lock:
            self._items.clear()


_MATRIX_CACHE = _ContentCache(maxsize=4)


def _groups(flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Maps grouped by NaN pattern: list of (map indices, keep mask)."""
    keep = ~np.isnan(flat)
    if keep.shape[0] == 1:
        return [(np.array([0]), keep[0])]
    packed = np.packbits(keep, axis=1)
    if (packed == packed[0]).all():  # one pattern (the usual case): skip the row sort
        return [(np.arange(keep.shape[0]), keep[0])]
    _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    return [(np.flatnonzero(inverse == g), keep[first[g]]) for g in range(first.size)]


def _check_common(alternative, transform, n_permutations):
    check_option("alternative", alternative, _ALTERNATIVES)
    check_option("transform", transform, _TRANSFORMS)
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)):
        raise TypeError(
            f"n_permutations must be a non-negative int; got {type(n_permutations).__name__}."
        )
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0; got {n_permutations}.")
    return int(n_permutations)


def _seed_params(ss) -> dict:
    """The ``seed`` and ``spawn_key`` a result records (None when nothing was drawn)."""
    return {"seed": None, "spawn_key": None} if ss is None else seed_record(ss)


# ---------------------------------------------------------------------------------------
# p-values
# ---------------------------------------------------------------------------------------
def _normal_p(z, alternative):
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        if alternative == "greater":
            return ndtr(-z)
        if alternative == "less":
            return ndtr(z)
        one = ndtr(-np.abs(z))
        return one if alternative == "directed" else np.minimum(1.0, 2.0 * one)


def _p_sim(obs, null, alternative):
    """Permutation p-values of ``obs`` (shape S) against ``null`` (shape (*S, B)), by the
    core's rule (:func:`~topobrain._utils._permutation.permutation_pvalue`); ``"directed"``
    is the smaller of the two one-sided p-values (esda's ``p_sim``)."""
    null = np.moveaxis(null, -1, 0)
    if alternative == "directed":
        return np.minimum(permutation_pvalue(obs, null, "greater"),
                          permutation_pvalue(obs, null, "less"))
    return permutation_pvalue(obs, null, alternative)


def _sim_summary(null, obs, alternative):
    """p_sim, mean, variance, z and p_z of a (m, B) null against (m,) observed values."""
    mean = null.mean(-1)
    var = null.var(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (obs - mean) / np.sqrt(var)
    return _p_sim(obs, null, alternative), mean, var, z, _normal_p(z, alternative)


# ---------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------
def _weight_sums(w: sp.csr_matrix, sym: sp.csr_matrix,
                 row_col: np.ndarray) -> tuple[float, float, float]:
    """S0, S1, S2 of Cliff & Ord, given ``sym = W + W'`` and the row plus column sums."""
    s0 = float(w.sum())
    s1 = 0.5 * float((sym.data * sym.data).sum())  # not np.dot: no BLAS threads left spinning
    s2 = float((row_col * row_col).sum())
    return s0, s1, s2


def _geary_raw(z: np.ndarray, w: sp.csr_matrix) -> np.ndarray:
    """Geary's C of many maps ``(n_maps, n_cells)`` over the same weights (no NaN)."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    n = z.shape[-1]
    zc = z - z.mean(-1, keepdims=True)
    coo = w.tocoo()
    d = zc[:, coo.row] - zc[:, coo.col]
    num = (d * d) @ coo.data
    den = 2.0 * float(w.sum()) * (zc * zc).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (n - 1) * num / den


def _upper_form(w: sp.csr_matrix, sym: sp.csr_matrix) -> sp.csr_matrix:
    """U with ``x' U x == x' W x``: the upper triangle of ``sym = W + W'`` plus W's diagonal."""
    u = sp.triu(sym, k=1, format="csr")
    diag = w.diagonal()
    if np.any(diag):
        u = sp.csr_matrix(u + sp.diags(diag))
    u.eliminate_zeros()
    u.sort_indices()
    return u


@dataclass
class _NullSpec:
    """What the global permutation engine needs for one group of maps."""

    xs: np.ndarray              # (m, n) float64 maps, centred, unit RMS, C-contiguous
    ell: tuple                  # _permnull.ell_groups of the upper form of the weights
    g: np.ndarray               # (n,) row + column sums (Geary), or (0,) (Moran)
    a: np.ndarray               # (m,) coefficient of q = x'Ux
    c: np.ndarray               # (m,) coefficient of l = g'x^2
    obs: np.ndarray             # (m,) observed statistic
    tol: np.ndarray             # (m,) bound on the rounding error of a permuted statistic
    w: sp.csr_matrix            # transformed weights (exact recomputation)
    kind: str                   # "moran" or "geary"


def _exact_stat(spec: _NullSpec, x: np.ndarray) -> np.ndarray:
    if spec.kind == "moran":
        return moran_i_raw(x, spec.w)
    return _geary_raw(x, spec.w)


def _perm_keys(ss: np.random.SeedSequence, k: int, n_perm: int) -> np.ndarray:
    """The 64-bit keys of the permutations of block ``k`` (the core's ``block_keys``; the
    last block of ``n_perm`` permutations keeps a prefix of its keys)."""
    return block_keys(ss, k, BLOCK_SIZE)[:min(BLOCK_SIZE, n_perm - k * BLOCK_SIZE)]


def _null_blocks(spec: _NullSpec, ss: np.random.SeedSequence, n_perm: int,
                 blocks) -> np.ndarray:
    """Permuted statistics for the given permutation blocks: (m, sum of block lengths)."""
    from ._utils import _permnull

    m, n = spec.xs.shape
    if n >= 2**31:
        raise ValueError(f"{n} cells: permutation nulls index cells with int32 (at most "
                         f"{2**31 - 1}); split the map.")
    keys = [_perm_keys(ss, k, n_perm) for k in blocks]
    if not keys:
        return np.empty((m, 0))
    keys = np.concatenate(keys)
    stat = np.empty((m, keys.size))
    _permnull.null_statistics(spec.xs, keys, spec.a, spec.c, spec.g, *spec.ell, stat)
    # redo with the observed statistic's own arithmetic what rounding could misplace
    near = np.abs(stat - spec.obs[:, None]) <= spec.tol[:, None]
    if near.any():
        mi, pi = np.nonzero(near)
        perms = _permnull.permutations(keys[pi], n)
        rows = spec.xs[mi[:, None], perms]                          # (k, n)
        for j in np.unique(mi):
            sel = mi == j
            stat[j, pi[sel]] = _exact_stat(spec, rows[sel])
    return stat


# ---------------------------------------------------------------------------------------
# global statistics
# ---------------------------------------------------------------------------------------
def _global(kind, values, adjacency, *, n_permutations, alternative, transform, seed, n_jobs,
            verbose):
    n_perm = _check_common(alternative, transform, n_permutations)
    inp = _prepare(values, adjacency)
    n_maps = inp.flat.shape[0]
    nan = np.full(n_maps, np.nan)
    stat, expected = nan.copy(), nan.copy()
    v_norm, v_rand = nan.copy(), nan.copy()
    n_cells = np.zeros(n_maps, dtype=np.int64)
    n_islands = np.zeros(n_maps, dtype=np.int64)
    null = np.full((n_maps, n_perm), np.nan) if n_perm else None
    ss = as_seed_sequence(seed) if n_perm else None
    few, constant = [], []
    for maps, keep in _groups(inp.flat):
        gw = _group_weights(inp, keep, transform)
        idx, w = gw.idx, gw.w
        n_islands[maps] = gw.n_islands
        n = idx.size
        n_cells[maps] = n
        if n < 4:
            few.extend(maps.tolist())
            continue
        z = inp.flat[np.ix_(maps, idx)]
        flat = near_constant(z)  # variance at rounding level: no statistic, never a p-value
        z = z - z.mean(-1, keepdims=True)
        z2 = z * z
        sq = z2.sum(-1)
        ok = (sq > 0) & ~flat
        if not ok.all():
            constant.extend(maps[~ok].tolist())
        s0, s1, s2 = gw.sums
        n2 = float(n) * n
        s02 = s0 * s0
        with np.errstate(divide="ignore", invalid="ignore"):
            k = ((z2 * z2).sum(-1) / n) / (sq / n) ** 2
        if kind == "moran":
            obs = moran_i_raw(z, w)
            ei = -1.0 / (n - 1)
            vn = (n2 * s1 - n * s2 + 3 * s02) / ((n - 1) * (n + 1) * s02) - ei * ei
            a_ = n * ((n2 - 3 * n + 3) * s1 - n * s2 + 3 * s02)
            b_ = k * ((n2 - n) * s1 - 2 * n * s2 + 6 * s02)
            vr = (a_ - b_) / ((n - 1) * (n - 2) * (n - 3) * s02) - ei * ei
        else:
            obs = _geary_raw(z, w)
            ei = 1.0
            a_ = (n - 1) * s1 * (n2 - 3 * n + 3 - (n - 1) * k)
            b_ = 0.25 * ((n - 1) * s2 * (n2 + 3 * n - 6 - (n2 - n + 2) * k))
            c_ = s02 * (n2 - 3 - (n - 1) ** 2 * k)
            vr = (a_ - b_ + c_) / (n * (n - 2) * (n - 3) * s02)
            vn = (1.0 / (2 * (n + 1) * s02)) * ((2 * s1 + s2) * (n - 1) - 4 * s02)
        obs = np.where(ok, obs, np.nan)
        stat[maps] = obs
        expected[maps] = ei
        v_norm[maps] = np.where(ok, vn, np.nan)
        v_rand[maps] = np.where(ok, vr, np.nan)
        if n_perm and ok.any():
            good = maps[ok]
            xs = z[ok] / np.sqrt(sq[ok] / n)[:, None]
            ell, rho, k_row = gw.upper
            # rounding bound of the kernel's double-precision sums (rows in sequence,
            # each row's k_row terms in sequence)
            gamma = 2.0 * (k_row + n + 8) * (float(np.finfo(np.float64).eps) / 2)
            m = good.size
            if kind == "moran":
                g = np.empty(0)
                a = np.full(m, 1.0 / s0)
                c = np.zeros(m)
                tol = np.full(m, gamma * rho * n / s0)
            else:
                g = np.ascontiguousarray(gw.row_col, dtype=np.float64)
                a = np.full(m, -(n - 1) / (s0 * n))
                c = np.full(m, (n - 1) / (2 * s0 * n))
                tol = np.full(m, (n - 1) / (2 * s0) * gamma * (np.abs(g).max() + 2 * rho))
            spec = _NullSpec(xs=np.ascontiguousarray(xs), ell=ell, g=g, a=a, c=c,
                             obs=obs[ok], tol=tol, w=w, kind=kind)
            parts = run_blocks(functools.partial(_null_blocks, spec, ss, n_perm),
                               range(n_blocks(n_perm)), n_jobs=n_jobs, threads=True,
                               verbose=verbose, desc=f"{_NAMES[kind]} null")
            null[good] = np.concatenate(parts, axis=1)
    if few:
        warnings.warn(
            f"{len(few)} of {n_maps} maps have fewer than 4 usable cells (after dropping NaN "
            f"cells and islands); their statistics are NaN.", UserWarning,
            stacklevel=user_stacklevel(),
        )
    if constant:
        warnings.warn(
            f"{len(constant)} of {n_maps} maps are constant over their cells (exactly, or to "
            f"rounding: variation below 1e-10 of their magnitude); their statistics are NaN.",
            UserWarning, stacklevel=user_stacklevel(),
        )
    if n_islands.sum():
        n_with = int((n_islands > 0).sum())
        warnings.warn(
            f"Dropped {int(n_islands.sum())} island cells (no neighbour left after dropping "
            f"NaN cells) in {n_with} of {n_maps} maps; see n_islands.", UserWarning,
            stacklevel=user_stacklevel(),
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        z_norm = (stat - expected) / np.sqrt(v_norm)
        z_rand = (stat - expected) / np.sqrt(v_rand)
    out = {
        "stat": stat, "expected": expected, "variance_norm": v_norm, "variance_rand": v_rand,
        "z_norm": z_norm, "z_rand": z_rand, "p_norm": _normal_p(z_norm, alternative),
        "p_rand": _normal_p(z_rand, alternative), "null": null, "p_sim": None,
        "expected_sim": None, "variance_sim": None, "z_sim": None, "p_z_sim": None,
        "n_cells": n_cells, "n_islands": n_islands,
    }
    if n_perm:
        p_sim, mean, var, zs, pz = _sim_summary(null, stat, alternative)
        out.update(p_sim=p_sim, expected_sim=mean, variance_sim=var, z_sim=zs, p_z_sim=pz)
    if not inp.batch:
        out = {k: (None if v is None else (v[0] if k == "null" else v[0].item()))
               for k, v in out.items()}
    params = {"alternative": alternative, "n_permutations": n_perm, **_seed_params(ss),
              "transform": transform, "adjacency": inp.adjacency}
    return out, params


_NAMES = {"moran": "Moran's I", "geary": "Geary's C"}


@deprecated_alias(weights="adjacency")
@fill_doc
def morans_i(
    values,
    adjacency=DEFAULT_ADJACENCY,
    *,
    n_permutations: int = 0,
    seed=None,
    alternative: Alternative = "two-sided",
    transform: Transform | None = "r",
    n_jobs: int | None = None,
    verbose: int = 1,
) -> MoranResult:
    """Global Moran's I of a map, a vector on a mesh, or a batch of either.

    Parameters
    ----------
    values : ndarray
        A map ``(n_rows, n_cols)`` or maps ``(n_maps, n_rows, n_cols)`` (NaN where no unit
        sits), or with an adjacency matrix a vector ``(n_cells,)`` or ``(n_maps, n_cells)``.
        Never modified.
    %(adjacency)s
        For a map the grid is row-major cells; a matrix gives weights between cells
        (e.g. a mesh adjacency; a dense square array works too), used before
        ``transform``. Recorded in ``params["adjacency"]``. (Formerly ``weights=``, which
        still works with a ``DeprecationWarning``.)
    n_permutations : int, default=0
        Random permutations of the values over the kept cells (0: none).
    %(seed)s
        A pipeline passes each test its own ``stream(seed, name)``; the spawn key is
        recorded too.
    alternative : {"two-sided", "greater", "less", "directed"}, default="two-sided"
        Sidedness of every p-value (see the module docstring; ``"directed"`` is esda's).
    transform : {"r", "b"} or None, default="r"
        Row-standardised (esda's default), binary, or the weights as given.
    %(n_jobs)s
        The jobs run in a thread pool (the compiled kernel releases the GIL) unless a
        non-local joblib backend such as dask is configured, which then gets them.
    %(verbose)s

    Returns
    -------
    MoranResult

    Notes
    -----
    ``I = (n / S0) * z' W z / z' z`` with ``z`` the centred values of the ``n`` kept cells
    and ``S0`` the sum of the weights; moments under normality and randomisation as in
    Cliff & Ord (1981), identical to ``esda.Moran``. A map that is constant over its
    kept cells, exactly or to rounding (its variation below ``1e-10`` of its magnitude,
    e.g. a map smoothed flat), gets NaN statistics and p-values with a warning.

    References
    ----------
    Moran (1950); Cliff & Ord (1981); Rathi et al. (2025), TopoLM (queen contiguity,
    row-standardised weights, on unthresholded t-maps).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> smooth = np.add.outer(np.arange(8.0), np.arange(8.0)) + rng.normal(0, 0.1, (8, 8))
    >>> res = morans_i(smooth, n_permutations=99, seed=0)
    >>> bool(res.I > 0.8), bool(res.p_sim < 0.05)
    (True, True)
    """
    out, params = _global("moran", values, adjacency, n_permutations=n_permutations,
                          alternative=alternative, transform=transform, seed=seed,
                          n_jobs=n_jobs, verbose=verbose)
    stat = out.pop("stat")
    return MoranResult(I=stat, params=params, **out)


@deprecated_alias(weights="adjacency")
def gearys_c(
    values,
    adjacency=DEFAULT_ADJACENCY,
    *,
    n_permutations: int = 0,
    seed=None,
    alternative: Alternative = "two-sided",
    transform: Transform | None = "r",
    n_jobs: int | None = None,
    verbose: int = 1,
) -> GearyResult:
    """Global Geary's C of a map, a vector on a mesh, or a batch of either.

    ``C = (n - 1) * sum_ij w_ij (x_i - x_j)**2 / (2 * S0 * sum_i z_i**2)``; ``C < 1``
    means positive autocorrelation (so ``alternative="less"`` tests for smooth maps).
    Parameters, NaN handling, permutations and p-values as :func:`morans_i`; moments as
    Cliff & Ord (1981), identical to ``esda.Geary``.

    Returns
    -------
    GearyResult

    References
    ----------
    Geary (1954); Cliff & Ord (1981).

    Examples
    --------
    >>> smooth = np.add.outer(np.arange(8.0), np.arange(8.0))
    >>> bool(gearys_c(smooth).C < 0.2)
    True
    """
    out, params = _global("geary", values, adjacency, n_permutations=n_permutations,
                          alternative=alternative, transform=transform, seed=seed,
                          n_jobs=n_jobs, verbose=verbose)
    stat = out.pop("stat")
    return GearyResult(C=stat, params=params, **out)


# ---------------------------------------------------------------------------------------
# local Moran
# ---------------------------------------------------------------------------------------
def _draw_distinct(rng: np.random.Generator, rows: int, k: int, n: int) -> np.ndarray:
    """``rows`` ordered draws of ``k`` distinct integers from ``range(n)``, uniformly."""
    if k == 0:
        return np.zeros((rows, 0), dtype=np.intp)
    if 4 * k > n:
        return rng.permuted(np.tile(np.arange(n, dtype=np.intp), (rows, 1)), axis=1)[:, :k]
    ids = rng.integers(0, n, size=(rows, k), dtype=np.intp)
    for j in range(1, k):
        while True:
            dup = (ids[:, j:j + 1] == ids[:, :j]).any(1)
            n_dup = int(dup.sum())
            if not n_dup:
                break
            ids[dup, j] = rng.integers(0, n, size=n_dup, dtype=np.intp)
    return ids


def _local_null_sites(zs, local, ids, wpad, self_w, scaling, alternative, keep_null, step,
                      starts):
    """Conditional-permutation summaries of the sites of the chunks that begin at
    ``starts`` (each ``step`` sites): (sites, p_sim, mean, variance, null or None)."""
    m, n = zs.shape
    n_perm = ids.shape[0]
    sites = np.concatenate([np.arange(s0, min(s0 + step, n)) for s0 in starts])
    p_sim = np.empty((m, sites.size))
    mean = np.empty((m, sites.size))
    var = np.empty((m, sites.size))
    null = np.empty((m, sites.size, n_perm)) if keep_null else None
    for c0 in range(0, sites.size, step):
        s = sites[c0:c0 + step]
        out = slice(c0, c0 + s.size)
        idx = ids[None, :, :] + (ids[None, :, :] >= s[:, None, None])   # skip site i
        for j in range(m):
            vals = zs[j][idx]                                      # (s, B, k)
            lag_p = np.einsum("sbk,sk->sb", vals, wpad[s])
            zi = zs[j, s][:, None]
            stat = scaling * zi * (lag_p + self_w[s][:, None] * zi)   # (s, B)
            p_sim[j, out] = _p_sim(local[j, s], stat, alternative)
            mean[j, out] = stat.mean(1)
            var[j, out] = stat.var(1)
            if keep_null:
                null[j, out] = stat
    return sites, p_sim, mean, var, null


def _local_group(z, w, n_perm, ss, alternative, keep_null, n_jobs, verbose):
    """Local Moran for the maps ``z`` (m, n) of one group (centred, no NaN)."""
    m, n = z.shape
    sq = (z * z).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = z / np.sqrt(sq / n)[:, None]       # standardised (population sd), as esda
    lag = (w @ zs.T).T
    scaling = (n - 1) / n                         # (n - 1) / sum(zs**2)
    local = scaling * zs * lag
    quad = np.where(zs > 0, np.where(lag > 0, "HH", "HL"), np.where(lag > 0, "LH", "LL"))
    # analytical moments (Sokal et al. 1998), zs standardised so m2 = 1
    wi = np.asarray(w.sum(axis=1)).ravel()
    wi2 = np.asarray(w.multiply(w).sum(axis=1)).ravel()
    m2 = (zs * zs).sum(-1, keepdims=True) / n
    zs2 = zs * zs
    m4 = (zs2 * zs2).sum(-1, keepdims=True) / n
    b2 = m4 / m2**2
    with np.errstate(divide="ignore", invalid="ignore"):
        e_cond = -(zs**2 * wi) / ((n - 1) * m2)
        v_cond = ((zs / m2) ** 2 * (n / (n - 2)) * (wi2 - wi**2 / (n - 1))
                  * (m2 - zs**2 / (n - 1)))
        e_tot = np.broadcast_to(-wi / (n - 1), (m, n)).copy()
        v_tot = (wi2 * (n - b2) / (n - 1) + (wi**2 - wi2) * (2 * b2 - n) / ((n - 1) * (n - 2))
                 - (wi / (n - 1)) ** 2)
    res = {"I": local, "quadrant": quad, "expected": e_tot, "variance": v_tot,
           "expected_cond": e_cond, "variance_cond": v_cond}
    if not n_perm:
        return res
    # conditional permutation: z_i fixed, its k_i neighbour slots get distinct other values
    self_w = w.diagonal()
    off = sp.csr_matrix(w - sp.diags(self_w))
    off.eliminate_zeros()
    off.sort_indices()
    card = np.diff(off.indptr)
    k_max = int(card.max()) if n else 0
    wpad = np.zeros((n, k_max))
    pos = np.arange(off.nnz) - np.repeat(off.indptr[:-1], card)
    wpad[np.repeat(np.arange(n), card), pos] = off.data
    # the draws: block b of the permutation core gives its permutations' k_max distinct
    # other cells, (B, k) indices into range(n - 1); the same draws serve every cell
    ids = np.concatenate([
        _draw_distinct(block_rng(ss, b), min(BLOCK_SIZE, n_perm - b * BLOCK_SIZE), k_max,
                       n - 1)
        for b in range(n_blocks(n_perm))])
    p_sim = np.empty((m, n))
    mean = np.empty((m, n))
    var = np.empty((m, n))
    null = np.empty((m, n, n_perm)) if keep_null else None
    # sites are independent given the draws: chunks of sites go through the core's
    # dispatcher (threads locally: numpy's gathers and sums release the GIL)
    step = max(1, _CHUNK_ELEMENTS // max(1, n_perm * max(k_max, 1)))
    work = functools.partial(_local_null_sites, zs, local, ids, wpad, self_w, scaling,
                             alternative, keep_null, step)
    for sites, p_, mean_, var_, null_ in run_blocks(
            work, range(0, n, step), n_jobs=n_jobs, threads=True, verbose=verbose,
            desc="local Moran's I null"):
        p_sim[:, sites], mean[:, sites], var[:, sites] = p_, mean_, var_
        if keep_null:
            null[:, sites] = null_
    with np.errstate(divide="ignore", invalid="ignore"):
        zsim = (local - mean) / np.sqrt(var)
    res.update(p_sim=p_sim, expected_sim=mean, variance_sim=var, z_sim=zsim,
               p_z_sim=_normal_p(zsim, alternative), null=null)
    return res


@deprecated_alias(weights="adjacency")
@fill_doc
def local_morans_i(
    values,
    adjacency=DEFAULT_ADJACENCY,
    *,
    n_permutations: int = 999,
    seed=None,
    alternative: Alternative = "two-sided",
    transform: Transform | None = "r",
    keep_null: bool = False,
    n_jobs: int | None = None,
    verbose: int = 1,
) -> LocalMoranResult:
    """Local Moran's I (LISA) of every cell, its quadrant and conditional p-values.

    Parameters
    ----------
    values, adjacency, transform
        As :func:`morans_i` (NaN cells dropped, islands dropped with a warning).
    n_permutations : int, default=999
        Conditional permutations: for cell ``i`` its own value stays and its ``k_i``
        neighbour slots receive ``k_i`` distinct values drawn from the other cells. The
        same draws serve every cell of a permutation (as esda does), so the per-cell
        p-values are each valid but not independent.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        As :func:`morans_i`.
    alternative : {"two-sided", "greater", "less", "directed"}, default="two-sided"
        ``"directed"`` gives esda's ``p_sim`` and ``p_z_sim``.
    keep_null : bool, default=False
        Keep the permuted local statistics (``n_cells * n_permutations`` floats per map).
    %(n_jobs)s
        Jobs over chunks of cells (the draws are made once, so results do not depend on
        it); a thread pool unless a non-local joblib backend is configured.
    %(verbose)s

    Returns
    -------
    LocalMoranResult

    References
    ----------
    Anselin (1995); Sokal, Oden & Thomson (1998).

    Examples
    --------
    >>> grid = np.zeros((6, 6)); grid[:3, :3] = 1.0
    >>> res = local_morans_i(grid, n_permutations=99, seed=0)
    >>> str(res.quadrant[0, 0]), str(res.quadrant[5, 5])
    ('HH', 'LL')
    """
    n_perm = _check_common(alternative, transform, n_permutations)
    if not isinstance(keep_null, (bool, np.bool_)):
        raise TypeError(f"keep_null must be a bool; got {type(keep_null).__name__}.")
    inp = _prepare(values, adjacency)
    n_maps, n_total = inp.flat.shape
    full = lambda: np.full((n_maps, n_total), np.nan)  # noqa: E731
    res = {k: full() for k in ("I", "expected", "variance", "expected_cond", "variance_cond")}
    res["quadrant"] = np.full((n_maps, n_total), "", dtype="<U2")
    if n_perm:
        for k in ("p_sim", "expected_sim", "variance_sim", "z_sim", "p_z_sim"):
            res[k] = full()
        res["null"] = np.full((n_maps, n_total, n_perm), np.nan) if keep_null else None
    else:
        for k in ("p_sim", "expected_sim", "variance_sim", "z_sim", "p_z_sim", "null"):
            res[k] = None
    n_cells = np.zeros(n_maps, dtype=np.int64)
    n_islands = np.zeros(n_maps, dtype=np.int64)
    ss = as_seed_sequence(seed) if n_perm else None
    few, constant = 0, 0
    for maps, keep in _groups(inp.flat):
        gw = _group_weights(inp, keep, transform)
        idx, w = gw.idx, gw.w
        n_islands[maps] = gw.n_islands
        n_cells[maps] = idx.size
        if idx.size < 4:
            few += maps.size
            continue
        z = inp.flat[np.ix_(maps, idx)]
        flat = near_constant(z)
        z = z - z.mean(-1, keepdims=True)
        ok = ((z * z).sum(-1) > 0) & ~flat
        constant += int((~ok).sum())
        if not ok.any():
            continue
        good = maps[ok]
        out = _local_group(z[ok], w, n_perm, ss, alternative, keep_null, n_jobs, verbose)
        for k, v in out.items():
            if v is None:
                continue
            if k == "null":
                res["null"][good[:, None], idx[None, :], :] = v
            else:
                res[k][np.ix_(good, idx)] = v
    if few:
        warnings.warn(f"{few} of {n_maps} maps have fewer than 4 usable cells; their local "
                      "statistics are NaN.", UserWarning, stacklevel=user_stacklevel())
    if constant:
        warnings.warn(f"{constant} of {n_maps} maps are constant over their cells (exactly, "
                      "or to rounding); their local statistics are NaN.", UserWarning,
                      stacklevel=user_stacklevel())
    if n_islands.sum():
        warnings.warn(
            f"Dropped {int(n_islands.sum())} island cells (no neighbour left after dropping "
            f"NaN cells) in {int((n_islands > 0).sum())} of {n_maps} maps; see n_islands.",
            UserWarning, stacklevel=user_stacklevel(),
        )
    lead = (n_maps,) if inp.batch else ()
    shaped = {}
    for k, v in res.items():
        if v is None:
            shaped[k] = None
        elif k == "null":
            shaped[k] = v.reshape(*lead, *inp.cell_shape, n_perm)
        else:
            shaped[k] = v.reshape(*lead, *inp.cell_shape)
    params = {"alternative": alternative, "n_permutations": n_perm, **_seed_params(ss),
              "transform": transform, "adjacency": inp.adjacency,
              "cell_shape": tuple(inp.cell_shape)}
    nc = n_cells if inp.batch else int(n_cells[0])
    ni = n_islands if inp.batch else int(n_islands[0])
    return LocalMoranResult(n_cells=nc, n_islands=ni, params=params, **shaped)


# ---------------------------------------------------------------------------------------
# correlation vs distance, smoothness, effective dimensionality
# ---------------------------------------------------------------------------------------
def _participation_ratio(x: np.ndarray) -> float:
    xc = x - x.mean(0)
    gram = xc @ xc.T if xc.shape[0] <= xc.shape[1] else xc.T @ xc
    lam = np.clip(np.linalg.eigvalsh(gram), 0.0, None)   # the PCA eigenvalues (x n - 1)
    tot = lam.sum()
    if tot <= 0:
        return float("nan")
    return float(tot * tot / (lam * lam).sum())


def decay_distance(distance, correlation, *, level: float = 0.5) -> float:
    """Distance at which a similarity curve falls to ``level`` times its first value.

    THE half-decay distance of topobrain (model sheets and brain maps alike): the first
    finite bin's correlation ``c0`` sets the scale; the result is the first distance where
    the curve reaches ``level * c0``, linearly interpolated between the two bins around it.

    Parameters
    ----------
    distance : array_like of shape (n_bins,)
        Bin distances, increasing (sheet units, or mm on a brain mesh).
    correlation : array_like of shape (n_bins,)
        Mean similarity in each bin; non-finite bins are skipped.
    level : float, default=0.5
        Fraction of the first value to reach.

    Returns
    -------
    float
        In the units of ``distance``; ``distance[0]`` when the first bin is already at or
        below the level, NaN when the curve never falls that far, has fewer than two finite
        bins or starts at a correlation <= 0.
    """
    d = np.asarray(distance, dtype=float)
    c = np.asarray(correlation, dtype=float)
    ok = np.isfinite(d) & np.isfinite(c)
    d, c = d[ok], c[ok]
    if c.size < 2 or not c[0] > 0:
        return float("nan")
    target = level * c[0]
    below = np.flatnonzero(c <= target)
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    if k == 0:
        return float(d[0])
    d0, d1, c0, c1 = d[k - 1], d[k], c[k - 1], c[k]
    return float(d0 + (c0 - target) * (d1 - d0) / (c0 - c1))


def distance_profile(
    responses,
    sheet,
    *,
    bins="unit",
    max_distance: float | None = None,
    metric: Literal["euclidean", "linf"] = "euclidean",
    max_units: int | None = None,
    seed=None,
) -> DistanceProfile:
    """Correlation of unit responses against sheet distance, TDANN smoothness, and the
    effective dimensionality of the responses.

    Parameters
    ----------
    responses : ndarray of shape (n_items, n_units)
        One row per item (stimulus), one column per unit.
    sheet : CorticalSheet or ndarray of shape (n_units, n_dims)
        Where each unit sits: a sheet (its ``(row, col)`` positions) or any coordinates
        (e.g. mesh vertices in mm).
    bins : "unit", int or array of float, default="unit"
        ``"unit"``: bins of width 1 centred on 1, 2, 3, ... (edges 0.5, 1.5, ...), so the
        first bin holds the grid's edge and corner neighbours; an int: that many equal bins
        over ``(0, max_distance]``; an array: the bin edges (increasing). Distances in the
        positions' units (sheet units for a sheet).
    max_distance : float, optional
        Pairs farther apart are left out (default: none).
    metric : {"euclidean", "linf"}, default="euclidean"
    max_units : int, optional
        Use a random subset of this many units for the curve (seeded by ``seed``);
        all pairs of 5,000 units take about 100 MB.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        By the permutation core's seed rule (block 0 of its sequence draws the subset).

    Returns
    -------
    DistanceProfile

    Notes
    -----
    Pairs at distance 0 (units sharing a cell) and pairs involving a unit with constant
    responses (exactly, or to rounding: ``near_constant``) are left out. The smoothness
    follows TDANN (Margalit et al., 2024), which applies ``(max(curve) - curve[0]) /
    max(curve)`` to a curve of pairwise tuning
    *differences* against distance; here the difference is ``1 - r``.

    Examples
    --------
    >>> sheet = CorticalSheet((6, 6))
    >>> rng = np.random.default_rng(0)
    >>> rows = sheet.positions[:, 0].astype(float)
    >>> responses = np.outer(rng.normal(size=50), rows) + rng.normal(0, 1, (50, 36))
    >>> prof = distance_profile(responses, sheet)
    >>> bool(prof.correlation[0] > prof.correlation[-1])
    True
    """
    from scipy.spatial.distance import pdist

    check_option("metric", metric, ("euclidean", "linf"))
    try:
        x = np.asarray(responses, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"responses must be a numeric array (n_items, n_units); got "
            f"{type(responses).__name__}."
        ) from None
    if x.ndim != 2:
        raise ValueError(f"responses must be 2D (n_items, n_units); got shape {x.shape}.")
    check_finite(x, "responses")
    if isinstance(sheet, CorticalSheet):
        pos = sheet.positions.astype(np.float64)
    else:
        try:
            pos = np.asarray(sheet, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                "sheet must be a CorticalSheet or an array of unit positions "
                f"(n_units, n_dims); got {type(sheet).__name__}."
            ) from None
        if pos.ndim != 2:
            raise ValueError(
                f"positions must be an array of shape (n_units, n_dims); got {pos.shape}."
            )
        check_finite(pos, "positions")
    n_items, n_units = x.shape
    if pos.shape[0] != n_units:
        raise ValueError(
            f"responses have {n_units} units (columns) but the sheet places {pos.shape[0]}. "
            "Pass responses of shape (n_items, n_units) for this sheet."
        )
    if n_items < 3:
        raise ValueError(f"responses need at least 3 items (rows) to correlate; got {n_items}.")
    eff = _participation_ratio(x)
    units = np.arange(n_units)
    subset_seed = None
    if max_units is not None:
        if isinstance(max_units, bool) or not isinstance(max_units, (int, np.integer)):
            raise TypeError(f"max_units must be an int or None; got {type(max_units).__name__}.")
        if max_units < 2:
            raise ValueError(f"max_units must be at least 2; got {max_units}.")
        if n_units > max_units:
            subset_seed = as_seed_sequence(seed)
            units = np.sort(block_rng(subset_seed, 0).choice(n_units, max_units,
                                                             replace=False))
    xu = x[:, units]
    xc = xu - xu.mean(0)
    sd = np.sqrt((xc * xc).sum(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        xn = xc / sd
    xn[:, near_constant(xu, axis=0)] = np.nan  # constant (to rounding): no correlation
    r_full = xn.T @ xn
    iu = np.triu_indices(units.size, 1)
    r = r_full[iu]
    del r_full
    d = pdist(pos[units], metric="euclidean" if metric == "euclidean" else "chebyshev")
    keep = (d > 0) & np.isfinite(r)
    if max_distance is not None:
        max_distance = float(max_distance)
        if not max_distance > 0:
            raise ValueError(f"max_distance must be positive; got {max_distance}.")
        keep &= d <= max_distance
    d, r = d[keep], r[keep]
    if d.size == 0:
        raise ValueError("No unit pairs at a positive distance within max_distance.")
    d_top = max_distance if max_distance is not None else float(d.max())
    if isinstance(bins, str):
        check_option("bins", bins, ("unit",))
        n_bins = max(1, math.ceil(d_top - 0.5))
        edges = 0.5 + np.arange(n_bins + 1, dtype=np.float64)
    elif isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be a positive int; got {bins}.")
        edges = np.linspace(0.0, d_top, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bins must be 'unit', an int, or increasing bin edges (>= 2).")
    nb = edges.size - 1
    which = np.searchsorted(edges, d, side="right") - 1
    which[d == edges[-1]] = nb - 1
    inb = (which >= 0) & (which < nb)
    which, d, r = which[inb], d[inb], r[inb]
    cnt = np.bincount(which, minlength=nb).astype(np.float64)
    s_r = np.bincount(which, weights=r, minlength=nb)
    s_d = np.bincount(which, weights=d, minlength=nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_r = s_r / cnt
        dev = r - mean_r[which]
        ss = np.bincount(which, weights=dev * dev, minlength=nb)
        sem = np.sqrt(ss / (cnt - 1)) / np.sqrt(cnt)
        mean_d = s_d / cnt
    mean_r[cnt == 0] = np.nan
    mean_d[cnt == 0] = np.nan
    sem[cnt < 2] = np.nan
    diss = 1.0 - mean_r
    finite = np.flatnonzero(np.isfinite(diss))
    smooth = float("nan")
    if finite.size:
        top = float(np.nanmax(diss))
        if top > 0:
            smooth = (top - float(diss[finite[0]])) / top
    params = {"bins": bins if isinstance(bins, (str, int)) else "edges",
              "max_distance": max_distance, "metric": metric, "max_units": max_units,
              **_seed_params(subset_seed)}
    return DistanceProfile(
        bin_edges=edges, distance=mean_d, correlation=mean_r, correlation_sem=sem,
        n_pairs=cnt.astype(np.int64), smoothness=smooth, effective_dim=eff,
        n_units=int(units.size), n_items=int(n_items), params=params,
    )
