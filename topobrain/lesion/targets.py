"""What to lesion: the most selective units, significant units, clusters, patches, masks.

Targets come from a localizer's maps, computed here from activations
(:func:`localizer_maps`, the rules of ``topobrain localize``: Welch t per unit, BH-FDR
over all layers, clusters of ``|t|`` above the two-sided ``cluster_p`` threshold with the
default (queen) adjacency) or read from a ``topobrain localize`` output folder
(:func:`read_localizer`), or are given directly (:func:`disc`, :func:`square`,
:meth:`Lesion.from_masks`).

References
----------
AlKhamissi, B., Tuckute, G., Bosselut, A., & Schrimpf, M. (2025). The LLM language
network: a neuroscientific approach for identifying causally task-relevant units.
NAACL 2025 (top-k% of units by the S - N t, ablated against random units).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._interventions import Lesion

__all__ = ["LocalizerMaps", "localizer_maps", "read_localizer", "top_units",
           "significant_units", "cluster_units", "largest_cluster", "disc", "square",
           "parse_target"]


@dataclass(frozen=True, eq=False)
class LocalizerMaps:
    """One contrast's unit statistics, as the lesion targets need them.

    Attributes
    ----------
    contrast : str
        The contrast (``"S - N"``).
    t, p_fdr : dict of str to ndarray of shape (n_units,)
        Per layer: Welch t and BH-FDR-adjusted p of every unit (model order).
    cluster_labels : dict of str to ndarray of int, shape (n_units,)
        Cluster id of every unit (0 outside every cluster); ids are those of ``clusters``.
    clusters : DataFrame
        One row per cluster: ``layer, cluster_id, sign, size, mass`` and more.
    params : dict
        ``alpha``, ``cluster_p``, ``threshold`` (cluster-forming ``|t|``), source.
    """

    contrast: str
    t: dict
    p_fdr: dict
    cluster_labels: dict
    clusters: pd.DataFrame
    params: dict = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        return list(self.t)

    def selective(self, alpha: float | None = None) -> dict[str, np.ndarray]:
        """Boolean masks of units with FDR-adjusted p below ``alpha`` and t > 0."""
        a = self.params.get("alpha", 0.05) if alpha is None else alpha
        return {k: (np.nan_to_num(self.p_fdr[k], nan=1.0) < a) & (self.t[k] > 0)
                for k in self.t}

    def __repr__(self) -> str:
        n = sum(v.size for v in self.t.values())
        return (f"LocalizerMaps({self.contrast!r}, {len(self.t)} layers, {n} units, "
                f"{len(self.clusters)} clusters)")


def localizer_maps(acts, labels, contrast, *, alpha: float = 0.05, cluster_p: float = 0.001,
                   correction: str = "bh") -> LocalizerMaps:
    """The localizer's unit statistics and clusters from pooled activations.

    Parameters
    ----------
    acts : Activations
        Pooled responses (:func:`topobrain.extract.extract`).
    labels : sequence of str
        Condition of each item.
    contrast : str or Contrast
        ``"S - N"`` (Welch t) or one condition (one-sample t).
    alpha : float, default=0.05
        FDR level for "significant" units.
    cluster_p : float, default=0.001
        Two-sided cluster-forming p; the ``|t|`` threshold uses the median Welch df.
    correction : str, default="bh"
        Multiple-comparison correction over all units of all layers.

    Returns
    -------
    LocalizerMaps
    """
    from .._utils._adjacency import DEFAULT_ADJACENCY
    from ..clusters import find_clusters
    from ..correction import correct_pvalues
    from ..pipeline._analysis import cluster_frame, cluster_threshold, unit_statistics

    stats = unit_statistics(acts, np.asarray(labels), contrast)
    c, t = stats.contrast, stats.t
    corr = correct_pvalues(stats.p, method=correction, alpha=alpha, over="all")
    threshold = cluster_threshold(stats, acts.layers, cluster_p)
    sheets = acts.sheets
    table = find_clusters({k: sheets[k].to_map(t[k]) for k in acts.layers}, threshold,
                          adjacency=DEFAULT_ADJACENCY, tail=0)
    frame = cluster_frame(table, acts.layers)
    labels_units = {k: sheets[k].from_map(table.labels[i].astype(float)).astype(np.int64)
                    for i, k in enumerate(acts.layers)}
    return LocalizerMaps(contrast=c.expression, t=t,
                         p_fdr={k: np.asarray(corr.p_adjusted[k]) for k in acts.layers},
                         cluster_labels=labels_units, clusters=frame,
                         params={"alpha": alpha, "cluster_p": cluster_p,
                                 "threshold": threshold, "adjacency": DEFAULT_ADJACENCY,
                                 "source": "activations"})


def _component(t_map: np.ndarray, peak: tuple[int, int], sign: int, level: float,
               queen: bool = True):
    """Connected component (queen or rook) of ``sign * t >= level`` holding ``peak``."""
    from scipy import ndimage

    above = np.nan_to_num(sign * t_map, nan=-np.inf) >= level
    lab, _ = ndimage.label(above, structure=np.ones((3, 3)) if queen else None)
    k = lab[peak]
    return (lab == k) if k else np.zeros_like(above)


def _recover_cluster(t_map: np.ndarray, row) -> np.ndarray:
    """The cells of a cluster of ``clusters.csv``: the component around its peak whose size
    matches, found by bisection over the map's ``|t|`` values (size falls as the level
    rises); its mass must match the table's. Queen adjacency (the default) is tried
    first, then rook (folders of older versions)."""
    sign = int(row["sign"])
    peak = (int(row["peak_row"]), int(row["peak_col"]))
    vals = np.unique(np.abs(t_map[np.isfinite(t_map)]))
    vals = vals[vals <= abs(t_map[peak])]
    size = int(row["size"])
    for queen in (True, False):
        lo, hi = 0, vals.size - 1  # sizes decrease with the index
        while lo < hi:
            mid = (lo + hi) // 2
            if _component(t_map, peak, sign, vals[mid], queen).sum() > size:
                lo = mid + 1
            else:
                hi = mid
        cells = _component(t_map, peak, sign, vals[lo], queen) if vals.size else None
        if cells is not None and cells.sum() == size and np.isclose(
                np.nansum(t_map[cells]), float(row["mass"]), rtol=1e-4, atol=1e-3):
            return cells
    raise ValueError(f"Cannot rebuild cluster {int(row['cluster_id'])} of layer "
                     f"{row['layer']!r} from the t map (size {size}). Was the folder "
                     f"edited? Rerun topobrain localize.")


def read_localizer(folder, *, contrast: str | None = None, model: str | None = None,
                   alpha: float = 0.05) -> LocalizerMaps:
    """Read the unit statistics and clusters of a ``topobrain localize`` output folder.

    Parameters
    ----------
    folder : path-like
        Holds ``units.csv`` and ``clusters.csv``.
    contrast : str, optional
        Which contrast (required when the folder has several).
    model : str, optional
        Which model's rows (the ``model`` column; required when the folder holds a model
        and its control).
    alpha : float, default=0.05

    Returns
    -------
    LocalizerMaps
        Cluster membership is rebuilt from the t map: the connected component around
        each cluster's peak with the table's size (and mass).
    """
    folder = Path(folder)
    units_path, clusters_path = folder / "units.csv", folder / "clusters.csv"
    for p in (units_path, clusters_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} does not exist: pass the output folder of "
                                    f"topobrain localize.")
    units = pd.read_csv(units_path)
    clusters = pd.read_csv(clusters_path)

    def pick(col, value, what):
        present = list(dict.fromkeys(units[col].astype(str)))
        if value is None:
            if len(present) > 1:
                raise ValueError(f"{units_path} holds several {what}s {present}; pass "
                                 f"{col}= one of them.")
            return present[0]
        if str(value) not in present:
            from .._utils._validation import suggest

            raise ValueError(f"{units_path} has no {what} {value!r}; it has {present}."
                             f"{suggest(str(value), present)}")
        return str(value)

    model = pick("model", model, "model")
    contrast = pick("contrast", contrast, "contrast")
    u = units[(units["model"].astype(str) == model) & (units["contrast"] == contrast)]
    cl = clusters[(clusters["model"].astype(str) == model)
                  & (clusters["contrast"] == contrast)].reset_index(drop=True)
    t, p, lab = {}, {}, {}
    for layer, g in u.groupby("layer", sort=False):
        g = g.sort_values("unit")
        n = int(g["unit"].max()) + 1
        if len(g) != n:
            raise ValueError(f"{units_path}: layer {layer!r} lists {len(g)} units, expected "
                             f"0..{n - 1}.")
        t[layer] = g["t"].to_numpy(float)
        p[layer] = g["p_fdr"].to_numpy(float)
        rows, cols = g["row"].to_numpy(int), g["col"].to_numpy(int)
        shape = (rows.max() + 1, cols.max() + 1)
        t_map = np.full(shape, np.nan)
        t_map[rows, cols] = t[layer]
        lab_map = np.zeros(shape, dtype=np.int64)
        for _, row in cl[cl["layer"] == layer].iterrows():
            lab_map[_recover_cluster(t_map, row)] = int(row["cluster_id"])
        lab[layer] = lab_map[rows, cols]
    return LocalizerMaps(contrast=contrast, t=t, p_fdr=p, cluster_labels=lab, clusters=cl,
                         params={"alpha": alpha, "source": str(folder), "model": model})


def top_units(t: Mapping[str, np.ndarray], percent: float = 5.0, *, per_layer: bool = False,
              name: str | None = None) -> Lesion:
    """The ``percent`` % of units with the highest t.

    Parameters
    ----------
    t : mapping of str to ndarray of shape (n_units,)
        Per-layer statistics (NaN never selected).
    percent : float, default=5.0
        Share of units, in percent, rounded to the nearest count (at least one).
    per_layer : bool, default=False
        The top ``percent`` % of each layer (as llm-localization does) instead of over
        all layers together. Ties are broken by layer order, then unit index.
    name : str, optional

    Returns
    -------
    Lesion

    Examples
    --------
    >>> t = {"a": np.array([0.5, 3.0, 1.0, -2.0]), "b": np.array([2.5, 0.0, 0.1, 0.2])}
    >>> top_units(t, 25).units
    {'a': array([1]), 'b': array([0])}
    >>> top_units(t, 25, per_layer=True).units
    {'a': array([1]), 'b': array([0])}
    >>> top_units(t, 50).units
    {'a': array([0, 1, 2]), 'b': array([0])}
    """
    if not 0 < float(percent) <= 100:
        raise ValueError(f"percent must be in (0, 100]; got {percent}.")
    layers = list(t)
    arrs = [np.nan_to_num(np.asarray(t[k], float), nan=-np.inf) for k in layers]
    label = name or f"top{percent:g}%" + ("/layer" if per_layer else "")
    if per_layer:
        units = {}
        for k, a in zip(layers, arrs, strict=True):
            n = max(1, int(round(a.size * percent / 100)))
            units[k] = np.sort(np.argsort(-a, kind="stable")[:n])
        return Lesion(units, name=label, params={"percent": percent, "per_layer": True})
    flat = np.concatenate(arrs)
    n = max(1, int(round(flat.size * percent / 100)))
    pick = np.argsort(-flat, kind="stable")[:n]
    bounds = np.cumsum([0] + [a.size for a in arrs])
    units = {k: pick[(pick >= bounds[i]) & (pick < bounds[i + 1])] - bounds[i]
             for i, k in enumerate(layers)}
    return Lesion(units, name=label, params={"percent": percent, "per_layer": False})


def significant_units(maps: LocalizerMaps, *, alpha: float | None = None,
                      name: str | None = None) -> Lesion:
    """Units with FDR-adjusted p below ``alpha`` and a positive t."""
    return Lesion.from_masks(maps.selective(alpha), name=name or "fdr",
                             params={"alpha": alpha or maps.params.get("alpha", 0.05)})


def cluster_units(maps: LocalizerMaps, ids, *, name: str | None = None) -> Lesion:
    """The units of one or more clusters of the cluster table, by ``cluster_id``."""
    ids = [int(i) for i in np.atleast_1d(ids)]
    known = set(maps.clusters["cluster_id"].astype(int)) if len(maps.clusters) else set()
    bad = [i for i in ids if i not in known]
    if bad:
        raise ValueError(f"No cluster with id {bad} in the {maps.contrast!r} cluster table "
                         f"({len(known)} clusters, ids {sorted(known)[:10]}...).")
    units = {k: np.flatnonzero(np.isin(v, ids)) for k, v in maps.cluster_labels.items()}
    return Lesion(units, name=name or "cluster:" + "+".join(map(str, ids)),
                  params={"cluster_ids": ids})


def largest_cluster(maps: LocalizerMaps, *, sign: int = 1, name: str | None = None) -> Lesion:
    """The largest cluster (most units; then the largest mass) of the given sign."""
    c = maps.clusters
    c = c[c["sign"] == sign] if len(c) else c
    if not len(c):
        which = "positive" if sign > 0 else "negative"
        raise ValueError(f"The {maps.contrast!r} maps have no {which} cluster: choose "
                         f"another target (e.g. top5%).")
    best = c.assign(_m=c["mass"].abs()).sort_values(["size", "_m"], ascending=False).iloc[0]
    les = cluster_units(maps, int(best["cluster_id"]), name=name or "cluster:largest")
    return Lesion(les.units, name=les.name, params={**les.params, "size": int(best["size"]),
                                                    "layer": best["layer"]})


def _shape_lesion(sheet, layer, center, radius, metric, name, kind):
    center = tuple(int(c) for c in center)
    if len(center) != 2:
        raise ValueError(f"center must be (row, col); got {center}.")
    idx = sheet.units_within(center, radius, metric=metric)
    if not idx.size:
        raise ValueError(f"The {kind} at {center} with radius {radius} holds no unit of "
                         f"{layer!r} (sheet {sheet.shape}).")
    return Lesion({layer: idx}, name=name or f"{kind}:{layer}:{center[0]},{center[1]}:{radius:g}",
                  params={kind: {"layer": layer, "center": center, "radius": radius}})


def disc(sheet, layer: str, center, radius: float, *, name: str | None = None) -> Lesion:
    """Units within Euclidean ``radius`` (sheet units, inclusive) of ``center = (row, col)``."""
    return _shape_lesion(sheet, layer, center, radius, "euclidean", name, "disc")


def square(sheet, layer: str, center, half_side: int, *, name: str | None = None) -> Lesion:
    """Units within l-infinity distance ``half_side`` of ``center``: a square of side
    ``2 * half_side + 1`` cells."""
    return _shape_lesion(sheet, layer, center, half_side, "linf", name, "square")


_TOP = re.compile(r"^top(\d+(?:\.\d+)?)%(/layer)?$")


def parse_target(spec: str, maps: LocalizerMaps | None, sheets: Mapping) -> Lesion:
    """A target from its command-line spelling.

    ``top5%`` (over all layers), ``top5%/layer``, ``fdr``, ``cluster:ID[+ID...]``,
    ``cluster:largest``, ``disc:LAYER:ROW,COL:RADIUS``, ``square:LAYER:ROW,COL:HALF``,
    ``mask:FILE.npz`` (one boolean array per layer name).
    """
    spec = str(spec).strip()
    forms = ("top5%, top5%/layer, fdr, cluster:ID, cluster:largest, "
             "disc:LAYER:ROW,COL:RADIUS, square:LAYER:ROW,COL:HALF, mask:FILE.npz")

    def need_maps():
        if maps is None:
            raise ValueError(f"Target {spec!r} needs localizer maps: give stimuli and a "
                             f"contrast (or a localizer folder).")
        return maps

    if m := _TOP.match(spec):
        return top_units(need_maps().t, float(m.group(1)), per_layer=bool(m.group(2)),
                         name=spec)
    if spec == "fdr":
        return significant_units(need_maps(), name=spec)
    if spec.startswith("cluster:"):
        arg = spec.split(":", 1)[1]
        if arg == "largest":
            return largest_cluster(need_maps(), name=spec)
        try:
            ids = [int(x) for x in arg.split("+")]
        except ValueError:
            raise ValueError(f"Bad target {spec!r}: cluster ids are integers "
                             f"(cluster:3 or cluster:3+5) or 'largest'.") from None
        return cluster_units(need_maps(), ids, name=spec)
    if spec.startswith(("disc:", "square:")):
        parts = spec.split(":")
        try:
            kind, layer, rc, rad = parts
            center = tuple(int(x) for x in rc.split(","))
            radius = float(rad) if kind == "disc" else int(rad)
        except ValueError:
            raise ValueError(f"Bad target {spec!r}: write {parts[0]}:LAYER:ROW,COL:"
                             f"{'RADIUS' if parts[0] == 'disc' else 'HALF'}, e.g. "
                             f"{parts[0]}:layer.3.mlp:8,8:3.") from None
        if layer not in sheets:
            from .._utils._validation import suggest

            raise ValueError(f"Target {spec!r}: no layer {layer!r}.{suggest(layer, list(sheets))}")
        f = disc if kind == "disc" else square
        return f(sheets[layer], layer, center, radius, name=spec)
    if spec.startswith("mask:"):
        path = Path(spec.split(":", 1)[1])
        if not path.is_file():
            raise FileNotFoundError(f"Target {spec!r}: {path} does not exist.")
        with np.load(path, allow_pickle=False) as z:
            masks = {k: z[k] for k in z.files}
        for k, v in masks.items():
            if k not in sheets:
                raise ValueError(f"{path}: array {k!r} is not a sheet layer of the model.")
            if v.shape != (sheets[k].n_units,):
                raise ValueError(f"{path}: mask {k!r} has shape {v.shape}; expected "
                                 f"({sheets[k].n_units},).")
        return Lesion.from_masks({k: v.astype(bool) for k, v in masks.items()}, name=spec)
    raise ValueError(f"Unknown target {spec!r}. Write one of: {forms}.")
