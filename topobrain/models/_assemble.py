"""What every loader does once the files are read: checked weights, the identity, the wrapper.

The three loaders (:mod:`~topobrain.models.loaders` for topobrain folders,
:mod:`~topobrain.models.topolm_format` for the TopoLM authors' checkpoints,
:mod:`~topobrain.models.hf` for Hugging Face folders) import from here and never from each
other, so the package has no import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .._utils._hashing import hash_arrays, hash_bytes, hash_files, hash_json
from .base import SheetModel
from .gpt import TopoGPT

__all__ = ["MissingModelPart", "check_finite", "load_state_strict", "model_identity",
           "sheet_model_from_topogpt"]

IDENTITY_CHARS = 20


class MissingModelPart(ValueError):
    """A model could not be opened because one of its parts was not found.

    Attributes
    ----------
    part : str
        What is missing, in words ("unit positions", "tokenizer", "sheet spec").
    parameter : str
        The keyword of :func:`topobrain.models.load` that supplies it (``"positions"``,
        ``"tokenizer"``, ``"sheet_spec"``); the command-line flag is the same name with
        dashes (``--sheet-spec``).
    """

    def __init__(self, message: str, *, part: str, parameter: str):
        super().__init__(message)
        self.part = part
        self.parameter = parameter


def check_finite(tensors: Iterable[tuple[str, torch.Tensor]], source) -> None:
    """Refuse weights holding NaN or infinity, naming the first such tensor.

    Parameters
    ----------
    tensors : iterable of (str, Tensor)
        Named tensors (a state dict's items, ``module.named_parameters()``).
    source : str or path-like
        The file or folder, for the message.

    Raises
    ------
    ValueError
        One line naming the tensor and its count of non-finite values.
    """
    for name, t in tensors:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            continue
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            n_bad = int((~finite).sum())
            raise ValueError(
                f"{source}: the weight tensor {name!r} holds {n_bad} non-finite values (NaN "
                f"or infinity) of {t.numel()}: the file is corrupt or the training diverged. "
                f"Re-export or re-download the model."
            )


def load_state_strict(model: torch.nn.Module, state: dict, source: str) -> None:
    """Load a state dict strictly, listing missing and unexpected keys on failure."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{source}: state dict does not match the model. Missing keys: "
            f"{missing[:10]}{' ...' if len(missing) > 10 else ''}; unexpected keys: "
            f"{unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}."
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(
            f"{source}: {len(bad)} tensors have the wrong shape, e.g. {k}: checkpoint "
            f"{tuple(state[k].shape)}, model {tuple(own[k].shape)}. Check the sheet shape "
            f"and width in the config."
        )
    check_finite(state.items(), source)
    model.load_state_dict(state, strict=True)


def model_identity(kind: str, files, *, tokenizer=None, sheets=None,
                   settings: dict | None = None) -> str:
    """The content hash of everything that decides a model's sheet activations.

    Parameters
    ----------
    kind : str
        The loader ("topobrain-folder", "topolm-checkpoint", "huggingface").
    files : list of path-like
        Weights and configuration files (``config.json``, the checkpoint), in a fixed
        order; their bytes count, not their names.
    tokenizer : tokenizers.Tokenizer, optional
        Hashed by its serialised JSON, however it was loaded.
    sheets : dict of str to CorticalSheet, optional
        Layer names, sheet shapes and unit positions (from whatever file they came).
    settings : dict, optional
        Loader settings that change the forward pass or the sheets (the sheet spec, a
        ``with_resid`` override, a sheet shape).

    Returns
    -------
    str
        The first 20 hex characters of a SHA-256 digest.
    """
    record = {"kind": kind, "settings": settings or {}}
    if tokenizer is not None:
        record["tokenizer"] = hash_bytes(tokenizer.to_str())
    if sheets is not None:
        record["sheets"] = {name: [list(s.shape), hash_arrays(s.positions)]
                            for name, s in sheets.items()}
    return hash_files(list(files), prefix=hash_json(record))[:IDENTITY_CHARS]


def topogpt_layer_modules(model: TopoGPT) -> dict[str, str]:
    """The submodule behind each sheet layer of a :class:`TopoGPT`, in words."""
    cfg = model.config
    out = {}
    for i in range(cfg.n_layer):
        attn = f"transformer.h.{i}." + ("attn_proj" if cfg.attn_proj else "attn")
        if cfg.head_loss:
            attn += " (heads as square patches, head_loss)"
        mlp = f"transformer.h.{i}.mlp"
        if cfg.with_resid:
            attn = f"residual stream after {attn}"
            mlp = f"residual stream after {mlp}"
        out[f"layer.{i}.attn"], out[f"layer.{i}.mlp"] = attn, mlp
    return out


def sheet_model_from_topogpt(name, model: TopoGPT, sheets, tokenizer, identity,
                             card=None, sources=None) -> SheetModel:
    """Wrap a :class:`TopoGPT` and its sheets as a :class:`SheetModel`."""
    from .tokenizer import EOT

    model.eval()
    missing = [n for n in model.layer_names if n not in sheets]
    if missing:
        raise ValueError(f"Positions missing for layers {missing}.")
    for layer, sheet in sheets.items():
        if sheet.n_units != model.config.n_embd:
            raise ValueError(
                f"Layer {layer!r} has {sheet.n_units} unit positions but the model width is "
                f"{model.config.n_embd}. The positions do not belong to this model."
            )

    def run_layers(input_ids, attention_mask=None):
        _, acts = model(input_ids, return_activations=True, attention_mask=attention_mask)
        return acts

    eot = tokenizer.token_to_id(EOT) if tokenizer is not None else None
    return SheetModel(
        name=name, module=model, tokenizer=tokenizer,
        sheets={n: sheets[n] for n in model.layer_names},
        context_length=model.config.block_size, vocab_size=model.config.vocab_size,
        identity=identity, run_layers=run_layers, bos_token_id=eot,
        pad_token_id=0 if eot is None else eot, card=card or {},
        layer_modules=topogpt_layer_modules(model), sources=dict(sources or {}),
    )
