"""Readers of brain statistic maps: NIfTI, GIfTI, CIFTI dense scalars, FreeSurfer MGH,
NumPy, CSV/TSV, netCDF and HDF5, through nibabel (netCDF through xarray, HDF5 through
h5py), into a :class:`~topobrain.brain.BrainMap`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils._validation import check_option
from ._map import BrainMap
from ._mesh import TEMPLATE_MESHES, Hemi, Mesh, _canonical_template, load_mesh

__all__ = ["load_map"]


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
        from .._utils._validation import suggest

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
            from .._utils._validation import suggest

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
        # a file holds fewer maps than locations: the maps run along the shorter axis
        if v.shape[0] > v.shape[1]:
            v = _pick(v.T, index, f"columns of {v.shape[0]} values (one map each)", path)
        else:
            v = _pick(v, index, f"rows of {v.shape[1]} values (one map each)", path)
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
        Which map of a file holding several (4D NIfTI, several GIfTI arrays, CIFTI maps,
        a 2D NumPy/CSV/netCDF/HDF5 array, whose maps run along its shorter axis: the
        columns of a ``(n_vertices, n_maps)`` array, the rows of ``(n_maps,
        n_vertices)``).
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
