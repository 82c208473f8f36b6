"""Interventions on sheet units: which units, and the hooks that silence them.

A :class:`Lesion` is a set of units per sheet layer (indices in the model's unit order).
:func:`ablate` installs forward hooks that set those units to zero or to a reference
mean while the ``with`` block runs and removes them on exit. The same hooks serve many
lesions at once (the batch is the lesions' inputs stacked), which is how
:mod:`topobrain.lesion.measures` scores a hundred controls in one pass.

Where a sheet layer lives in the torch module:

- :class:`~topobrain.models.gpt.TopoGPT` (our models and the TopoLM authors'
  checkpoints): ``layer.{i}.attn`` is the output of block ``i``'s attention (after
  ``attn_proj`` when the model has one), ``layer.{i}.mlp`` the output of its MLP,
  before either is added into the residual stream. With ``with_resid`` the layers are
  the residual stream after each add; the hooks then edit the stream itself.
- other models (Hugging Face with a sheet spec): the modules of ``model.layer_modules``
  (or of the sheet spec in ``model.card``); a module that returns a tuple has its first
  element edited.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["Lesion", "Mode", "ablate", "sheet_sites"]

Mode = Literal["zero", "mean"]
MODES = ("zero", "mean")


@dataclass(frozen=True, eq=False)
class Lesion:
    """A set of units per sheet layer to silence.

    Parameters
    ----------
    units : mapping of str to array of int
        Layer name -> indices of the lesioned units in the model's unit order (sorted,
        unique on construction). Layers with no units are dropped.
    name : str, default="lesion"
        Identifier written to the tables (``"none"``, ``"target:top5%"``,
        ``"random-patch:017"``).
    kind : str, default="target"
        ``"none"``, ``"target"`` or the control kind (``"random-units"``,
        ``"random-patch"``, ``"magnitude"``).
    params : dict
        How the lesion was made (target spec, control index, placement).

    Examples
    --------
    >>> les = Lesion({"layer.3.mlp": [5, 2, 2], "layer.0.attn": []}, name="patch")
    >>> les
    Lesion('patch', kind='target', 2 units (layer.3.mlp: 2))
    >>> les.units["layer.3.mlp"]
    array([2, 5])
    >>> les.masks({"layer.3.mlp": 6})["layer.3.mlp"]
    array([False, False,  True, False, False,  True])
    """

    units: Mapping[str, np.ndarray]
    name: str = "lesion"
    kind: str = "target"
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.units, Mapping):
            raise TypeError(f"Lesion units must map layer names to unit indices; got "
                            f"{type(self.units).__name__}. Example: {{'layer.3.mlp': [4, 5]}}.")
        clean = {}
        for layer, idx in self.units.items():
            arr = np.asarray(idx)
            if arr.dtype == bool:
                raise TypeError(f"Lesion units of layer {layer!r} are a boolean mask; pass "
                                f"indices (np.flatnonzero(mask)) or use Lesion.from_masks.")
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"Lesion units of layer {layer!r} must be integer indices; "
                                f"got dtype {arr.dtype}.")
            arr = np.unique(arr.astype(np.int64).ravel())
            if arr.size and arr[0] < 0:
                raise ValueError(f"Lesion units of layer {layer!r} hold negative indices "
                                 f"({int(arr[0])}); unit indices start at 0.")
            if arr.size:
                arr.setflags(write=False)
                clean[str(layer)] = arr
        object.__setattr__(self, "units", clean)

    @classmethod
    def from_masks(cls, masks: Mapping[str, np.ndarray], **kwargs) -> Lesion:
        """A lesion from boolean masks, one ``(n_units,)`` array per layer."""
        out = {}
        for layer, m in masks.items():
            m = np.asarray(m)
            if m.dtype != bool or m.ndim != 1:
                raise TypeError(f"Mask of layer {layer!r} must be a 1-D boolean array over "
                                f"the layer's units; got dtype {m.dtype}, shape {m.shape}.")
            out[layer] = np.flatnonzero(m)
        return cls(out, **kwargs)

    @property
    def layers(self) -> list[str]:
        """Layers with at least one lesioned unit."""
        return list(self.units)

    @property
    def n_units(self) -> int:
        """Total number of lesioned units over all layers."""
        return int(sum(v.size for v in self.units.values()))

    @property
    def is_empty(self) -> bool:
        return self.n_units == 0

    def counts(self) -> dict[str, int]:
        """Lesioned units per layer."""
        return {k: int(v.size) for k, v in self.units.items()}

    def masks(self, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
        """Boolean ``(n_units,)`` masks for the layers in ``sizes`` (layer -> width)."""
        out = {}
        for layer, n in sizes.items():
            m = np.zeros(int(n), dtype=bool)
            if layer in self.units:
                m[self.units[layer]] = True
            out[layer] = m
        return out

    def to_frame(self):
        """Tidy table: ``lesion_id, layer, unit`` (one row per lesioned unit)."""
        import pandas as pd

        rows = [(self.name, layer, int(u)) for layer, idx in self.units.items() for u in idx]
        return pd.DataFrame(rows, columns=["lesion_id", "layer", "unit"])

    def __repr__(self) -> str:
        per = ", ".join(f"{k}: {v.size}" for k, v in self.units.items())
        per = f" ({per})" if per else ""
        return f"Lesion({self.name!r}, kind={self.kind!r}, {self.n_units} units{per})"


@dataclass(frozen=True)
class _Site:
    """Where one sheet layer's output is edited: hook ``module``; ``resid`` when the
    layer is a residual stream (``block`` supplies the stream before the add)."""

    module: object
    resid: bool = False
    block: object = None


def sheet_sites(model) -> dict[str, _Site]:
    """The torch module whose output is each sheet layer of a SheetModel.

    Raises
    ------
    TypeError
        For a model whose sheet layers this version cannot locate.
    """
    from ..models.gpt import TopoGPT

    module = model.module
    if isinstance(module, TopoGPT):
        sites = {}
        resid = bool(module.config.with_resid)
        for i, block in enumerate(module.transformer.h):
            attn = block.attn_proj if block.attn_proj is not None else block.attn
            sites[f"layer.{i}.attn"] = _Site(attn, resid=resid, block=block)
            sites[f"layer.{i}.mlp"] = _Site(block.mlp, resid=resid, block=block)
        return {k: sites[k] for k in model.layer_names}
    names = dict(getattr(model, "layer_modules", None) or {})
    spec = (getattr(model, "card", None) or {}).get("sheet_spec")
    if isinstance(spec, Mapping):
        for layer, entry in spec.items():
            if isinstance(entry, Mapping) and "module" in entry:
                names.setdefault(layer, entry["module"])
    if names:
        named = dict(module.named_modules())
        out = {}
        for layer in model.layer_names:
            if names.get(layer) not in named:
                raise TypeError(f"Cannot find the module of sheet layer {layer!r} in "
                                f"{model.name!r} (named {names.get(layer)!r}).")
            out[layer] = _Site(named[names[layer]])
        return out
    raise TypeError(
        f"Lesions need to know which module outputs each sheet layer; {model.name!r} "
        f"({type(module).__name__}) is neither a TopoGPT nor a Hugging Face model with a "
        f"sheet spec. Load it with topobrain.models.load."
    )


def _replace_first(out, new):
    if isinstance(out, tuple):
        return (new, *out[1:])
    if isinstance(out, list):
        return [new, *out[1:]]
    return new


def _first(out):
    return out if not isinstance(out, (tuple, list)) else out[0]


@contextlib.contextmanager
def _batched_hooks(model, masks: Mapping[str, object], values: Mapping[str, object],
                   n_lesions: int, capture: Mapping[str, list] | None = None) -> Iterator[None]:
    """Install hooks that apply ``n_lesions`` lesions to a batch stacked lesion-major.

    ``masks[layer]`` is a bool tensor ``(n_lesions, n_units)`` and ``values[layer]`` a
    float tensor ``(n_lesions, n_units)`` (or ``(1, n_units)``); the batch dimension of
    every hooked output is ``n_lesions * b`` with lesion ``l`` at rows ``l*b:(l+1)*b``.
    Layers in ``capture`` have their (edited) outputs appended to the list given.
    """
    sites = sheet_sites(model)
    handles = []
    stream = {}  # residual stream entering a block (with_resid models)
    watched = set()

    def make_edit(layer, site):
        mask, value = masks[layer], values[layer]

        def edit(out, base=None):
            n, t, d = out.shape
            view = out.reshape(n_lesions, n // n_lesions, t, d)
            target = value[:, None, None, :].to(out.dtype)
            if base is not None:  # attn output of a residual model: stream + a = value
                target = target - base.reshape(n_lesions, n // n_lesions, t, d)
            return view.where(~mask[:, None, None, :], target).reshape(n, t, d)
        return edit

    try:
        for layer, site in sites.items():
            lesioned = layer in masks
            captured = capture is not None and layer in capture
            if not (lesioned or captured):
                continue
            edit = make_edit(layer, site) if lesioned else None
            sink = capture[layer] if captured else None
            if site.resid and layer.endswith(".attn"):
                # the stream after the attention add is x + a: edit a so that it is value
                key = id(site.block)
                if key not in watched:
                    watched.add(key)

                    def pre(_m, args, key=key):
                        stream[key] = args[0]
                    handles.append(site.block.register_forward_pre_hook(pre))

                def hook(_m, _inp, out, edit=edit, key=key, sink=sink):
                    a = _first(out)
                    if edit is not None:
                        a = edit(a, stream[key])
                    if sink is not None:
                        sink.append(stream[key] + a)
                    return _replace_first(out, a) if edit is not None else None
                handles.append(site.module.register_forward_hook(hook))
            elif site.resid:  # mlp layer of a residual model: the block's output stream
                def hook(_m, _inp, out, edit=edit, sink=sink):
                    x = out[0]
                    if edit is not None:
                        x = edit(x)
                    if sink is not None:
                        sink.append(x)
                    return (x, out[1], x) if edit is not None else None
                handles.append(site.block.register_forward_hook(hook))
            else:
                def hook(_m, _inp, out, edit=edit, sink=sink):
                    a = _first(out)
                    if edit is not None:
                        a = edit(a)
                    if sink is not None:
                        sink.append(a)
                    return _replace_first(out, a) if edit is not None else None
                handles.append(site.module.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()
        stream.clear()


def lesion_tensors(model, lesions, mode: str, means: Mapping[str, np.ndarray] | None,
                   device=None, dtype=None):
    """Masks ``(n_lesions, n_units)`` and values for the layers any lesion touches."""
    import torch

    sizes = {k: s.n_units for k, s in model.sheets.items()}
    layers = [k for k in model.layer_names if any(k in les.units for les in lesions)]
    dtype = dtype or torch.float32
    masks, values = {}, {}
    for layer in layers:
        m = np.zeros((len(lesions), sizes[layer]), dtype=bool)
        for i, les in enumerate(lesions):
            idx = les.units.get(layer)
            if idx is not None:
                if idx[-1] >= sizes[layer]:
                    raise ValueError(
                        f"Lesion {les.name!r} names unit {int(idx[-1])} of layer {layer!r}, "
                        f"which has {sizes[layer]} units (indices 0..{sizes[layer] - 1}).")
                m[i, idx] = True
        masks[layer] = torch.from_numpy(m).to(device)
        if mode == "mean":
            v = np.asarray(means[layer], dtype=np.float64)[None, :]
        else:
            v = np.zeros((1, sizes[layer]))
        values[layer] = torch.as_tensor(v, dtype=dtype, device=device)
    return masks, values


def _check_lesion_layers(model, lesion: Lesion) -> None:
    from .._utils._validation import suggest

    for layer in lesion.units:
        if layer not in model.sheets:
            raise ValueError(f"Lesion {lesion.name!r} names layer {layer!r}, which "
                             f"{model.name!r} does not have.{suggest(layer, model.layer_names)}"
                             f" Its sheet layers: {model.layer_names}.")


def check_means(model, lesions, mode, means) -> dict | None:
    """Validate ``mode`` and, for mean ablation, the reference means of touched layers."""
    from .._utils._validation import check_option

    check_option("mode", mode, MODES)
    if mode == "zero":
        return None
    if means is None:
        raise ValueError("mode='mean' needs means= (layer -> mean response per unit over a "
                         "reference set); see topobrain.lesion.reference_means.")
    out = {}
    for layer in {k for les in lesions for k in les.units}:
        if layer not in means:
            raise ValueError(f"means has no entry for layer {layer!r}, which a lesion "
                             f"touches. Compute it with reference_means(model, stimuli).")
        v = np.asarray(means[layer], dtype=np.float64)
        n = model.sheets[layer].n_units
        if v.shape != (n,):
            raise ValueError(f"means[{layer!r}] must have one value per unit ({n},); got "
                             f"shape {v.shape}.")
        if not np.isfinite(v).all():
            raise ValueError(f"means[{layer!r}] holds non-finite values.")
        out[layer] = v
    return out


@contextlib.contextmanager
def ablate(model, lesion: Lesion, *, mode: Mode = "zero",
           means: Mapping[str, np.ndarray] | None = None) -> Iterator[object]:
    """Silence a lesion's units while the ``with`` block runs.

    Parameters
    ----------
    model : SheetModel
        A loaded model (:func:`topobrain.models.load`).
    lesion : Lesion
        Units per sheet layer.
    mode : {"zero", "mean"}, default="zero"
        Set the units' outputs to 0, or to ``means[layer][unit]`` at every token.
    means : mapping of str to ndarray of shape (n_units,), optional
        Mean response of every unit of each lesioned layer over a reference set
        (:func:`reference_means`); required with ``mode="mean"``.

    Yields
    ------
    SheetModel
        The same model, hooked; the hooks are removed on exit, also after an error.
        An empty lesion installs no hook at all, so the logits are bitwise identical.

    Examples
    --------
    >>> with ablate(model, Lesion({"layer.3.mlp": [0, 1, 2]})):  # doctest: +SKIP
    ...     logits = model.module(ids)
    """
    if not isinstance(lesion, Lesion):
        raise TypeError(f"lesion must be a Lesion; got {type(lesion).__name__}. Build one "
                        f"with Lesion({{'layer.0.mlp': [3, 4]}}).")
    _check_lesion_layers(model, lesion)
    means = check_means(model, [lesion], mode, means)
    if lesion.is_empty:
        yield model
        return
    masks, values = lesion_tensors(model, [lesion], mode, means, device=model.device)
    with _batched_hooks(model, masks, values, 1):
        yield model
