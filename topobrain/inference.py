"""Label-permutation inference for map statistics and split-half reliability of maps.

Moran's I of an unthresholded t-map, the published measure of topography (TopoLM),
mixes two things: whether *selectivity* is clustered on the sheet, and whether
neighbouring units are simply correlated, which a spatial loss trains them to be. A
null that shuffles values across cells (esda's randomisation p) destroys the units'
correlations and calls a map with no contrast at all "highly clustered". The null here
permutes the *item labels* (or flips the signs of one-sample items), recomputes the unit
statistic for every unit of every layer, and keeps the units' correlations intact: it
asks whether the contrast is more topographic than the same units' responses to
arbitrary item groupings.

Randomness: every permutation comes from topobrain's one permutation core
(``topobrain._utils._permutation``): ``seed`` becomes a ``SeedSequence``, candidates are
drawn in fixed blocks of ``BLOCK_SIZE``, block ``b`` from ``SeedSequence(entropy,
spawn_key=(*spawn_key, b))``, without duplicates and never the identity; a design with
no more distinct permutations than ``n_permutations`` is enumerated (an exact test). The
null therefore depends only on ``seed`` and ``n_permutations``: it is identical for any
``n_jobs``, ``chunk_size`` or joblib backend (Dask included, through
``joblib.parallel_config(backend="dask")``), and the first ``m`` permutations of a run
are those of a run with ``n_permutations=m`` (their statistics equal to rounding: a
shorter last block is a different BLAS call). The observed statistic is the same
function applied to the identity, and p-values follow the core's one rule (ties within
rounding count as at least as extreme).

References
----------
.. [1] Rathi, N., Mehrer, J., AlKhamissi, B., Binhuraib, T., Blauch, N. M., &
   Schrimpf, M. (2025). TopoLM: brain-like spatio-functional organization in a
   topographic language model. ICLR 2025.
.. [2] Moran, P. A. P. (1950). Notes on continuous stochastic phenomena. Biometrika,
   37(1/2), 17-23.
.. [3] Margalit, E., Lee, H., Finzi, D., DiCarlo, J. J., Grill-Spector, K., &
   Yamins, D. L. K. (2024). A unifying framework for functional organization in early
   and higher ventral visual cortex. Neuron, 112(14), 2435-2451 (TDANN).
.. [4] Nichols, T. E., & Holmes, A. P. (2002). Nonparametric permutation tests for
   functional neuroimaging: a primer with examples. Human Brain Mapping, 15(1), 1-25.
.. [5] Winkler, A. M., Webster, M. A., Vidaurre, D., Nichols, T. E., & Smith, S. M.
   (2015). Multi-level block permutation. NeuroImage, 123, 253-268.
.. [6] Phipson, B., & Smyth, G. K. (2010). Permutation p-values should never be zero.
   Statistical Applications in Genetics and Molecular Biology, 9(1), 39.
.. [7] Spearman, C. (1910); Brown, W. (1910). British Journal of Psychology, 3,
   271-295 and 296-322 (the Spearman-Brown prophecy formula).
"""

from __future__ import annotations

import functools
import logging
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._utils._adjacency import (
    DEFAULT_ADJACENCY,
    adjacency_name,
    check_adjacency,
    deprecated_alias,
)
from ._utils._docs import fill_doc
from ._utils._permutation import (
    BLOCK_SIZE,
    PermutationSet,
    as_seed_sequence,
    block_rng,
    centred_moments,
    check_n_jobs,
    identity_permutation,
    label_permutations,
    permutation_pvalue,
    permuted_one_sample_t,
    permuted_two_sample_t,
    run_blocks,
    seed_record,
    sign_flips,
)
from ._utils._repr import FrameReprMixin
from ._utils._stats import moran_i_raw, near_constant, one_sample_t, two_sample_t
from ._utils._validation import check_option
from .contrast import Contrast, parse_contrast
from .sheet import grid_weights

__all__ = [
    "BLOCK_SIZE",
    "PermutationResult",
    "SplitHalfResult",
    "map_permutation_test",
    "map_reliability",
    "split_half_reliability",
]

logger = logging.getLogger("topobrain")

Statistic = Literal[
    "morans_i",
    "gearys_c",
    "n_clusters",
    "max_cluster_size",
    "max_cluster_mass",
    "smoothness",
    "fraction_selective",
]
Alternative = Literal["greater", "less", "two-sided"]
_STATISTICS = get_args(Statistic)
_ALTERNATIVES = get_args(Alternative)
_CLUSTER_STATISTICS = ("n_clusters", "max_cluster_size", "max_cluster_mass")
#: Named neighbourhoods of a sheet (the distance kinds weight Moran's I and Geary's C;
#: cluster statistics link queen neighbours for them).
_GRID_KINDS = ("queen", "rook", "distance_band", "kernel")


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
def _fmt(x) -> str:
    if x is None:
        return "None"
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    return f"{x:.4g}"


@dataclass(frozen=True, eq=False)
class PermutationResult(FrameReprMixin):
    """Label-permutation test of a map statistic, per layer and averaged over layers.

    Attributes
    ----------
    statistic : str
        Name of the map statistic (``"morans_i"``, ..., or the callable's name).
    layers : list
        Layer names (integers for plain arrays), length ``n_layers``.
    observed : ndarray of shape (n_layers,)
        The statistic of each layer's observed unit-statistic map.
    observed_mean : float
        ``observed`` averaged over layers (the published "mean Moran's I").
    null : ndarray of shape (n_permutations, n_layers)
        The statistic under each label permutation (or sign flip).
    null_mean_over_layers : ndarray of shape (n_permutations,)
        ``null`` averaged over layers: the null of ``observed_mean``.
    p : ndarray of shape (n_layers,)
        Permutation p-values ``(1 + #{null at least as extreme}) / (1 + n_permutations)``
        (``#{...} / n_permutations`` when ``params["exact"]``: the null then holds the
        identity), ties within rounding counted, sided as ``params["alternative"]``
        says; two-sided values are twice the smaller one-sided value, capped at 1. NaN
        for a layer whose observed map is constant up to rounding.
    p_mean : float
        The same p-value for ``observed_mean`` against ``null_mean_over_layers``.
    z : ndarray of shape (n_layers,)
        Null-standardised effect ``(observed - null mean) / null sd`` (sd with ddof=1).
    z_mean : float
        The same for ``observed_mean``.
    params : dict
        ``statistic``, ``contrast``, ``unit_statistic``, ``alternative``,
        ``n_permutations`` (rows of ``null``), ``n_permutations_requested``, ``exact``
        (True when every distinct permutation was enumerated), ``seed`` and
        ``spawn_key`` (the SeedSequence that reproduces the null), ``block_size``,
        ``scheme`` (``"label permutation"`` or ``"sign flip"``), ``groups`` (number of
        exchangeability groups or None), ``threshold``, ``adjacency`` (its name),
        ``n_distinct_permutations``.
    """

    statistic: str
    layers: list
    observed: np.ndarray
    observed_mean: float
    null: np.ndarray
    null_mean_over_layers: np.ndarray
    p: np.ndarray
    p_mean: float
    z: np.ndarray
    z_mean: float
    params: dict = field(default_factory=dict)

    @property
    def n_permutations(self) -> int:
        return int(self.null.shape[0])

    @property
    def null_mean(self) -> np.ndarray:
        """Mean of the null per layer, shape (n_layers,)."""
        return _nanmean(self.null, 0)

    @property
    def null_sd(self) -> np.ndarray:
        """Standard deviation (ddof=1) of the null per layer, shape (n_layers,)."""
        return _nanstd(self.null, 0)

    def to_frame(self, *, include_mean: bool = False) -> pd.DataFrame:
        """One row per layer: observed, null_mean, null_sd, z, p.

        Parameters
        ----------
        include_mean : bool, default=False
            Append a row with ``layer="mean"`` for the average over layers.

        Returns
        -------
        pandas.DataFrame
            Columns ``layer, statistic, observed, null_mean, null_sd, z, p,
            n_permutations, alternative``.
        """
        frame = pd.DataFrame(
            {
                "layer": list(self.layers),
                "statistic": self.statistic,
                "observed": self.observed,
                "null_mean": self.null_mean,
                "null_sd": self.null_sd,
                "z": self.z,
                "p": self.p,
            }
        )
        if include_mean:
            mean_row = {
                "layer": "mean",
                "statistic": self.statistic,
                "observed": self.observed_mean,
                "null_mean": float(_nanmean(self.null_mean_over_layers, 0)),
                "null_sd": float(_nanstd(self.null_mean_over_layers, 0)),
                "z": self.z_mean,
                "p": self.p_mean,
            }
            frame = pd.concat([frame, pd.DataFrame([mean_row])], ignore_index=True)
        frame["n_permutations"] = self.n_permutations
        frame["alternative"] = self.params.get("alternative")
        return frame

    def __repr__(self) -> str:
        prm = self.params
        head = (
            f"PermutationResult(statistic={self.statistic!r}, contrast="
            f"{prm.get('contrast')!r}, unit_statistic={prm.get('unit_statistic')!r}, "
            f"scheme={prm.get('scheme')!r}, n_layers={len(self.layers)}, "
            f"n_permutations={self.n_permutations}, alternative={prm.get('alternative')!r})"
        )
        nm = self.null_mean_over_layers
        lines = [
            head,
            f"  mean over layers: observed {_fmt(self.observed_mean)}, null "
            f"{_fmt(_nanmean(nm, 0))} (sd {_fmt(_nanstd(nm, 0))}), z {_fmt(self.z_mean)}, "
            f"p {_fmt(self.p_mean)}",
        ]
        frame = self.to_frame()
        show = frame if len(frame) <= 12 else pd.concat([frame.head(6), frame.tail(5)])
        lines.append(f"  {'layer':>14} {'observed':>10} {'null_mean':>10} {'null_sd':>9} "
                     f"{'z':>8} {'p':>8}")
        for i, row in show.iterrows():
            if len(frame) > 12 and i == frame.index[-5]:
                lines.append(f"  {'...':>14}")
            lines.append(
                f"  {str(row.layer)[-14:]:>14} {_fmt(row.observed):>10} "
                f"{_fmt(row.null_mean):>10} {_fmt(row.null_sd):>9} {_fmt(row.z):>8} "
                f"{_fmt(row.p):>8}"
            )
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class SplitHalfResult(FrameReprMixin):
    """Split-half reliability of maps, per layer.

    Attributes
    ----------
    layers : list
        Layer names, length ``n_layers``.
    r_half : ndarray of shape (n_splits, n_layers)
        Correlation between the two halves' maps for each split and layer.
    r : ndarray of shape (n_layers,)
        ``r_half`` averaged over splits.
    reliability : ndarray of shape (n_layers,)
        Spearman-Brown corrected ``2 r / (1 + r)``: the expected correlation of two
        full-size replications (equal to ``r`` when ``params["spearman_brown"]`` is
        False).
    reliability_mean : float
        ``reliability`` averaged over layers.
    params : dict
        ``method`` (``"odd_even"``, ``"random"`` or ``"maps"``), ``n_splits``,
        ``correlation``, ``spearman_brown``, ``seed``, ``contrast``, ``unit_statistic``.
    """

    layers: list
    r_half: np.ndarray
    r: np.ndarray
    reliability: np.ndarray
    reliability_mean: float
    params: dict = field(default_factory=dict)

    @property
    def n_splits(self) -> int:
        return int(self.r_half.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """One row per layer.

        Returns
        -------
        pandas.DataFrame
            Columns ``layer, r_half, r_half_sd, reliability, n_splits, method,
            correlation``; ``r_half_sd`` is the sd over splits (NaN for one split).
        """
        sd = _nanstd(self.r_half, 0) if self.n_splits > 1 else np.full(len(self.layers), np.nan)
        return pd.DataFrame(
            {
                "layer": list(self.layers),
                "r_half": self.r,
                "r_half_sd": sd,
                "reliability": self.reliability,
                "n_splits": self.n_splits,
                "method": self.params.get("method"),
                "correlation": self.params.get("correlation"),
            }
        )

    def __repr__(self) -> str:
        prm = self.params
        lines = [
            f"SplitHalfResult(method={prm.get('method')!r}, n_splits={self.n_splits}, "
            f"correlation={prm.get('correlation')!r}, n_layers={len(self.layers)}, "
            f"spearman_brown={prm.get('spearman_brown')!r})",
            f"  mean reliability over layers: {_fmt(self.reliability_mean)}",
            f"  {'layer':>14} {'r_half':>8} {'reliability':>12}",
        ]
        idx = list(range(len(self.layers)))
        if len(idx) > 12:
            idx = idx[:6] + [None] + idx[-5:]
        for i in idx:
            if i is None:
                lines.append(f"  {'...':>14}")
                continue
            lines.append(
                f"  {str(self.layers[i])[-14:]:>14} {_fmt(self.r[i]):>8} "
                f"{_fmt(self.reliability[i]):>12}"
            )
        return "\n".join(lines)


def _nanmean(a, axis):
    a = np.asarray(a, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def _nanstd(a, axis):
    a = np.asarray(a, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(a, axis=axis, ddof=1)


# ---------------------------------------------------------------------------------------
# Responses: plain maps or extracted activations -> (n_items, n_units) + per-layer layout
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Layer:
    """One layer's units (columns of the stacked response matrix) and their sheet cells."""

    name: Any
    shape: tuple
    columns: np.ndarray  # (n_kept,) columns of y
    occupied: np.ndarray  # (n_rows, n_cols) bool: cells holding a kept unit
    gather: np.ndarray | None  # (n_occ,) kept unit of each occupied cell (one unit per cell)
    average: sp.csr_matrix | None  # (n_occ, n_kept) averaging where units share cells
    weights: sp.csr_matrix  # (n_occ, n_occ) spatial weights over the occupied cells
    kind: Any = "queen"  # the weights' kind (grid_weights) or the user's sparse adjacency
    links: Any = "queen"  # cluster neighbours: "rook"/"queen", or (n_occ, n_occ) sparse
    islands: bool = False  # occupied cells without a neighbour (spatial drops them)
    bins: tuple | None = None  # smoothness: (A_b sparse, n_pairs_b) per distance bin

    def cells(self, t_layer: np.ndarray) -> np.ndarray:
        """Unit values (k, n_kept) -> occupied-cell values (k, n_occ), row-major."""
        if self.average is None:
            return t_layer[:, self.gather]
        return np.asarray((self.average @ t_layer.T).T)

    def maps(self, cells: np.ndarray) -> np.ndarray:
        """Occupied-cell values (k, n_occ) -> maps (k, n_rows, n_cols), NaN elsewhere."""
        out = np.full((cells.shape[0], *self.shape), np.nan)
        out[:, self.occupied] = cells
        return out


def _distance_bins(occupied: np.ndarray) -> tuple:
    """Pairs of occupied cells in unit-width euclidean distance bins (edges 0.5, 1.5, ...,
    as :func:`topobrain.spatial.distance_profile`): one symmetric 0/1 sparse matrix and
    the number of ordered pairs per non-empty bin."""
    pos = np.argwhere(occupied).astype(np.float64)
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    b = np.floor(d + 0.5).astype(np.int64)  # bin k holds distances in [k - 0.5, k + 0.5)
    out = []
    for k in range(1, int(b.max()) + 1):
        i, j = np.nonzero(b == k)
        if i.size:
            a = sp.csr_matrix((np.ones(i.size), (i, j)), shape=d.shape)
            out.append((a, float(i.size)))
    return tuple(out)


def _layer_from_cells(name, shape, columns, cell_of_unit, kind, smoothness=False) -> _Layer:
    """Build a layer whose kept units sit at ``cell_of_unit`` (row-major cell indices)."""
    n_rows, n_cols = shape
    occ = np.zeros(n_rows * n_cols, dtype=bool)
    occ[cell_of_unit] = True
    occ_cells = np.flatnonzero(occ)
    pos = np.searchsorted(occ_cells, cell_of_unit)  # occupied-cell slot of each unit
    occupied = occ.reshape(shape)
    if occ_cells.size == cell_of_unit.size:
        gather = np.empty(pos.size, dtype=np.int64)
        gather[pos] = np.arange(pos.size)
        average = None
    else:
        counts = np.bincount(pos, minlength=occ_cells.size).astype(np.float64)
        average = sp.csr_matrix(
            (1.0 / counts[pos], (pos, np.arange(pos.size))), shape=(occ_cells.size, pos.size)
        )
        gather = None
    if isinstance(kind, str):
        weights = grid_weights(shape, kind, transform="r", mask=occupied)
        links = kind if kind in ("rook", "queen") else "queen"
    else:  # a checked sparse adjacency over every cell of the sheet, row-major
        if kind.shape[0] != n_rows * n_cols:
            raise ValueError(
                f"adjacency covers {kind.shape[0]} locations but layer {name!r} has a "
                f"{n_rows} x {n_cols} sheet ({n_rows * n_cols} cells): pass an adjacency of "
                f"shape ({n_rows * n_cols}, {n_rows * n_cols}) over its row-major cells."
            )
        links = sp.csr_matrix(kind[occ_cells][:, occ_cells])
        rows = np.asarray(links.sum(1)).ravel()
        with np.errstate(divide="ignore"):
            scale = np.where(rows > 0, 1.0 / rows, 0.0)
        weights = sp.csr_matrix(sp.diags(scale) @ links)
        weights.eliminate_zeros()
    islands = bool((np.diff(weights.indptr) == 0).any())
    bins = _distance_bins(occupied) if smoothness else None
    return _Layer(name, tuple(shape), np.asarray(columns), occupied, gather, average, weights,
                  kind, links, islands, bins)


def _is_activations(obj) -> bool:
    return hasattr(obj, "sheets") and hasattr(obj, "layers") and not isinstance(obj, np.ndarray)


@dataclass(frozen=True, eq=False)
class _Responses:
    """Validated responses: every unit of every layer as one matrix, plus placement."""

    y: np.ndarray  # (n_items, n_total) float64
    names: list  # layer names
    shapes: list  # sheet shape of each layer
    cells: list  # row-major cell of each of the layer's columns
    starts: list  # first column of each layer in y
    conditions: np.ndarray | None = None  # carried by Activations

    @property
    def n_items(self) -> int:
        return int(self.y.shape[0])

    def select(self, rows: np.ndarray, weights_kind, smoothness: bool = False):
        """Rows of the used items; units constant over them left out. -> (y, layers)."""
        y = self.y if np.array_equal(rows, np.arange(self.n_items)) else self.y[rows]
        keep = (y != y[:1]).any(0)  # not constant over the items tested
        layers, cols, start = [], [], 0
        for name, shape, cells, s0 in zip(self.names, self.shapes, self.cells, self.starts,
                                          strict=True):
            k = keep[s0:s0 + cells.size]
            if k.sum() < 3:
                raise ValueError(
                    f"Layer {name!r} has {int(k.sum())} units whose response varies over the "
                    "items tested (at least 3 are needed for a map statistic). Check the "
                    "responses and the NaN mask."
                )
            idx = np.flatnonzero(k)
            cols.append(s0 + idx)
            layers.append(_layer_from_cells(name, shape, np.arange(start, start + idx.size),
                                            cells[idx], weights_kind, smoothness))
            start += idx.size
        if keep.all():
            return y, layers
        return y[:, np.concatenate(cols)], layers


def _prepare_responses(responses) -> _Responses:
    """Validate plain maps or extracted activations into one (n_items, n_total) matrix."""
    if _is_activations(responses):
        return _prepare_activations(responses)
    if isinstance(responses, (str, bytes)) or not hasattr(responses, "__len__"):
        raise TypeError(
            "responses must be maps of shape (n_items, n_rows, n_cols) or (n_items, n_layers, "
            f"n_rows, n_cols), or extracted Activations; got {type(responses).__name__}."
        )
    arr = np.asarray(responses)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise TypeError(f"responses must hold real numbers; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim != 4:
        hint = ""
        if arr.ndim == 2:
            hint = (" For (n_items, n_units) responses make maps first: sheet.to_map(values) "
                    "gives (n_items, n_rows, n_cols).")
        raise ValueError(
            "responses must have shape (n_items, n_rows, n_cols) or (n_items, n_layers, "
            f"n_rows, n_cols) with NaN where no unit sits; got shape {arr.shape}.{hint}"
        )
    if np.isinf(arr).any():
        raise ValueError(
            f"responses hold {int(np.isinf(arr).sum())} infinite values. Only NaN (no unit "
            "in the cell) is allowed; remove or clip the infinite responses."
        )
    n_layers, shape = arr.shape[1], tuple(arr.shape[2:])
    finite = np.isfinite(arr)
    present = finite.all(0)
    partial = finite.any(0) & ~present
    if partial.any():
        first = tuple(int(i) for i in np.argwhere(partial)[0])
        raise ValueError(
            f"responses are NaN in some items but not others at {int(partial.sum())} cells "
            f"(first at (layer, row, col) = {first}). NaN must mark cells where no unit sits, "
            "the same in every item; impute those values or drop the items."
        )
    blocks, cells, starts, start = [], [], [], 0
    for j in range(n_layers):
        if not present.all():
            blocks.append(arr[:, j][:, present[j]])  # row-major order of the present cells
        cells.append(np.flatnonzero(present[j].ravel()))
        starts.append(start)
        start += cells[-1].size
    # never written to: a view of the caller's array is safe when every cell is present
    y = (np.ascontiguousarray(arr).reshape(arr.shape[0], -1) if present.all()
         else np.concatenate(blocks, axis=1))
    return _Responses(y, list(range(n_layers)),
                      [shape] * n_layers, cells, starts)


def _prepare_activations(acts) -> _Responses:
    """Extracted activations: per-layer (n_items, n_units) arrays placed by their sheets."""
    blocks, cells, starts, shapes, start = [], [], [], [], 0
    names = list(acts.layers)
    for name in names:
        vals = np.asarray(acts[name], dtype=np.float64)
        sheet = acts.sheets[name]
        if not np.isfinite(vals).all():
            raise ValueError(
                f"Layer {name!r} holds {int((~np.isfinite(vals)).sum())} non-finite "
                "activations; remove or impute them before the analysis."
            )
        blocks.append(vals)
        cells.append(np.asarray(sheet.cell_index))
        shapes.append(tuple(sheet.shape))
        starts.append(start)
        start += vals.shape[1]
    conditions = None
    for attr in ("labels", "conditions"):  # the per-item condition labels, when carried
        value = getattr(acts, attr, None)
        if value is not None and np.ndim(value) == 1 and len(value) == blocks[0].shape[0]:
            conditions = np.asarray(value)
            break
    return _Responses(np.concatenate(blocks, axis=1), names, shapes, cells, starts,
                      conditions)


# ---------------------------------------------------------------------------------------
# Designs: what the unit statistic is and how its labels are exchanged
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Design:
    """The unit statistic of a contrast and its exchangeability scheme (trusting)."""

    kind: str  # "welch" / "student" (two-sample), "one_sample", "glm"
    rows: np.ndarray  # items entering the statistic, indices into the item axis
    labels: np.ndarray | None  # two-sample: 0 = positive side, 1 = negative side
    strata: np.ndarray  # (n_rows,) exchangeability group code of each used item
    sign: float = 1.0  # one-sample: sign of the contrast weight
    names: tuple = ()  # GLM path: condition names indexed by the label codes
    covariates: dict | None = None  # GLM path: name -> (n_rows,) covariate values
    contrast: Contrast | None = None

    @property
    def scheme(self) -> str:
        return "sign flip" if self.kind == "one_sample" else "label permutation"

    @property
    def unit_statistic(self) -> str:
        return {"welch": "welch_t", "student": "student_t", "one_sample": "one_sample_t",
                "glm": "ols_t"}[self.kind]

    def identity(self) -> np.ndarray:
        """The identity permutation (index row) or sign flip (row of ones), shape (1, n)."""
        if self.kind == "one_sample":
            return np.ones((1, self.rows.size))
        return identity_permutation(self.rows.size)

    def permutations(self, ss: np.random.SeedSequence, n_permutations: int) -> PermutationSet:
        """The scheme's permutations from the core: label permutations within strata, or
        sign flips with each stratum's items flipped together."""
        if self.kind == "one_sample":
            return sign_flips(ss, n_permutations, self.rows.size, strata=self.strata)
        return label_permutations(ss, n_permutations, self.labels, strata=self.strata)

    def statistic(self, y: np.ndarray, perm: np.ndarray, moments: tuple | None = None,
                  need_df: bool = True):
        """Unit statistic for each row of ``perm`` (index rows, or sign rows for the
        one-sample scheme): t (k, n_units) and df (k, n_units), df None when not needed
        (two-sample only). The identity row gives the observed statistic by the same
        arithmetic.

        ``moments`` (from :func:`~topobrain._utils._permutation.centred_moments`) saves
        recomputing them per block.
        """
        if self.kind == "one_sample":
            t = self.sign * permuted_one_sample_t(y, perm)
            return t, np.full_like(t, y.shape[0] - 1.0)
        if self.kind == "glm":
            return _glm_t(y, self.labels[perm], self)
        if need_df:
            return permuted_two_sample_t(y, perm, self.labels, equal_var=self.kind == "student",
                                         return_df=True, moments=moments)
        t = permuted_two_sample_t(y, perm, self.labels, equal_var=self.kind == "student",
                                  moments=moments)
        return t, None


def _glm_t(y: np.ndarray, codes: np.ndarray, design: _Design):
    """OLS t of the contrast through :func:`topobrain.glm.fit_glm`, one fit per label row."""
    from .glm import design_matrix, fit_glm

    names = np.asarray(design.names, dtype=object)
    t = np.empty((codes.shape[0], y.shape[1]))
    df = np.empty_like(t)
    for i, row in enumerate(codes):
        frame = design_matrix(list(names[row]), covariates=design.covariates)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # degenerate units: NaN, handled
            res = fit_glm(y, frame).contrast(design.contrast)
        t[i] = res.t
        df[i] = res.df
    return t, df


def _build_design(conditions, contrast, n_items, groups, covariates, equal_var) -> _Design:
    """Validate conditions, contrast, groups and covariates; choose the unit statistic."""
    if conditions is None:
        raise TypeError(
            "conditions is required: the condition label of each item (a sequence of str), "
            "unless the responses are Activations that carry their conditions."
        )
    if isinstance(conditions, (str, bytes)):
        raise TypeError(
            "conditions must be a sequence with one condition label per item; got a single "
            f"string {conditions!r}."
        )
    if hasattr(conditions, "to_frame") and not isinstance(conditions, (pd.Series, pd.Index)):
        conditions = conditions.to_frame()
    if isinstance(conditions, pd.DataFrame):
        if "condition" not in conditions.columns:
            raise ValueError(
                "conditions as a table needs a 'condition' column; its columns are "
                f"{list(conditions.columns)}."
            )
        conditions = conditions["condition"]
    labels = np.asarray([str(c) for c in np.asarray(conditions, dtype=object).ravel()])
    if np.ndim(conditions) != 1 or labels.size != n_items:
        raise ValueError(
            f"conditions must hold one label per item ({n_items}); got shape "
            f"{np.shape(conditions)}. Give the conditions in the order of the responses' items."
        )
    names = list(dict.fromkeys(labels.tolist()))
    con = parse_contrast(contrast, names)

    strata_all = None
    if groups is not None:
        g = np.asarray(groups, dtype=object)
        if g.ndim != 1 or g.size != n_items:
            raise ValueError(
                f"groups must hold one exchangeability-group label per item ({n_items}); got "
                f"shape {g.shape}. Pass e.g. the run or block of each item."
            )
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in g):
            raise ValueError("groups holds missing values; give every item a group.")
        strata_all = pd.factorize(pd.Series(g.tolist()).astype(str))[0]

    cov = None
    if covariates is not None:
        if isinstance(covariates, pd.Series):
            covariates = {covariates.name or "covariate": covariates}
        if isinstance(covariates, pd.DataFrame):
            covariates = {str(c): covariates[c].to_numpy() for c in covariates.columns}
        elif not isinstance(covariates, dict):
            arr = np.asarray(covariates, dtype=np.float64)
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise ValueError(
                    f"covariates must be (n_items,) or (n_items, n_covariates); got {arr.shape}."
                )
            covariates = {f"covariate{j}": arr[:, j] for j in range(arr.shape[1])}
        cov = {}
        for key, val in covariates.items():
            v = np.asarray(val, dtype=np.float64)
            if v.shape != (n_items,):
                raise ValueError(
                    f"covariate {key!r} must have one value per item ({n_items}); got shape "
                    f"{v.shape}."
                )
            cov[str(key)] = v

    pos, neg = con.positive, con.negative
    if pos and neg:
        if len({con.weights[c] for c in pos}) > 1 or len({con.weights[c] for c in neg}) > 1:
            if cov is None:
                warnings.warn(
                    f"The two-sample test pools the items of each side of {con.expression!r} "
                    "(as topobrain.glm.welch_t); the unequal weights are ignored.",
                    UserWarning, stacklevel=3)
        side = np.full(n_items, -1)
        side[np.isin(labels, pos)] = 0
        side[np.isin(labels, neg)] = 1
        n_side = [(side == 0).sum(), (side == 1).sum()]
        if min(n_side) < 2:
            raise ValueError(
                f"Each side of {con.expression!r} needs at least 2 items; got {n_side[0]} "
                f"positive ({pos}) and {n_side[1]} negative ({neg})."
            )
        if cov is None:
            rows = np.flatnonzero(side >= 0)
            strata = np.zeros(rows.size, np.int64) if strata_all is None else strata_all[rows]
            kind = "student" if equal_var else "welch"
            return _Design(kind, rows, side[rows], _codes(strata))
        codes = np.array([names.index(c) for c in labels])
        in_con = side >= 0
        strata = np.zeros(n_items, np.int64) if strata_all is None else strata_all.copy()
        # items outside the contrast never move: each gets a stratum of its own
        strata = np.where(in_con, strata, strata.max() + 1 + np.arange(n_items))
        return _Design("glm", np.arange(n_items), codes, _codes(strata), names=tuple(names),
                       covariates=cov, contrast=con)
    # one-sample
    if len(con.weights) != 1 or cov is not None:
        raise ValueError(
            f"One-sample contrast {con.expression!r}: sign flipping takes a single condition "
            "and no covariates (e.g. 'S'). For a comparison write both sides ('S - N')."
        )
    (cond, weight), = con.weights.items()
    rows = np.flatnonzero(labels == cond)
    if rows.size < 2:
        raise ValueError(f"Condition {cond!r} has {rows.size} item(s); at least 2 are needed.")
    strata = np.arange(rows.size) if strata_all is None else strata_all[rows]
    return _Design("one_sample", rows, None, _codes(strata), sign=float(np.sign(weight)))


def _codes(values: np.ndarray) -> np.ndarray:
    """Consecutive integer codes 0..k-1 in order of first appearance."""
    return pd.factorize(pd.Series(np.asarray(values).tolist()))[0].astype(np.int64)


# ---------------------------------------------------------------------------------------
# Map statistics
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _StatSpec:
    """Which map statistic, with its options (trusting)."""

    name: str
    func: Callable | None = None  # a user callable map -> float
    threshold: float | None = None
    alpha: float = 0.05

    def evaluate(self, layer: _Layer, t: np.ndarray, df: np.ndarray) -> np.ndarray:
        """The statistic of each row of a layer's unit statistic, shape (k,)."""
        name = self.name
        if name == "fraction_selective":
            return _fraction_selective(t, df, self.threshold, self.alpha)
        t = np.where(np.isfinite(t), t, 0.0)  # rare undefined t: see the Notes of the test
        cells = layer.cells(t)
        if name == "morans_i" and not layer.islands:
            # the kernel of spatial.morans_i, without its moments (tests pin them equal)
            return moran_i_raw(cells, layer.weights)
        if name in ("morans_i", "gearys_c"):
            from . import spatial

            func = spatial.morans_i if name == "morans_i" else spatial.gearys_c
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # islands: dropped, as direct
                if isinstance(layer.kind, str) and layer.kind in ("queen", "rook"):
                    res = func(layer.maps(cells), layer.kind)
                else:
                    res = func(cells, layer.weights, transform=None)
            return np.asarray(res.I if name == "morans_i" else res.C, dtype=np.float64)
        if name == "smoothness":
            return _map_smoothness(cells, layer.bins)
        if name in _CLUSTER_STATISTICS:
            if isinstance(layer.links, str):
                return _cluster_statistic(name, layer.maps(cells), self.threshold, layer.links)
            return _cluster_statistic(name, cells, self.threshold, layer.links)
        maps = layer.maps(cells)
        out = np.empty(maps.shape[0])
        for i, m in enumerate(maps):
            out[i] = _map_statistic(self, m, layer)
        return out


def _fraction_selective(t, df, threshold, alpha) -> np.ndarray:
    if threshold is not None:
        return (t > threshold).mean(1) if threshold >= 0 else (t < threshold).mean(1)
    from scipy.special import stdtr

    from .correction import fdr_correction

    p = stdtr(df, -t)  # one-sided P(T > t): the positive side of the contrast
    p = np.where(np.isfinite(p), p, np.nan)
    mask = fdr_correction(p, alpha=alpha, over="layer").mask
    n_tested = np.isfinite(p).sum(1)
    return mask.sum(1) / np.maximum(n_tested, 1)


def _cluster_statistic(name: str, maps: np.ndarray, threshold: float, adjacency: str):
    """Cluster count, largest size (cells) or largest |mass| of each map, shape (k,)."""
    from .clusters import find_clusters

    tail = 1 if threshold >= 0 else -1
    table = find_clusters(maps, abs(threshold), adjacency=adjacency, tail=tail)
    k = maps.shape[0]
    if name == "n_clusters":
        return np.bincount(table.layer_index, minlength=k).astype(np.float64)
    values = table.size if name == "max_cluster_size" else np.abs(table.mass)
    out = np.zeros(k)
    np.maximum.at(out, table.layer_index, np.asarray(values, dtype=np.float64))
    return out


def _map_smoothness(cells: np.ndarray, bins: tuple) -> np.ndarray:
    """TDANN smoothness ``(max(d) - d[0]) / max(d)`` of each map's dissimilarity curve
    ``d(distance)`` = mean squared difference of the unit statistic over the pairs of
    cells in each unit-width distance bin (the map's variogram), shape (k,)."""
    z = cells - cells.mean(1, keepdims=True)
    zt = z.T
    curve = np.empty((z.shape[0], len(bins)))
    for b, (a, n_pairs) in enumerate(bins):
        deg = np.asarray(a.sum(1)).ravel()
        quad = (zt * (a @ zt)).sum(0)
        curve[:, b] = (2.0 * (deg[:, None] * zt * zt).sum(0) - 2.0 * quad) / n_pairs
    top = curve.max(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(top > 0, (top - curve[:, 0]) / top, np.nan)


def _map_statistic(spec: _StatSpec, m: np.ndarray, layer: _Layer) -> float:
    """A user callable on one map (n_rows, n_cols), NaN where no unit sits."""
    return float(spec.func(m))


# ---------------------------------------------------------------------------------------
# Permutations
# ---------------------------------------------------------------------------------------
def _null_chunk(y, design, layers, spec, perms: PermutationSet, moments, blocks) -> np.ndarray:
    """Null statistics of the given blocks of ``perms``, shape (n_perm_in_blocks, n_layers)."""
    return np.concatenate([_statistics(y, design, layers, spec, perms.block(int(b)), moments)
                           for b in blocks], axis=0)


#: Map statistics undefined on a map that is constant up to rounding (ratios of its
#: spread): NaN there, never a number made of rounding errors.
_SCALE_FREE = ("morans_i", "gearys_c", "smoothness")


def _statistics(y, design, layers, spec, perm, moments=None) -> np.ndarray:
    need_df = spec.name == "fraction_selective" and spec.threshold is None
    t, df = design.statistic(y, perm, moments, need_df)
    if need_df:
        df = np.broadcast_to(df, t.shape)
    res = np.empty((t.shape[0], len(layers)))
    for j, layer in enumerate(layers):
        tj = t[:, layer.columns]
        res[:, j] = spec.evaluate(layer, tj, None if df is None else df[:, layer.columns])
        if spec.name in _SCALE_FREE:
            res[near_constant(tj, axis=1), j] = np.nan
    return res


def _zscore(observed, null) -> np.ndarray:
    mu, sd = _nanmean(null, 0), _nanstd(null, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, (observed - mu) / sd, np.nan)


# ---------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------
def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}.")
    if int(value) < low:
        raise ValueError(f"{name} must be at least {low}; got {value}.")
    return int(value)


def _stat_spec(statistic, threshold, alpha) -> _StatSpec:
    if callable(statistic):
        return _StatSpec(getattr(statistic, "__name__", "callable"), func=statistic,
                         threshold=threshold, alpha=alpha)
    if not isinstance(statistic, str):
        raise TypeError(
            "statistic must be one of the named statistics or a callable map -> float; got "
            f"{type(statistic).__name__}."
        )
    check_option("statistic", statistic, _STATISTICS)
    if threshold is not None:
        if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real) \
                or not np.isfinite(threshold):
            raise TypeError(f"threshold must be a finite number (a t value); got {threshold!r}.")
        threshold = float(threshold)
    if statistic in _CLUSTER_STATISTICS and threshold is None:
        raise ValueError(
            f"statistic={statistic!r} needs a cluster-forming threshold on the t-map: pass "
            "e.g. threshold=3.1 (about p < 0.001 one-sided for large df); a negative "
            "threshold forms clusters of t below it."
        )
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real) \
            or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1); got {alpha!r}.")
    return _StatSpec(statistic, threshold=threshold, alpha=float(alpha))


@deprecated_alias(weights="adjacency")
@fill_doc
def map_permutation_test(
    responses,
    conditions,
    contrast,
    *,
    statistic: Statistic | Callable = "morans_i",
    n_permutations: int = 1000,
    seed=None,
    n_jobs: int | None = None,
    groups=None,
    covariates=None,
    equal_var: bool = False,
    alternative: Alternative | None = None,
    threshold: float | None = None,
    alpha: float = 0.05,
    adjacency=DEFAULT_ADJACENCY,
    chunk_size: int | None = None,
    verbose: int = 1,
) -> PermutationResult:
    """Test a map statistic of a contrast against a label-permutation null.

    For every layer the unit statistic of ``contrast`` (Welch t by default) is mapped
    onto the sheet and summarised by ``statistic`` (Moran's I by default). The null
    recomputes the same map statistic after permuting the item labels (two-sample
    contrasts) or flipping the signs of the items (one-sample contrasts), for all units
    of all layers at once. Because the units' responses are left as they are, the null
    keeps whatever spatial correlation the units have (from a spatial loss, from readout
    smoothing); the test asks whether the *contrast* is more topographic than arbitrary
    groupings of the same items.

    Parameters
    ----------
    responses : ndarray or Activations
        Maps of shape ``(n_items, n_rows, n_cols)`` (one layer) or ``(n_items, n_layers,
        n_rows, n_cols)``, NaN where no unit sits (the same cells in every item); or
        extracted :class:`~topobrain.extract.Activations` (each layer's ``(n_items,
        n_units)`` responses placed by its sheet; units sharing a cell are averaged, as
        ``sheet.to_map`` does). Never modified. Units whose response is constant over
        the items tested are left out (their t is undefined).
    conditions : sequence of str, DataFrame, StimulusSet or None
        Condition of each item, in the order of the responses' items (a table: its
        ``condition`` column). None takes the conditions the Activations carry.
    contrast : str, Contrast or dict
        ``"S - N"`` (two-sample: the pooled items of the positive side against those of
        the negative side, as :func:`topobrain.glm.welch_t`; items of other conditions
        are left out) or ``"S"`` (one-sample: the items of ``S`` against 0).
    statistic : str or callable, default="morans_i"
        ``"morans_i"`` (global Moran's I, weights row-standardised, as esda and TopoLM),
        ``"gearys_c"``, ``"n_clusters"``, ``"max_cluster_size"`` (cells),
        ``"max_cluster_mass"`` (largest ``|sum of t|`` over a cluster's cells) at
        ``threshold``,
        ``"smoothness"`` (the TDANN smoothness ``(max(d) - d[0]) / max(d)`` of the map's
        dissimilarity-vs-distance curve, ``d`` the mean squared difference of t between
        cells in unit-width distance bins; :func:`topobrain.spatial.distance_profile`
        applies the same formula to the units' response correlations, which a label
        permutation leaves unchanged), ``"fraction_selective"`` (fraction of the layer's
        units that are selective for the positive side: BH-FDR at ``alpha`` over the
        layer on one-sided p, or ``t > threshold`` when a threshold is given), or a
        callable taking one map ``(n_rows, n_cols)`` (NaN where no unit sits) and
        returning a float.
    %(n_permutations)s
    %(seed)s
    %(n_jobs)s
    groups : sequence, optional
        Exchangeability group of each item (run, block, session): labels are permuted
        only within groups; for one-sample contrasts each group's items are flipped
        together (whole-block sign flips), which keeps dependence within a group.
    covariates : dict, DataFrame or ndarray of shape (n_items, n_covariates), optional
        Continuous covariates: the unit statistic becomes the OLS t of the contrast from
        :func:`topobrain.glm.fit_glm` with the design of
        :func:`topobrain.glm.design_matrix` (cell-means coded conditions plus the
        centred covariates). Condition labels are permuted among the contrast's items
        while the covariates stay with their items (Manly's scheme; exact when the
        covariates are exchangeable with the labels, approximate otherwise). Slower:
        one fit per permutation.
    equal_var : bool, default=False
        Student's pooled-variance t instead of Welch's t (two-sample, no covariates).
    alternative : {"greater", "less", "two-sided"}, optional
        Which tail of the map statistic counts as extreme. Default: ``"less"`` for
        Geary's C (clustering lowers it), ``"greater"`` for every other statistic.
    threshold : float, optional
        t value forming clusters (required for the cluster statistics; negative: clusters
        of t below it) or marking selective units for ``"fraction_selective"``.
    alpha : float, default=0.05
        FDR level of ``"fraction_selective"`` without a threshold.
    adjacency : {"queen", "rook", "distance_band", "kernel"} or scipy.sparse matrix, \
default="queen"
        Neighbours of the sheet's cells. Moran's I and Geary's C use the spatial
        weights over the occupied cells (:func:`topobrain.sheet.grid_weights` for the
        names, row-standardised); the cluster statistics link rook or queen neighbours
        as given (queen for the distance kinds). A sparse matrix (or libpysal W) of
        shape ``(n_rows * n_cols, n_rows * n_cols)`` over the row-major cells of every
        layer's sheet gives custom neighbours (restricted to the occupied cells,
        row-standardised for Moran's I and Geary's C). Recorded in
        ``params["adjacency"]``. The old name ``weights=`` still works, with a
        DeprecationWarning.
    chunk_size : int, optional
        Permutations per parallel task (rounded up to a multiple of ``BLOCK_SIZE``); only
        the scheduling changes, never the numbers.
    %(verbose)s

    Returns
    -------
    PermutationResult
        Observed statistic per layer and averaged over layers, the null
        ``(n_permutations, n_layers)`` (fewer rows when the design allows fewer distinct
        permutations: all of them, an exact test), p-values and the null-standardised
        effect ``z``; ``to_frame()`` gives one row per layer.

    Raises
    ------
    TypeError, ValueError
        On malformed responses, conditions, contrast, groups or options; the message
        names the fix.

    Warns
    -----
    UserWarning
        When the scheme has no more distinct permutations than ``n_permutations`` (tiny
        designs): the test enumerates them all (exact) and the smallest attainable p is
        one over their number. When a layer's observed map is constant up to rounding
        (its Moran's I, Geary's C or smoothness would be a ratio of rounding errors): that
        layer's statistic and p are NaN, and the mean over layers leaves it out.

    Notes
    -----
    Moran's I is scale-free: it measures how much of the map's variance is shared with
    the neighbours, not how large the effect is. A planted effect whose pattern is no
    broader than the units' own correlation (the noise's smoothness) gives maps exactly
    as autocorrelated as the null's, however strong it is, and Moran's I cannot detect
    it; an effect broader than the noise raises I above the null. Use
    ``"fraction_selective"`` or the cluster statistics to test the effect's size.

    A permutation can rarely make a unit constant within both groups (its t undefined);
    such a t counts as 0 in the permuted map.

    References: Nichols & Holmes (2002) for label permutation, Winkler et al. (2015) for
    exchangeability blocks, Phipson & Smyth (2010) for the +1 correction; see the module
    docstring.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> maps = rng.standard_normal((20, 2, 6, 6))          # 20 items, 2 layers, 6 x 6
    >>> maps[:10, :, :3, :] += 1.0                          # S > N in the top half
    >>> labels = ["S"] * 10 + ["N"] * 10
    >>> res = map_permutation_test(maps, labels, "S - N", n_permutations=99, seed=0,
    ...                            verbose=0)
    >>> res.null.shape, bool(res.p_mean < 0.05)
    ((99, 2), True)
    """
    adjacency = _check_grid_adjacency(adjacency)
    spec = _stat_spec(statistic, threshold, alpha)
    n_permutations = _check_int("n_permutations", n_permutations, 1)
    if alternative is None:
        alternative = "less" if spec.name == "gearys_c" else "greater"
    check_option("alternative", alternative, _ALTERNATIVES)
    if not isinstance(equal_var, (bool, np.bool_)):
        raise TypeError(f"equal_var must be True or False; got {equal_var!r}.")
    n_jobs = check_n_jobs(n_jobs)
    if chunk_size is not None:
        chunk_size = _check_int("chunk_size", chunk_size, 1)
    ss = as_seed_sequence(seed)

    data = _prepare_responses(responses)
    if conditions is None and data.conditions is not None:
        conditions = data.conditions
    design = _build_design(conditions, contrast, data.n_items, groups, covariates, equal_var)
    y, layers = data.select(design.rows, adjacency, spec.name == "smoothness")

    perms = design.permutations(ss, n_permutations)
    if perms.exact:
        warnings.warn(
            f"The design allows only {perms.n_distinct} distinct {design.scheme}s, no more "
            f"than n_permutations={n_permutations}: the test enumerates all of them (exact), "
            f"and the smallest attainable p is {1 / perms.n_distinct:.3g}. Use more items "
            "(or fewer, larger groups) for a finer null.", UserWarning, stacklevel=3)

    moments = centred_moments(y) if design.kind in ("welch", "student") else None
    observed = _statistics(y, design, layers, spec, design.identity(), moments)[0]
    undefined = np.isnan(observed) & (spec.name in _SCALE_FREE)
    if undefined.any():
        names = [layers[j].name for j in np.flatnonzero(undefined)]
        warnings.warn(
            f"The observed map of layer(s) {names[:5]} is constant up to rounding: its "
            f"{spec.name} is undefined, so its statistic and p are NaN and the mean over "
            "layers leaves it out. Check the responses of those layers.",
            UserWarning, stacklevel=3)
    null = _permute(y, design, layers, spec, perms, n_jobs, chunk_size, verbose, moments)
    kept = ~undefined
    observed_mean = float(np.mean(observed[kept])) if kept.any() else float("nan")
    null_mean_layers = null[:, kept].mean(1) if kept.any() else np.full(len(null), np.nan)
    p = permutation_pvalue(observed, null, alternative, exact=perms.exact)
    p_mean = float(permutation_pvalue(observed_mean, null_mean_layers, alternative,
                                      exact=perms.exact))
    params = {
        "statistic": spec.name,
        "contrast": str(design.contrast or parse_contrast(contrast)),
        "unit_statistic": design.unit_statistic,
        "scheme": design.scheme,
        "alternative": alternative,
        "n_permutations": perms.n_permutations,
        "n_permutations_requested": n_permutations,
        "exact": perms.exact,
        **seed_record(ss),
        "block_size": BLOCK_SIZE,
        "groups": None if groups is None
        else int(pd.Series(np.asarray(groups, dtype=object).tolist()).astype(str).nunique()),
        "threshold": spec.threshold,
        "alpha": spec.alpha if spec.name == "fraction_selective" else None,
        "adjacency": adjacency_name(adjacency),
        "n_items": int(design.rows.size),
        "n_distinct_permutations": perms.n_distinct,
        "covariates": None if design.covariates is None else list(design.covariates),
    }
    return PermutationResult(
        statistic=spec.name,
        layers=[layer.name for layer in layers],
        observed=observed,
        observed_mean=observed_mean,
        null=null,
        null_mean_over_layers=null_mean_layers,
        p=p,
        p_mean=p_mean,
        z=_zscore(observed, null),
        z_mean=float(_zscore(np.array([observed_mean]), null_mean_layers[:, None])[0]),
        params=params,
    )


def _permute(y, design, layers, spec, perms, n_jobs, chunk_size, verbose,
             moments=None) -> np.ndarray:
    """The null (n_permutations, n_layers), block by block through the core's dispatcher."""
    per_chunk = None if chunk_size is None else max(1, -(-chunk_size // BLOCK_SIZE))
    logger.info("map_permutation_test: %d permutations (%s) in %d blocks",
                perms.n_permutations, "exact" if perms.exact else "drawn", perms.n_blocks)
    func = functools.partial(_null_chunk, y, design, layers, spec, perms, moments)
    parts = run_blocks(func, range(perms.n_blocks), n_jobs=n_jobs, verbose=verbose,
                       desc="permutations", chunk_size=per_chunk)
    return np.concatenate(parts, axis=0)


def _check_grid_adjacency(adjacency):
    """The inference adjacency: a grid name (incl. the distance kinds) or a sparse matrix."""
    return check_adjacency(adjacency, allowed=_GRID_KINDS)


# ---------------------------------------------------------------------------------------
# Split-half reliability
# ---------------------------------------------------------------------------------------
def _rowwise_corr(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """Correlation of each row of ``a`` with the same row of ``b`` over entries finite in
    both (pairwise complete), shape (k,)."""
    valid = np.isfinite(a) & np.isfinite(b)
    if method == "spearman":
        from scipy.stats import rankdata

        a = np.where(valid, a, np.nan)
        b = np.where(valid, b, np.nan)
        a = rankdata(a, axis=1, nan_policy="omit")
        b = rankdata(b, axis=1, nan_policy="omit")
    n = valid.sum(1)
    a0 = np.where(valid, a, 0.0)
    b0 = np.where(valid, b, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ma = a0.sum(1, keepdims=True) / n[:, None]
        mb = b0.sum(1, keepdims=True) / n[:, None]
        da = np.where(valid, a0 - ma, 0.0)
        db = np.where(valid, b0 - mb, 0.0)
        r = (da * db).sum(1) / np.sqrt((da * da).sum(1) * (db * db).sum(1))
    return np.where(n >= 3, np.clip(r, -1.0, 1.0), np.nan)


def _map_corr(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """:func:`_rowwise_corr`, NaN where either map is constant up to rounding (its
    correlation would be a ratio of rounding errors)."""
    r = _rowwise_corr(a, b, method)
    r[near_constant(a, axis=1) | near_constant(b, axis=1)] = np.nan
    return r


def _warn_constant(undefined: np.ndarray, names: list) -> None:
    if np.any(undefined):
        bad = [names[j] for j in np.flatnonzero(undefined)]
        warnings.warn(
            f"The maps of layer(s) {bad[:5]} are constant up to rounding (or have fewer "
            "than 3 shared locations): their correlation is undefined, so their "
            "reliability is NaN. Check those layers' responses.", UserWarning, stacklevel=3)


def _spearman_brown(r: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 * r / (1.0 + r)


def _half_assignments(design: _Design, method: str, n_splits: int, ss,
                      grouped: bool) -> np.ndarray:
    """Boolean (n_splits, n_rows): True for items of half A.

    Items are split in whole exchangeability groups (each item its own group without
    ``groups``), stratified by the set of labels a group holds, so that each half keeps
    both sides of a two-sample contrast. Odd/even: within each stratum, the groups in
    order of first appearance alternate A, B, A, ...; random: the same after a shuffle.
    """
    # exchangeability groups of the used items, or each item on its own
    units = design.strata if grouped else np.arange(design.rows.size)
    lab = design.labels if design.labels is not None else np.zeros(units.size, np.int64)
    n_units = int(units.max()) + 1
    signature = [tuple(sorted(set(lab[units == u].tolist()))) for u in range(n_units)]
    strata = _codes(np.array([str(s) for s in signature], dtype=object))
    out = np.empty((n_splits, units.size), dtype=bool)
    for i in range(n_splits):
        rng = None if method == "odd_even" else block_rng(ss, i)
        in_a = np.zeros(n_units, dtype=bool)
        for s in range(int(strata.max()) + 1):
            members = np.flatnonzero(strata == s)
            if rng is not None:
                members = rng.permutation(members)
            in_a[members[0::2]] = True
        out[i] = in_a[units]
    return out


def _half_statistics(y, design: _Design, halves: np.ndarray):
    """Unit statistic of half A and half B for each split: two (n_splits, n_units)."""
    if design.kind in ("welch", "student"):
        pos = design.labels == 0
        student = design.kind == "student"
        out = []
        for half in (halves, ~halves):
            t, _ = two_sample_t(y, np.stack([half & pos, half & ~pos], axis=1),
                                equal_var=student)
            out.append(t)
        return out[0], out[1]
    t_a, t_b = [], []
    for half in halves:
        for rows, acc in ((half, t_a), (~half, t_b)):
            if design.kind == "one_sample":
                acc.append(design.sign * one_sample_t(y[rows]))
            else:
                sub = _Design("glm", design.rows[rows], design.labels[rows], design.strata[rows],
                              names=design.names,
                              covariates={k: v[rows] for k, v in design.covariates.items()},
                              contrast=design.contrast)
                acc.append(_glm_t(y[rows], sub.labels[None, :], sub)[0][0])
    return np.array(t_a), np.array(t_b)


def split_half_reliability(
    responses,
    conditions,
    contrast,
    *,
    method: Literal["odd_even", "random"] = "random",
    n_splits: int | None = None,
    seed=None,
    groups=None,
    covariates=None,
    equal_var: bool = False,
    correlation: Literal["pearson", "spearman"] = "pearson",
    spearman_brown: bool = True,
) -> SplitHalfResult:
    """Split-half reliability of each layer's contrast map.

    The items are split into two halves, the unit statistic of ``contrast`` (the one
    :func:`map_permutation_test` uses) is computed from each half, and the two maps are
    correlated over the sheet's cells, per layer. The Spearman-Brown formula
    ``2 r / (1 + r)`` turns the half-size correlation into the reliability of the
    full-size map.

    Parameters
    ----------
    responses, conditions, contrast, groups, covariates, equal_var
        As in :func:`map_permutation_test`. With ``groups``, whole groups (runs, blocks)
        go to one half.
    method : {"odd_even", "random"}, default="random"
        ``"odd_even"``: within each condition (each set of conditions a group holds) the
        items (groups) in their given order alternate between the halves, one split;
        ``"random"``: ``n_splits`` random splits with the same stratification.
    n_splits : int, optional
        Number of random splits (default 100); must be 1 (or None) with ``"odd_even"``.
    seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
        Seeds the random splits (split ``i`` from block ``i`` of the seed, by the
        permutation core's seed and block rules).
    correlation : {"pearson", "spearman"}, default="pearson"
        Correlation between the halves' maps, over the cells both define.
    spearman_brown : bool, default=True
        Apply the Spearman-Brown correction to the mean half correlation.

    Returns
    -------
    SplitHalfResult
        ``r_half`` (n_splits, n_layers), its mean over splits ``r`` and the corrected
        ``reliability`` per layer; ``to_frame()`` gives one row per layer.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pattern = rng.standard_normal((8, 8))
    >>> maps = rng.standard_normal((40, 8, 8))
    >>> maps[:20] += pattern                                  # S - N = pattern
    >>> labels = ["S"] * 20 + ["N"] * 20
    >>> res = split_half_reliability(maps, labels, "S - N", n_splits=20, seed=0)
    >>> bool(res.reliability[0] > 0.7)
    True
    """
    check_option("method", method, ("odd_even", "random"))
    check_option("correlation", correlation, ("pearson", "spearman"))
    if n_splits is None:
        n_splits = 1 if method == "odd_even" else 100
    n_splits = _check_int("n_splits", n_splits, 1)
    if method == "odd_even" and n_splits != 1:
        raise ValueError(
            f"method='odd_even' gives exactly one split; got n_splits={n_splits}. Use "
            "method='random' for repeated splits."
        )
    if not isinstance(equal_var, (bool, np.bool_)):
        raise TypeError(f"equal_var must be True or False; got {equal_var!r}.")
    ss = as_seed_sequence(seed) if method == "random" else None
    data = _prepare_responses(responses)
    if conditions is None and data.conditions is not None:
        conditions = data.conditions
    design = _build_design(conditions, contrast, data.n_items, groups, covariates, equal_var)
    y, layers = data.select(design.rows, "queen")
    halves = _half_assignments(design, method, n_splits, ss, groups is not None)
    if design.kind in ("welch", "student"):
        pos = design.labels == 0
        short = np.minimum.reduce([(halves & pos).sum(1), (halves & ~pos).sum(1),
                                   (~halves & pos).sum(1), (~halves & ~pos).sum(1)])
        need = 2
    else:
        short = np.minimum(halves.sum(1), (~halves).sum(1))
        need = 2 if design.kind == "one_sample" else len(design.names) + 1
    if short.min() < need:
        raise ValueError(
            f"A half has only {int(short.min())} items of a condition side (at least {need} "
            "are needed for its t-map). Use more items, or fewer, smaller groups."
        )
    t_a, t_b = _half_statistics(y, design, halves)
    r_half = np.empty((n_splits, len(layers)))
    for j, layer in enumerate(layers):
        cols = layer.columns
        r_half[:, j] = _map_corr(layer.cells(t_a[:, cols]), layer.cells(t_b[:, cols]),
                                 correlation)
    _warn_constant(np.isnan(r_half).all(0), [layer.name for layer in layers])
    r = _nanmean(r_half, 0)
    rel = _spearman_brown(r) if spearman_brown else r
    params = {
        "method": method,
        "n_splits": n_splits,
        "correlation": correlation,
        "spearman_brown": bool(spearman_brown),
        **(seed_record(ss) if ss is not None else {"seed": None, "spawn_key": ()}),
        "contrast": str(design.contrast or parse_contrast(contrast)),
        "unit_statistic": design.unit_statistic,
        "groups": None if groups is None
        else int(pd.Series(np.asarray(groups, dtype=object).tolist()).astype(str).nunique()),
    }
    return SplitHalfResult([layer.name for layer in layers], r_half, r, rel,
                           float(_nanmean(rel, 0)), params)


def map_reliability(
    map_a,
    map_b,
    *,
    correlation: Literal["pearson", "spearman"] = "pearson",
    spearman_brown: bool = True,
    layers=None,
) -> SplitHalfResult:
    """Reliability of a map from two independent measurements of it in one space.

    For two runs of a brain contrast, or two halves of a model's items: the correlation
    of the two maps over the locations both define (NaN elsewhere), Spearman-Brown
    corrected to the reliability of their average.

    Parameters
    ----------
    map_a, map_b : ndarray
        The same shape: ``(n_vertices,)`` or ``(n_rows, n_cols)`` (one map) or
        ``(n_layers, n_rows, n_cols)`` (one map per layer). NaN where nothing was
        measured. Never modified.
    correlation : {"pearson", "spearman"}, default="pearson"
    spearman_brown : bool, default=True
    layers : sequence, optional
        Layer names (default ``0..n_layers-1``).

    Returns
    -------
    SplitHalfResult
        With one split: ``r_half`` of shape (1, n_layers).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.standard_normal(500)
    >>> run1, run2 = truth + rng.standard_normal(500), truth + rng.standard_normal(500)
    >>> res = map_reliability(run1, run2)
    >>> round(float(res.r[0]), 1), round(float(res.reliability[0]), 1)
    (0.5, 0.7)
    """
    check_option("correlation", correlation, ("pearson", "spearman"))
    arrays = []
    for name, m in (("map_a", map_a), ("map_b", map_b)):
        arr = np.asarray(m)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) \
                or np.iscomplexobj(arr):
            raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
        arrays.append(arr.astype(np.float64))
    a, b = arrays
    if a.shape != b.shape:
        raise ValueError(
            f"map_a and map_b must have the same shape (one space); got {a.shape} and "
            f"{b.shape}. Resample one map onto the other's space first."
        )
    if a.ndim not in (1, 2, 3):
        raise ValueError(
            "maps must be (n_vertices,), (n_rows, n_cols) or (n_layers, n_rows, n_cols); got "
            f"shape {a.shape}."
        )
    lead = a.reshape(1, -1) if a.ndim < 3 else a.reshape(a.shape[0], -1)
    other = b.reshape(lead.shape)
    if np.isinf(lead).any() or np.isinf(other).any():
        raise ValueError("maps hold infinite values; only NaN may mark missing locations.")
    n_layers = lead.shape[0]
    if layers is None:
        layers = list(range(n_layers))
    else:
        layers = list(layers)
        if len(layers) != n_layers:
            raise ValueError(f"layers names {len(layers)} layers; the maps have {n_layers}.")
    r = _map_corr(lead, other, correlation)
    shared = (np.isfinite(lead) & np.isfinite(other)).sum(1)
    if (shared < 3).any():
        raise ValueError(
            f"The maps share fewer than 3 finite locations (layer "
            f"{layers[int(np.argmin(shared))]!r}: {int(shared.min())}); a correlation needs "
            "at least 3."
        )
    _warn_constant(np.isnan(r), layers)
    rel = _spearman_brown(r) if spearman_brown else r
    params = {"method": "maps", "n_splits": 1, "correlation": correlation,
              "spearman_brown": bool(spearman_brown), "seed": None}
    return SplitHalfResult(layers, r[None, :], r, rel, float(_nanmean(rel, 0)), params)
