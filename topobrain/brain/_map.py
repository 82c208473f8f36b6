"""BrainMap, a statistic map on surface vertices or volume voxels, and its statistics:
p-values, Moran's I, clusters with areas or volumes, the correlogram and the summary a
model-brain comparison reports.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils._adjacency import (
    LATTICE_ADJACENCIES,
    adjacency_name,
    check_adjacency,
    deprecated_alias,
    user_stacklevel,
)
from .._utils._repr import FrameReprMixin
from .._utils._stats import near_constant
from .._utils._validation import check_option
from ._mesh import (
    Connectivity,
    Mesh,
    RestrictedAdjacency,
    _readonly,
    lattice_adjacency,
    restrict_adjacency,
)

__all__ = [
    "BrainClusters",
    "BrainMap",
    "BrainSummary",
    "SimilarityDecay",
    "map_clusters",
    "map_morans_i",
    "map_p_values",
    "similarity_decay",
    "summarize_map",
]


# --------------------------------------------------------------------------- maps
@dataclass(frozen=True, eq=False)
class BrainMap(FrameReprMixin):
    """A brain statistic map on surface vertices or volume voxels (immutable).

    Attributes
    ----------
    values : ndarray of shape (n_locations,)
        The statistic per location; NaN where missing or outside the mask.
    kind : {"surface", "volume"}
    mesh : Mesh or None
        For surface maps: the mesh whose vertices are the locations.
    voxels : ndarray of int, shape (n_locations, 3), or None
        For volume maps: the voxel indices (i, j, k) of the locations (the mask voxels).
    affine : ndarray of shape (4, 4) or None
        For volume maps: voxel to world (mm) transform.
    grid_shape : tuple of int or None
        For volume maps: the shape of the image grid.
    name : str
    source : str or None
        The file it was read from.
    """

    values: np.ndarray
    kind: Literal["surface", "volume"]
    mesh: Mesh | None = None
    voxels: np.ndarray | None = None
    affine: np.ndarray | None = None
    grid_shape: tuple | None = None
    name: str = ""
    source: str | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        v = np.array(self.values, dtype=np.float64, copy=True)
        if v.ndim != 1:
            raise ValueError(f"values must be a vector; got shape {v.shape}.")
        check_option("kind", self.kind, ("surface", "volume"))
        if self.kind == "surface":
            if not isinstance(self.mesh, Mesh):
                raise TypeError("a surface map needs a Mesh; pass mesh=load_mesh(...).")
            if self.mesh.n_vertices != v.size:
                raise ValueError(
                    f"values have {v.size} entries but the mesh has {self.mesh.n_vertices} "
                    "vertices; pass the mesh the map was made on (for two hemispheres "
                    "hemi='both')."
                )
        else:
            if self.voxels is None or self.affine is None or self.grid_shape is None:
                raise TypeError("a volume map needs voxels, affine and grid_shape.")
            vox = np.asarray(self.voxels, dtype=np.int64)
            if vox.shape != (v.size, 3):
                raise ValueError(
                    f"voxels must have shape ({v.size}, 3); got shape {vox.shape}."
                )
            object.__setattr__(self, "voxels", _readonly(vox))
            object.__setattr__(self, "affine", _readonly(np.asarray(self.affine, float)))
            object.__setattr__(self, "grid_shape", tuple(int(s) for s in self.grid_shape))
        v[np.isinf(v)] = np.nan
        object.__setattr__(self, "values", _readonly(v))

    @property
    def n_locations(self) -> int:
        return int(self.values.size)

    @property
    def size_unit(self) -> str:
        """``"mm2"`` for surfaces, ``"mm3"`` for volumes."""
        return "mm2" if self.kind == "surface" else "mm3"

    @property
    def voxel_volume(self) -> float | None:
        """Volume of one voxel in mm^3 (volume maps), else None."""
        if self.kind != "volume":
            return None
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def coordinates(self) -> np.ndarray:
        """Positions of the locations in mm, shape (n_locations, 3)."""
        if self.kind == "surface":
            return self.mesh.coordinates
        return self.voxels @ self.affine[:3, :3].T + self.affine[:3, 3]

    def location_sizes(self) -> np.ndarray:
        """Size of each location: vertex area in mm^2 or voxel volume in mm^3."""
        if self.kind == "surface":
            return self.mesh.vertex_areas()
        return np.full(self.n_locations, self.voxel_volume)

    def _resolve_adjacency(self, adjacency):
        """(lattice size or None, given matrix or None) of an ``adjacency`` argument."""
        adj = check_adjacency(adjacency, n=self.n_locations, allowed=LATTICE_ADJACENCIES)
        if not isinstance(adj, int):
            return None, sp.csr_matrix(adj)
        return (adj if self.kind == "volume" else None), None

    def adjacency_name(self, adjacency=6) -> str:
        """What results record for ``adjacency``: ``"mesh"`` (a surface's edges), ``"6"``,
        ``"18"`` or ``"26"`` (a volume's lattice) or the description of a given matrix."""
        named, custom = self._resolve_adjacency(adjacency)
        if custom is not None:
            return adjacency_name(adjacency)
        return "mesh" if named is None else str(named)

    @deprecated_alias(connectivity="adjacency")
    def adjacency(self, adjacency: Connectivity = 6) -> sp.csr_matrix:
        """Binary adjacency over all locations; a fresh copy on each call.

        Parameters
        ----------
        adjacency : {6, 18, 26}, scipy.sparse matrix or libpysal W, default=6
            Volumes: the 6, 18 or 26 lattice neighbours. Surfaces use their mesh's edges
            whatever the number. A matrix of shape ``(n_locations, n_locations)`` replaces
            either. (Formerly ``connectivity=``, deprecated.)
        """
        named, custom = self._resolve_adjacency(adjacency)
        if custom is not None:
            return custom
        if self.kind == "surface":
            key = ("mesh",)
            if key not in self._cache:
                self._cache[key] = self.mesh.adjacency()
            return self._cache[key].copy()
        key = ("lattice", named)
        if key not in self._cache:
            m = np.zeros(self.grid_shape, bool)
            m[tuple(self.voxels.T)] = True
            # lattice_adjacency orders mask voxels in C order; map back to our order
            a = lattice_adjacency(m, named)
            order = np.ravel_multi_index(tuple(self.voxels.T), self.grid_shape)
            rank = np.argsort(np.argsort(order))
            self._cache[key] = a[rank][:, rank].tocsr()
        return self._cache[key].copy()

    @deprecated_alias(connectivity="adjacency")
    def restricted(self, mask=None, adjacency: Connectivity = 6) -> RestrictedAdjacency:
        """The adjacency (see :meth:`adjacency`) among finite (and ``mask``) locations,
        islands dropped.

        Cached per mask (the last few) for the mesh and lattices; the cached adjacency is
        read-only.
        """
        keep = self.kept(mask)
        named, custom = self._resolve_adjacency(adjacency)
        if custom is not None:
            return restrict_adjacency(custom, keep)
        key = ("restricted", named, np.packbits(keep).tobytes())
        hit = self._cache.get(key)
        if hit is None:
            hit = restrict_adjacency(self.adjacency(adjacency), keep)
            for a in (hit.adjacency.data, hit.adjacency.indices, hit.adjacency.indptr):
                a.setflags(write=False)
            self._cache[key] = hit
            cached = [k for k in self._cache if k[0] == "restricted"]
            for k in cached[:max(0, len(cached) - 3)]:  # keep the three most recent masks
                del self._cache[k]
        return hit

    def kept(self, mask=None) -> np.ndarray:
        """Boolean per location: finite value and, when given, inside ``mask``."""
        keep = np.isfinite(self.values)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != keep.shape:
                raise ValueError(
                    f"mask must have one entry per location ({self.n_locations}); got shape "
                    f"{mask.shape}."
                )
            keep &= mask
        return keep

    def with_values(self, values, name: str | None = None) -> BrainMap:
        """A new map on the same locations with other values."""
        return BrainMap(values, self.kind, mesh=self.mesh, voxels=self.voxels,
                        affine=self.affine, grid_shape=self.grid_shape,
                        name=self.name if name is None else name, source=self.source)

    def to_frame(self) -> pd.DataFrame:
        """One row per location: ``location``, ``x_mm``, ``y_mm``, ``z_mm``, ``value``,
        the size (``area_mm2`` or ``volume_mm3``) and ``hemisphere`` (surfaces)."""
        xyz = self.coordinates()
        df = pd.DataFrame({"location": np.arange(self.n_locations), "x_mm": xyz[:, 0],
                           "y_mm": xyz[:, 1], "z_mm": xyz[:, 2], "value": self.values})
        df["area_mm2" if self.kind == "surface" else "volume_mm3"] = self.location_sizes()
        if self.kind == "surface" and self.mesh.hemisphere is not None:
            df["hemisphere"] = self.mesh.hemisphere
        return df

    def __repr__(self) -> str:
        fin = int(np.isfinite(self.values).sum())
        where = (self.mesh.name if self.kind == "surface"
                 else f"grid {self.grid_shape}, {self.voxel_volume:g} mm^3 voxels")
        return (f"BrainMap({self.name or 'unnamed'!s}: {self.kind}, {self.n_locations} "
                f"locations ({fin} finite) on {where})")


# --------------------------------------------------------------------------- statistics
def _check_map(brain_map) -> BrainMap:
    if not isinstance(brain_map, BrainMap):
        raise TypeError(
            f"brain_map must be a BrainMap (from load_map); got {type(brain_map).__name__}."
        )
    return brain_map


def map_p_values(brain_map, *, df: float | None = None) -> np.ndarray:
    """Two-sided p-values of a t or z map.

    Parameters
    ----------
    brain_map : BrainMap or ndarray of shape (n_locations,)
    df : float, optional
        Degrees of freedom of a t map (Student t); without it the values are z scores
        (standard normal).

    Returns
    -------
    ndarray of shape (n_locations,)
        ``P(|T| >= |value|)``; NaN where the value is NaN.

    Examples
    --------
    >>> map_p_values(np.array([0.0, 1.959963984540054])).round(4)
    array([1.  , 0.05])
    """
    from scipy import special

    v = brain_map.values if isinstance(brain_map, BrainMap) else np.asarray(brain_map, float)
    if df is None:
        return 2.0 * special.ndtr(-np.abs(v))
    df = float(df)
    if not df > 0:
        raise ValueError(f"df must be positive; got {df}.")
    return 2.0 * special.stdtr(df, -np.abs(v))


@deprecated_alias(connectivity="adjacency")
def map_morans_i(
    brain_map: BrainMap,
    *,
    mask=None,
    adjacency: Connectivity = 6,
    transform: Literal["r", "b"] = "r",
    n_permutations: int = 0,
    seed=None,
    alternative: str = "two-sided",
    n_jobs: int | None = None,
    verbose: int = 1,
):
    """Moran's I of a brain map over its mesh or lattice adjacency.

    The adjacency is restricted to the finite (and ``mask``) locations, islands dropped
    (:meth:`BrainMap.restricted`), then :func:`topobrain.spatial.morans_i` runs on it
    exactly as on a model sheet.

    Parameters
    ----------
    brain_map : BrainMap
    mask : ndarray of bool, shape (n_locations,), optional
        E.g. an FDR mask, for Moran's I within the significant locations.
    adjacency : {6, 18, 26}, scipy.sparse matrix or libpysal W, default=6
        Volume maps: lattice neighbours; surfaces use their mesh. A matrix over the
        map's locations replaces either (see :meth:`BrainMap.adjacency`). Recorded in
        ``params["adjacency"]``. (Formerly ``connectivity=``, deprecated.)
    transform : {"r", "b"}, default="r"
        Row-standardised (esda's default) or binary weights.
    n_permutations, seed, alternative, n_jobs, verbose
        As in :func:`topobrain.spatial.morans_i`.

    Returns
    -------
    topobrain.spatial.MoranResult
    """
    import dataclasses

    from ..spatial import morans_i

    bm = _check_map(brain_map)
    r = bm.restricted(mask, adjacency)
    if r.n_kept < 4:
        raise ValueError(
            f"only {r.n_kept} locations are finite, in the mask and connected; Moran's I "
            "needs at least 4."
        )
    res = morans_i(bm.values[r.index], r.adjacency, n_permutations=n_permutations,
                   seed=seed, alternative=alternative, transform=transform, n_jobs=n_jobs,
                   verbose=verbose)
    return dataclasses.replace(res, params={**res.params,
                                            "adjacency": bm.adjacency_name(adjacency)})


@dataclass(frozen=True, eq=False)
class BrainClusters(FrameReprMixin):
    """Clusters of a brain map with their sizes in mm^2 (surfaces) or mm^3 (volumes).

    Attributes
    ----------
    table : topobrain.clusters.ClusterTable
        The cluster table over the map's locations (``labels`` has shape
        ``(1, n_locations)``).
    size_mm : ndarray of shape (n_clusters,)
        Area (mm^2) or volume (mm^3) of each cluster.
    total_mm : float
        Area or volume of all finite locations of the map.
    size_unit : {"mm2", "mm3"}
    """

    table: object
    size_mm: np.ndarray
    total_mm: float
    size_unit: str

    @property
    def n_clusters(self) -> int:
        return int(self.size_mm.size)

    def to_frame(self) -> pd.DataFrame:
        """The cluster table plus ``area_mm2`` (or ``volume_mm3``) and ``fraction``
        (of the analysed area or volume); ``peak_vertex`` is the peak location."""
        df = self.table.to_frame()
        col = "area_mm2" if self.size_unit == "mm2" else "volume_mm3"
        df[col] = self.size_mm
        df["fraction"] = self.size_mm / self.total_mm if self.total_mm > 0 else np.nan
        return df

    def __repr__(self) -> str:
        largest = f", largest {self.size_mm.max():.4g} {self.size_unit}" if self.n_clusters else ""
        return (f"BrainClusters({self.n_clusters} clusters{largest}, of "
                f"{self.total_mm:.4g} {self.size_unit} analysed)")


@deprecated_alias(connectivity="adjacency")
def map_clusters(
    brain_map: BrainMap,
    threshold: float,
    *,
    tail: int = 0,
    min_size: int = 1,
    mask=None,
    adjacency: Connectivity = 6,
) -> BrainClusters:
    """Connected suprathreshold clusters of a brain map, with areas or volumes.

    :func:`topobrain.clusters.find_clusters` on the map's restricted adjacency (the
    strict threshold and tail conventions are those of that function), then each cluster's
    area (sum of its vertices' areas, mm^2) or volume (voxels x voxel volume, mm^3).

    Parameters
    ----------
    brain_map : BrainMap
    threshold : float
        Cluster-forming threshold on the map's values.
    tail : {0, 1, -1}, default=0
    min_size : int, default=1
        Minimum cluster size in locations (vertices or voxels).
    mask : ndarray of bool, shape (n_locations,), optional
        Locations allowed into clusters.
    adjacency : {6, 18, 26}, scipy.sparse matrix or libpysal W, default=6
        As in :func:`map_morans_i`. (Formerly ``connectivity=``, deprecated.)

    Returns
    -------
    BrainClusters
    """
    from ..clusters import find_clusters

    bm = _check_map(brain_map)
    keep = bm.kept(mask)
    finite = np.isfinite(bm.values)  # the area of reference: every finite location
    # locations outside ``keep`` are NaN, never suprathreshold; single locations stay
    values = np.where(keep, bm.values, np.nan)
    table = find_clusters(values, threshold, adjacency=bm.adjacency(adjacency), tail=tail,
                          min_size=min_size)
    sizes = bm.location_sizes()
    labels = np.asarray(table.labels).reshape(-1)
    per = np.bincount(labels, weights=sizes, minlength=table.n_clusters + 1)[1:]
    order = np.asarray(table.cluster_id, dtype=np.int64)
    return BrainClusters(table, _readonly(per[order - 1] if order.size else per[:0]),
                         float(sizes[finite].sum()), bm.size_unit)


@dataclass(frozen=True, eq=False)
class SimilarityDecay(FrameReprMixin):
    """Spatial autocorrelation of a map against distance (a correlogram).

    Attributes
    ----------
    distance : ndarray of shape (n_bins,)
        Mean pair distance per bin, in mm.
    correlation : ndarray of shape (n_bins,)
        ``mean((x_i - m)(x_j - m)) / var(x)`` over the pairs of each bin.
    n_pairs : ndarray of int, shape (n_bins,)
    decay_distance : float
        Distance (mm) at which the correlation first falls to half its value in the
        first (nearest) bin, linearly interpolated; NaN if it never does within the range.
        The rule of the localizer's ``decay_distance`` (there in sheet units).
    params : dict
    """

    distance: np.ndarray
    correlation: np.ndarray
    n_pairs: np.ndarray
    decay_distance: float
    params: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"distance_mm": self.distance, "correlation": self.correlation,
                             "n_pairs": self.n_pairs, "decay_distance_mm": self.decay_distance})


def similarity_decay(
    brain_map: BrainMap,
    *,
    max_distance: float = 40.0,
    n_bins: int = 20,
    max_anchors: int = 500,
    seed=None,
    mask=None,
) -> SimilarityDecay:
    """How fast the map's similarity between locations decays with distance.

    The correlogram of the map: for pairs of finite locations binned by straight-line
    distance (mm; within one hemisphere for surfaces), the mean product of their centred
    values over the map's variance (1 at distance 0 for a perfectly smooth map, 0 for
    white noise), and the distance at which that curve halves.

    Parameters
    ----------
    brain_map : BrainMap
    max_distance : float, default=40.0
        Largest pair distance, in mm.
    n_bins : int, default=20
        Equal-width bins over ``(0, max_distance]``.
    max_anchors : int, default=500
        Pairs are all (anchor, location) pairs for a random subset of at most this many
        anchor locations (seeded), to bound the work on large meshes.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Draws the anchors (block 0 of the permutation core's sequence for ``seed``).
    mask : ndarray of bool, shape (n_locations,), optional

    Returns
    -------
    SimilarityDecay
    """
    from scipy.spatial import cKDTree

    from .._utils._permutation import as_seed_sequence, block_rng
    from ..spatial import decay_distance

    bm = _check_map(brain_map)
    max_distance = float(max_distance)
    if not max_distance > 0:
        raise ValueError(f"max_distance must be positive (mm); got {max_distance}.")
    if int(n_bins) < 2:
        raise ValueError(f"n_bins must be at least 2; got {n_bins}.")
    keep = np.isfinite(bm.values)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool)
    idx = np.flatnonzero(keep)
    if idx.size < 3:
        raise ValueError("similarity_decay needs at least 3 finite locations.")
    x = bm.values[idx]
    if near_constant(x):
        warnings.warn(f"{bm.name or 'the map'} is constant over its locations (exactly or to "
                      "rounding); its correlogram and decay distance are NaN.", UserWarning,
                      stacklevel=user_stacklevel())
    z = x - x.mean()
    var = float(np.mean(z * z))
    xyz = bm.coordinates()[idx]
    hemi = (bm.mesh.hemisphere[idx] if bm.kind == "surface" and bm.mesh.hemisphere is not None
            else np.zeros(idx.size, dtype="<U5"))
    anchors = np.arange(idx.size)
    if anchors.size > max_anchors:
        rng = block_rng(as_seed_sequence(seed), 0)  # the permutation core's seed rule
        anchors = np.sort(rng.choice(idx.size, int(max_anchors), replace=False))
    edges = np.linspace(0.0, max_distance, int(n_bins) + 1)
    tree = cKDTree(xyz)
    sub = cKDTree(xyz[anchors])
    pairs = sub.sparse_distance_matrix(tree, max_distance, output_type="coo_matrix")
    a, b, d = anchors[pairs.row], pairs.col, pairs.data
    ok = (d > 0) & (hemi[a] == hemi[b])
    a, b, d = a[ok], b[ok], d[ok]
    k = np.clip(np.searchsorted(edges, d, side="left") - 1, 0, int(n_bins) - 1)
    nb = int(n_bins)
    sums = np.bincount(k, weights=z[a] * z[b], minlength=nb)
    dsum = np.bincount(k, weights=d, minlength=nb)
    counts = np.bincount(k, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = near_constant(x)  # constant to rounding: a correlogram of rounding noise
        corr = sums / counts / var if var > 0 and not flat else np.full(int(n_bins), np.nan)
        dist = dsum / counts
    return SimilarityDecay(_readonly(dist), _readonly(corr), _readonly(counts),
                           decay_distance(dist, corr),
                           params={"max_distance_mm": max_distance, "n_bins": int(n_bins),
                                   "n_anchors": int(anchors.size), "level": 0.5})


@dataclass(frozen=True, eq=False)
class BrainSummary(FrameReprMixin):
    """The brain-side numbers of a model-brain comparison (see :func:`summarize_map`).

    Attributes
    ----------
    morans_i : float
        Moran's I of the unthresholded map (row-standardised mesh/lattice weights).
    morans_i_p : float or None
        Its permutation p-value (two-sided), when permutations were asked for.
    morans_i_selective : float
        Moran's I within the FDR-selective locations (NaN if fewer than 4 connected).
    percent_selective : float
        Percent of analysed locations with ``p_FDR < alpha`` (in the direction of
        ``tail``).
    n_selective, n_locations, n_islands : int
    n_clusters : int
        Connected clusters of selective locations (positive and negative apart).
    largest_cluster_size, median_cluster_size : float
        In mm^2 (surfaces) or mm^3 (volumes).
    total_size : float
        Area or volume of the analysed locations (the "cortex area").
    largest_cluster_fraction, median_cluster_fraction : float
        Cluster sizes over ``total_size``.
    decay_distance : float
        Distance at which the map's correlogram halves, mm (:func:`similarity_decay`).
    size_unit : {"mm2", "mm3"}
    params : dict
    """

    morans_i: float
    morans_i_p: float | None
    morans_i_selective: float
    percent_selective: float
    n_selective: int
    n_locations: int
    n_islands: int
    n_clusters: int
    largest_cluster_size: float
    median_cluster_size: float
    total_size: float
    largest_cluster_fraction: float
    median_cluster_fraction: float
    decay_distance: float
    size_unit: str
    params: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        row = {k: getattr(self, k) for k in (
            "morans_i", "morans_i_p", "morans_i_selective", "percent_selective",
            "n_selective", "n_locations", "n_islands", "n_clusters", "largest_cluster_size",
            "median_cluster_size", "total_size", "largest_cluster_fraction",
            "median_cluster_fraction", "decay_distance", "size_unit")}
        return pd.DataFrame([row])

    def __repr__(self) -> str:
        return (f"BrainSummary(I={self.morans_i:.4g}, selective={self.percent_selective:.3g}%, "
                f"{self.n_clusters} clusters (largest {self.largest_cluster_fraction:.3g} of "
                f"{self.total_size:.4g} {self.size_unit}), decay={self.decay_distance:.3g} mm)")


@deprecated_alias(connectivity="adjacency")
def summarize_map(
    brain_map: BrainMap,
    *,
    df: float | None = None,
    alpha: float = 0.05,
    tail: int = 1,
    n_permutations: int = 0,
    seed=None,
    adjacency: Connectivity = 6,
    min_size: int = 1,
    max_distance: float = 40.0,
) -> BrainSummary:
    """Moran's I, percent selective, clusters and similarity decay of a brain t/z map.

    The same numbers the localizer reports for a model layer: Moran's I of the
    unthresholded map; Benjamini-Hochberg FDR over the analysed locations
    (:func:`topobrain.correction.fdr_correction`) on two-sided p-values
    (:func:`map_p_values`); the percent of selective locations; their connected clusters
    with areas; Moran's I within the selective locations; the correlogram's decay.

    Parameters
    ----------
    brain_map : BrainMap
    df : float, optional
        Degrees of freedom of a t map; z map when None.
    alpha : float, default=0.05
        FDR level.
    tail : {1, 0, -1}, default=1
        Which selective locations count and cluster: positive values (1, the
        localizer's rule: ``p_FDR < alpha`` and ``t > 0``), either sign (0) or negative
        values (-1).
    n_permutations : int, default=0
        Permutations for the p-value of the unthresholded Moran's I.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
    adjacency : {6, 18, 26}, scipy.sparse matrix or libpysal W, default=6
        As in :func:`map_morans_i`; recorded in ``params``. (Formerly
        ``connectivity=``, deprecated.)
    min_size : int, default=1
        Minimum cluster size in locations.
    max_distance : float, default=40.0
        Range of the correlogram, mm.

    Returns
    -------
    BrainSummary
    """
    from ..correction import fdr_correction

    bm = _check_map(brain_map)
    check_option("tail", tail, (0, 1, -1))
    from .._utils._permutation import as_seed_sequence, seed_record, stream

    root = as_seed_sequence(seed)  # the null and the correlogram draw their own streams
    r = bm.restricted(None, adjacency)
    mi = map_morans_i(bm, adjacency=adjacency, n_permutations=n_permutations,
                      seed=stream(root, "morans_i"))
    p = np.full(bm.n_locations, np.nan)
    p[r.index] = map_p_values(bm.values[r.index], df=df)
    fdr = fdr_correction(p[r.index], alpha=alpha)
    sel = np.zeros(bm.n_locations, bool)
    sel[r.index] = np.asarray(fdr.mask, dtype=bool)
    if tail == 1:
        sel &= bm.values > 0
    elif tail == -1:
        sel &= bm.values < 0
    n_sel = int(sel.sum())
    try:
        mi_sel = float(map_morans_i(bm, mask=sel, adjacency=adjacency).I)
    except ValueError:
        mi_sel = float("nan")
    cl = map_clusters(bm, 0.0, tail=tail, min_size=min_size, mask=sel, adjacency=adjacency)
    total = float(bm.location_sizes()[r.index].sum())
    sizes = np.asarray(cl.size_mm)
    largest = float(sizes.max()) if sizes.size else 0.0
    median = float(np.median(sizes)) if sizes.size else float("nan")
    dec = similarity_decay(bm, max_distance=max_distance, seed=stream(root, "similarity_decay"))
    return BrainSummary(
        morans_i=float(mi.I), morans_i_p=None if mi.p_sim is None else float(mi.p_sim),
        morans_i_selective=mi_sel, percent_selective=100.0 * n_sel / max(r.n_kept, 1),
        n_selective=n_sel, n_locations=r.n_kept, n_islands=r.n_islands,
        n_clusters=cl.n_clusters, largest_cluster_size=largest, median_cluster_size=median,
        total_size=total, largest_cluster_fraction=largest / total if total else np.nan,
        median_cluster_fraction=median / total if total else np.nan,
        decay_distance=dec.decay_distance, size_unit=bm.size_unit,
        params={"df": df, "alpha": alpha, "tail": tail, "n_permutations": n_permutations,
                "adjacency": bm.adjacency_name(adjacency), "min_size": min_size,
                **seed_record(root),
                "max_distance_mm": max_distance, "fdr": "bh"},
    )

