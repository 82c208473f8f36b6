"""Connected clusters, cluster tables, permutation cluster tests, TFCE and seed-and-grow.

Neuroimagers report clusters that survive a family-wise-error (FWE) controlled test,
not "there are clusters". This module gives the model sheets the same tools:

* :func:`find_clusters` -- connected suprathreshold clusters of statistic maps on a grid
  (queen neighbours by default, as Moran's I, or rook) or on any sparse adjacency or
  libpysal W (a surface mesh), as a
  :class:`ClusterTable` (id, sign, size, mass, peak, centroid, layer), like nilearn's
  ``get_clusters_table``.
* :func:`permutation_cluster_test` -- cluster-based permutation tests (Maris &
  Oostenveld, 2007): two-sample (item labels permuted between groups), multi-group F,
  or one-sample (sign flips); cluster size or mass; threshold-free cluster enhancement
  (TFCE, Smith & Nichols, 2009); FWE-corrected p-values from the null distribution of
  the maximum over the whole family of maps (all layers at once) or per layer.
* :func:`tfce` -- the TFCE transform of statistic maps on its own.
* :func:`seed_and_grow` -- the region-growing clustering of TopoLM's language-network
  analysis (Rathi et al., 2025): grow from the most selective unit while neighbours have
  ``p_FDR < alpha``, repeat, drop clusters below a minimum size.

Conventions shared by every function here, and matched exactly to MNE-Python's
``mne.stats`` cluster functions:

* Cluster-forming thresholds are strict: a unit is suprathreshold when
  ``stat > threshold`` (``tail=1``), ``stat < -threshold`` (``tail=-1``) or either,
  with positive and negative units clustered separately (``tail=0``).
* A cluster's mass is the sum of its units' statistics (MNE's ``t_power=1``); its size
  is its number of units (``t_power=0``).
* TFCE is MNE's Riemann sum: thresholds ``h = start, start + step, ...`` below the map's
  most extreme value, each adding ``h**H * dh * extent**E`` to every unit of every
  cluster at that height (``dh`` = the step, the first one measured from 0).
* Maps carry NaN where no unit sits; NaN units are never suprathreshold. Units whose
  responses are constant across items (to rounding) get NaN statistics, with a warning.
* Permutations, seeds, p-values and parallel work come from topobrain's one permutation
  core: exact enumeration when the design allows no more permutations than asked for,
  draws without duplicates otherwise, ties within rounding, nulls that depend only on
  the seed (never on ``n_jobs`` or the joblib backend).

Layouts of data (``n_items`` responses) and maps (statistics):

* grid, several layers: ``(n_items, n_layers, n_rows, n_cols)`` / ``(n_layers, n_rows,
  n_cols)``, or a dict ``layer -> (n_items, n_rows, n_cols)`` / ``layer -> (n_rows,
  n_cols)``;
* grid, one layer: ``(n_items, n_rows, n_cols)`` / ``(n_rows, n_cols)``;
* graph (mesh): ``adjacency`` a scipy.sparse ``(n_vertices, n_vertices)`` matrix and
  ``(n_items, n_vertices)`` or ``(n_items, n_layers, n_vertices)`` data /
  ``(n_vertices,)`` or ``(n_layers, n_vertices)`` maps. A sparse adjacency over the
  ``n_rows * n_cols`` cells of a grid (e.g. ``topobrain.sheet.grid_weights(shape,
  "queen", transform="b")``) also accepts grid-shaped inputs.

Results always carry a leading layer axis.

References
----------
.. [1] Maris E, Oostenveld R (2007). Nonparametric statistical testing of EEG- and
   MEG-data. J Neurosci Methods 164:177-190.
.. [2] Smith SM, Nichols TE (2009). Threshold-free cluster enhancement: addressing
   problems of smoothing, threshold dependence and localisation in cluster inference.
   NeuroImage 44:83-98.
.. [3] Rathi N, Mehrer J, AlKhamissi B, Binhuraib T, Blauch NM, Schrimpf M (2025).
   TopoLM: brain-like spatio-functional organization in a topographic language model.
   ICLR 2025.
.. [4] Gramfort A et al. (2013). MEG and EEG data analysis with MNE-Python. Front
   Neurosci 7:267.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from scipy.sparse.csgraph import connected_components

from ._utils._adjacency import (
    DEFAULT_ADJACENCY,
    GRID_ADJACENCIES,
    Adjacency,
    adjacency_name,
    check_adjacency,
    user_stacklevel,
)
from ._utils._docs import fill_doc
from ._utils._permutation import (
    BLOCK_SIZE,
    as_seed_sequence,
    centred_moments,
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
from ._utils._stats import near_constant, one_way_f
from ._utils._validation import check_option

__all__ = [
    "ClusterTable",
    "ClusterTestResult",
    "cluster_forming_threshold",
    "find_clusters",
    "permutation_cluster_test",
    "seed_and_grow",
    "tfce",
]

logger = logging.getLogger("topobrain")

Tail = Literal[-1, 0, 1]
Stat = Literal["t", "f"]
ClusterStat = Literal["mass", "size", "tfce"]
Family = Literal["all", "layer"]

_TAILS = (-1, 0, 1)
_STATS = ("t", "f")
_CLUSTER_STATS = ("mass", "size", "tfce")
_FAMILIES = ("all", "layer")
_TFCE_DEFAULTS = {"e": 0.5, "h": 2.0, "step": 0.2, "start": 0.0}


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True, eq=False)
class _Layout:
    """Where the cells of a map are and which of them touch (private)."""

    kind: str  # "grid" (ndimage labelling) or "graph" (sparse components)
    grid_kind: str  # "rook", "queen" or "sparse"
    adjacency: str  # what results record in params (``adjacency_name``)
    layers: tuple
    n_cells: int  # cells per layer map
    grid_shape: tuple | None  # (n_rows, n_cols) when cells sit on a grid
    structure: np.ndarray | None  # 3D ndimage structure, no links across maps
    edges: tuple | None  # (i, j) upper-triangle edges of the graph

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def map_shape(self) -> tuple:
        return self.grid_shape if self.grid_shape is not None else (self.n_cells,)

    def neighbours(self) -> sp.csr_matrix:
        """Binary symmetric adjacency over the cells of one layer."""
        if self.kind == "grid":
            from .sheet import grid_weights

            return sp.csr_matrix(grid_weights(self.grid_shape, self.grid_kind, transform="b"))
        i, j = self.edges
        w = sp.coo_matrix((np.ones(i.size), (i, j)), shape=(self.n_cells, self.n_cells))
        return sp.csr_matrix(w + w.T)


def _grid_structure(kind: str) -> np.ndarray:
    s2 = ndimage.generate_binary_structure(2, 1 if kind == "rook" else 2)
    s3 = np.zeros((3, 3, 3), dtype=bool)
    s3[1] = s2  # links within a map only: maps stacked on axis 0 never touch
    return s3


def _sparse_edges(matrix) -> tuple[int, tuple]:
    """Upper-triangle edges ``(i, j)``, ``i < j``, of a checked square adjacency: a
    nonzero entry either way links two cells; the diagonal is ignored."""
    a = sp.coo_matrix(matrix)
    keep = (a.data != 0) & (a.row != a.col)
    i, j = a.row[keep], a.col[keep]
    lo, hi = np.minimum(i, j), np.maximum(i, j)  # symmetrise: an edge either way links
    n = int(matrix.shape[0])
    if lo.size:
        key = np.unique(lo.astype(np.int64) * n + hi)
        lo, hi = np.divmod(key, n)
    return n, (lo.astype(np.intp), hi.astype(np.intp))


def _resolve_layout(shape: tuple, adjacency, *, what: str, lead: int) -> tuple[_Layout, bool]:
    """Build the layout for arrays of ``shape`` (after ``lead`` leading item axes).

    ``adjacency`` is what the user passed (checked here by the one ``check_adjacency``).
    Returns the layout and whether the input holds several layers.
    """
    body = tuple(shape[lead:])
    checked = check_adjacency(adjacency, allowed=GRID_ADJACENCIES)
    name = adjacency_name(adjacency)
    if isinstance(checked, str):
        if len(body) not in (2, 3):
            raise ValueError(
                f"{what} must have shape {'(n_items, ' if lead else '('}[n_layers,] n_rows, "
                f"n_cols) on a grid; got shape {tuple(shape)}. For a mesh pass a sparse "
                "adjacency matrix as adjacency=."
            )
        multi = len(body) == 3
        grid = body[-2:]
        return (
            _Layout("grid", checked, name, (), int(grid[0] * grid[1]),
                    tuple(int(g) for g in grid), _grid_structure(checked), None),
            multi,
        )
    n_vertices, edges = _sparse_edges(checked)
    if len(body) in (1, 2) and body[-1] == n_vertices:
        return (_Layout("graph", "sparse", name, (), n_vertices, None, None, edges),
                len(body) == 2)
    if len(body) in (2, 3) and body[-2] * body[-1] == n_vertices:
        grid = (int(body[-2]), int(body[-1]))
        return (_Layout("graph", "sparse", name, (), n_vertices, grid, None, edges),
                len(body) == 3)
    raise ValueError(
        f"{what} of shape {tuple(shape)} does not fit an adjacency over {n_vertices} "
        f"vertices: the last axis (or the last two, for a grid) must hold {n_vertices} "
        "cells."
    )


def _stack_dict(values: Mapping, what: str, axis: int) -> tuple[np.ndarray, tuple]:
    if len(values) == 0:
        raise ValueError(f"{what} is an empty dict; pass at least one layer.")
    names = tuple(values.keys())
    arrays = [np.asarray(values[k], dtype=np.float64) for k in names]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        listed = ", ".join(f"{k!r}: {a.shape}" for k, a in zip(names, arrays, strict=False))
        raise ValueError(
            f"all layers of {what} must have the same shape; got {listed}. Pad smaller "
            "sheets with NaN where no unit sits."
        )
    if axis > arrays[0].ndim:
        raise ValueError(
            f"each layer of {what} must have at least {axis} axes; got shape {arrays[0].shape}."
        )
    return np.stack(arrays, axis=axis), names


def _as_float(values, what: str, check_inf: bool = True) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a numeric array; got {type(values).__name__}.") from exc
    if check_inf and np.isinf(arr).any():
        raise ValueError(
            f"{what} holds {int(np.isinf(arr).sum())} infinite values; mark cells without a "
            "unit with NaN and remove or clip the infinities."
        )
    return arr


def _maps_input(stat_map, adjacency, what: str) -> tuple[np.ndarray, _Layout]:
    """Statistic maps -> ``(n_layers, n_cells)`` float with NaN, and the layout."""
    names = None
    if isinstance(stat_map, Mapping):
        stat_map, names = _stack_dict(stat_map, what, axis=0)
    arr = _as_float(stat_map, what)
    layout, multi = _resolve_layout(arr.shape, adjacency, what=what, lead=0)
    if names is not None and not multi:
        raise ValueError(f"each layer of the dict {what} must be one map; got {arr.shape}.")
    n_layers = arr.shape[0] if multi else 1
    layers = names if names is not None else tuple(range(n_layers))
    layout = _with_layers(layout, layers)
    return arr.reshape(n_layers, layout.n_cells).copy(), layout


def _with_layers(layout: _Layout, layers: tuple) -> _Layout:
    return dataclasses.replace(layout, layers=tuple(layers))


def _data_input(data, adjacency) -> tuple[np.ndarray, _Layout]:
    """Responses -> ``(n_items, n_layers, n_cells)`` float with NaN, and the layout."""
    names = None
    if isinstance(data, Mapping):
        data, names = _stack_dict(data, "data", axis=1)  # entries are (n_items, ...)
    arr = _as_float(data, "data", check_inf=False)  # checked with the NaN layout
    if arr.ndim < 2:
        raise ValueError(
            f"data must have a leading item axis, e.g. (n_items, n_rows, n_cols); got shape "
            f"{arr.shape}."
        )
    layout, multi = _resolve_layout(arr.shape, adjacency, what="data", lead=1)
    if names is not None and not multi:
        raise ValueError(
            f"each layer of the dict data must be (n_items, ...) responses; got {arr.shape}."
        )
    n_layers = arr.shape[1] if multi else 1
    layers = names if names is not None else tuple(range(n_layers))
    return arr.reshape(arr.shape[0], n_layers, layout.n_cells), _with_layers(layout, layers)


# ------------------------------------------------------------------ labelling core


def _label(active: np.ndarray, layout: _Layout) -> tuple[np.ndarray, int]:
    """Connected components of each row of ``active`` (n_maps, n_cells).

    Returns labels of shape (n_maps, n_cells), 0 outside, 1..n inside, numbered in
    map order: the labels of map ``m`` form one contiguous range after those of map
    ``m - 1``.
    """
    n_maps = active.shape[0]
    if layout.kind == "grid":
        labels = np.empty(active.shape, dtype=np.int32)
        n = ndimage.label(active.reshape((n_maps,) + layout.grid_shape),
                          structure=layout.structure,
                          output=labels.reshape((n_maps,) + layout.grid_shape))
        return labels, int(n)
    flat = active.reshape(-1)
    nodes = np.flatnonzero(flat)
    labels = np.zeros(flat.size, dtype=np.int32)
    if nodes.size == 0:
        return labels.reshape(active.shape), 0
    i, j = layout.edges
    both = active[:, i] & active[:, j]
    m, e = np.nonzero(both)
    remap = np.empty(flat.size, dtype=np.intp)
    remap[nodes] = np.arange(nodes.size)
    src = remap[m * layout.n_cells + i[e]]
    dst = remap[m * layout.n_cells + j[e]]
    g = sp.coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)),
                      shape=(nodes.size, nodes.size))
    n, comp = connected_components(g, directed=False)
    # renumber components by their first node, so labels ascend with maps
    _, first = np.unique(comp, return_index=True)
    rank = np.empty(n, dtype=np.int32)
    rank[np.argsort(first, kind="stable")] = np.arange(1, n + 1, dtype=np.int32)
    labels[nodes] = rank[comp]
    return labels.reshape(active.shape), int(n)


def _per_map_max(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Largest ``values[label - 1]`` within each map (row) of ``labels``; 0 if none."""
    n_maps = labels.shape[0]
    out = np.zeros(n_maps)
    if values.size == 0:
        return out
    ends = np.maximum.accumulate(labels.max(axis=1).astype(np.int64))
    starts = np.concatenate(([0], ends[:-1]))
    filled = ends > starts
    out[filled] = np.maximum.reduceat(values, starts[filled])
    return out


def _signs(tail: int) -> tuple:
    return (1, -1) if tail == 0 else (tail,)


def _max_cluster_stat(x: np.ndarray, layout: _Layout, threshold: float, tail: int,
                      cluster_stat: str) -> np.ndarray:
    """Largest cluster statistic (size or |mass|, in the tested direction) per map."""
    best = np.zeros(x.shape[0])
    for sign in _signs(tail):
        active = x > threshold if sign == 1 else x < -threshold
        labels, n = _label(active, layout)
        if n == 0:
            continue
        if cluster_stat == "size":
            vals = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
        else:
            vals = np.bincount(labels.ravel(), weights=x.ravel(), minlength=n + 1)[1:] * sign
        np.maximum(best, _per_map_max(vals, labels), out=best)
    return best


def _tfce_scores(x: np.ndarray, layout: _Layout, tail: int, e: float, h: float,
                 step: float, start: float) -> np.ndarray:
    """Unsigned TFCE scores of each map (row) of ``x``; MNE's Riemann sum."""
    scores = np.zeros(x.shape)
    for sign in _signs(tail):
        z = x if sign == 1 else -x
        zmax = np.where(np.isnan(z), -np.inf, z).max(axis=1)
        stop = zmax.max()
        if not np.isfinite(stop) or stop <= start:
            continue
        heights = np.arange(start, stop, step, dtype=float)
        previous = 0.0
        for k, height in enumerate(heights):
            dh = abs(height) if k == 0 else abs(height - previous)
            previous = height
            alive = np.flatnonzero(zmax > height)
            if alive.size == 0:
                break
            sub = z if alive.size == z.shape[0] else z[alive]
            labels, n = _label(sub > height, layout)
            if n == 0:
                continue
            extent = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64)
            contrib = (abs(height) ** h * dh) * extent**e
            contrib[0] = 0.0
            if alive.size == z.shape[0]:
                scores += contrib[labels]
            else:
                scores[alive] += contrib[labels]
    return scores


# ------------------------------------------------------------------ cluster table


def _freeze(*arrays):
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.setflags(write=False)


@dataclass(frozen=True, eq=False)
class ClusterTable(FrameReprMixin):
    """Connected clusters of one or more statistic maps, one row per cluster.

    Attributes
    ----------
    labels : ndarray of int32, shape (n_layers, n_rows, n_cols) or (n_layers, n_vertices)
        Cluster id of every unit, 0 outside every cluster (and where no unit sits).
    layers : tuple
        Layer names (dict keys, or ``0..n_layers-1``).
    cluster_id : ndarray of int, shape (n_clusters,)
        ``1..n_clusters``, unique over all layers; ordered by layer, then by decreasing
        absolute mass.
    layer_index : ndarray of int, shape (n_clusters,)
        Position of each cluster's layer in ``layers``.
    sign : ndarray of int, shape (n_clusters,)
        +1 for clusters of positive statistics, -1 for negative ones.
    size : ndarray of int, shape (n_clusters,)
        Number of units.
    mass : ndarray of float, shape (n_clusters,)
        Sum of the statistic over the cluster (negative for negative clusters).
    peak_value : ndarray of float, shape (n_clusters,)
        Most extreme statistic in the cluster (seed-and-grow: the seed's value).
    peak_unit : ndarray of int, shape (n_clusters,)
        Flat cell index of the peak within its layer map (row-major ``row * n_cols +
        col`` on a grid, the vertex on a mesh).
    centroid : ndarray of float, shape (n_clusters, 2), or None
        Unweighted mean (row, col) position of the units, in sheet units; None on a
        mesh without grid positions.
    grid_shape : tuple of int or None
        ``(n_rows, n_cols)`` when the cells sit on a grid.
    p_fwe : ndarray of float, shape (n_clusters,), or None
        FWE-corrected p-value of each cluster (from :func:`permutation_cluster_test`);
        None for plain cluster tables.
    params : mapping
        How the table was made (method, threshold, tail, adjacency, min_size).
    """

    labels: np.ndarray
    layers: tuple
    cluster_id: np.ndarray
    layer_index: np.ndarray
    sign: np.ndarray
    size: np.ndarray
    mass: np.ndarray
    peak_value: np.ndarray
    peak_unit: np.ndarray
    centroid: np.ndarray | None
    grid_shape: tuple | None
    p_fwe: np.ndarray | None
    params: Mapping

    def __post_init__(self):
        _freeze(self.labels, self.cluster_id, self.layer_index, self.sign, self.size,
                self.mass, self.peak_value, self.peak_unit, self.centroid, self.p_fwe)

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return int(self.cluster_id.size)

    def __len__(self) -> int:
        return self.n_clusters

    def mask(self, cluster_id: int) -> np.ndarray:
        """Boolean map of one cluster, shaped like :attr:`labels`."""
        if int(cluster_id) not in set(self.cluster_id.tolist()):
            raise ValueError(
                f"cluster_id {cluster_id!r} is not in this table; ids run from 1 to "
                f"{self.n_clusters}."
            )
        return self.labels == int(cluster_id)

    def to_frame(self):
        """Tidy table, one row per cluster.

        Returns
        -------
        pandas.DataFrame
            Columns ``layer, cluster_id, sign, size, mass, peak_value, peak_row,
            peak_col, centroid_row, centroid_col`` on grids (``peak_vertex`` instead of
            the position columns on meshes), plus ``p_fwe`` after a test. Positions are
            in sheet units (row and column indices).
        """
        import pandas as pd

        cols: dict[str, Any] = {
            "layer": [self.layers[i] for i in self.layer_index],
            "cluster_id": self.cluster_id,
            "sign": self.sign,
            "size": self.size,
            "mass": self.mass,
            "peak_value": self.peak_value,
        }
        if self.grid_shape is not None:
            r, c = np.divmod(self.peak_unit, self.grid_shape[1])
            cols["peak_row"], cols["peak_col"] = r, c
            cols["centroid_row"] = self.centroid[:, 0]
            cols["centroid_col"] = self.centroid[:, 1]
        else:
            cols["peak_vertex"] = self.peak_unit
        if self.p_fwe is not None:
            cols["p_fwe"] = self.p_fwe
        return pd.DataFrame(cols)

    def __repr__(self) -> str:
        where = (f"{self.grid_shape[0]}x{self.grid_shape[1]} grid" if self.grid_shape
                 else f"{self.labels.shape[-1]} vertices")
        head = (f"ClusterTable({self.n_clusters} clusters over {len(self.layers)} layer(s) "
                f"of a {where}; {self.params.get('method', '')}, "
                f"threshold={self.params.get('threshold')}, tail={self.params.get('tail')})")
        if self.n_clusters == 0:
            return head
        frame = self.to_frame()
        return head + "\n" + frame.head(10).to_string(index=False) + (
            f"\n... {self.n_clusters - 10} more" if self.n_clusters > 10 else "")


def _table_arrays(x: np.ndarray, labels: np.ndarray, n: int, sign: int, layout: _Layout):
    """Per-cluster columns of one sign's labelling (clusters ``1..n``)."""
    flat = labels.ravel()
    cells = np.flatnonzero(flat)
    lab = flat[cells]
    vals = x.ravel()[cells]
    size = np.bincount(lab, minlength=n + 1)[1:]
    mass = np.bincount(lab, weights=vals, minlength=n + 1)[1:]
    # peak: the most extreme value in the direction of the sign, first cell on ties
    order = np.lexsort((cells, -sign * vals, lab))
    first = order[np.r_[0, np.flatnonzero(np.diff(lab[order])) + 1]]
    peak_value = vals[first]
    layer_of = cells[first] // layout.n_cells
    peak_unit = cells[first] % layout.n_cells
    if layout.grid_shape is not None:
        r, c = np.divmod(cells % layout.n_cells, layout.grid_shape[1])
        centroid = np.column_stack([
            np.bincount(lab, weights=r, minlength=n + 1)[1:] / size,
            np.bincount(lab, weights=c, minlength=n + 1)[1:] / size,
        ])
    else:
        centroid = None
    return layer_of, size, mass, peak_value, peak_unit, centroid


def _build_table(x: np.ndarray, layout: _Layout, threshold: float, tail: int, min_size: int,
                 params: dict) -> ClusterTable:
    """Cluster table of ``x`` (n_layers, n_cells) at a cluster-forming threshold."""
    parts = []
    for sign in _signs(tail):
        active = x > threshold if sign == 1 else x < -threshold
        labels, n = _label(active, layout)
        if n:
            cols = _table_arrays(x, labels, n, sign, layout)
            parts.append((sign, labels, n, cols))
    return _assemble(parts, x.shape, layout, min_size, params)


def _assemble(parts, shape, layout, min_size, params) -> ClusterTable:
    """Merge per-sign clusters, drop small ones, order and number them."""
    rows = []
    for pi, (sign, _, n, (layer_of, size, mass, peak_value, peak_unit, centroid)) in enumerate(
            parts):
        for k in range(n):
            rows.append((layer_of[k], -abs(mass[k]), sign, k, size[k], mass[k], peak_value[k],
                         peak_unit[k], None if centroid is None else centroid[k], pi))
    rows = [r for r in rows if r[4] >= min_size]
    rows.sort(key=lambda r: (r[0], r[1], -r[2], r[7]))
    lookups = [np.zeros(part[2] + 1, dtype=np.int32) for part in parts]
    for cid, r in enumerate(rows, start=1):
        lookups[r[9]][r[3] + 1] = cid
    out_labels = np.zeros(shape, dtype=np.int32)
    for part, lookup in zip(parts, lookups, strict=False):
        out_labels += lookup[part[1]]
    return _table_from_rows(out_labels, layout,
                            [(r[0], r[2], r[4], r[5], r[6], r[7], r[8]) for r in rows], params)


def _table_from_rows(labels: np.ndarray, layout: _Layout, rows: list, params) -> ClusterTable:
    """A ClusterTable from numbered labels and one row per cluster, in cluster-id order:
    ``(layer, sign, size, mass, peak_value, peak_unit, centroid or None)``."""
    k = len(rows)
    return ClusterTable(
        labels=labels.reshape((layout.n_layers,) + layout.map_shape),
        layers=layout.layers,
        cluster_id=np.arange(1, k + 1),
        layer_index=np.array([r[0] for r in rows], dtype=np.intp),
        sign=np.array([r[1] for r in rows], dtype=np.int8),
        size=np.array([r[2] for r in rows], dtype=np.intp),
        mass=np.array([r[3] for r in rows], dtype=float),
        peak_value=np.array([r[4] for r in rows], dtype=float),
        peak_unit=np.array([r[5] for r in rows], dtype=np.intp),
        centroid=(np.array([r[6] for r in rows], dtype=float).reshape(k, 2)
                  if layout.grid_shape is not None else None),
        grid_shape=layout.grid_shape,
        p_fwe=None,
        params=MappingProxyType(dict(params)),
    )


def _check_tail(tail) -> int:
    if isinstance(tail, bool) or not isinstance(tail, (int, np.integer)):
        raise TypeError(f"tail must be -1, 0 or 1 (an int); got {tail!r}.")
    return int(check_option("tail", int(tail), _TAILS))


def _check_threshold(threshold, tail: int) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
        raise TypeError(
            f"threshold must be a number (the cluster-forming statistic value); got "
            f"{type(threshold).__name__}."
        )
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(
            f"threshold must be a finite value of the unit statistic (>= 0; units with stat "
            f"> threshold form clusters); got {threshold}. If it came from a p-value, use "
            "cluster_forming_threshold(p, df) with 0 < p < 1 and finite df > 0; "
            "permutation_cluster_test takes threshold=None for the p = 0.05 quantile."
        )
    if tail == -1:
        return abs(threshold)  # MNE's negative spelling and the magnitude mean the same
    if threshold < 0:
        raise ValueError(
            f"threshold must be >= 0 for tail={tail} (units with stat > threshold"
            f"{' or stat < -threshold' if tail == 0 else ''} form clusters); got "
            f"{threshold}. For negative clusters only use tail=-1."
        )
    return threshold


def _check_min_size(min_size) -> int:
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise ValueError(f"min_size must be a positive integer (units); got {min_size!r}.")
    return int(min_size)


def find_clusters(
    stat_map,
    threshold: float,
    *,
    adjacency: Adjacency = DEFAULT_ADJACENCY,
    tail: Tail = 0,
    min_size: int = 1,
) -> ClusterTable:
    """Connected suprathreshold clusters of statistic maps, as a table.

    Parameters
    ----------
    stat_map : ndarray or dict
        Statistic maps, NaN where no unit sits: ``(n_rows, n_cols)``, ``(n_layers,
        n_rows, n_cols)``, a dict ``layer -> (n_rows, n_cols)``, or with a sparse
        ``adjacency`` ``(n_vertices,)`` / ``(n_layers, n_vertices)``. Not modified.
    threshold : float
        Cluster-forming threshold on the statistic (strict, as in MNE): units with
        ``stat > threshold`` (``tail=1``), ``stat < -threshold`` (``tail=-1``; a
        negative value, MNE's spelling, means the same), or either (``tail=0``).
    adjacency : {"rook", "queen"}, scipy.sparse matrix or libpysal W, default="queen"
        Neighbours on the grid (rook: 4 edge neighbours; queen: also the 4 corners; the
        package's one default for sheets, as for Moran's I), or any ``(n_vertices,
        n_vertices)`` adjacency (a mesh, a libpysal W, or a grid's
        ``topobrain.sheet.grid_weights(shape, kind, transform="b")``); a nonzero entry
        either way links two cells. Layers never link to each other. MNE's lattice
        (``adjacency=None`` there) is ``"rook"``. Recorded in ``params["adjacency"]``.
    tail : {0, 1, -1}, default=0
        Which clusters to form; with 0, positive and negative units form separate
        clusters.
    min_size : int, default=1
        Drop clusters with fewer units.

    Returns
    -------
    ClusterTable
        One row per cluster, ordered by layer, then by decreasing absolute mass;
        ``table.to_frame()`` for a pandas table.

    See Also
    --------
    permutation_cluster_test : FWE-corrected p-values for the clusters.
    seed_and_grow : TopoLM's region-growing clusters of FDR-significant units.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((6, 6)); t[1:3, 1:4] = 4.0; t[4, 4] = -5.0
    >>> table = find_clusters(t, 3.0)
    >>> table.to_frame()[["cluster_id", "sign", "size", "mass", "peak_row", "peak_col"]]
       cluster_id  sign  size  mass  peak_row  peak_col
    0           1     1     6  24.0         1         1
    1           2    -1     1  -5.0         4         4
    """
    tail = _check_tail(tail)
    threshold = _check_threshold(threshold, tail)
    min_size = _check_min_size(min_size)
    x, layout = _maps_input(stat_map, adjacency, "stat_map")
    params = {"method": "threshold", "threshold": threshold, "tail": tail,
              "adjacency": layout.adjacency, "min_size": min_size}
    return _build_table(x, layout, threshold, tail, min_size, params)


def _check_tfce_params(tfce_params) -> dict:
    if tfce_params is None:
        return dict(_TFCE_DEFAULTS)
    if not isinstance(tfce_params, Mapping):
        raise TypeError(
            "tfce_params must be a dict with keys 'e', 'h', 'step', 'start'; got "
            f"{type(tfce_params).__name__}."
        )
    from ._utils._validation import suggest

    out = dict(_TFCE_DEFAULTS)
    for key, value in tfce_params.items():
        if key not in _TFCE_DEFAULTS:
            raise ValueError(
                f"Unknown TFCE parameter {key!r}; allowed keys are 'e', 'h', 'step' and "
                f"'start'.{suggest(str(key), list(_TFCE_DEFAULTS))}"
            )
        out[key] = float(value)
    if not out["step"] > 0:
        raise ValueError(
            f"tfce_params['step'] must be > 0 (statistic units; MNE's negative steps for "
            f"tail=-1 are handled by tail=-1 here); got {out['step']}."
        )
    if out["start"] < 0:
        raise ValueError(f"tfce_params['start'] must be >= 0; got {out['start']}.")
    if out["e"] < 0 or out["h"] < 0:
        raise ValueError(
            f"tfce_params 'e' and 'h' must be >= 0; got e={out['e']}, h={out['h']}."
        )
    return out


def tfce(
    stat_map,
    *,
    adjacency: Adjacency = DEFAULT_ADJACENCY,
    tail: Tail = 0,
    tfce_params: Mapping | None = None,
) -> np.ndarray:
    """Threshold-free cluster enhancement of statistic maps.

    Parameters
    ----------
    stat_map : ndarray or dict
        Statistic maps in any layout of :func:`find_clusters`. Not modified.
    adjacency : {"rook", "queen"}, scipy.sparse matrix or libpysal W, default="queen"
        As in :func:`find_clusters`.
    tail : {0, 1, -1}, default=0
        Enhance positive (1), negative (-1) or both (0) signs, each separately.
    tfce_params : dict, optional
        ``e`` (extent exponent, default 0.5), ``h`` (height exponent, default 2.0),
        ``step`` (height step in statistic units, default 0.2) and ``start`` (first
        height, default 0.0): MNE's ``threshold=dict(start=0, step=0.2)`` with its
        ``e_power=0.5, h_power=2`` defaults. The integral is MNE's Riemann sum over
        heights ``start + k * step`` below the most extreme value, each adding
        ``h**H * dh * extent**E``.

    Returns
    -------
    ndarray of shape (n_layers, n_rows, n_cols) or (n_layers, n_vertices)
        Signed TFCE scores (the sign of the statistic), NaN where no unit sits.

    References
    ----------
    Smith SM, Nichols TE (2009). NeuroImage 44:83-98.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((4, 4)); t[1, 1:3] = 0.5
    >>> tfce(t, tail=1)[0, 1, 1:3].round(4)  # heights 0.2 and 0.4, extent 2
    array([0.0566, 0.0566])
    """
    tail = _check_tail(tail)
    params = _check_tfce_params(tfce_params)
    x, layout = _maps_input(stat_map, adjacency, "stat_map")
    scores = _tfce_scores(x, layout, tail, params["e"], params["h"], params["step"],
                          params["start"])
    out = scores * np.sign(x)
    return out.reshape((layout.n_layers,) + layout.map_shape)


# ------------------------------------------------------------------ seed and grow


def seed_and_grow(
    p_map,
    *,
    alpha: float = 0.05,
    adjacency: Adjacency = DEFAULT_ADJACENCY,
    min_size: int = 1,
    stat_map=None,
) -> ClusterTable:
    """TopoLM's seed-and-grow clusters of significant units (region growing).

    The published clustering of TopoLM's language-network analysis (Rathi et al., 2025): take the
    unit with the smallest FDR-corrected p-value (the most selective) as a seed, add
    neighbouring units while their ``p_FDR < alpha`` (breadth first, through any number
    of steps), then repeat from the most selective unit not yet assigned; finally drop
    clusters with fewer than ``min_size`` units. Grown without ``stat_map``, the
    clusters are exactly the connected components of the significant units; with
    ``stat_map`` a cluster grows only into units of its seed's sign.

    Parameters
    ----------
    p_map : ndarray or dict
        FDR-corrected p-values in [0, 1], in any layout of :func:`find_clusters`, NaN
        where no unit sits. Not modified.
    alpha : float, default=0.05
        Significance level; units with ``p_FDR < alpha`` can join a cluster.
    adjacency : {"rook", "queen"}, scipy.sparse matrix or libpysal W, default="queen"
        As in :func:`find_clusters`.
    min_size : int, default=1
        Drop clusters with fewer units (set it to the minimum size of the study you
        reproduce).
    stat_map : ndarray or dict, optional
        The signed statistic (e.g. t) in the same layout: gives each cluster its sign,
        mass (sum of the statistic) and peak value, and keeps signs apart. Without it
        the cluster values are ``-log10(p_FDR)`` and every sign is +1.

    Returns
    -------
    ClusterTable
        One row per kept cluster in the order the seeds were taken (by layer, then
        smallest p first); the peak is the seed.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.full((5, 5), 0.5); p[0, :3] = [0.01, 0.001, 0.04]; p[4, 4] = 0.02
    >>> table = seed_and_grow(p, alpha=0.05, min_size=2)
    >>> table.to_frame()[["cluster_id", "size", "peak_row", "peak_col"]]
       cluster_id  size  peak_row  peak_col
    0           1     3         0         1
    """
    if not (isinstance(alpha, (int, float, np.number)) and 0 < float(alpha) <= 1):
        raise ValueError(f"alpha must be in (0, 1]; got {alpha!r}.")
    alpha = float(alpha)
    min_size = _check_min_size(min_size)
    p, layout = _maps_input(p_map, adjacency, "p_map")
    finite = np.isfinite(p)
    if ((p[finite] < 0) | (p[finite] > 1)).any():
        raise ValueError(
            "p_map must hold p-values in [0, 1] (NaN where no unit sits); got values in "
            f"[{np.nanmin(p):.3g}, {np.nanmax(p):.3g}]. Pass FDR-corrected p-values, not "
            "statistics."
        )
    if stat_map is not None:
        stat, layout_s = _maps_input(stat_map, adjacency, "stat_map")
        if stat.shape != p.shape:
            raise ValueError(
                f"stat_map must have the layout of p_map ({p.shape[0]} layer(s) of "
                f"{p.shape[1]} cells); got {stat.shape[0]} layer(s) of {stat.shape[1]}."
            )
        values = stat
        sign_of = np.sign(np.nan_to_num(stat))
    else:
        with np.errstate(divide="ignore"):
            values = -np.log10(p)
        sign_of = np.ones_like(p)
    adj = layout.neighbours()
    indptr, indices = adj.indptr, adj.indices
    labels = np.zeros(p.shape, dtype=np.int32)
    rows = []
    for li in range(p.shape[0]):
        pl = p[li]
        free = np.isfinite(pl) & (pl < alpha)
        for seed in np.flatnonzero(free)[np.argsort(pl[free], kind="stable")]:
            if not free[seed]:
                continue
            free[seed] = False
            members = [seed]
            queue = deque([seed])
            s = sign_of[li, seed]
            while queue:
                u = queue.popleft()
                for v in indices[indptr[u]:indptr[u + 1]]:
                    if free[v] and (stat_map is None or sign_of[li, v] == s):
                        free[v] = False
                        members.append(v)
                        queue.append(v)
            if len(members) < min_size:
                continue
            members = np.asarray(members)
            cid = len(rows) + 1
            labels[li, members] = cid
            if layout.grid_shape is not None:
                r, c = np.divmod(members, layout.grid_shape[1])
                centroid = (r.mean(), c.mean())
            else:
                centroid = None
            rows.append((li, int(s) if s != 0 else 1, members.size,
                         float(np.sum(values[li, members])), float(values[li, seed]),
                         int(seed), centroid))
    return _table_from_rows(labels, layout, rows,
                            {"method": "seed_and_grow", "alpha": alpha, "threshold": alpha,
                             "tail": 0, "adjacency": layout.adjacency,
                             "min_size": min_size,
                             "values": "stat_map" if stat_map is not None else "-log10(p)"})


# ------------------------------------------------------------------ permutation test


@dataclass(frozen=True, eq=False)
class ClusterTestResult(FrameReprMixin):
    """Result of :func:`permutation_cluster_test`.

    Attributes
    ----------
    stat_map : ndarray of shape (n_layers, n_rows, n_cols) or (n_layers, n_vertices)
        Observed unit statistic (t: group 0 minus group 1, or the one-sample t; F), NaN
        where no unit sits.
    clusters : ClusterTable or None
        Observed clusters with their ``p_fwe`` (cluster tests); None for TFCE.
    tfce_map : ndarray or None
        Signed TFCE scores of the observed map (TFCE); None for cluster tests.
    p_fwe_map : ndarray, same shape as ``stat_map``
        FWE-corrected p-value of every unit: its own (TFCE) or its cluster's (cluster
        tests; NaN outside clusters).
    null_distribution : ndarray of shape (n_permutations,) or (n_layers, n_permutations)
        Maximum cluster statistic (size, or absolute mass in the tested direction) or
        maximum TFCE score of each permutation: over the whole family (``family="all"``)
        or per layer (``family="layer"``). Random permutations leave the observed
        labelling out, ``p = (1 + #{null >= observed}) / (n_permutations + 1)``; an exact
        test (``params["exact"]``) holds every distinct permutation, the identity first,
        ``p = #{null >= observed} / n_permutations``; ties within rounding count.
    threshold : float or None
        Cluster-forming threshold used (None for TFCE).
    layers : tuple
        Layer names.
    params : mapping
        stat, equal_var, tail, cluster_stat, family, n_permutations, permutations
        ("random", "exact" or "given"), exact, n_distinct (the number of distinct
        permutations of the design), seed and spawn_key (the permutation stream), block
        size, tfce parameters, degrees of freedom, adjacency (as ``adjacency_name``
        records it), design (one-sample or n_groups and group sizes).
    """

    stat_map: np.ndarray
    clusters: ClusterTable | None
    tfce_map: np.ndarray | None
    p_fwe_map: np.ndarray
    null_distribution: np.ndarray
    threshold: float | None
    layers: tuple
    params: Mapping

    def __post_init__(self):
        _freeze(self.stat_map, self.tfce_map, self.p_fwe_map, self.null_distribution)

    @property
    def p_fwe(self) -> np.ndarray | None:
        """Per-cluster FWE p-values (cluster tests), None for TFCE."""
        return None if self.clusters is None else self.clusters.p_fwe

    def to_frame(self):
        """Tidy table: one row per cluster (cluster tests) or per unit (TFCE).

        Returns
        -------
        pandas.DataFrame
            Cluster tests: the :meth:`ClusterTable.to_frame` columns with ``p_fwe``.
            TFCE: ``layer``, ``row``/``col`` (or ``vertex``), ``stat``, ``tfce``,
            ``p_fwe`` for every unit that sits on the sheet.
        """
        if self.clusters is not None:
            return self.clusters.to_frame()
        import pandas as pd

        n_layers = len(self.layers)
        stat = self.stat_map.reshape(n_layers, -1)
        ok = np.isfinite(stat)
        li, cell = np.nonzero(ok)
        cols: dict[str, Any] = {"layer": [self.layers[i] for i in li]}
        if self.stat_map.ndim == 3:
            r, c = np.divmod(cell, self.stat_map.shape[-1])
            cols["row"], cols["col"] = r, c
        else:
            cols["vertex"] = cell
        cols["stat"] = stat[ok]
        cols["tfce"] = self.tfce_map.reshape(n_layers, -1)[ok]
        cols["p_fwe"] = self.p_fwe_map.reshape(n_layers, -1)[ok]
        return pd.DataFrame(cols)

    def to_xarray(self):
        """The maps as an ``xarray.Dataset`` (dims ``layer, row, col`` or ``layer, vertex``)."""
        import xarray as xr

        dims = ("layer", "row", "col") if self.stat_map.ndim == 3 else ("layer", "vertex")
        data = {"stat": (dims, self.stat_map), "p_fwe": (dims, self.p_fwe_map)}
        if self.tfce_map is not None:
            data["tfce"] = (dims, self.tfce_map)
        if self.clusters is not None:
            data["cluster_id"] = (dims, self.clusters.labels)
        return xr.Dataset(data, coords={"layer": list(self.layers)},
                          attrs={k: str(v) for k, v in self.params.items()})

    def __repr__(self) -> str:
        p = self.params
        kind = "TFCE" if self.clusters is None else f"cluster {p['cluster_stat']}"
        head = (f"ClusterTestResult({p['design']}, stat={p['stat']!r}, tail={p['tail']}, "
                f"{kind}, family={p['family']!r}, n_permutations={p['n_permutations']}"
                f"{' (exact)' if p.get('exact') else ''}, "
                f"{len(self.layers)} layer(s))")
        if self.clusters is None:
            n_sig = int(np.sum(self.p_fwe_map < 0.05))
            return head + f"\n{n_sig} units with p_fwe < 0.05"
        n_sig = int(np.sum(self.clusters.p_fwe < 0.05))
        return head + f"\n{n_sig} of {self.clusters.n_clusters} clusters with p_fwe < 0.05\n" + (
            self.clusters.to_frame().head(10).to_string(index=False)
            if self.clusters.n_clusters else "")


def _check_groups(groups, n_items: int) -> np.ndarray:
    """Group masks -> bool (n_groups, n_items)."""
    try:
        masks = np.asarray(groups)
    except (TypeError, ValueError) as exc:  # ragged sequences
        raise TypeError(
            "groups must be a sequence of boolean masks over the items, one per group."
        ) from exc
    if masks.ndim != 2 or masks.shape[1] != n_items:
        raise ValueError(
            f"groups must be boolean masks of shape (n_groups, n_items) = (n_groups, "
            f"{n_items}); got shape {masks.shape}. Pass e.g. [conditions == 'S', "
            "conditions == 'N']."
        )
    if masks.dtype != bool:
        if not np.isin(masks, (0, 1)).all():
            raise ValueError("groups must be boolean masks (True where an item is in the "
                             "group); got values other than 0/1.")
        masks = masks.astype(bool)
    if masks.shape[0] < 2:
        raise ValueError(
            f"groups must hold at least two masks (two-sample or F test); got "
            f"{masks.shape[0]}. For a one-sample test pass groups=None."
        )
    overlap = masks.sum(0) > 1
    if overlap.any():
        raise ValueError(
            f"groups overlap: {int(overlap.sum())} items are in more than one group (first "
            f"item {int(np.flatnonzero(overlap)[0])}). Each item must be in at most one group."
        )
    sizes = masks.sum(1)
    if (sizes < 2).any():
        raise ValueError(
            f"every group needs at least 2 items; got group sizes {sizes.tolist()}."
        )
    return masks


def _check_permutations(permutations, n_perm_items: int, one_sample: bool) -> np.ndarray:
    """Explicit permutations -> sign rows (one-sample) or the core's index rows.

    Two-sample orders come in MNE's convention (grouped item ``order[i]`` takes the label
    of grouped item ``i``); the core permutes labels as ``labels[indices]``, so the index
    row of an order is its inverse permutation.
    """
    arr = np.asarray(permutations)
    if arr.ndim != 2 or arr.shape[1] != n_perm_items or arr.shape[0] < 1:
        raise ValueError(
            f"permutations must have shape (n_permutations, {n_perm_items}) "
            f"({'one sign per item' if one_sample else 'one item order per permutation'}); "
            f"got shape {arr.shape}."
        )
    if one_sample:
        if not np.isin(arr, (-1, 1)).all():
            raise ValueError("one-sample permutations must be signs, -1 or +1 per item.")
        return arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.integer) or not (
        np.sort(arr, axis=1) == np.arange(n_perm_items)).all():
        raise ValueError(
            f"two-sample permutations must be permutations of 0..{n_perm_items - 1} (the "
            "positions of the grouped items, in data order) in every row."
        )
    return np.argsort(arr, axis=1).astype(np.int64)


class _StatEngine:
    """Unit statistics of the observed data and of permuted blocks (private).

    Every statistic, observed or permuted, comes from :meth:`permuted`: the observed one
    is the identity (all signs +1, or the identity index row) evaluated as the first row
    of a block-sized call, so that it is the same arithmetic, in the same BLAS call
    shape, as every row of the null; in an exact test the identity *is* row 0 of block 0
    and reproduces the observed statistic bit for bit.

    * one-sample t: the core's ``permuted_one_sample_t`` (sign rows);
    * two-sample t (Welch or pooled): the core's ``permuted_two_sample_t`` (index rows,
      ``labels[rows]`` the permuted labels);
    * two-group F: one matrix product per block through the centred group-0 indicator
      (``SSB = c * (a - n0 / n) @ yc`` squared; the total sum of squares does not change
      under a permutation); the square of the pooled t, at half its cost;
    * k-group F: the shared ``one_way_f`` kernel.
    """

    def __init__(self, y: np.ndarray, masks: np.ndarray | None, stat: str, equal_var: bool):
        self.stat = stat
        self.equal_var = equal_var
        if masks is None:
            self.y = y
            self.n = y.shape[0]
            self.kind = "one"
            return
        used = masks.any(0)
        self.y = y if used.all() else y[used]
        self.labels = np.argmax(masks[:, used], axis=0).astype(np.int64)  # group of each item
        self.k = masks.shape[0]
        self.sizes = masks.sum(1).astype(float)
        self.n = self.y.shape[0]
        if self.k > 2:
            self.kind = "many"
        elif stat == "t":
            self.kind = "t2"
            self.moments = centred_moments(self.y)
        else:
            self.kind = "f2"
            self.yc = self.y - self.y.mean(0)
            self.sst = np.einsum("ij,ij->j", self.yc, self.yc)

    def identity(self) -> np.ndarray:
        """The identity in the form :meth:`permuted` takes, shape (1, n)."""
        if self.kind == "one":
            return np.ones((1, self.n))
        return identity_permutation(self.n)

    def observed(self, first_block: np.ndarray, exact: bool) -> np.ndarray:
        """Observed statistic, shape (n_units,): row 0 of block 0 when the test is exact
        (block 0 starts with the identity), else the identity in place of the first row
        of block 0 (the same call shape as a block)."""
        rows = first_block if exact else np.concatenate(
            [self.identity(), first_block[:BLOCK_SIZE - 1]], axis=0)
        return self.permuted(rows)[0]

    def permuted(self, rows: np.ndarray) -> np.ndarray:
        """Statistics of a block, shape (len(rows), n_units): sign rows (one-sample) or
        index rows (``labels[rows]`` the permuted labels)."""
        if self.kind == "one":
            return permuted_one_sample_t(self.y, rows)
        if self.kind == "t2":
            return permuted_two_sample_t(self.y, rows, self.labels, equal_var=self.equal_var,
                                         moments=self.moments)
        lab = self.labels[rows]
        if self.kind == "many":
            masks = (lab[:, None, :] == np.arange(self.k)[None, :, None]).astype(np.float64)
            return one_way_f(self.y, masks)[0]
        n0, n1 = self.sizes
        n = n0 + n1
        a = (lab == 0).astype(np.float64)
        a -= n0 / n  # (a - n0/n) @ yc = S0 - n0 * grand mean: n0 * (mean0 - grand mean)
        d = a @ self.yc
        with np.errstate(divide="ignore", invalid="ignore"):
            ssb = d * d
            ssb *= n / (n0 * n1)
            ssw = np.subtract(self.sst, ssb)
            bad = ~(ssw > 0)
            out = ssb
            out *= n - 2
            out /= ssw
        out[bad] = np.nan
        return out


def _run_block(engine: _StatEngine, rows: np.ndarray, valid: np.ndarray, n_layers: int,
               layout: _Layout, spec: dict) -> np.ndarray:
    """Maximum statistic per permutation and layer: ``(len(rows), n_layers)``."""
    p = rows.shape[0]
    stats = engine.permuted(rows)
    if valid.all():
        x = stats.reshape(p * n_layers, layout.n_cells)
    else:
        x = np.full((p, valid.size), np.nan)
        x[:, valid] = stats
        x = x.reshape(p * n_layers, layout.n_cells)
    if spec["cluster_stat"] == "tfce":
        scores = _tfce_scores(x, layout, spec["tail"], spec["e"], spec["h"], spec["step"],
                              spec["start"])
        best = scores.max(axis=1)
    else:
        best = _max_cluster_stat(x, layout, spec["threshold"], spec["tail"],
                                 spec["cluster_stat"])
    return best.reshape(p, n_layers)


def _degrees_of_freedom(stat: str, engine: _StatEngine):
    """``n - 1`` (one-sample t), ``n - 2`` (two-sample t; Welch: the pooled value) or
    ``(k - 1, n - k)`` (F)."""
    if engine.kind == "one":
        return int(engine.n - 1)
    if stat == "f":
        return (int(engine.k - 1), int(engine.n - engine.k))
    return int(engine.n - 2)


def cluster_forming_threshold(p: float, df, *, stat: Stat = "t", tail: Tail = 0) -> float:
    """Cluster-forming threshold of the unit statistic at an uncorrected p-value.

    The one conversion of a cluster-forming p-value into a statistic threshold (MNE's
    rule for its default threshold, written for any ``p``).

    Parameters
    ----------
    p : float
        Uncorrected p-value of a unit at the threshold, ``0 < p < 1``: two-sided for
        ``tail=0`` (``p / 2`` in each tail), one-sided otherwise.
    df : float or (float, float)
        Degrees of freedom of the t statistic (> 0), or ``(df_between, df_within)`` of F.
    stat : {"t", "f"}, default="t"
        The unit statistic.
    tail : {0, 1, -1}, default=0
        The test's tail (t only; F is one-tailed).

    Returns
    -------
    float
        ``t(1 - p / (1 + (tail == 0)), df)`` or ``F(1 - p, df_between, df_within)``: a
        magnitude, >= 0 for t; pass it as ``threshold`` with the same ``tail``.

    Examples
    --------
    >>> round(cluster_forming_threshold(0.05, 20), 4)  # two-sided
    2.086
    >>> round(cluster_forming_threshold(0.001, (2, 30), stat="f"), 3)
    8.773
    """
    from scipy import stats as st

    check_option("stat", stat, _STATS)
    tail = _check_tail(tail)
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.number)) or not (
            0 < float(p) < 1):
        raise ValueError(
            f"the cluster-forming p must be a number in (0, 1), e.g. 0.001; got {p!r}."
        )
    dfs = np.atleast_1d(np.asarray(df, dtype=np.float64))
    if dfs.size != (2 if stat == "f" else 1) or not (np.isfinite(dfs).all() and (dfs > 0).all()):
        want = "(df_between, df_within) > 0" if stat == "f" else "one finite number > 0"
        raise ValueError(
            f"df must be {want} for stat={stat!r}; got {df!r}. NaN degrees of freedom mean "
            "every unit is constant across items: there is no statistic to threshold."
        )
    if stat == "f":
        return float(st.f.ppf(1.0 - float(p), dfs[0], dfs[1]))
    return float(-st.t.ppf(float(p) / (1 + (tail == 0)), dfs[0]))


def _default_threshold(stat: str, tail: int, df) -> float:
    return cluster_forming_threshold(0.05, df, stat=stat, tail=tail)


def _p_values(values: np.ndarray, null: np.ndarray, exact: bool) -> np.ndarray:
    """FWE p-values of observed maxima ``values`` (any shape) against a null of shape
    (B,): the core's rule (ties within rounding; exact tests count the identity inside
    the null), in slices so that the (B, slice) comparison stays small."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.ravel()
    out = np.empty(flat.shape)
    step = max(1, 2**22 // max(1, null.size))
    for lo in range(0, flat.size, step):
        out[lo:lo + step] = permutation_pvalue(flat[lo:lo + step], null[:, None], "greater",
                                               exact=exact)
    return out.reshape(values.shape)


@fill_doc
def permutation_cluster_test(
    data,
    groups=None,
    *,
    stat: Stat = "t",
    equal_var: bool = False,
    threshold: float | None = None,
    tail: Tail | None = None,
    cluster_stat: ClusterStat = "mass",
    family: Family = "all",
    adjacency: Adjacency = DEFAULT_ADJACENCY,
    tfce_params: Mapping | None = None,
    n_permutations: int = 1000,
    permutations=None,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
    n_jobs: int | None = None,
    verbose: int | bool = 1,
) -> ClusterTestResult:
    """Cluster-based permutation test with family-wise error control.

    The unit statistic is computed on the observed data and on ``n_permutations``
    random relabellings: item labels permuted between the groups (two-sample t, or F
    for two or more groups) or item signs flipped (one-sample t, ``groups=None``).
    Each map is thresholded into clusters (or TFCE-transformed), and the largest
    cluster statistic over the whole family of maps (all layers at once, or each layer
    on its own) forms the null distribution that gives every observed cluster (or unit,
    for TFCE) its FWE-corrected p-value [1]_ [2]_.

    Parameters
    ----------
    data : ndarray or dict
        Responses, NaN where no unit sits (the same cells in every item): ``(n_items,
        n_layers, n_rows, n_cols)``, ``(n_items, n_rows, n_cols)``, a dict ``layer ->
        (n_items, n_rows, n_cols)``, or with a sparse ``adjacency`` ``(n_items,
        n_vertices)`` / ``(n_items, n_layers, n_vertices)``. Not modified.
    groups : array-like of bool, shape (n_groups, n_items), optional
        Membership masks, e.g. ``[conditions == "S", conditions == "N"]``. Two groups:
        the t statistic is group 0 minus group 1; two or more with ``stat="f"``. Items
        in no group are left out. None: a one-sample test of the mean against 0.
    stat : {"t", "f"}, default="t"
        Unit statistic. ``"f"`` is the one-way ANOVA F (MNE's default ``f_oneway``;
        with two groups, the square of the pooled t).
    equal_var : bool, default=False
        Two-sample t: pooled-variance Student t (True) or Welch t (False, as in the
        published TopoLM localizer).
    threshold : float, optional
        Cluster-forming threshold on the unit statistic (strict inequality, see
        :func:`find_clusters`). Default: the statistic's p = 0.05 quantile, as MNE:
        ``t(1 - 0.05 / (1 + (tail == 0)), df)`` with ``df = n - 1`` (one-sample) or
        ``n - 2`` (two-sample; for Welch an approximation), ``F(0.95, k - 1, n - k)``.
        Must be None for TFCE.
    tail : {0, 1, -1}, optional
        Alternative: two-sided (0), positive (1) or negative (-1) effects. Default 0
        for t and 1 for F (F is one-tailed; other tails are refused).
    cluster_stat : {"mass", "size", "tfce"}, default="mass"
        Cluster mass (sum of the statistic), cluster size (units), or threshold-free
        cluster enhancement with unit-wise p-values.
    family : {"all", "layer"}, default="all"
        The maximum of the null is taken over all layers at once (FWE over the whole
        model) or per layer (FWE within each layer, as separate tests per layer).
    adjacency : {"rook", "queen"}, scipy.sparse matrix or libpysal W, default="queen"
        As in :func:`find_clusters`; layers never link to each other.
    tfce_params : dict, optional
        TFCE ``e``, ``h``, ``step``, ``start`` (defaults 0.5, 2.0, 0.2, 0.0), see
        :func:`tfce`.
    n_permutations : int, default=1000
        Number of permutations ``B``. When the design has no more than ``B`` distinct
        relabellings (two or more groups: ``n! / (n_0! n_1! ...)`` label vectors) or sign
        patterns (one-sample: ``2**(n-1)`` for ``tail=0``, whose statistic ``|t|`` does
        not change when every sign flips, so the first sign stays +1 as in MNE;
        ``2**n`` one-sided), every one of them is used, the identity first: an exact
        test, ``p = #{null >= observed} / B``, smallest p ``1 / B``. Otherwise ``B``
        distinct relabellings or sign patterns other than the identity are drawn and
        ``p = (1 + #{null >= observed}) / (B + 1)``. Ties within rounding count
        (``TIE_RTOL`` of the permutation core). Ignored when ``permutations`` is given.
    permutations : ndarray, optional
        Explicit permutations instead of random ones, e.g. to reproduce another
        package's null: one-sample, signs of shape ``(n_permutations, n_items)`` in
        {-1, +1}; otherwise item orders of shape ``(n_permutations, n_grouped)`` over the
        grouped items in data order (grouped item ``order[i]`` takes the group label of
        grouped item ``i``; MNE's ``rng.permutation`` orders when the items are ordered
        group by group).
    %(seed)s
    %(n_jobs)s
    verbose : int or bool, default=1
        Log the test's settings and show a progress bar over the permutations (tqdm)
        when the ``"topobrain"`` logger is at INFO or below; 0 silences both.

    Returns
    -------
    ClusterTestResult
        Observed statistic map, cluster table with ``p_fwe`` (or TFCE map), unit-wise
        FWE p map, null distribution and parameters.

    Notes
    -----
    Cluster masks, cluster statistics, TFCE scores and, with the same permutations,
    null distributions and p-values equal ``mne.stats.permutation_cluster_test`` and
    ``permutation_cluster_1samp_test`` (MNE-Python 1.13) on the same inputs and
    adjacency (tested; MNE's lattice is ``adjacency="rook"``), and so does the exact
    one-sample test with ``tail=0`` (for 6 subjects every effect gets MNE's
    ``p = 1/32 = 0.03125``). Where they differ, on purpose:

    * two-sample t with ``tail=0``: MNE's null takes the largest *signed* cluster
      statistic of each permutation (right for F, too lenient for two-tailed t); here it
      is the largest absolute one, as in MNE's own one-sample test;
    * TFCE with ``tail=-1``: MNE counts ``H0 <= score`` against a null of positive
      maxima and so returns inverted p-values (on the data of this module's test, its
      strongest negative unit gets p = 0.978); here ``tail=-1`` gives exactly MNE's own
      result for ``-data`` with ``tail=1`` (0.023 for that unit);
    * exact one-sided one-sample tests: MNE enumerates the ``2**n`` sign patterns but
      leaves out the all-flipped one and counts the identity twice (it takes the first
      row of its enumeration, every sign flipped, for the identity), so its exact p is
      this one plus ``1 / 2**n`` whenever its two computations of the identity agree.

    The observed statistic is the identity put through the null's own arithmetic (the
    permutation core's t, in a call shaped like a block of the null), so that in an
    exact test the identity, the first permutation, reproduces the observed maxima bit
    for bit.

    References
    ----------
    .. [1] Maris E, Oostenveld R (2007). J Neurosci Methods 164:177-190.
    .. [2] Smith SM, Nichols TE (2009). NeuroImage 44:83-98.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> data = rng.standard_normal((40, 2, 10, 10))
    >>> data[:20, 0, 2:6, 2:6] += 1.5                  # planted effect in layer 0
    >>> groups = [np.arange(40) < 20, np.arange(40) >= 20]
    >>> res = permutation_cluster_test(data, groups, n_permutations=199, seed=1)
    >>> best = res.clusters.to_frame().iloc[0]
    >>> int(best["layer"]), int(best["sign"]), int(best["size"]), float(best["p_fwe"])
    (0, 1, 16, 0.005)
    """
    check_option("stat", stat, _STATS)
    check_option("cluster_stat", cluster_stat, _CLUSTER_STATS)
    check_option("family", family, _FAMILIES)
    if not isinstance(equal_var, (bool, np.bool_)):
        raise TypeError(f"equal_var must be True or False; got {equal_var!r}.")
    if tail is None:
        tail = 1 if stat == "f" else 0
    tail = _check_tail(tail)
    if stat == "f" and tail != 1:
        raise ValueError(
            f"the F statistic is one-tailed: use tail=1 (or leave tail=None); got tail={tail}."
        )
    y3, layout = _data_input(data, adjacency)
    n_items, n_layers = y3.shape[0], y3.shape[1]
    flat = y3.reshape(n_items, -1)
    valid = np.isfinite(flat).all(0)
    if not valid.all():
        odd = flat[:, ~valid]
        if np.isinf(odd).any():
            raise ValueError(
                f"data holds {int(np.isinf(odd).sum())} infinite values; mark cells without "
                "a unit with NaN and remove or clip the infinities."
            )
        partial = ~np.isnan(odd).all(0)
        if partial.any():
            first = int(np.flatnonzero(~valid)[np.flatnonzero(partial)[0]])
            raise ValueError(
                f"data has NaN for some items but not others in {int(partial.sum())} units "
                f"(first flat unit {first}); NaN may only mark cells where no unit sits (NaN "
                "for every item). Impute or drop the incomplete items."
            )
    if not valid.any():
        raise ValueError("data holds no unit: every cell is NaN.")
    if groups is None:
        if stat == "f":
            raise ValueError("stat='f' needs groups (two or more masks); a one-sample test "
                             "uses stat='t' with groups=None.")
        masks = None
        if n_items < 2:
            raise ValueError(f"a one-sample test needs at least 2 items; got {n_items}.")
    else:
        masks = _check_groups(groups, n_items)
        if masks.shape[0] > 2 and stat == "t":
            raise ValueError(
                f"stat='t' compares two groups; got {masks.shape[0]} groups. Use stat='f' "
                "for more than two."
            )
    if cluster_stat == "tfce":
        if threshold is not None:
            raise ValueError("threshold is not used by TFCE (cluster_stat='tfce'); leave it "
                             "None and set the TFCE heights with tfce_params.")
        tfce_spec = _check_tfce_params(tfce_params)
    elif tfce_params is not None:
        raise ValueError("tfce_params only applies to cluster_stat='tfce'; got cluster_stat="
                         f"{cluster_stat!r}.")
    else:
        tfce_spec = None
    # units constant across the tested items: a statistic would be a ratio of rounding
    # errors, so they are left out like cells where no unit sits
    tested = flat if masks is None or masks.any(0).all() else flat[masks.any(0)]
    constant = np.zeros(valid.size, dtype=bool)
    cells = np.flatnonzero(valid)
    for lo in range(0, cells.size, 2048):  # column slices: small temporaries
        part = cells[lo:lo + 2048]
        cols = tested[:, part[0]:part[-1] + 1] if part[-1] - part[0] + 1 == part.size \
            else tested[:, part]
        constant[part] = near_constant(cols, axis=0)
    if constant.any():
        warnings.warn(
            f"{int(constant.sum())} of {int(valid.sum())} units are constant across the "
            "items (exactly, or to rounding: variation below 1e-10 of their magnitude); "
            "their statistic and p-values are NaN and they join no cluster.",
            UserWarning, stacklevel=user_stacklevel())
        valid &= ~constant
    engine = _StatEngine(flat if valid.all() else flat[:, valid], masks, stat,
                         bool(equal_var))
    one_sample = masks is None
    if permutations is not None:
        rows = _check_permutations(permutations, engine.n, one_sample)
        exact, n_distinct, ss = False, None, None
    else:
        ss = as_seed_sequence(seed)
        if one_sample:
            # tail 0 tests |statistic|, unchanged by flipping every sign: MNE's 2**(n-1)
            drawn = sign_flips(ss, n_permutations, engine.n, symmetric=tail == 0)
        else:
            drawn = label_permutations(ss, n_permutations, engine.labels)
        rows, exact, n_distinct = drawn.rows, drawn.exact, drawn.n_distinct
    n_permutations = int(rows.shape[0])
    df = _degrees_of_freedom(stat, engine)
    if tfce_spec is None:
        if threshold is None:
            threshold = _default_threshold(stat, tail, df)
        else:
            threshold = _check_threshold(threshold, tail)
    blocks = [rows[lo:lo + BLOCK_SIZE] for lo in range(0, n_permutations, BLOCK_SIZE)]
    # observed statistic: the identity through the null's own arithmetic
    obs_flat = np.full(valid.size, np.nan)
    obs_flat[valid] = engine.observed(blocks[0], exact)
    x_obs = obs_flat.reshape(n_layers, layout.n_cells)
    spec = {"tail": tail, "cluster_stat": cluster_stat, "threshold": threshold}
    if tfce_spec is not None:
        spec.update(tfce_spec)

    show = bool(verbose) and logger.isEnabledFor(logging.INFO)
    if show:
        logger.info("cluster test: %s, stat=%s, tail=%s, %s, threshold=%s, %d layer(s), "
                    "%d permutations%s", "one-sample" if one_sample else f"{engine.k} groups",
                    stat, tail, cluster_stat, threshold, n_layers, n_permutations,
                    " (exact: every distinct permutation)" if exact else "")

    def work(chunk: list) -> np.ndarray:
        return np.concatenate([_run_block(engine, r, valid, n_layers, layout, spec)
                               for r in chunk], axis=0)

    null_pl = np.concatenate(run_blocks(work, blocks, n_jobs=n_jobs, verbose=show,
                                        desc="permutations"), axis=0)  # (B, n_layers)
    null = null_pl.max(axis=1) if family == "all" else null_pl.T.copy()

    def p_values(values: np.ndarray, layer_idx: np.ndarray) -> np.ndarray:
        if family == "all":
            return _p_values(values, null, exact)
        out = np.empty(values.shape)
        for li in range(n_layers):
            sel = layer_idx == li
            out[sel] = _p_values(values[sel], null[li], exact)
        return out

    shape = (n_layers,) + layout.map_shape
    params = {
        "design": "one-sample" if one_sample else f"{engine.k}-group",
        "group_sizes": None if one_sample else tuple(int(s) for s in engine.sizes),
        "n_items": int(engine.n), "stat": stat,
        "equal_var": bool(equal_var) if stat == "t" and not one_sample else None,
        "tail": tail, "cluster_stat": cluster_stat, "family": family,
        "threshold": threshold, "df": df, "adjacency": layout.adjacency,
        "tfce": MappingProxyType(tfce_spec) if tfce_spec is not None else None,
        "n_permutations": n_permutations,
        "permutations": "given" if permutations is not None else (
            "exact" if exact else "random"),
        "exact": exact, "n_distinct": n_distinct,
        **(seed_record(ss) if ss is not None else {"seed": None, "spawn_key": None}),
        "block_size": BLOCK_SIZE,
    }
    if tfce_spec is not None:
        scores = _tfce_scores(x_obs, layout, tail, tfce_spec["e"], tfce_spec["h"],
                              tfce_spec["step"], tfce_spec["start"])
        layer_idx = np.repeat(np.arange(n_layers), layout.n_cells)
        p_map = p_values(scores.ravel(), layer_idx).reshape(n_layers, layout.n_cells)
        p_map[np.isnan(x_obs)] = np.nan
        return ClusterTestResult(
            stat_map=x_obs.reshape(shape), clusters=None,
            tfce_map=(scores * np.sign(x_obs)).reshape(shape),
            p_fwe_map=p_map.reshape(shape), null_distribution=null, threshold=None,
            layers=layout.layers, params=MappingProxyType(params))
    table = _build_table(x_obs, layout, threshold, tail, 1,
                         {"method": "threshold", "threshold": threshold, "tail": tail,
                          "adjacency": layout.adjacency, "min_size": 1})
    values = (table.size.astype(float) if cluster_stat == "size"
              else np.abs(table.mass))
    p_clusters = p_values(values, table.layer_index)
    table = ClusterTable(
        labels=table.labels, layers=table.layers, cluster_id=table.cluster_id,
        layer_index=table.layer_index, sign=table.sign, size=table.size, mass=table.mass,
        peak_value=table.peak_value, peak_unit=table.peak_unit, centroid=table.centroid,
        grid_shape=table.grid_shape, p_fwe=p_clusters,
        params=MappingProxyType({**table.params, "cluster_stat": cluster_stat,
                                 "family": family}))
    lookup = np.concatenate(([np.nan], p_clusters))
    p_map = lookup[table.labels.reshape(n_layers, -1)]
    return ClusterTestResult(
        stat_map=x_obs.reshape(shape), clusters=table, tfce_map=None,
        p_fwe_map=p_map.reshape(shape), null_distribution=null, threshold=threshold,
        layers=layout.layers, params=MappingProxyType(params))
