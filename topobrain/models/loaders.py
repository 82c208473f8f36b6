"""``load(name_or_path)``: open any supported model as a :class:`SheetModel`.

Supported:

- bundled models by name (``"topolm-tiny"``, ``"topolm-tiny-control"``);
- a topobrain model folder (``config.json`` with ``"format": "topobrain-topogpt"``);
- a TopoLM authors' checkpoint (a ``.pt`` dict plus a folder of position pickles),
  see :mod:`topobrain.models.topolm_format`;
- a Hugging Face causal LM folder plus a sheet spec, see :mod:`topobrain.models.hf`.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import torch

from .._utils._validation import suggest
from .base import SheetModel
from .checkpoint import FORMAT, read_positions_csv
from .gpt import GPTConfig, TopoGPT
from .tokenizer import EOT, load_tokenizer

__all__ = ["load", "available_models", "bundled_model_dir", "sheet_model_from_topogpt"]


def _models_root() -> Path:
    return Path(str(resources.files("topobrain") / "data" / "models"))


def available_models() -> list[str]:
    """Names of the bundled models."""
    root = _models_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").exists())


def bundled_model_dir(name: str) -> Path:
    """Folder of a bundled model; a ValueError lists the available ones."""
    folder = _models_root() / name
    if not (folder / "config.json").exists():
        names = available_models()
        raise ValueError(
            f"No bundled model named {name!r}. Available models: {names or 'none'}."
            f"{suggest(name, names)} Or pass the path of a model folder or checkpoint."
        )
    return folder


def _hash_files(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:20]


def sheet_model_from_topogpt(name, model: TopoGPT, sheets, tokenizer, identity,
                             card=None) -> SheetModel:
    """Wrap a :class:`TopoGPT` and its sheets as a :class:`SheetModel`."""
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
    )


def _load_topobrain_folder(folder: Path, name: str | None = None) -> SheetModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path = folder / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path} is not valid JSON ({exc}).") from exc
    gcfg = GPTConfig.from_dict(cfg["model"])
    model = TopoGPT(gcfg)
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{folder} has no model.safetensors.")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ValueError(
            f"{weights} is truncated or corrupt ({exc}). Re-export or re-download the model."
        ) from exc
    state = {k: v.float() for k, v in state.items()}
    state.setdefault("lm_head.weight", state.get("transformer.wte.weight"))
    _load_state(model, state, str(weights))
    sheets = read_positions_csv(folder / "positions.csv", gcfg.sheet_shape)
    tok = load_tokenizer(folder / "tokenizer.json")
    if tok.get_vocab_size() > gcfg.vocab_size:
        raise ValueError(
            f"The tokenizer in {folder} has {tok.get_vocab_size()} tokens but the model's "
            f"vocabulary has {gcfg.vocab_size}: they do not belong together."
        )
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    identity = _hash_files([weights, folder / "positions.csv", folder / "tokenizer.json"])
    return sheet_model_from_topogpt(name or folder.name, model, sheets, tok, identity, card)


def _load_state(model: torch.nn.Module, state: dict, source: str) -> None:
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
    model.load_state_dict(state, strict=True)


def load(name_or_path, *, device: str = "cpu", positions=None, tokenizer=None,
         sheet_spec=None, sheet_shape: tuple[int, int] | None = None,
         name: str | None = None) -> SheetModel:
    """Open a model by bundled name or path.

    Parameters
    ----------
    name_or_path : str or path-like
        A bundled model name (see :func:`available_models`), a topobrain model folder,
        a TopoLM authors' checkpoint file (``.pt``, ``.pth``, ``.ckpt``), or a Hugging
        Face causal LM folder.
    device : str
        Torch device to put the model on.
    positions : path-like, optional
        TopoLM checkpoints: the positions folder (``layer.{i}.{attn,mlp}.pkl``) or a
        ``layer,unit,x,y`` CSV (default ``model_args["position_dir"]``).
    tokenizer : path-like or tokenizers.Tokenizer, optional
        TopoLM checkpoints and Hugging Face folders: ``tokenizer.json`` or a folder with
        it or with GPT-2's ``vocab.json`` and ``merges.txt``.
    sheet_spec : dict or path-like
        Hugging Face folders (required): which modules' outputs are sheets, see
        :func:`topobrain.models.hf.read_sheet_spec`.
    sheet_shape : tuple of int, optional
        TopoLM checkpoints: ``(n_rows, n_cols)`` of the width (default the TopoNets rule).
    name : str, optional
        Display name.

    Returns
    -------
    SheetModel

    Examples
    --------
    >>> model = load("topolm-tiny")  # doctest: +SKIP
    >>> model = load("ckpt-311.pt", positions="positions/", tokenizer="gpt2/")  # doctest: +SKIP
    >>> model = load("gpt2-folder", sheet_spec={"patterns": [{"name": "layer.{i}.mlp",
    ...     "module": "transformer.h.{i}.mlp", "layout": "permuted"}]})  # doctest: +SKIP
    """
    from .hf import is_hf_folder, load_hf
    from .topolm_format import CHECKPOINT_SUFFIXES, load_topolm_checkpoint

    extra = {"positions": positions, "tokenizer": tokenizer, "sheet_spec": sheet_spec,
             "sheet_shape": sheet_shape}

    def refuse(kind, allowed):
        bad = [k for k, v in extra.items() if v is not None and k not in allowed]
        if bad:
            raise TypeError(f"{', '.join(bad)} do not apply to {kind} ({path}); drop "
                            f"{'it' if len(bad) == 1 else 'them'}.")

    path = Path(name_or_path)
    if path.exists():
        if path.is_dir() and (path / "config.json").exists():
            try:
                cfg = json.loads((path / "config.json").read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{path / 'config.json'} is not valid JSON ({exc}).") from exc
            if isinstance(cfg, dict) and cfg.get("format") == FORMAT:
                refuse("a topobrain model folder", ())
                return _load_topobrain_folder(path, name).to(device)
            if is_hf_folder(path):
                refuse("a Hugging Face folder", ("tokenizer", "sheet_spec"))
                if sheet_spec is None:
                    raise ValueError(
                        f"{path} is a Hugging Face model: pass sheet_spec= to say which "
                        f"modules' outputs are sheets, e.g. {{'patterns': [{{'name': "
                        f"'layer.{{i}}.mlp', 'module': 'transformer.h.{{i}}.mlp'}}]}}."
                    )
                return load_hf(path, sheet_spec, tokenizer=tokenizer, name=name).to(device)
        if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES:
            refuse("a TopoLM checkpoint", ("positions", "tokenizer", "sheet_shape"))
            return load_topolm_checkpoint(path, positions=positions, tokenizer=tokenizer,
                                          sheet_shape=sheet_shape, name=name).to(device)
        raise ValueError(
            f"{path} is not a model this version can read: expected a topobrain model "
            f"folder (config.json with format {FORMAT!r}), a TopoLM checkpoint "
            f"({', '.join(CHECKPOINT_SUFFIXES)}) or a Hugging Face model folder."
        )
    if (isinstance(name_or_path, str) and ("/" not in name_or_path)
            and path.suffix.lower() not in CHECKPOINT_SUFFIXES):
        refuse("a bundled model", ())
        return _load_topobrain_folder(bundled_model_dir(name_or_path),
                                      name or name_or_path).to(device)
    raise FileNotFoundError(f"{name_or_path} does not exist.")
