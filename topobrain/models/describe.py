"""What the loader sees in a model: :func:`describe_model` (``topobrain models inspect``).

For a model it can open: its kind, every sheet layer with its shape and the submodule it
reads, the tokenizer, the context length, where the positions come from and the identity
(the activation cache key). For one it cannot open: what it could read, and which part is
missing with the option (and command-line flag) that supplies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ._assemble import MissingModelPart
from .loaders import load, model_kind

__all__ = ["ModelDescription", "describe_model"]


@dataclass(frozen=True)
class ModelDescription:
    """What :func:`describe_model` found.

    Attributes
    ----------
    target : str
        The name or path given.
    kind : str or None
        ``"bundled"``, ``"topobrain-folder"``, ``"topolm-checkpoint"`` or
        ``"huggingface"``; None when not even that could be told.
    loaded : bool
        Whether the model opened.
    layers : tuple of dict
        One dict per sheet layer: ``name``, ``shape`` ``(n_rows, n_cols)``, ``n_units``,
        ``n_shared`` (units sharing a cell with another), ``module``.
    name, tokenizer, positions, weights, identity : str or None
        Display name, where the tokenizer / positions / weights come from, and the model
        identity (the content hash that keys the activation cache).
    context_length, vocab_size, n_tokenizer_tokens : int or None
    details : dict
        What could be read without loading (``model_type``, ``model_args``, ...).
    missing : str or None
        The part that is missing ("unit positions", "tokenizer", "sheet spec").
    parameter : str or None
        The keyword of :func:`topobrain.models.load` that supplies it; the flag is
        ``--`` plus the keyword with dashes.
    error : str or None
        The loader's message when the model did not open.
    """

    target: str
    kind: str | None
    loaded: bool
    layers: tuple = ()
    name: str | None = None
    tokenizer: str | None = None
    positions: str | None = None
    weights: str | None = None
    identity: str | None = None
    context_length: int | None = None
    vocab_size: int | None = None
    n_tokenizer_tokens: int | None = None
    details: dict = field(default_factory=dict)
    missing: str | None = None
    parameter: str | None = None
    error: str | None = None

    @property
    def flag(self) -> str | None:
        """The command-line flag that supplies the missing part."""
        return None if self.parameter is None else "--" + self.parameter.replace("_", "-")

    def lines(self) -> list[str]:
        """A plain-text report, one fact per line."""
        out = [f"model: {self.target}", f"kind: {self.kind or 'unknown'}"]
        for k, v in self.details.items():
            out.append(f"{k}: {v}")
        if not self.loaded:
            if self.missing is not None:
                out.append(f"missing: {self.missing}; supply it with {self.flag} "
                           f"({self.parameter}= in Python)")
            out.append(f"cannot load: {self.error}")
            return out
        out += [f"name: {self.name}", f"identity: {self.identity}",
                f"weights: {self.weights}",
                f"tokenizer: {self.tokenizer} ({self.n_tokenizer_tokens} tokens; model "
                f"vocabulary {self.vocab_size})",
                f"context length: {self.context_length} tokens",
                f"positions: {self.positions}",
                f"sheet layers: {len(self.layers)}"]
        width = max((len(r["name"]) for r in self.layers), default=0)
        for r in self.layers:
            shared = f", {r['n_shared']} share a cell" if r["n_shared"] else ""
            out.append(f"  {r['name']:<{width}}  {r['shape'][0]} x {r['shape'][1]} "
                       f"({r['n_units']} units{shared})  <- {r['module']}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _details(target, kind) -> dict:
    """What can be read without loading the model."""
    out = {}
    try:
        if kind == "huggingface":
            cfg = json.loads((Path(target) / "config.json").read_text(encoding="utf-8"))
            out["model_type"] = cfg.get("model_type")
            for k in ("num_hidden_layers", "n_layer", "num_layers", "hidden_size", "n_embd"):
                if k in cfg:
                    out[k] = cfg[k]
        elif kind == "topolm-checkpoint":
            import torch

            ckpt = torch.load(target, map_location="cpu", weights_only=True)
            args = ckpt.get("model_args", {}) if isinstance(ckpt, dict) else {}
            keep = ("n_layer", "n_head", "n_embed", "n_embd", "block_size", "vocab_size",
                    "bias", "attn_proj", "with_resid", "head_loss", "position_dir")
            out["model_args"] = ", ".join(f"{k}={args[k]}" for k in keep if k in args)
    except Exception:  # noqa: BLE001 - details are a courtesy; the load reports errors
        pass
    return out


def describe_model(name_or_path, **options) -> ModelDescription:
    """Open a model as :func:`topobrain.models.load` would, and say what it saw.

    Parameters
    ----------
    name_or_path : str or path-like
        As for :func:`topobrain.models.load`.
    **options
        ``positions``, ``tokenizer``, ``sheet_spec``, ``sheet_shape``, ``with_resid``.

    Returns
    -------
    ModelDescription
        ``loaded`` False (with ``missing``, ``parameter`` and ``error``) when the model
        could not be opened; never raises for a model that is merely incomplete.
    """
    target = str(name_or_path)
    try:
        kind = model_kind(name_or_path)
    except (ValueError, FileNotFoundError) as exc:
        return ModelDescription(target=target, kind=None, loaded=False, error=str(exc))
    details = _details(name_or_path, kind)
    try:
        sm = load(name_or_path, **options)
    except MissingModelPart as exc:
        return ModelDescription(target=target, kind=kind, loaded=False, details=details,
                                missing=exc.part, parameter=exc.parameter, error=str(exc))
    except (ValueError, TypeError, FileNotFoundError, OSError) as exc:
        return ModelDescription(target=target, kind=kind, loaded=False, details=details,
                                error=str(exc))
    layers = tuple({"name": n, "shape": tuple(s.shape), "n_units": int(s.n_units),
                    "n_shared": int(s.n_shared), "module": sm.layer_modules.get(n, "?")}
                   for n, s in sm.sheets.items())
    return ModelDescription(
        target=target, kind=kind, loaded=True, layers=layers, name=sm.name,
        tokenizer=sm.sources.get("tokenizer"), positions=sm.sources.get("positions"),
        weights=sm.sources.get("weights"), identity=sm.identity,
        context_length=int(sm.context_length), vocab_size=int(sm.vocab_size),
        n_tokenizer_tokens=int(sm.tokenizer.get_vocab_size()), details=details)
