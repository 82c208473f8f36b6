"""Activations: pooled unit responses per layer, each layer on its cortical sheet.

:class:`Activations` is what :func:`topobrain.extract.extract` returns and what the
statistics take: for each sheet layer an ``(n_items, n_units)`` float64 array labelled
with item ids, conditions and each unit's ``(row, col)`` on its
:class:`~topobrain.sheet.CorticalSheet`, saved to and read from netCDF or ``.npz``.

This module never imports torch: reading, selecting, smoothing and analysing
responses does not need the model.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ._utils._io import atomic_save, atomic_write_bytes
from ._utils._validation import suggest
from .sheet import CorticalSheet

__all__ = ["Activations", "load_activations"]

_UNIT = "{}.unit"
_ROW = "{}.row"
_COL = "{}.col"


# =========================================================================== Activations
@dataclass(frozen=True, eq=False)
class Activations:
    """Pooled unit responses of several sheet layers to a set of items.

    Build with :meth:`from_arrays` (or get one from :func:`topobrain.extract.extract`);
    the arrays are read-only, and every method that changes something returns a new
    object.

    Parameters
    ----------
    dataset : xarray.Dataset
        One float64 data variable per layer, named by the layer, with dims
        ``("item", "<layer>.unit")``; coordinates ``item`` (item ids), ``condition`` (on
        ``item``, optional), ``<layer>.row`` and ``<layer>.col`` (each unit's sheet
        position); variable attribute ``sheet_shape``; dataset attribute ``topobrain``
        (a JSON record of how the responses were made).
    sheets : dict of str to CorticalSheet
        The sheet of each layer, in layer order.

    Attributes
    ----------
    layers : list of str
        Layer names, in model order.
    n_items : int
        Number of items.
    item_ids : ndarray of shape (n_items,)
    labels : ndarray of str, shape (n_items,), or None
        The condition of each item (as :attr:`topobrain.stimuli.StimulusSet.labels`).
    conditions : list of str or None
        The distinct conditions, in order of first appearance.
    params : dict
        How the responses were made: model, model identity, stimuli, pooling, bos,
        smoothing FWHM (sheet units), ...

    Examples
    --------
    >>> from topobrain.sheet import CorticalSheet
    >>> sheet = CorticalSheet((2, 2), name="layer.0.mlp")
    >>> acts = Activations.from_arrays({"layer.0.mlp": np.arange(8.0).reshape(2, 4)},
    ...                                {"layer.0.mlp": sheet}, item_ids=["a", "b"],
    ...                                labels=["S", "N"])
    >>> acts["layer.0.mlp"].shape
    (2, 4)
    >>> acts.to_maps("layer.0.mlp")[1]
    array([[4., 5.],
           [6., 7.]])
    """

    dataset: xr.Dataset
    sheets: dict = field(default_factory=dict)

    def __post_init__(self):
        ds = self.dataset
        if not isinstance(ds, xr.Dataset):
            raise TypeError(
                f"dataset must be an xarray.Dataset; got {type(ds).__name__}. Use "
                f"Activations.from_arrays(data, sheets) to build one from arrays."
            )
        layers = [str(v) for v in ds.data_vars]
        if not layers:
            raise ValueError("Activations need at least one layer; the dataset has none.")
        # a private deep copy: the caller's dataset is never frozen or changed
        ds = ds.copy(deep=True)
        object.__setattr__(self, "dataset", ds)
        sheets = dict(self.sheets) if self.sheets else {}
        for layer in layers:
            if layer not in sheets:
                sheets[layer] = _sheet_from_dataset(ds, layer)
            sheet = sheets[layer]
            if ds[layer].shape[1] != sheet.n_units:
                raise ValueError(
                    f"Layer {layer!r} has {ds[layer].shape[1]} units but its sheet has "
                    f"{sheet.n_units} positions."
                )
            ds[layer].values.setflags(write=False)
        object.__setattr__(self, "sheets", {k: sheets[k] for k in layers})

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, data: Mapping[str, np.ndarray], sheets: Mapping[str, CorticalSheet],
                    *, item_ids=None, labels=None, params: dict | None = None
                    ) -> Activations:
        """Build from per-layer arrays.

        Parameters
        ----------
        data : dict of str to ndarray of shape (n_items, n_units)
            Responses of each layer (copied, as float64).
        sheets : dict of str to CorticalSheet
            The sheet of each layer in ``data``.
        item_ids : sequence of length n_items, optional
            Defaults to ``0 .. n_items - 1``.
        labels : sequence of str of length n_items, optional
            The condition of each item.
        params : dict, optional
            JSON-serialisable provenance record.

        Returns
        -------
        Activations
        """
        if not isinstance(data, Mapping) or not data:
            raise TypeError(
                "data must be a non-empty dict mapping layer names to arrays of shape "
                f"(n_items, n_units); got {type(data).__name__}."
            )
        arrays = {}
        n_items = None
        for layer, arr in data.items():
            arr = np.asarray(arr, dtype=np.float64)  # copied once, in __post_init__
            if arr.ndim != 2:
                raise ValueError(
                    f"Layer {layer!r} must be an array of shape (n_items, n_units); got shape "
                    f"{arr.shape}."
                )
            if n_items is None:
                n_items = arr.shape[0]
            elif arr.shape[0] != n_items:
                raise ValueError(
                    f"Every layer needs the same number of items; layer {layer!r} has "
                    f"{arr.shape[0]}, the first layer {n_items}."
                )
            if layer not in sheets:
                raise ValueError(
                    f"No sheet for layer {layer!r}; sheets were given for {list(sheets)}."
                )
            if arr.shape[1] != sheets[layer].n_units:
                raise ValueError(
                    f"Layer {layer!r} has {arr.shape[1]} units but its sheet has "
                    f"{sheets[layer].n_units}."
                )
            arrays[str(layer)] = arr
        ids = np.arange(n_items) if item_ids is None else _as_1d(item_ids, "item_ids")
        if ids.shape[0] != n_items:
            raise ValueError(f"item_ids has {ids.shape[0]} entries for {n_items} items.")
        coords = {"item": ids}
        if labels is not None:
            cond = np.asarray([str(c) for c in labels], dtype=object)
            if cond.shape[0] != n_items:
                raise ValueError(f"labels has {cond.shape[0]} entries for {n_items} items.")
            coords["condition"] = ("item", cond)
        variables = {}
        for layer, arr in arrays.items():
            unit = _UNIT.format(layer)
            pos = sheets[layer].positions
            coords[_ROW.format(layer)] = (unit, pos[:, 0].astype(np.int32))
            coords[_COL.format(layer)] = (unit, pos[:, 1].astype(np.int32))
            variables[layer] = xr.Variable(
                ("item", unit), arr, attrs={"sheet_shape": list(sheets[layer].shape)})
        ds = xr.Dataset(variables, coords=coords,
                        attrs={"topobrain": json.dumps(params or {}, default=str)})
        return cls(ds, {k: sheets[k] for k in arrays})

    # -- access ------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        return [str(v) for v in self.dataset.data_vars]

    @property
    def n_items(self) -> int:
        return int(self.dataset.sizes["item"])

    @property
    def item_ids(self) -> np.ndarray:
        return self.dataset["item"].values.copy()

    @property
    def labels(self) -> np.ndarray | None:
        """The condition of each item, ndarray of str of shape (n_items,), or None."""
        if "condition" not in self.dataset.coords:
            return None
        return np.asarray([str(c) for c in self.dataset["condition"].values], dtype=object)

    @property
    def conditions(self) -> list[str] | None:
        """The distinct conditions in order of first appearance, or None."""
        labels = self.labels
        return None if labels is None else list(dict.fromkeys(labels))

    @property
    def params(self) -> dict:
        return json.loads(self.dataset.attrs.get("topobrain", "{}"))

    def __getitem__(self, layer: str) -> np.ndarray:
        """Read-only float64 responses of one layer, shape (n_items, n_units)."""
        self._check_layer(layer)
        return self.dataset[layer].values

    def __contains__(self, layer) -> bool:
        return layer in self.sheets

    def _check_layer(self, layer):
        if layer not in self.sheets:
            raise KeyError(
                f"No layer {layer!r} in these activations. Layers: {self.layers}."
                f"{suggest(str(layer), self.layers)}"
            )

    def to_maps(self, layer: str) -> np.ndarray:
        """Responses of one layer as sheet maps, shape (n_items, n_rows, n_cols).

        Cells where no unit sits are NaN; units that share a cell are averaged.
        """
        self._check_layer(layer)
        return self.sheets[layer].to_map(self[layer])

    def to_xarray(self) -> xr.Dataset:
        """The labelled dataset (a shallow copy; the arrays stay read-only)."""
        return self.dataset.copy(deep=False)

    def to_frame(self):
        """Tidy table, one row per item x layer x unit.

        Columns: ``item_id``, ``condition`` (when known), ``layer``, ``unit``, ``row``,
        ``col``, ``value``.
        """
        import pandas as pd

        frames = []
        ids = self.item_ids
        cond = self.labels
        for layer in self.layers:
            x = self[layer]
            n_items, n_units = x.shape
            pos = self.sheets[layer].positions
            cols = {"item_id": np.repeat(ids, n_units)}
            if cond is not None:
                cols["condition"] = np.repeat(cond, n_units)
            cols.update({
                "layer": np.full(n_items * n_units, layer, dtype=object),
                "unit": np.tile(np.arange(n_units), n_items),
                "row": np.tile(pos[:, 0], n_items),
                "col": np.tile(pos[:, 1], n_items),
                "value": x.ravel(),
            })
            frames.append(pd.DataFrame(cols))
        return pd.concat(frames, ignore_index=True)

    def select(self, *, layers=None, items=None) -> Activations:
        """A subset of layers and/or items (integer positions or a boolean mask)."""
        names = self.layers if layers is None else ([layers] if isinstance(layers, str)
                                                    else list(layers))
        for layer in names:
            self._check_layer(layer)
        idx = np.arange(self.n_items)
        if items is not None:
            sel = np.asarray(items)
            if sel.dtype == bool:
                if sel.shape != (self.n_items,):
                    raise ValueError(
                        f"A boolean item mask needs {self.n_items} entries; got shape "
                        f"{sel.shape}."
                    )
                idx = np.flatnonzero(sel)
            else:
                idx = idx[sel.astype(np.int64)]
        cond = self.labels
        return Activations.from_arrays(
            {k: self[k][idx] for k in names}, {k: self.sheets[k] for k in names},
            item_ids=self.item_ids[idx], labels=None if cond is None else cond[idx],
            params=self.params)

    def replace(self, data: Mapping[str, np.ndarray], **params) -> Activations:
        """New activations with the same labels and sheets, new arrays, updated params."""
        missing = [k for k in self.layers if k not in data]
        if missing:
            raise ValueError(f"replace needs an array for every layer; missing {missing}.")
        return Activations.from_arrays(
            {k: data[k] for k in self.layers}, self.sheets, item_ids=self.item_ids,
            labels=self.labels, params={**self.params, **params})

    def __repr__(self) -> str:
        shapes = sorted({s.shape for s in self.sheets.values()})
        p = self.params
        labels = self.labels
        if labels is not None:
            names = list(dict.fromkeys(labels))
            cstr = ", ".join(f"{n}: {int(np.sum(labels == n))}" for n in names[:6])
            cstr = f", conditions {{{cstr}{', ...' if len(names) > 6 else ''}}}"
        else:
            cstr = ""
        extra = "".join(f", {k}={p[k]!r}" for k in ("model", "pooling", "smoothing_fwhm")
                        if p.get(k) is not None)
        return (f"Activations({self.n_items} items x {len(self.layers)} layers on "
                f"{' / '.join(f'{r}x{c}' for r, c in shapes)} sheets{cstr}{extra})")

    # -- files -------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write to netCDF (``.nc``) or NumPy (``.npz``), atomically.

        netCDF goes through xarray with h5netcdf when h5py is installed, else netCDF3
        through scipy.
        """
        path = Path(path)
        if path.suffix == ".npz":
            atomic_write_bytes(path, _npz_bytes(self))
            return path
        if path.suffix not in (".nc", ".nc4", ".netcdf"):
            raise ValueError(
                f"Unknown activations file type {path.suffix!r} ({path}); use a .nc "
                f"(netCDF) or .npz file name."
            )
        engine = _netcdf_engine()
        ds = self.dataset.copy(deep=False)
        if engine == "scipy":
            ds = _netcdf3_safe(ds)
        atomic_save(path, lambda tmp: ds.to_netcdf(tmp, engine=engine))
        return path

    @classmethod
    def load(cls, path) -> Activations:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"No activations file at {path}.")
        if path.suffix == ".npz":
            return _from_npz(path)
        try:
            with xr.open_dataset(path) as ds:
                ds = ds.load()
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            # a truncated file fails in h5py, netCDF4 or scipy, each in its own way
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"{path} is not a readable activations file ({detail}).") from exc
        if ds["item"].dtype.kind in "SU":
            ds = ds.assign_coords(item=ds["item"].values.astype(object))
        return cls(ds)


def load_activations(path) -> Activations:
    """Read activations saved with :meth:`Activations.save` (``.nc`` or ``.npz``)."""
    return Activations.load(path)


def _as_1d(values, name) -> np.ndarray:
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}.")
    if arr.dtype.kind in "US":
        arr = arr.astype(object)
    return arr


def _sheet_from_dataset(ds: xr.Dataset, layer: str) -> CorticalSheet:
    row, col = _ROW.format(layer), _COL.format(layer)
    if row not in ds.coords or col not in ds.coords or "sheet_shape" not in ds[layer].attrs:
        raise ValueError(
            f"Layer {layer!r} carries no sheet positions (coords {row!r}, {col!r} and the "
            f"'sheet_shape' attribute). Pass sheets= or build with Activations.from_arrays."
        )
    shape = tuple(int(s) for s in np.ravel(ds[layer].attrs["sheet_shape"]))
    pos = np.stack([ds[row].values, ds[col].values], axis=1)
    return CorticalSheet(shape, layout=pos, name=layer)


def _netcdf_engine() -> str:
    import importlib.util

    if importlib.util.find_spec("h5netcdf") and importlib.util.find_spec("h5py"):
        return "h5netcdf"
    if importlib.util.find_spec("netCDF4"):
        return "netcdf4"
    return "scipy"


def _netcdf3_safe(ds: xr.Dataset) -> xr.Dataset:
    """netCDF3 has no int64: narrow integer item ids when they fit."""
    item = ds["item"].values
    if item.dtype.kind in "iu":
        info = np.iinfo(np.int32)
        if item.size and (item.min() < info.min or item.max() > info.max):
            raise ValueError(
                "Integer item ids beyond int32 cannot be written to netCDF3; install h5py for "
                "netCDF4 or save as .npz."
            )
        ds = ds.assign_coords(item=item.astype(np.int32))
    return ds


def _npz_bytes(acts: Activations) -> bytes:
    meta = {"layers": acts.layers, "params": acts.params,
            "shapes": {k: list(s.shape) for k, s in acts.sheets.items()}}
    arrays = {"__meta__": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
              "__items__": _encode_ids(acts.item_ids)}
    if acts.labels is not None:
        arrays["__conditions__"] = np.asarray(acts.labels, dtype=str)
    for j, layer in enumerate(acts.layers):
        arrays[f"data{j}"] = acts[layer]
        arrays[f"pos{j}"] = acts.sheets[layer].positions
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _encode_ids(ids: np.ndarray) -> np.ndarray:
    if ids.dtype == object:
        return np.asarray([str(i) for i in ids], dtype=str)
    return ids


def _from_npz(path) -> Activations:
    """Read an ``.npz`` written by :meth:`Activations.save`; any damage is a ValueError."""
    try:
        # our own handle: numpy leaves its file open when the header is cut short
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            ids = z["__items__"]
            cond = z["__conditions__"] if "__conditions__" in z.files else None
            data, sheets = {}, {}
            for j, layer in enumerate(meta["layers"]):
                data[layer] = z[f"data{j}"]
                sheets[layer] = CorticalSheet(tuple(meta["shapes"][layer]), layout=z[f"pos{j}"],
                                              name=layer)
        if ids.dtype.kind in "US":
            ids = ids.astype(object)
        return Activations.from_arrays(data, sheets, item_ids=ids, labels=cond,
                                       params=meta["params"])
    # a truncated or overwritten file fails in zipfile, zlib, numpy's header parser,
    # json or the shape checks, each with its own exception type
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError,
            zipfile.BadZipFile, zlib.error) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path} is not a readable activations file ({detail}).") from exc
