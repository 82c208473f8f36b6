"""Hugging Face causal language models as :class:`~topobrain.models.SheetModel`.

Any ``transformers`` causal LM saved in a folder (GPT-2, GPT-Neo, Llama-like, ...) can be
analysed like a topographic model once a *sheet spec* says which modules' outputs are
sheets and how their units are laid out. The outputs are read with forward hooks
(registered for one forward pass, then removed); a module that returns a tuple gives its
first element. Nothing is downloaded: the folder is opened with ``local_files_only``.

A sheet spec is a dict, or a YAML or JSON file holding one::

    layers:                              # explicit layers
      layer.0.mlp: {module: transformer.h.0.mlp, shape: [8, 8], layout: identity}
      layer.0.attn: {module: transformer.h.0.attn, layout: permuted, seed: 3}
    patterns:                            # one entry per block: {i} = 0, 1, ...
      - {name: "layer.{i}.mlp", module: "transformer.h.{i}.mlp", layout: permuted, seed: 0}

Per layer: ``module`` (required), ``shape`` (default the TopoNets rule for the module's
output width), ``layout`` (``"identity"``, as TopoNets, or ``"permuted"``, as TopoLM),
``seed`` (of the permutation, default 0; a pattern's layers get independent child seeds),
``positions`` (a ``layer,unit,x,y`` CSV, instead of ``layout``).

Presets name the usual choices for GPT-2, GPT-Neo, GPT-NeoX / Pythia and Llama-style
models (Llama, Mistral, Qwen2, Gemma: ``model.layers.{i}``), found by module names:

- ``"toponets"``: each block's MLP expansion output (GPT-2 / GPT-Neo ``mlp.c_fc``,
  GPT-NeoX ``mlp.dense_h_to_4h``, Llama ``mlp.gate_proj``, the projection under the
  activation function), on the TopoNets sheet (``toponets_shape`` of its width) with the
  identity layout: unit ``j`` at ``(j // n_cols, j % n_cols)``, exactly as TopoLoss
  reshapes the weight rows (``weight.reshape(n_rows, n_cols, n_in)``). Layers
  ``layer.{i}.fc``.
- ``"mlp"``: each block's MLP output before the residual add (``layer.{i}.mlp``).
- ``"attn+mlp"``: the attention and the MLP outputs before the residual add
  (``layer.{i}.attn``, ``layer.{i}.mlp``), as TopoLM's two sheets per block.

``"mlp"`` and ``"attn+mlp"`` take the identity layout, or a seeded random permutation per
layer with ``":permuted"`` (seed 0) or ``":permuted:SEED"``; in a file or dict, write
``{preset: attn+mlp, layout: permuted, seed: 3}`` (other fields may add layers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from .._utils._validation import check_option, suggest
from ..sheet import CorticalSheet, toponets_shape
from ._assemble import MissingModelPart, check_finite, model_identity
from .base import SheetModel

__all__ = ["load_hf", "read_sheet_spec", "is_hf_folder", "PRESETS", "FAMILIES"]

logger = logging.getLogger("topobrain")

_TOP_KEYS = ("layers", "patterns", "pattern", "preset", "layout", "seed")
_LAYER_KEYS = ("module", "shape", "layout", "seed", "positions")
_PATTERN_KEYS = ("name", *_LAYER_KEYS)

#: Sheet spec presets (see the module docstring).
PRESETS = ("toponets", "mlp", "attn+mlp")

#: Module names of each supported model family: block, attention, MLP, MLP expansion.
#: A family is recognised by its first block's modules, whatever its ``model_type``.
FAMILIES = {
    "gpt2 / gpt_neo": {"block": "transformer.h.{i}", "attn": "attn", "mlp": "mlp",
                       "fc": "mlp.c_fc"},
    "gpt_neox / pythia": {"block": "gpt_neox.layers.{i}", "attn": "attention", "mlp": "mlp",
                          "fc": "mlp.dense_h_to_4h"},
    "llama / mistral": {"block": "model.layers.{i}", "attn": "self_attn", "mlp": "mlp",
                        "fc": "mlp.gate_proj"},
}


def parse_preset(text: str) -> dict | None:
    """``"attn+mlp:permuted:3"`` -> ``{"preset": "attn+mlp", "layout": "permuted",
    "seed": 3}``; None when ``text`` does not start with a preset name."""
    parts = str(text).strip().split(":")
    if parts[0] not in PRESETS:
        return None
    if len(parts) > 3:
        raise ValueError(f"A sheet spec preset is PRESET[:LAYOUT[:SEED]]; got {text!r}.")
    out = {"preset": parts[0]}
    if len(parts) > 1:
        out["layout"] = parts[1]
    if len(parts) > 2:
        try:
            out["seed"] = int(parts[2])
        except ValueError:
            raise ValueError(f"The seed in the sheet spec preset {text!r} must be a "
                             f"non-negative integer; got {parts[2]!r}.") from None
    return out


def _preset_patterns(preset: dict, module_names) -> list[dict]:
    """The patterns a preset stands for in a model with ``module_names``."""
    name = preset["preset"]
    layout = preset.get("layout", "identity")
    seed = preset.get("seed", 0)
    check_option("layout", layout, ("identity", "permuted"))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"The sheet spec seed must be a non-negative integer; got {seed!r}.")
    if name == "toponets" and layout != "identity":
        raise ValueError("The 'toponets' preset lays units out as TopoLoss reshapes the "
                         "weights (identity layout); drop ':permuted', or use 'mlp' or "
                         "'attn+mlp' for a permuted layout.")
    family = next((f for f, m in FAMILIES.items()
                   if m["block"].format(i=0) + "." + m["mlp"] in module_names), None)
    if family is None:
        raise ValueError(
            f"The sheet spec preset {name!r} knows GPT-2, GPT-Neo, GPT-NeoX/Pythia and "
            f"Llama-style module names ({', '.join(FAMILIES)}); this model has none of "
            f"them. Write a sheet spec file with 'patterns' naming its modules "
            f"(list them with dict(model.named_modules()))."
        )
    m = FAMILIES[family]
    kinds = {"toponets": ("fc",), "mlp": ("mlp",), "attn+mlp": ("attn", "mlp")}[name]
    out = []
    for k, kind in enumerate(kinds):
        entry = {"name": f"layer.{{i}}.{kind}", "module": f"{m['block']}.{m[kind]}",
                 "layout": layout}
        if layout == "permuted":  # attn and mlp of one block get different permutations
            entry["seed"] = (int(seed), k)
        out.append(entry)
    return out


def is_hf_folder(path) -> bool:
    """True for a folder with a ``config.json`` that names a ``model_type``."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return "model_type" in json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def read_sheet_spec(spec) -> dict:
    """Read a sheet spec from a preset name, a dict or a YAML/JSON file and check its keys.

    Parameters
    ----------
    spec : str, dict or path-like
        A preset (``"toponets"``, ``"mlp"``, ``"attn+mlp"``, optionally ``":permuted"`` or
        ``":permuted:SEED"``; a file of that name wins), a dict, or a ``.json`` / YAML
        file holding one (``preset``, ``layout``, ``seed``, ``layers``, ``patterns``).

    Returns
    -------
    dict
        ``{"layers": {...}, "patterns": [...], "preset": {...} or None}``, a new object
        (the input is not changed). A preset is expanded when the model's module names
        are known (:func:`load_hf`).

    Examples
    --------
    >>> read_sheet_spec("attn+mlp:permuted:3")["preset"]
    {'preset': 'attn+mlp', 'layout': 'permuted', 'seed': 3}
    """
    if isinstance(spec, str) and not Path(spec).is_file() and parse_preset(spec):
        spec = parse_preset(spec)
    elif isinstance(spec, (str, os.PathLike)):
        p = Path(spec)
        if not p.is_file():
            raise FileNotFoundError(
                f"Sheet spec {str(spec)!r} is neither a file nor a preset. Presets: "
                f"{', '.join(PRESETS)} (optionally ':permuted' or ':permuted:SEED')."
                f"{suggest(str(spec).split(':')[0], PRESETS)}")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix.lower() == ".json":
                spec = json.loads(text)
            else:
                import yaml

                spec = yaml.safe_load(text)
        except ValueError as exc:  # json.JSONDecodeError
            raise ValueError(f"Sheet spec file {p} is not valid JSON ({exc}).") from exc
        except Exception as exc:  # yaml.YAMLError and its subclasses
            if type(exc).__module__.startswith("yaml"):
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ValueError(f"Sheet spec file {p} is not valid YAML ({first}); a spec "
                                 f"is plain YAML or JSON, without tags.") from exc
            raise
    if not isinstance(spec, dict):
        raise TypeError(
            f"sheet_spec must be a dict or the path of a YAML/JSON file holding one; got "
            f"{type(spec).__name__}. Example: {{'layers': {{'layer.0.mlp': {{'module': "
            f"'transformer.h.0.mlp', 'shape': [8, 8]}}}}}}."
        )
    unknown = sorted(set(spec) - set(_TOP_KEYS))
    if unknown:
        raise ValueError(f"Unknown sheet spec fields {unknown}; known: {list(_TOP_KEYS)}."
                         f"{suggest(unknown[0], _TOP_KEYS)}")
    preset = None
    if "preset" in spec:
        preset = parse_preset(str(spec["preset"]))
        if preset is None:
            raise ValueError(f"Unknown sheet spec preset {spec['preset']!r}; presets: "
                             f"{list(PRESETS)}.{suggest(str(spec['preset']), PRESETS)}")
        for key in ("layout", "seed"):
            if key in spec:
                preset[key] = spec[key]
        check_option("layout", preset.get("layout", "identity"), ("identity", "permuted"))
    elif "layout" in spec or "seed" in spec:
        raise ValueError("Top-level 'layout' and 'seed' go with a 'preset'; give them per "
                         "layer or pattern otherwise.")
    layers = spec.get("layers") or {}
    patterns = spec.get("patterns") or []
    if "pattern" in spec:
        patterns = [*patterns, spec["pattern"]]
    if not isinstance(layers, dict):
        raise TypeError("sheet_spec['layers'] must map layer names to {module: ...} entries.")
    if isinstance(patterns, dict):
        patterns = [patterns]
    out_layers = {}
    for name, entry in layers.items():
        out_layers[str(name)] = _check_entry(entry, _LAYER_KEYS, f"layer {name!r}")
    out_patterns = []
    for k, entry in enumerate(patterns):
        entry = _check_entry(entry, _PATTERN_KEYS, f"pattern {k}")
        entry.setdefault("name", entry["module"])
        if "{i}" not in entry["module"] or "{i}" not in entry["name"]:
            raise ValueError(f"pattern {k}: 'module' and 'name' must contain '{{i}}' (the "
                             f"block index); got {entry['module']!r} and {entry['name']!r}.")
        out_patterns.append(entry)
    if not out_layers and not out_patterns and preset is None:
        raise ValueError("The sheet spec names no layers: give a 'preset', 'layers' or "
                         "'patterns'.")
    return {"layers": out_layers, "patterns": out_patterns, "preset": preset}


def _check_entry(entry, keys, where) -> dict:
    if not isinstance(entry, dict):
        raise TypeError(f"{where} must be a dict with at least 'module'; got "
                        f"{type(entry).__name__}.")
    unknown = sorted(set(entry) - set(keys))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; known: {list(keys)}."
                         f"{suggest(unknown[0], keys)}")
    if "module" not in entry:
        raise ValueError(f"{where}: 'module' (the dotted name of a submodule) is required.")
    entry = dict(entry)
    if "layout" in entry:
        check_option("layout", entry["layout"], ("identity", "permuted"))
    if "shape" in entry and entry["shape"] is not None:
        shape = entry["shape"]
        if (not isinstance(shape, (list, tuple)) or len(shape) != 2
                or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)):
            raise ValueError(f"{where}: shape must be two positive integers [n_rows, n_cols];"
                             f" got {shape!r}.")
        entry["shape"] = (int(shape[0]), int(shape[1]))
    return entry


def _expand(spec: dict, module_names: set[str]) -> dict[str, dict]:
    """Layer name -> entry: explicit layers first, then the patterns (a preset's included)
    expanded over consecutive block indices from 0, in model order (block by block)."""
    out = dict(spec["layers"])
    patterns = list(spec["patterns"])
    if spec.get("preset"):
        patterns = _preset_patterns(spec["preset"], module_names) + patterns
    expanded = []
    for k, entry in enumerate(patterns):
        n = 0
        while entry["module"].format(i=n) in module_names:
            n += 1
        if n == 0:
            first = entry["module"].format(i=0)
            raise ValueError(
                f"The pattern {entry['module']!r} matches no module (tried {first!r})."
                f"{suggest(first, module_names)}"
            )
        seeds = np.random.SeedSequence(entry.get("seed", 0)).spawn(n)
        for i in range(n):
            expanded.append((i, k, entry["name"].format(i=i),
                             {**{f: v for f, v in entry.items() if f != "name"},
                              "module": entry["module"].format(i=i),
                              "seed": np.random.default_rng(seeds[i])}))
    for _, _, name, entry in sorted(expanded, key=lambda e: (e[0], e[1])):
        if name in out:
            raise ValueError(f"Layer {name!r} is named twice in the sheet spec.")
        out[name] = entry
    return out


@contextlib.contextmanager
def _transformers_bars(show: bool):
    """transformers' own progress bars only where ours show (logging at INFO); the
    setting it had is restored on the way out."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and not show:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not show:
            hf_logging.enable_progress_bar()


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"module output of type {type(out).__name__} holds no tensor first.")


def _run_hooked(model, modules: dict[str, torch.nn.Module], input_ids, attention_mask):
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for layer, mod in modules.items():
        def hook(_m, _inp, out, layer=layer):
            captured[layer] = _first_tensor(out)
        handles.append(mod.register_forward_hook(hook))
    try:
        kwargs = {"input_ids": input_ids, "use_cache": False}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.long()
        model(**kwargs)
    finally:
        for h in handles:
            h.remove()
    return captured


def load_hf(path, sheet_spec=None, *, tokenizer=None, name: str | None = None,
            dtype: str = "float32") -> SheetModel:
    """Open a Hugging Face causal LM folder with a sheet spec as a :class:`SheetModel`.

    Parameters
    ----------
    path : str or path-like
        A folder written by ``save_pretrained`` (``config.json`` and weights; safetensors
        preferred). Opened offline; remote code is never run.
    sheet_spec : str, dict or path-like
        Which modules' outputs are sheets: a preset (``"toponets"``, ``"mlp"``,
        ``"attn+mlp"``, ``"attn+mlp:permuted:3"``), a dict, or a YAML/JSON file; see the
        module docstring and :func:`read_sheet_spec`. Required.
    tokenizer : str, path-like or tokenizers.Tokenizer, optional
        Default: the folder's ``tokenizer.json`` (or GPT-2 ``vocab.json`` and
        ``merges.txt``).
    name : str, optional
        Display name (default the folder name).
    dtype : {"float32", "float16", "bfloat16"}
        Weights' dtype in memory.

    Returns
    -------
    SheetModel
        Sheet activations of shape (batch, time, n_units) per named layer.
    """
    try:
        from transformers import AutoModelForCausalLM
    except ImportError as exc:  # pragma: no cover
        raise ImportError("Hugging Face models need transformers: pip install "
                          "'topobrain[hf]'.") from exc
    from .tokenizer import load_tokenizer

    check_option("dtype", dtype, ("float32", "float16", "bfloat16"))
    path = Path(path)
    if not is_hf_folder(path):
        raise ValueError(f"{path} is not a Hugging Face model folder (config.json with a "
                         f"model_type).")
    if sheet_spec is None:
        raise MissingModelPart(
            f"{path} is a Hugging Face model: pass sheet_spec= (--sheet-spec) to say which "
            f"modules' outputs are sheets: a preset ({', '.join(PRESETS)}; e.g. "
            f"'attn+mlp:permuted') or a YAML/JSON spec file.",
            part="sheet spec", parameter="sheet_spec")
    spec = read_sheet_spec(sheet_spec)
    try:
        with _transformers_bars(logger.isEnabledFor(logging.INFO)):
            model = AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=False,
                dtype=getattr(torch, dtype))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"Could not open the Hugging Face model in {path}: the weights are missing, "
            f"truncated or corrupt ({type(exc).__name__}: "
            f"{(str(exc).strip().splitlines() or [''])[0]})."
        ) from exc
    except Exception as exc:  # safetensors raises its own SafetensorError
        if type(exc).__name__ == "SafetensorError":
            raise ValueError(f"{path}: the safetensors weights are truncated or corrupt "
                             f"({exc}).") from exc
        raise
    model.eval()
    check_finite(model.named_parameters(), path)

    named = dict(model.named_modules())
    layers = _expand(spec, set(named))
    modules = {}
    for layer, entry in layers.items():
        if entry["module"] not in named:
            raise ValueError(
                f"Layer {layer!r}: the model has no module {entry['module']!r}."
                f"{suggest(entry['module'], [n for n in named if n])} List them with "
                f"dict(model.named_modules())."
            )
        modules[layer] = named[entry["module"]]

    # one probe token gives each module's output width
    with torch.no_grad():
        probe = _run_hooked(model, modules, torch.zeros(1, 1, dtype=torch.long), None)
    sheets = {}
    for layer, entry in layers.items():
        out = probe[layer]
        if out.dim() != 3:
            raise ValueError(
                f"Layer {layer!r} ({entry['module']}) outputs shape {tuple(out.shape)} for "
                f"one token; a sheet layer must output (batch, time, n_units)."
            )
        width = out.shape[-1]
        if "positions" in entry:
            sheet = CorticalSheet.from_csv(entry["positions"], layer, shape=entry.get("shape"))
        else:
            shape = entry.get("shape") or toponets_shape(width)
            if shape[0] * shape[1] != width:
                raise ValueError(
                    f"Layer {layer!r} ({entry['module']}) has {width} units but its sheet "
                    f"shape {tuple(shape)} holds {shape[0] * shape[1]}. Use a shape with "
                    f"n_rows * n_cols == {width}, e.g. {list(toponets_shape(width))}."
                )
            sheet = CorticalSheet(shape, layout=entry.get("layout", "identity"),
                                  seed=entry.get("seed", 0), name=layer)
        if sheet.n_units != width:
            raise ValueError(f"Layer {layer!r} has {width} units but {sheet.n_units} "
                             f"positions.")
        sheets[layer] = sheet

    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        tok_path = Path(tokenizer) if tokenizer is not None else path
        tok_source = str(tok_path / "tokenizer.json" if (tok_path / "tokenizer.json").is_file()
                         else tok_path)
        try:
            tok = load_tokenizer(tok_path)
        except FileNotFoundError as exc:
            raise MissingModelPart(
                f"No tokenizer for {path}: pass tokenizer= (--tokenizer) a tokenizer.json or "
                f"a folder with one (or GPT-2's vocab.json and merges.txt). ({exc})",
                part="tokenizer", parameter="tokenizer") from exc
    else:
        tok, tok_source = tokenizer, "a Tokenizer object"

    cfg = model.config
    context = next((int(v) for k in ("n_positions", "max_position_embeddings", "n_ctx")
                    if isinstance(v := getattr(cfg, k, None), int)), 1024)
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id
    weights = sorted([*path.glob("*.safetensors"), *path.glob("pytorch_model*.bin")])
    spec_json = json.dumps({k: {kk: (vv if not isinstance(vv, np.random.Generator) else None)
                                for kk, vv in v.items()} for k, v in layers.items()},
                           sort_keys=True, default=str)
    identity = model_identity("huggingface", [path / "config.json", *weights],
                              tokenizer=tok, sheets=sheets,
                              settings={"sheet_spec": json.loads(spec_json),
                                        "dtype": dtype})

    def run_layers(input_ids, attention_mask=None):
        return _run_hooked(model, modules, input_ids, attention_mask)

    return SheetModel(
        name=name or path.name, module=model, tokenizer=tok, sheets=sheets,
        context_length=context, vocab_size=int(cfg.vocab_size), identity=identity,
        run_layers=run_layers, bos_token_id=cfg.bos_token_id,
        pad_token_id=int(pad) if pad is not None else 0,
        card={"source": "huggingface", "path": str(path), "model_type": cfg.model_type,
              "sheet_spec": json.loads(spec_json)},
        layer_modules={k: e["module"] for k, e in layers.items()},
        sources={"weights": ", ".join(str(w) for w in weights), "tokenizer": tok_source,
                 "positions": _spec_source(sheet_spec, layers)},
    )


def _spec_source(sheet_spec, layers: dict) -> str:
    """Where the unit positions of a Hugging Face model come from, in words."""
    what = (f"sheet spec {sheet_spec}" if isinstance(sheet_spec, (str, os.PathLike))
            else "sheet spec (dict)")
    layouts = sorted({("positions CSV" if "positions" in e else e.get("layout", "identity"))
                      for e in layers.values()})
    return f"{what}: {', '.join(layouts)} layout"
