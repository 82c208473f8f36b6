"""``load(name_or_path)``: open any supported model as a :class:`SheetModel`.

Supported:

- bundled models by name (``"topolm-tiny"``, ``"topolm-tiny-control"``);
- a topobrain model folder (``config.json`` with ``"format": "topobrain-topogpt"``);
- a TopoLM authors' checkpoint (a ``.pt`` dict plus a folder of position pickles),
  see :mod:`topobrain.models.topolm_format`;
- a Hugging Face causal LM folder plus a sheet spec, see :mod:`topobrain.models.hf`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .._utils._validation import suggest
from ._assemble import load_state_strict, model_identity, sheet_model_from_topogpt
from .base import SheetModel
from .checkpoint import FORMAT, read_positions_csv
from .gpt import GPTConfig, TopoGPT
from .hf import is_hf_folder, load_hf
from .tokenizer import load_tokenizer
from .topolm_format import CHECKPOINT_SUFFIXES, load_topolm_checkpoint

__all__ = ["load", "available_models", "bundled_model_dir", "model_kind",
           "sheet_model_from_topogpt", "MODEL_KINDS", "KIND_PARAMETERS"]

#: What :func:`model_kind` returns, and which of :func:`load`'s options apply to each.
KIND_PARAMETERS = {
    "bundled": (),
    "topobrain-folder": (),
    "topolm-checkpoint": ("positions", "tokenizer", "sheet_shape", "with_resid"),
    "huggingface": ("tokenizer", "sheet_spec"),
}
MODEL_KINDS = tuple(KIND_PARAMETERS)


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


def _read_config(folder: Path) -> dict:
    cfg_path = folder / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{cfg_path} is not valid JSON ({exc}).") from exc
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path} must hold a JSON object; got {type(cfg).__name__}.")
    return cfg


def model_kind(name_or_path) -> str:
    """Which loader opens ``name_or_path``: one of :data:`MODEL_KINDS`.

    ``"bundled"`` (a bundled model's name), ``"topobrain-folder"`` (``config.json`` with
    ``"format": "topobrain-topogpt"``), ``"huggingface"`` (``config.json`` with a
    ``model_type``) or ``"topolm-checkpoint"`` (a ``.pt``, ``.pth``, ``.ckpt`` or ``.bin``
    file). Anything else raises FileNotFoundError or ValueError naming what was expected.
    """
    path = Path(name_or_path)
    if path.exists():
        if path.is_dir() and (path / "config.json").exists():
            cfg = _read_config(path)
            if cfg.get("format") == FORMAT:
                return "topobrain-folder"
            if is_hf_folder(path):
                return "huggingface"
        if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES:
            return "topolm-checkpoint"
        raise ValueError(
            f"{path} is not a model this version can read: expected a topobrain model "
            f"folder (config.json with format {FORMAT!r}), a TopoLM checkpoint "
            f"({', '.join(CHECKPOINT_SUFFIXES)}) or a Hugging Face model folder "
            f"(config.json with a model_type)."
        )
    if (isinstance(name_or_path, str) and "/" not in name_or_path
            and path.suffix.lower() not in CHECKPOINT_SUFFIXES):
        bundled_model_dir(name_or_path)  # a ValueError listing the bundled names
        return "bundled"
    raise FileNotFoundError(f"{name_or_path} does not exist.")


def _load_topobrain_folder(folder: Path, name: str | None = None) -> SheetModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg = _read_config(folder)
    if not isinstance(cfg.get("model"), dict):
        raise ValueError(f"{folder / 'config.json'} has no 'model' object (the architecture);"
                         f" the folder was not written by topobrain's save_model.")
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
    load_state_strict(model, state, str(weights))
    sheets = read_positions_csv(folder / "positions.csv", gcfg.sheet_shape)
    tok = load_tokenizer(folder / "tokenizer.json")
    if tok.get_vocab_size() > gcfg.vocab_size:
        raise ValueError(
            f"The tokenizer in {folder} has {tok.get_vocab_size()} tokens but the model's "
            f"vocabulary has {gcfg.vocab_size}: they do not belong together."
        )
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    identity = model_identity("topobrain-folder", [folder / "config.json", weights],
                              tokenizer=tok, sheets=sheets)
    sources = {"weights": str(weights), "tokenizer": str(folder / "tokenizer.json"),
               "positions": str(folder / "positions.csv")}
    return sheet_model_from_topogpt(name or folder.name, model, sheets, tok, identity, card,
                                    sources)


def load(name_or_path, *, device: str = "cpu", positions=None, tokenizer=None,
         sheet_spec=None, sheet_shape: tuple[int, int] | None = None,
         with_resid: bool | None = None, name: str | None = None) -> SheetModel:
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
        ``layer,unit,x,y`` CSV (default ``model_args["position_dir"]``: as written when
        absolute; a relative one beside the checkpoint, then in the working directory).
    tokenizer : path-like or tokenizers.Tokenizer, optional
        TopoLM checkpoints and Hugging Face folders: ``tokenizer.json`` or a folder with
        it or with GPT-2's ``vocab.json`` and ``merges.txt``.
    sheet_spec : str, dict or path-like
        Hugging Face folders (required): which modules' outputs are sheets, a preset name
        (``"toponets"``, ``"mlp"``, ``"attn+mlp"``, optionally ``":permuted"`` or
        ``":permuted:SEED"``) or a spec, see :func:`topobrain.models.hf.read_sheet_spec`.
    sheet_shape : tuple of int, optional
        TopoLM checkpoints: ``(n_rows, n_cols)`` of the width (default the TopoNets rule).
    with_resid : bool, optional
        TopoLM checkpoints: report the residual stream after each add (True) or the branch
        outputs before it (False), overriding ``model_args["with_resid"]``.
    name : str, optional
        Display name.

    Returns
    -------
    SheetModel

    Examples
    --------
    >>> model = load("topolm-tiny")  # doctest: +SKIP
    >>> model = load("ckpt-311.pt", positions="positions/", tokenizer="gpt2/")  # doctest: +SKIP
    >>> model = load("gpt2-folder", sheet_spec="attn+mlp:permuted")  # doctest: +SKIP

    Every command that takes a model has the same options as flags (``--positions``,
    ``--tokenizer``, ``--sheet-spec``, ``--sheet-shape``, ``--with-resid``); in Python,
    pass the loaded model on:

    >>> from topobrain.pipeline import localize  # doctest: +SKIP
    >>> localize(load("neo-folder", sheet_spec="toponets"), "langloc", "S - N",
    ...          out="results/neo")  # doctest: +SKIP
    """
    kind = model_kind(name_or_path)
    given = {"positions": positions, "tokenizer": tokenizer, "sheet_spec": sheet_spec,
             "sheet_shape": sheet_shape, "with_resid": with_resid}
    bad = [k for k, v in given.items() if v is not None and k not in KIND_PARAMETERS[kind]]
    if bad:
        what = {"bundled": "a bundled model", "topobrain-folder": "a topobrain model folder",
                "topolm-checkpoint": "a TopoLM checkpoint",
                "huggingface": "a Hugging Face folder"}[kind]
        raise TypeError(f"{', '.join(bad)} do not apply to {what} ({name_or_path}); drop "
                        f"{'it' if len(bad) == 1 else 'them'}.")
    path = Path(name_or_path)
    if kind == "bundled":
        return _load_topobrain_folder(bundled_model_dir(name_or_path),
                                      name or name_or_path).to(device)
    if kind == "topobrain-folder":
        return _load_topobrain_folder(path, name).to(device)
    if kind == "huggingface":
        return load_hf(path, sheet_spec, tokenizer=tokenizer, name=name).to(device)
    return load_topolm_checkpoint(path, positions=positions, tokenizer=tokenizer,
                                  sheet_shape=sheet_shape, with_resid=with_resid,
                                  name=name).to(device)
