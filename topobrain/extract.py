"""Activation harness: a model and a stimulus set in, per-layer unit responses out.

:func:`extract` runs every item of a stimulus set through a
:class:`~topobrain.models.SheetModel`, pools each item's token activations into one
response per unit, and returns :class:`Activations`: for each sheet layer an
``(n_items, n_units)`` float64 array labelled with item ids, conditions, and each
unit's ``(row, col)`` on its :class:`~topobrain.sheet.CorticalSheet`.

Results are cached on disk, keyed by the model, the stimuli and the options, and an
interrupted run resumes from its partial files.

This module imports torch only inside :func:`extract`, so that the statistics can
take :class:`Activations` without loading it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from ._utils._io import atomic_save, atomic_write_bytes
from ._utils._validation import check_option, suggest
from .sheet import CorticalSheet

__all__ = ["Activations", "extract", "load_activations", "default_cache_dir", "POOLINGS"]

logger = logging.getLogger("topobrain")

Pooling = Literal["mean", "last", "first", "sum"]
POOLINGS: tuple[str, ...] = ("mean", "last", "first", "sum")

_CACHE_FORMAT = 1
_UNIT = "{}.unit"
_ROW = "{}.row"
_COL = "{}.col"


# =========================================================================== Activations
@dataclass(frozen=True, eq=False)
class Activations:
    """Pooled unit responses of several sheet layers to a set of items.

    Build with :meth:`from_arrays` (or get one from :func:`extract`); the arrays are
    read-only, and every method that changes something returns a new object.

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
        The condition of each item (as :attr:`StimulusSet.labels`).
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
        with xr.open_dataset(path) as ds:
            ds = ds.load()
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
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            ids = z["__items__"]
            cond = z["__conditions__"] if "__conditions__" in z.files else None
            data, sheets = {}, {}
            for j, layer in enumerate(meta["layers"]):
                data[layer] = z[f"data{j}"]
                sheets[layer] = CorticalSheet(tuple(meta["shapes"][layer]), layout=z[f"pos{j}"],
                                              name=layer)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable activations file ({exc}).") from exc
    if ids.dtype.kind in "US":
        ids = ids.astype(object)
    return Activations.from_arrays(data, sheets, item_ids=ids, labels=cond,
                                   params=meta["params"])


# =========================================================================== inputs
@dataclass(frozen=True)
class _Items:
    texts: list
    item_ids: np.ndarray
    conditions: np.ndarray | None
    identity: str
    name: str


def _hash_items(texts, ids, conditions) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([list(texts), [str(i) for i in ids],
                         None if conditions is None else [str(c) for c in conditions]]
                        ).encode())
    return h.hexdigest()[:20]


def _per_item(obj, names, n):
    for name in names:
        val = getattr(obj, name, None)
        if val is None or callable(val) or isinstance(val, str):
            continue
        try:
            seq = list(val)
        except TypeError:
            continue
        if len(seq) == n:
            return seq
    return None


def _resolve_stimuli(stimuli, item_ids, labels) -> _Items:
    import pandas as pd

    name = "stimuli"
    identity = None
    if isinstance(stimuli, (str, os.PathLike)):
        try:
            from .stimuli import load_stimuli
        except ImportError as exc:  # pragma: no cover - until topobrain.stimuli lands
            raise TypeError(
                f"stimuli={stimuli!r} looks like a stimulus set name or path, but "
                f"topobrain.stimuli is not available. Pass a StimulusSet or a list of texts."
            ) from exc
        stimuli = load_stimuli(stimuli)
    if isinstance(stimuli, pd.DataFrame):
        if "text" not in stimuli.columns:
            raise ValueError(
                f"A stimulus table needs a 'text' column; got columns {list(stimuli.columns)}."
            )
        texts = list(stimuli["text"])
        ids = list(stimuli["item_id"]) if "item_id" in stimuli.columns else item_ids
        cond = list(stimuli["condition"]) if "condition" in stimuli.columns else labels
    elif hasattr(stimuli, "texts"):
        texts = list(stimuli.texts)
        n = len(texts)
        ids = _per_item(stimuli, ("item_ids",), n)
        cond = _per_item(stimuli, ("labels", "conditions", "condition"), n)
        identity = getattr(stimuli, "identity", None)
        name = str(getattr(stimuli, "name", None) or name)
        if item_ids is not None or labels is not None:
            raise TypeError(
                "item_ids= and labels= are for plain lists of texts; a stimulus set "
                "carries its own."
            )
    elif isinstance(stimuli, Sequence) or isinstance(stimuli, np.ndarray):
        texts = list(stimuli)
        ids, cond = item_ids, labels
    else:
        raise TypeError(
            f"stimuli must be a StimulusSet, a stimulus set name or path, a DataFrame with a "
            f"'text' column, or a list of texts; got {type(stimuli).__name__}."
        )
    n = len(texts)
    if n == 0:
        raise ValueError(
            "The stimulus set is empty: there are no items to run. Check the file or the "
            "condition filter that produced it."
        )
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(
            f"Every item must be a text (str); item {bad[0]} is "
            f"{type(texts[bad[0]]).__name__} ({len(bad)} such items)."
        )
    ids = np.arange(n) if ids is None else _as_1d(ids, "item_ids")
    if ids.shape[0] != n:
        raise ValueError(f"item_ids has {ids.shape[0]} entries for {n} texts.")
    uniq, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise ValueError(
            f"Item ids must be unique; {dup.size} repeat (e.g. {dup[0]!r}). Give each item "
            f"its own id."
        )
    if cond is not None:
        cond = np.asarray([str(c) for c in cond], dtype=object)
        if cond.shape[0] != n:
            raise ValueError(f"labels has {cond.shape[0]} entries for {n} texts.")
    if identity is None:
        identity = _hash_items(texts, ids, cond)
    return _Items(texts, ids, cond, str(identity), name)


def _resolve_model(model):
    if isinstance(model, (str, os.PathLike)):
        from .models import load

        return load(model)
    needed = ("activations", "tokenize", "sheets", "context_length", "vocab_size")
    missing = [a for a in needed if not hasattr(model, a)]
    if missing:
        raise TypeError(
            f"model must be a SheetModel (or a model name or path for "
            f"topobrain.models.load); got {type(model).__name__}, which lacks {missing}."
        )
    return model


def _resolve_layers(model, layers) -> list[str]:
    valid = list(model.sheets)
    if layers is None:
        return valid
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError(f"layers is empty; pass None for all layers or some of {valid}.")
    unknown = [n for n in names if n not in model.sheets]
    if unknown:
        raise ValueError(
            f"Unknown layer name(s) {unknown} for model {getattr(model, 'name', '')!r}. "
            f"Valid layers: {valid}.{suggest(str(unknown[0]), valid)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"layers lists a layer more than once: {names}.")
    return names


def _resolve_device(device):
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"Invalid device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc


def default_cache_dir() -> Path:
    """``$TOPOBRAIN_CACHE`` when set, else ``~/.cache/topobrain``."""
    env = os.environ.get("TOPOBRAIN_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/topobrain").expanduser()


# =========================================================================== pooling
def _pool_batch(acts, n_tok, offset, pooling, memo):
    """Pool one layer's batch ``(b, t, u)`` over each item's own tokens -> float64 numpy.

    ``n_tok`` holds each row's real length (BOS included); pooling covers positions
    ``offset .. n_tok - 1`` so that neither padding nor a prepended BOS enters it.
    ``memo`` keeps the batch's index tensors between layers.
    """
    import torch

    b, t, _ = acts.shape
    if callable(pooling):
        out = []
        for i in range(b):
            x = acts[i, offset:int(n_tok[i])].to("cpu", torch.float64).numpy()
            out.append(np.asarray(pooling(x), dtype=np.float64))
        return out
    if pooling == "first":
        return acts[:, offset].to(torch.float64).cpu().numpy()
    dev = acts.device
    if (dev, "n") not in memo:
        memo[dev, "n"] = torch.as_tensor(n_tok, device=dev)
    n_dev = memo[dev, "n"]
    if pooling == "last":
        return acts[torch.arange(b, device=dev), n_dev - 1].to(torch.float64).cpu().numpy()
    if offset == 0 and bool(np.all(n_tok == t)):
        total = acts.sum(dim=1, dtype=torch.float64)  # no padding, no BOS: nothing to mask
    else:
        if (dev, "drop") not in memo:
            pos = torch.arange(t, device=dev)
            keep = (pos[None, :] >= offset) & (pos[None, :] < n_dev[:, None])
            memo[dev, "drop"] = ~keep[:, :, None]
        # masked_fill, not a product with the mask: padding may hold NaN or inf
        total = acts.masked_fill(memo[dev, "drop"], 0.0).sum(dim=1, dtype=torch.float64)
    if pooling == "sum":
        return total.cpu().numpy()
    return (total / (n_dev - offset).to(torch.float64)[:, None]).cpu().numpy()


# =========================================================================== cache
def _cache_key(model, items: _Items, layers, pooling_name, bos) -> str:
    record = {"format": _CACHE_FORMAT, "model": str(model.identity),
              "context_length": int(model.context_length), "stimuli": items.identity,
              "layers": list(layers), "pooling": pooling_name, "bos": bool(bos)}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]


def _write_chunk(folder: Path, key: str, index: np.ndarray, results: dict, layers) -> None:
    arrays = {"key": np.frombuffer(key.encode(), dtype=np.uint8), "index": index}
    for j, layer in enumerate(layers):
        arrays[f"data{j}"] = results[layer][index]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(folder / f"chunk-{int(index.min()):08d}-{index.size:06d}.npz",
                       buf.getvalue())


def _read_chunks(folder: Path, key: str, layers, n_units, n_items) -> tuple[np.ndarray, dict]:
    """Items already done by an interrupted run, and their responses."""
    done = np.zeros(n_items, dtype=bool)
    found = {}
    if not folder.is_dir():
        return done, found
    for path in sorted(folder.glob("chunk-*.npz")):
        try:
            with np.load(path, allow_pickle=False) as z:
                if bytes(z["key"]).decode() != key:
                    continue
                index = z["index"]
                data = [z[f"data{j}"] for j in range(len(layers))]
        except Exception as exc:  # a damaged partial file is simply redone
            logger.warning("ignoring unreadable partial file %s (%s)", path, exc)
            continue
        fits = all(d.shape == (index.size, n_units[k])
                   for d, k in zip(data, layers, strict=True))
        if (not fits or index.ndim != 1 or index.size == 0 or index.min() < 0
                or index.max() >= n_items):
            logger.warning("ignoring partial file %s: it does not fit this run", path)
            continue
        done[index] = True
        found[path] = (index, data)
    return done, found


# =========================================================================== extract
def extract(
    model,
    stimuli,
    *,
    layers: str | Sequence[str] | None = None,
    pooling: Pooling | Callable = "mean",
    pooling_name: str | None = None,
    bos: bool = False,
    batch_size: int = 32,
    device="auto",
    cache: bool = True,
    cache_dir=None,
    checkpoint_every: int = 16,
    item_ids=None,
    labels=None,
    verbose: int = 1,
) -> Activations:
    """Pooled responses of every requested sheet layer to every item of a stimulus set.

    Parameters
    ----------
    model : SheetModel, str or path-like
        A model from :func:`topobrain.models.load`, or a name or path that it opens.
    stimuli : StimulusSet, str, path-like, DataFrame or sequence of str
        A stimulus set (anything with ``.texts`` and optionally ``.item_ids``,
        ``.labels`` (per-item conditions), ``.identity``, ``.name``), a name or path for
        :func:`topobrain.stimuli.load_stimuli`, a table with a ``text`` column (and
        optional ``item_id``, ``condition``), or a plain list of texts.
    layers : str or list of str, optional
        Sheet layers to return (default: all, in model order).
    pooling : {"mean", "last", "first", "sum"} or callable, default="mean"
        How an item's token activations become one response per unit. Only the item's
        own tokens enter: never padding, never a prepended BOS. ``"last"`` is the last
        kept token (after truncation). A callable is called once per item with a float64
        array of shape ``(n_tokens, n_units)`` and must return shape ``(n_units,)``.
    pooling_name : str, optional
        A name for a callable ``pooling``, which turns caching on for it (a callable
        without a name is never cached: its code cannot be hashed reliably).
    bos : bool, default=False
        Prepend the model's BOS token to every item (context only, not pooled).
    batch_size : int, default=32
        Items per forward pass. Results do not depend on it (to float32 precision).
    device : str or torch.device, default="auto"
        ``"auto"`` takes a CUDA GPU when there is one. The model is moved there for the
        run and moved back afterwards.
    cache : bool, default=True
        Read and write the on-disk cache. ``False`` bypasses it.
    cache_dir : path-like, optional
        Cache folder; default :func:`default_cache_dir` (``$TOPOBRAIN_CACHE`` or
        ``~/.cache/topobrain``).
    checkpoint_every : int, default=16
        With caching, write a partial file every this many batches, so that an
        interrupted run resumes from there.
    item_ids, labels : sequence, optional
        Item ids and per-item conditions for a plain list of texts (a stimulus set
        carries its own).
    verbose : int, default=1
        0 silences the progress bar.

    Returns
    -------
    Activations
        For each layer a float64 array of shape ``(n_items, n_units)`` in stimulus order,
        with item ids, conditions and each unit's sheet position.

    Warns
    -----
    UserWarning
        When items are longer than the model's context; they keep their first tokens.

    Notes
    -----
    Items are sorted by length before batching so that batches carry little padding;
    padding sits at the end of each row and is masked in attention and pooling. The
    cache key hashes the model's identity, the stimuli's identity, the layers, the
    pooling and ``bos``; batch size and device are not part of it.
    """
    from tqdm.auto import tqdm

    model = _resolve_model(model)
    items = _resolve_stimuli(stimuli, item_ids, labels)
    layer_names = _resolve_layers(model, layers)
    if callable(pooling) and not isinstance(pooling, str):
        if pooling_name is not None and not isinstance(pooling_name, str):
            raise TypeError(f"pooling_name must be a str; got {type(pooling_name).__name__}.")
        key_pooling = None if pooling_name is None else f"callable:{pooling_name}"
    else:
        check_option("pooling", pooling, POOLINGS)
        if pooling_name is not None:
            raise ValueError(
                "pooling_name names a callable pooling; it is not used with pooling="
                f"{pooling!r}."
            )
        key_pooling = pooling
    for pname, val in (("batch_size", batch_size), ("checkpoint_every", checkpoint_every)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{pname} must be a positive integer; got {val!r}.")
    bos_id = None
    if bos:
        bos_id = getattr(model, "bos_token_id", None)
        if bos_id is None:
            raise ValueError(
                f"bos=True but model {getattr(model, 'name', '')!r} has no BOS token "
                f"(bos_token_id is None). Use bos=False."
            )
    offset = 1 if bos else 0
    vocab = int(model.vocab_size)
    ctx = int(model.context_length)

    # -- tokens ----------------------------------------------------------------------
    token_lists = model.tokenize(items.texts)
    n_items = len(items.texts)
    if len(token_lists) != n_items:
        raise ValueError(
            f"The tokenizer returned {len(token_lists)} sequences for {n_items} texts."
        )
    empty = [i for i, t in enumerate(token_lists) if len(t) == 0]
    if empty:
        ids = [str(items.item_ids[i]) for i in empty[:5]]
        raise ValueError(
            f"{len(empty)} items have no tokens (item ids {ids}{' ...' if len(empty) > 5 else ''}"
            f"). Remove empty texts from the stimulus set."
        )
    lengths = np.array([len(t) for t in token_lists])
    flat_max = max(max(t) for t in token_lists)
    flat_min = min(min(t) for t in token_lists)
    if flat_max >= vocab or flat_min < 0:
        bad = next(i for i, t in enumerate(token_lists) if max(t) >= vocab or min(t) < 0)
        raise ValueError(
            f"The tokenizer produced token id {flat_max if flat_max >= vocab else flat_min} "
            f"(item {items.item_ids[bad]!r}), outside the model's vocabulary of {vocab} "
            f"tokens: the tokenizer does not match the model. Load the tokenizer that was "
            f"trained with this model."
        )
    pad_id = int(getattr(model, "pad_token_id", 0) or 0)
    for nm, tid in (("bos_token_id", bos_id), ("pad_token_id", pad_id)):
        if tid is not None and not 0 <= int(tid) < vocab:
            raise ValueError(
                f"The model's {nm} ({tid}) lies outside its vocabulary of {vocab} tokens."
            )
    room = ctx - offset
    if room < 1:
        raise ValueError(f"The context ({ctx} tokens) leaves no room for an item after BOS.")
    too_long = lengths > room
    if too_long.any():
        warnings.warn(
            f"{int(too_long.sum())} of {n_items} items are longer than the model's context of "
            f"{ctx} tokens{' (with BOS)' if bos else ''} (longest: {int(lengths.max())} tokens) "
            f"and were truncated to their first {room} tokens.",
            UserWarning, stacklevel=2)
    lengths = np.minimum(lengths, room)

    # -- sheets ----------------------------------------------------------------------
    sheets = {k: model.sheets[k] for k in layer_names}
    n_units = {k: sheets[k].n_units for k in layer_names}
    params = {"model": str(getattr(model, "name", "")),
              "model_identity": str(getattr(model, "identity", "")),
              "stimuli": items.name, "stimuli_identity": items.identity,
              "pooling": key_pooling if key_pooling is not None else "callable",
              "bos": bool(bos), "context_length": ctx, "n_truncated": int(too_long.sum()),
              "smoothing_fwhm": None}

    # -- cache -----------------------------------------------------------------------
    use_cache = bool(cache) and key_pooling is not None and bool(getattr(model, "identity", ""))
    if cache and key_pooling is None:
        logger.info("callable pooling without pooling_name: the cache is bypassed")
    key = _cache_key(model, items, layer_names, key_pooling, bos) if use_cache else None
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final_path = root / "activations" / f"{key}.npz"
    partial_dir = root / "activations" / f"{key}.partial"
    if use_cache and final_path.exists():
        try:
            hit = _from_npz(final_path)
        except ValueError as exc:
            logger.warning("cache file %s is unreadable (%s); recomputing", final_path, exc)
        else:
            if hit.params.get("cache_key") == key and hit.layers == layer_names:
                logger.info("activations from cache: %s", final_path)
                return hit

    results = {k: np.empty((n_items, n_units[k])) for k in layer_names}
    done = np.zeros(n_items, dtype=bool)
    if use_cache:
        done, found = _read_chunks(partial_dir, key, layer_names, n_units, n_items)
        for index, data in found.values():
            for layer, arr in zip(layer_names, data, strict=True):
                results[layer][index] = arr
        if done.any():
            logger.info("resuming extraction: %d of %d items from partial files",
                        int(done.sum()), n_items)

    # longest first: the first batch shows at once whether memory suffices
    order = np.argsort(-lengths, kind="stable")
    order = order[~done[order]]
    batches = [order[i:i + batch_size] for i in range(0, order.size, batch_size)]
    if batches:
        _run_batches(model, batches, token_lists, lengths, offset, bos_id, pad_id, layer_names,
                     n_units, pooling, results, device, tqdm, verbose,
                     (partial_dir, key, checkpoint_every) if use_cache else None)

    if use_cache:
        params["cache_key"] = key
    acts = Activations.from_arrays(results, sheets, item_ids=items.item_ids,
                                   labels=items.conditions, params=params)
    if use_cache:
        try:
            atomic_write_bytes(final_path, _npz_bytes(acts))
        except OSError as exc:
            warnings.warn(f"Could not write the activation cache {final_path} ({exc}); the "
                          f"results are fine but will be recomputed next time. Set "
                          f"cache_dir= or TOPOBRAIN_CACHE to a writable folder.",
                          UserWarning, stacklevel=2)
        else:
            shutil.rmtree(partial_dir, ignore_errors=True)
    return acts


def _run_batches(model, batches, token_lists, lengths, offset, bos_id, pad_id, layer_names,
                 n_units, pooling, results, device, tqdm, verbose, checkpoint):
    import torch

    dev = _resolve_device(device)
    module = getattr(model, "module", None)
    old_device = getattr(model, "device", None)
    was_training = bool(getattr(module, "training", False))
    moved = hasattr(model, "to") and old_device is not None and torch.device(old_device) != dev
    if moved:
        model.to(dev)
    if module is not None:
        module.eval()
    pending = []
    bar = tqdm(total=len(batches), disable=(verbose == 0), unit="batch",
               desc=f"extract {getattr(model, 'name', '')}".strip(), dynamic_ncols=True)
    try:
        with torch.inference_mode():
            for b_idx, batch in enumerate(batches):
                n_tok = lengths[batch] + offset
                width = int(n_tok.max())
                ids = np.full((batch.size, width), pad_id, dtype=np.int64)
                for r, i in enumerate(batch):
                    if offset:
                        ids[r, 0] = bos_id
                    ids[r, offset:n_tok[r]] = token_lists[i][: lengths[i]]
                input_ids = torch.from_numpy(ids).to(dev)
                mask = None
                if (n_tok < width).any():
                    m = np.arange(width)[None, :] < n_tok[:, None]
                    mask = torch.from_numpy(m).to(dev)
                out = model.activations(input_ids, mask, layer_names)
                memo = {}
                for layer in layer_names:
                    a = out[layer]
                    if tuple(a.shape) != (batch.size, width, n_units[layer]):
                        raise ValueError(
                            f"Layer {layer!r} returned activations of shape {tuple(a.shape)}; "
                            f"expected (batch, time, n_units) = "
                            f"{(batch.size, width, n_units[layer])}. The sheet does not "
                            f"match the layer's width."
                        )
                    pooled = _pool_batch(a, n_tok, offset, pooling, memo)
                    if callable(pooling):
                        for r, vec in enumerate(pooled):
                            if vec.shape != (n_units[layer],):
                                raise ValueError(
                                    f"The pooling callable returned shape {vec.shape} for "
                                    f"layer {layer!r}; it must return one value per unit, "
                                    f"shape ({n_units[layer]},)."
                                )
                            results[layer][batch[r]] = vec
                    else:
                        results[layer][batch] = pooled
                pending.append(batch)
                bar.update(1)
                if checkpoint is not None and (len(pending) >= checkpoint[2]
                                               and b_idx + 1 < len(batches)):
                    try:
                        checkpoint[0].mkdir(parents=True, exist_ok=True)
                        _write_chunk(checkpoint[0], checkpoint[1], np.concatenate(pending),
                                     results, layer_names)
                    except OSError as exc:
                        logger.warning("cannot write partial results (%s); an interruption "
                                       "will restart from scratch", exc)
                        checkpoint = None
                    pending = []
    finally:
        bar.close()
        if moved:
            model.to(old_device)
        if module is not None and was_training:
            module.train()


class _CallableModule(types.ModuleType):
    """Lets ``topobrain.extract(model, stimuli, ...)`` call :func:`extract` while
    ``topobrain.extract`` stays the module that holds it."""

    def __call__(self, *args, **kwargs):
        return extract(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
