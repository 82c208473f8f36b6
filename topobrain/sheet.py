"""The cortical sheet: where each model unit sits on a 2D grid.

A :class:`CorticalSheet` maps the ``n_units`` of one model layer to cells of a
``(n_rows, n_cols)`` grid. It turns unit vectors into 2D maps and back, gives the
distances between units, and builds the spatial weights (rook, queen, distance band,
Gaussian kernel) that the spatial and cluster statistics take. The neighbourhood is the
``adjacency`` parameter, queen by default (``DEFAULT_ADJACENCY``, TopoLM's published
choice); the old name ``kind=`` still works for one release with a ``DeprecationWarning``.

Cells are numbered row-major: cell ``r * n_cols + c`` is row ``r``, column ``c``, the
ordering of :func:`libpysal.weights.lat2W`.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

from ._utils._adjacency import DEFAULT_ADJACENCY, deprecated_alias
from ._utils._validation import check_option, check_random_state

__all__ = ["CorticalSheet", "grid_weights", "toponets_shape", "transform_weights"]

SheetAdjacency = Literal["rook", "queen", "distance_band", "kernel"]
_SHEET_ADJACENCIES = ("rook", "queen", "distance_band", "kernel")
Metric = Literal["euclidean", "linf"]
Transform = Literal["r", "b"]


def toponets_shape(n_units: int) -> tuple[int, int]:
    """Sheet shape of the TopoNets rule for ``n_units`` units.

    ``n_rows`` is the largest divisor of ``n_units`` not above ``sqrt(n_units)`` and
    ``n_cols = n_units // n_rows``.

    Examples
    --------
    >>> toponets_shape(784)
    (28, 28)
    >>> toponets_shape(3072)
    (48, 64)
    """
    n_units = int(n_units)
    if n_units < 1:
        raise ValueError(f"n_units must be a positive integer; got {n_units}.")
    rows = 1
    for d in range(1, math.isqrt(n_units) + 1):
        if n_units % d == 0:
            rows = d
    return rows, n_units // rows


def _grid_edges(shape: tuple[int, int], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Directed neighbour pairs (i, j) between cells of a grid, both directions."""
    n_rows, n_cols = shape
    idx = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    offsets = [(0, 1), (1, 0)]
    if kind == "queen":
        offsets += [(1, 1), (1, -1)]
    src, dst = [], []
    for dr, dc in offsets:
        r0, r1 = max(0, -dr), n_rows - max(0, dr)
        c0, c1 = max(0, -dc), n_cols - max(0, dc)
        a = idx[r0:r1, c0:c1].ravel()
        b = idx[r0 + dr : r1 + dr, c0 + dc : c1 + dc].ravel()
        src += [a, b]
        dst += [b, a]
    return np.concatenate(src), np.concatenate(dst)


def transform_weights(weights: sp.spmatrix, transform: str = "r") -> sp.csr_matrix:
    """Return binary (``"b"``) or row-standardised (``"r"``) copy of a weights matrix.

    Rows without neighbours stay zero.
    """
    check_option("transform", transform, ("r", "b"))
    w = sp.csr_matrix(weights, dtype=np.float64, copy=True)
    w.eliminate_zeros()
    if transform == "b":
        w.data[:] = 1.0
        return w
    sums = np.asarray(w.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
    return sp.csr_matrix(sp.diags(scale) @ w)


@deprecated_alias(kind="adjacency")
def grid_weights(
    shape: tuple[int, int],
    adjacency: SheetAdjacency = DEFAULT_ADJACENCY,
    *,
    transform: Transform = "r",
    mask: np.ndarray | None = None,
    threshold: float = 1.5,
    bandwidth: float = 1.0,
) -> sp.csr_matrix:
    """Spatial weights between the cells of a ``(n_rows, n_cols)`` grid.

    Parameters
    ----------
    shape : tuple of int
        ``(n_rows, n_cols)``.
    adjacency : {"rook", "queen", "distance_band", "kernel"}, default="queen"
        Rook: the 4 edge neighbours; queen: the 8 edge and corner neighbours (as
        published for TopoLM, and the default of every statistic on a sheet); distance
        band: all cells within euclidean ``threshold``
        (sheet units); kernel: Gaussian ``exp(-d**2 / (2 * bandwidth**2))`` for cells
        within ``3 * bandwidth`` (sheet units), no self weight.
    transform : {"r", "b"}, default="r"
        Row-standardised (the esda default) or binary (kernel weights keep their values
        with ``"b"``).
    mask : ndarray of bool, shape (n_rows, n_cols), optional
        Cells to keep. When given, the matrix covers only the ``mask.sum()`` kept cells,
        in row-major order, and weights to dropped cells are removed before the
        transform.
    threshold, bandwidth : float
        Distance band radius and kernel width, in sheet units.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_cells, n_cells)
    """
    check_option("adjacency", adjacency, _SHEET_ADJACENCIES)
    n_rows, n_cols = int(shape[0]), int(shape[1])
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"shape must be two positive integers; got {shape!r}.")
    n = n_rows * n_cols
    if adjacency in ("rook", "queen"):
        i, j = _grid_edges((n_rows, n_cols), adjacency)
        w = sp.csr_matrix((np.ones(i.size), (i, j)), shape=(n, n))
    else:
        reach = threshold if adjacency == "distance_band" else 3.0 * bandwidth
        if reach <= 0:
            raise ValueError("threshold and bandwidth must be positive (sheet units).")
        k = int(math.floor(reach))
        rows, cols = np.divmod(np.arange(n), n_cols)
        ii, jj, vv = [], [], []
        for dr in range(-k, k + 1):
            for dc in range(-k, k + 1):
                d = math.hypot(dr, dc)
                if (dr == 0 and dc == 0) or d > reach:
                    continue
                ok = ((rows + dr >= 0) & (rows + dr < n_rows)
                      & (cols + dc >= 0) & (cols + dc < n_cols))
                src = np.flatnonzero(ok)
                ii.append(src)
                jj.append(src + dr * n_cols + dc)
                val = (1.0 if adjacency == "distance_band"
                       else math.exp(-(d**2) / (2 * bandwidth**2)))
                vv.append(np.full(src.size, val))
        w = sp.csr_matrix(
            (np.concatenate(vv), (np.concatenate(ii), np.concatenate(jj))), shape=(n, n)
        )
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n_rows, n_cols):
            raise ValueError(
                f"mask must have the grid's shape {(n_rows, n_cols)}; got {mask.shape}."
            )
        keep = np.flatnonzero(mask.ravel())
        w = w[keep][:, keep]
    if adjacency == "kernel" and transform == "b":
        return sp.csr_matrix(w)
    return transform_weights(w, transform)


@dataclass(frozen=True, eq=False)
class CorticalSheet:
    """Positions of one layer's units on a 2D grid.

    Parameters
    ----------
    shape : tuple of int
        ``(n_rows, n_cols)`` of the grid.
    n_units : int, optional
        Number of units; defaults to ``n_rows * n_cols``.
    layout : {"identity", "permuted"} or ndarray of shape (n_units, 2), default="identity"
        ``"identity"``: unit ``k`` sits in cell ``k`` (row-major, as TopoNets);
        ``"permuted"``: a seeded random permutation of the cells (as TopoLM, one per
        layer); an integer array: the ``(row, col)`` of each unit.
    seed : int or numpy.random.Generator, optional
        Seed of the permutation for ``layout="permuted"``.
    name : str, optional
        Layer name, e.g. ``"layer.3.attn"``.

    Attributes
    ----------
    positions : ndarray of int, shape (n_units, 2)
        ``(row, col)`` of each unit.
    n_shared : int
        Number of units that share a cell with an earlier unit. Maps average them.

    Examples
    --------
    >>> sheet = CorticalSheet((2, 3))
    >>> sheet.to_map(np.arange(6.0))
    array([[0., 1., 2.],
           [3., 4., 5.]])
    """

    shape: tuple[int, int]
    n_units: int | None = None
    layout: object = "identity"
    seed: object = None
    name: str | None = None
    positions: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        if len(tuple(self.shape)) != 2:
            raise ValueError(f"shape must be (n_rows, n_cols); got {self.shape!r}.")
        n_rows, n_cols = (int(s) for s in self.shape)
        if n_rows < 1 or n_cols < 1:
            raise ValueError(f"shape must be two positive integers; got {self.shape!r}.")
        object.__setattr__(self, "shape", (n_rows, n_cols))
        n_cells = n_rows * n_cols
        layout = self.layout
        if isinstance(layout, str):
            check_option("layout", layout, ("identity", "permuted"))
            n_units = n_cells if self.n_units is None else int(self.n_units)
            if n_units != n_cells:
                raise ValueError(
                    f"A {layout!r} layout puts one unit in each of the {n_cells} cells of a "
                    f"{n_rows} x {n_cols} sheet, but n_units is {n_units}. Pick a shape with "
                    f"n_rows * n_cols == n_units (toponets_shape({n_units}) = "
                    f"{toponets_shape(n_units) if n_units > 0 else None}) or pass positions."
                )
            cells = np.arange(n_cells)
            if layout == "permuted":
                cells = check_random_state(self.seed).permutation(n_cells)
            positions = np.stack(np.divmod(cells, n_cols), axis=1)
        else:
            arr = np.asarray(layout)
            if arr.ndim != 2 or arr.shape[1] != 2:
                raise ValueError(
                    f"positions must be an array of shape (n_units, 2) holding (row, col); "
                    f"got shape {arr.shape}."
                )
            if not np.all(np.isfinite(arr)) or not np.allclose(arr, np.round(arr)):
                raise ValueError("positions must be integer grid coordinates (row, col).")
            positions = np.round(arr).astype(np.int64)
            if self.n_units is not None and int(self.n_units) != positions.shape[0]:
                raise ValueError(
                    f"n_units is {self.n_units} but {positions.shape[0]} positions were given."
                )
            off = (
                (positions[:, 0] < 0)
                | (positions[:, 0] >= n_rows)
                | (positions[:, 1] < 0)
                | (positions[:, 1] >= n_cols)
            )
            if off.any():
                k = int(np.flatnonzero(off)[0])
                raise ValueError(
                    f"{int(off.sum())} unit positions lie off the {n_rows} x {n_cols} grid "
                    f"(first: unit {k} at {tuple(positions[k])}). Check the shape or the "
                    f"coordinates' origin (rows and columns count from 0)."
                )
        positions = positions.astype(np.int64)
        positions.setflags(write=False)
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "n_units", int(positions.shape[0]))

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def from_csv(cls, path, layer: str, shape: tuple[int, int] | None = None) -> CorticalSheet:
        """Read one layer's positions from a CSV with columns ``layer,unit,x,y``.

        ``x`` is the column and ``y`` the row (integer grid coordinates from 0). The
        shape defaults to the smallest grid that holds every position.
        """
        rows = []
        with open(os.fspath(path), newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = {"layer", "unit", "x", "y"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(
                    f"{path}: position CSV needs columns layer,unit,x,y; missing "
                    f"{sorted(missing)}."
                )
            layers = set()
            for line in reader:
                layers.add(line["layer"])
                if line["layer"] == layer:
                    rows.append((int(line["unit"]), float(line["y"]), float(line["x"])))
        if not rows:
            raise ValueError(
                f"{path}: no positions for layer {layer!r}. Layers in the file: "
                f"{sorted(layers)}."
            )
        rows.sort()
        units = np.array([r[0] for r in rows])
        if not np.array_equal(units, np.arange(units.size)):
            raise ValueError(f"{path}: layer {layer!r} must list units 0..n-1 exactly once.")
        pos = np.array([[r[1], r[2]] for r in rows])
        if shape is None:
            shape = (int(pos[:, 0].max()) + 1, int(pos[:, 1].max()) + 1)
        return cls(shape, layout=pos, name=layer)

    def to_csv_rows(self) -> list[dict]:
        """Rows ``{layer, unit, x, y}`` for the interchange CSV."""
        return [
            {"layer": self.name, "unit": k, "x": int(c), "y": int(r)}
            for k, (r, c) in enumerate(self.positions)
        ]

    # -- properties ---------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def cell_index(self) -> np.ndarray:
        """Row-major cell of each unit, shape (n_units,)."""
        return self.positions[:, 0] * self.shape[1] + self.positions[:, 1]

    @property
    def n_shared(self) -> int:
        return int(self.n_units - np.unique(self.cell_index).size)

    @property
    def occupied(self) -> np.ndarray:
        """Boolean map, shape (n_rows, n_cols): True where at least one unit sits."""
        occ = np.zeros(self.n_cells, dtype=bool)
        occ[self.cell_index] = True
        return occ.reshape(self.shape)

    def __repr__(self) -> str:
        name = f"{self.name!r}, " if self.name else ""
        return (
            f"CorticalSheet({name}shape={self.shape}, n_units={self.n_units}, "
            f"n_shared={self.n_shared})"
        )

    # -- maps ---------------------------------------------------------------------------
    def to_map(self, values) -> np.ndarray:
        """Unit values ``(..., n_units)`` to maps ``(..., n_rows, n_cols)``.

        Empty cells are NaN; units that share a cell are averaged.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim < 1 or values.shape[-1] != self.n_units:
            hint = ""
            if values.shape[-2:] == self.shape:
                hint = " It already looks like a map: pass sheet.from_map(values) to get units."
            raise ValueError(
                f"values must have one entry per sheet unit ({self.n_units}) on the last "
                f"axis; got shape {values.shape}.{hint}"
            )
        lead = values.shape[:-1]
        flat = values.reshape(-1, self.n_units)
        out = np.full((flat.shape[0], self.n_cells), np.nan)
        cells = self.cell_index
        if self.n_shared == 0:
            out[:, cells] = flat
        else:
            counts = np.bincount(cells, minlength=self.n_cells).astype(np.float64)
            sums = np.zeros((flat.shape[0], self.n_cells))
            np.add.at(sums.T, cells, flat.T)
            occ = counts > 0
            out[:, occ] = sums[:, occ] / counts[occ]
        return out.reshape(*lead, *self.shape)

    def from_map(self, maps) -> np.ndarray:
        """Maps ``(..., n_rows, n_cols)`` to unit values ``(..., n_units)``."""
        maps = np.asarray(maps, dtype=np.float64)
        if maps.ndim < 2 or maps.shape[-2:] != self.shape:
            raise ValueError(
                f"maps must end with the sheet's shape {self.shape}; got shape {maps.shape}."
            )
        flat = maps.reshape(*maps.shape[:-2], self.n_cells)
        return flat[..., self.cell_index]

    # -- geometry -----------------------------------------------------------------------
    def distances(self, metric: Metric = "euclidean") -> np.ndarray:
        """Pairwise unit distances in sheet units, shape (n_units, n_units)."""
        check_option("metric", metric, ("euclidean", "linf"))
        diff = self.positions[:, None, :] - self.positions[None, :, :]
        if metric == "euclidean":
            return np.sqrt((diff.astype(np.float64) ** 2).sum(-1))
        return np.abs(diff).max(-1).astype(np.float64)

    def units_within(self, center, radius: float, metric: Metric = "linf") -> np.ndarray:
        """Indices of the units within ``radius`` (inclusive, sheet units) of a cell."""
        check_option("metric", metric, ("euclidean", "linf"))
        diff = self.positions - np.asarray(center, dtype=np.int64)[None, :]
        if metric == "euclidean":
            d = np.sqrt((diff.astype(np.float64) ** 2).sum(-1))
        else:
            d = np.abs(diff).max(-1)
        return np.flatnonzero(d <= radius)

    @deprecated_alias(kind="adjacency")
    def weights(
        self,
        adjacency: SheetAdjacency = DEFAULT_ADJACENCY,
        *,
        transform: Transform = "r",
        restrict: bool = True,
        threshold: float = 1.5,
        bandwidth: float = 1.0,
    ) -> sp.csr_matrix:
        """Spatial weights between cells, see :func:`grid_weights` (``adjacency`` as
        there, queen by default).

        With ``restrict=True`` (default) the matrix covers only occupied cells, in
        row-major order, which matches ``to_map(values)[sheet.occupied]``.
        """
        mask = self.occupied if restrict else None
        return grid_weights(
            self.shape, adjacency, transform=transform, mask=mask, threshold=threshold,
            bandwidth=bandwidth,
        )
