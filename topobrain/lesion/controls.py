"""Matched control lesions, drawn from the one permutation core.

For a target lesion, each control kind draws ``n_controls`` lesions with the same number
of units in every layer:

``random-units``
    Units drawn uniformly from each layer (without replacement).
``random-patch``
    The topography test: per layer, the target's own shape moved elsewhere on the sheet
    (a random translation with one of the eight rotations/reflections of the grid, every
    cell kept on the sheet) when the target's units form one connected patch (queen
    adjacency); otherwise a compact patch of the same size (the units nearest a random
    centre, ties broken at random), since scattered units have no shape to move.
``magnitude``
    Units matched on mean response magnitude: for each target unit (in random order)
    one of the ``pool`` remaining units closest to it in mean absolute response.

With ``avoid_target=True`` (default) no control shares a unit with the target.

Seeding follows the core (:mod:`topobrain._utils._permutation`): the controls of a kind
for a target come from the stream ``lesion_controls`` of the run's seed, child
``"{kind}:{target.name}"``; control ``i`` is drawn in block ``i // BLOCK_SIZE`` from that
block's generator, so the controls do not depend on ``n_jobs`` and the first ``m`` of
``n`` controls are those of a run with ``m``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._utils._permutation import BLOCK_SIZE, block_rng, n_blocks, run_blocks, stream
from .._utils._validation import check_option
from ._interventions import Lesion

__all__ = ["CONTROL_KINDS", "draw_controls", "z_and_p"]

CONTROL_KINDS = ("random-units", "random-patch", "magnitude")

# the eight symmetries of the square grid, as (row, col) -> (row', col') matrices
_DIHEDRAL = [np.array(m) for m in ([[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]],
                                   [[0, 1], [-1, 0]], [[-1, 0], [0, 1]], [[1, 0], [0, -1]],
                                   [[0, 1], [1, 0]], [[0, -1], [-1, 0]])]


def _connected(cells: np.ndarray) -> bool:
    """Queen connectivity of a set of (row, col) cells."""
    from scipy import ndimage

    if len(cells) <= 1:
        return True
    lo = cells.min(0)
    grid = np.zeros(tuple(cells.max(0) - lo + 1), dtype=bool)
    grid[tuple((cells - lo).T)] = True
    _, n = ndimage.label(grid, structure=np.ones((3, 3)))
    return n == 1


def _placements(cells: np.ndarray, cell_unit: dict, shape, forbidden: set) -> list:
    """Every placement of a cell set (symmetry x translation) fully on occupied cells."""
    out, seen = [], set()
    for mat in _DIHEDRAL:
        moved = cells @ mat.T
        moved = moved - moved.min(0)
        span = moved.max(0)
        for dr in range(shape[0] - span[0]):
            for dc in range(shape[1] - span[1]):
                placed = moved + (dr, dc)
                key = tuple(sorted(map(tuple, placed.tolist())))
                if key in seen:
                    continue
                seen.add(key)
                units = [cell_unit.get(c) for c in key]
                if any(u is None for u in units):
                    continue
                flat = [v for u in units for v in u]
                if forbidden.intersection(flat):
                    continue
                out.append(np.array(flat))
    return out


class _LayerPlan:
    """What one layer's controls need, computed once per target."""

    def __init__(self, kind, sheet, target_units, avoid, magnitude, pool):
        self.n = int(target_units.size)
        self.kind = kind
        self.n_units = sheet.n_units
        target = set(target_units.tolist())
        forbidden = target if avoid else set()
        self.allowed = np.array([u for u in range(sheet.n_units) if u not in forbidden])
        if self.allowed.size < self.n:
            raise ValueError(f"Layer {sheet.name!r}: {self.n} target units but only "
                             f"{self.allowed.size} others; pass avoid_target=False.")
        self.shape_mode = None
        if kind == "random-patch":
            pos = sheet.positions
            cells = np.unique(pos[target_units], axis=0)
            cell_unit = {}
            for u, (r, c) in enumerate(pos.tolist()):
                cell_unit.setdefault((r, c), []).append(u)
            whole = all(len(cell_unit[tuple(c)]) == sum(
                1 for u in cell_unit[tuple(c)] if u in target) for c in cells.tolist())
            if whole and _connected(cells):
                self.places = _placements(cells, cell_unit, sheet.shape, forbidden)
                if self.places:
                    self.shape_mode = "moved"
            if self.shape_mode is None:
                self.shape_mode = "compact"
                self.pos = pos.astype(float)
        elif kind == "magnitude":
            self.mag = np.asarray(magnitude, float)
            self.target = target_units
            self.pool = pool

    def draw(self, rng) -> np.ndarray:
        if self.kind == "random-units":
            return np.sort(rng.choice(self.allowed, self.n, replace=False))
        if self.kind == "random-patch":
            if self.shape_mode == "moved":
                return np.sort(self.places[int(rng.integers(len(self.places)))])
            centre = self.pos[self.allowed[int(rng.integers(self.allowed.size))]]
            d = np.sqrt(((self.pos[self.allowed] - centre) ** 2).sum(1))
            order = np.lexsort((rng.random(d.size), d))
            return np.sort(self.allowed[order[:self.n]])
        left = set(self.allowed.tolist())
        picked = []
        for u in rng.permutation(self.target):
            cand = np.array(sorted(left))
            near = cand[np.argsort(np.abs(self.mag[cand] - self.mag[u]), kind="stable")]
            choice = int(near[int(rng.integers(min(self.pool, near.size)))])
            picked.append(choice)
            left.discard(choice)
        return np.sort(np.array(picked, dtype=np.int64))


def draw_controls(target: Lesion, sheets: Mapping, kind: str, n_controls: int, *,
                  seed=None, avoid_target: bool = True,
                  magnitude: Mapping[str, np.ndarray] | None = None, pool: int = 10,
                  n_jobs: int | None = None) -> list[Lesion]:
    """Draw control lesions matched to a target.

    Parameters
    ----------
    target : Lesion
    sheets : mapping of str to CorticalSheet
        The model's sheets (``model.sheets``).
    kind : {"random-units", "random-patch", "magnitude"}
        See the module docstring.
    n_controls : int
        Number of control lesions.
    seed : int, Generator, SeedSequence or None
        The run's seed; the controls use its ``lesion_controls`` stream.
    avoid_target : bool, default=True
        Never lesion a target unit in a control.
    magnitude : mapping of str to ndarray of shape (n_units,), optional
        Mean absolute response of every unit (``kind="magnitude"``).
    pool : int, default=10
        ``kind="magnitude"``: candidates (closest in magnitude) to choose from per unit.
    n_jobs : int or None
        Parallel jobs over blocks of controls (results never depend on it).

    Returns
    -------
    list of Lesion
        Named ``"{kind}:{i:03d}"``, with ``params`` recording the target and index.

    Examples
    --------
    >>> from topobrain.sheet import CorticalSheet
    >>> sheets = {"layer.0.mlp": CorticalSheet((6, 6), name="layer.0.mlp")}
    >>> target = Lesion({"layer.0.mlp": [0, 1, 6, 7]}, name="corner")  # a 2 x 2 square
    >>> ctl = draw_controls(target, sheets, "random-patch", 3, seed=0)
    >>> [c.n_units for c in ctl], ctl[0].params["patch"]
    ([4, 4, 4], {'layer.0.mlp': 'moved'})
    >>> any(set(c.units["layer.0.mlp"]) & {0, 1, 6, 7} for c in ctl)
    False
    """
    check_option("kind", kind, CONTROL_KINDS)
    if isinstance(n_controls, bool) or not isinstance(n_controls, (int, np.integer)) \
            or n_controls < 1:
        raise ValueError(f"n_controls must be a positive integer; got {n_controls!r}.")
    if kind == "magnitude":
        if magnitude is None:
            raise ValueError("kind='magnitude' needs magnitude= (layer -> mean absolute "
                             "response per unit over the reference items).")
        missing = [k for k in target.units if k not in magnitude]
        if missing:
            raise ValueError(f"magnitude has no values for layers {missing}.")
    for k in target.units:
        if k not in sheets:
            raise ValueError(f"The target names layer {k!r}, which is not a sheet layer.")
    plans = {k: _LayerPlan(kind, sheets[k], idx, avoid_target,
                           None if magnitude is None else magnitude[k], pool)
             for k, idx in target.units.items()}
    ss = stream(stream(seed, "lesion_controls"), f"{kind}:{target.name}")
    n = int(n_controls)

    def run(blocks):
        out = []
        for b in blocks:
            rng = block_rng(ss, b)
            for i in range(b * BLOCK_SIZE, min(n, (b + 1) * BLOCK_SIZE)):
                units = {k: plan.draw(rng) for k, plan in plans.items()}
                out.append(Lesion(units, name=f"{kind}:{i:03d}", kind=kind,
                                  params={"target": target.name, "index": i,
                                          "patch": {k: p.shape_mode for k, p in plans.items()}
                                          if kind == "random-patch" else None}))
        return out

    chunks = run_blocks(run, range(n_blocks(n)), n_jobs=n_jobs, verbose=0, desc="controls")
    return [les for chunk in chunks for les in chunk]


def z_and_p(target: float, controls: np.ndarray, *, alternative: str = "greater"):
    """z of the target's value against the controls' and the Monte Carlo p (+1 rule).

    Returns
    -------
    mean, sd, z, p : float
        ``sd`` with ``ddof=1``; ``z = (target - mean) / sd`` (NaN when sd is 0);
        ``p = (1 + #{controls at least as extreme}) / (1 + n_controls)`` in the direction
        of ``alternative``.

    Examples
    --------
    >>> mean, sd, z, p = z_and_p(5.0, np.array([1.0, 2.0, 3.0, 4.0]))
    >>> round(z, 3), p
    (1.936, 0.2)
    """
    from .._utils._permutation import permutation_pvalue

    c = np.asarray(controls, float)
    c = c[np.isfinite(c)]
    if c.size < 2 or not np.isfinite(target):
        return float(np.mean(c)) if c.size else np.nan, np.nan, np.nan, np.nan
    mean, sd = float(c.mean()), float(c.std(ddof=1))
    z = (target - mean) / sd if sd > 0 else np.nan
    p = float(permutation_pvalue(target, c, alternative))
    return mean, sd, float(z), p
