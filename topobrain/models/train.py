"""Training of topographic GPTs: corpus preparation, the loop, resumable checkpoints.

``train(config)`` (or ``topobrain train --config FILE.yaml``) trains a :class:`TopoGPT`
with the next-token loss plus ``alpha`` times a spatial loss, and writes a model folder
that :func:`topobrain.models.load` opens. Interrupted runs resume exactly from the last
checkpoint (model, optimiser, random states, history). Under ``torchrun`` with several
processes it trains data-parallel (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._utils._hashing import hash_files
from .._utils._io import atomic_write_bytes, atomic_write_text
from .._utils._validation import check_device
from ..sheet import CorticalSheet
from .gpt import GPTConfig, TopoGPT
from .losses import correlation_loss, topoloss
from .tokenizer import EOT, load_tokenizer, train_tokenizer

__all__ = ["TrainConfig", "prepare_corpus", "train", "load_config", "RESUMABLE_CHANGES"]

logger = logging.getLogger("topobrain")


@dataclass
class SpatialConfig:
    """The spatial loss. ``kind="correlation"`` (TopoLM/TDANN) or ``"topoloss"`` (TopoNets)."""

    kind: str = "correlation"
    alpha: float = 2.5
    radius: int = 5
    n_neighbourhoods: int = 5
    inclusive: bool = True
    distance: str = "inverse"
    phi: float = 3.0
    tau: float = 1.0
    modules: list = field(default_factory=lambda: ["mlp.c_proj"])


# TopoLoss smooths a module's weight rows laid out row-major on the sheet (TopoNets); a
# module can be read as a map only when its output rows are the units of a sheet layer
_TOPOLOSS_SHEETS = {"attn.c_proj": "attn", "mlp.c_proj": "mlp"}


@dataclass
class TrainConfig:
    """Everything a training run needs; read from YAML with :func:`load_config`."""

    name: str = "topolm-tiny"
    out: str = "runs/topolm-tiny"
    corpus: str = "data/corpus"
    prepared: str = "data/prepared"
    tokenizer: str | None = None
    vocab_size: int = 4096
    val_fraction: float = 0.05
    seed: int = 0
    model: dict = field(default_factory=dict)
    spatial: dict = field(default_factory=dict)
    layout_seed: int = 0
    batch_size: int = 16
    max_steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_batches: int = 16
    checkpoint_interval: int = 50
    threads: int | None = None
    device: str = "auto"
    save_dtype: str = "float16"
    verbose: int = 1

    @classmethod
    def from_dict(cls, d: dict, *, _where: Callable[[str], str] | None = None) -> TrainConfig:
        """Build a config from a mapping, checking every key, type and range.

        Raises
        ------
        ValueError
            For an unknown key or a value out of range (one line: the key, what it must
            be, what came in).
        TypeError
            For a value of the wrong type (``max_steps: ten``).
        """
        where = _where or (lambda key: "")
        _check_section(d, cls, "", where)
        cfg = cls(**d)
        _check_section(cfg.spatial, SpatialConfig, "spatial.", where)
        _check_section(cfg.model, GPTConfig, "model.", where)
        gcfg = GPTConfig.from_dict({**cfg.model, "vocab_size": cfg.vocab_size})
        _check_topoloss(cfg.spatial_config, gcfg, where)
        return cfg

    @property
    def spatial_config(self) -> SpatialConfig:
        return SpatialConfig(**self.spatial)


def _check_topoloss(scfg: SpatialConfig, gcfg: GPTConfig, where) -> None:
    """TopoLoss must act on modules whose rows are sheet units, on the sheet's shape."""
    if scfg.kind != "topoloss":
        return
    from ..sheet import toponets_shape

    bad = [m for m in scfg.modules if m not in _TOPOLOSS_SHEETS]
    if bad or not scfg.modules:
        raise ValueError(
            f"{where('spatial.modules')}spatial.modules {list(scfg.modules)}: TopoLoss smooths "
            f"a module's weight rows as a sheet, and only the rows of "
            f"{sorted(_TOPOLOSS_SHEETS)} are the units of a sheet layer (layer.N.attn, "
            f"layer.N.mlp) that the localizer maps; mlp.c_fc's rows are the MLP's hidden "
            f"units, which this model does not expose as a sheet. Use mlp.c_proj.")
    if "attn.c_proj" in scfg.modules and (gcfg.attn_proj or gcfg.head_loss):
        raise ValueError(
            f"{where('spatial.modules')}spatial.modules: with model.attn_proj or "
            f"model.head_loss the attention sheet is not attn.c_proj's output; put TopoLoss "
            f"on mlp.c_proj only.")
    if tuple(toponets_shape(gcfg.n_embd)) != tuple(gcfg.sheet_shape):
        raise ValueError(
            f"{where('model.sheet_shape')}model.sheet_shape {list(gcfg.sheet_shape)}: TopoLoss "
            f"reshapes {gcfg.n_embd} rows to {list(toponets_shape(gcfg.n_embd))} (the largest "
            f"divisor not above the square root); set sheet_shape to that.")


def load_config(path) -> TrainConfig:
    """Read a YAML training config (plain YAML only: ``yaml.safe_load``).

    Errors name the file and line: a syntax error, a tag such as ``!!python/object``
    (never constructed), an unknown key, a value of the wrong type or out of range.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"Training config {path} does not exist; pass a YAML file "
                                f"such as configs/topolm-tiny.yaml to --config.") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"Training config {path} is a folder; pass a YAML file such "
                                f"as configs/topolm-tiny.yaml to --config.") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                         f"save the training config as UTF-8.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise ValueError(_yaml_error_text(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(exc).split())}).") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a training config must be a YAML mapping (key: value "
                         f"lines); got a {type(data).__name__}.")
    lines = _key_lines(text)

    def where(key: str) -> str:
        line = lines.get(key) or lines.get(key.split(".")[0])
        return f"{path}:{line}: " if line else f"{path}: "

    return TrainConfig.from_dict(data, _where=where)


def _yaml_error_text(path, exc) -> str:
    mark = exc.problem_mark or exc.context_mark
    at = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = " ".join(str(exc.problem or exc.context or "").split())
    if "constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip()
        return (f"{at}: the YAML tag {tag} is not allowed: training configs hold plain "
                f"values only (read with yaml.safe_load, nothing is constructed); remove it.")
    context = " ".join(str(exc.context or "").split())
    if context and exc.problem and exc.context_mark is not None and mark is not None \
            and exc.context_mark.line != mark.line:
        context += f" from line {exc.context_mark.line + 1}"
    detail = f"{problem} ({context})" if context and exc.problem else problem
    return f"{at}: not valid YAML: {detail}; fix the syntax (see configs/topolm-tiny.yaml)."


def _key_lines(text: str) -> dict[str, int]:
    """1-based line of each key (``max_steps``, ``spatial.alpha``) of a YAML mapping."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only: nothing constructed
    except yaml.YAMLError:
        return {}
    out: dict[str, int] = {}

    def walk(node, prefix):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    name = f"{prefix}{key.value}"
                    out.setdefault(name, key.start_mark.line + 1)
                    walk(value, name + ".")

    walk(root, "")
    return out


# the ranges of the numbers in a training config: key -> (low, high, low_open)
_RANGES = {
    "vocab_size": (2, None, False), "val_fraction": (0, 1, False), "layout_seed": (0, None, False),
    "seed": (0, None, False), "batch_size": (1, None, False), "max_steps": (1, None, False),
    "lr": (0, None, True), "min_lr_ratio": (0, 1, False), "warmup_steps": (0, None, False),
    "weight_decay": (0, None, False), "grad_clip": (0, None, False),
    "eval_interval": (1, None, False), "eval_batches": (1, None, False),
    "checkpoint_interval": (1, None, False), "threads": (1, None, False),
    "spatial.alpha": (0, None, False), "spatial.radius": (0, None, True),
    "spatial.n_neighbourhoods": (1, None, False), "spatial.phi": (0, None, True),
    "spatial.tau": (0, None, True), "model.block_size": (1, None, False),
    "model.n_layer": (1, None, False), "model.n_head": (1, None, False),
    "model.mlp_ratio": (1, None, False), "model.dropout": (0, 1, False),
}
_OPTIONS = {"save_dtype": ("float16", "bfloat16", "float32"),
            "spatial.kind": ("correlation", "topoloss"),
            "spatial.distance": ("inverse", "negative")}


def _type_ok(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (dict,) or origin is dict:
        return isinstance(value, dict)
    if hint in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_type_ok, value, args))
        inner = args[0] if args else typing.Any
        return all(_type_ok(v, inner) for v in value)
    return True


def _type_name(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             dict: "a mapping", list: "a list", tuple: "a list", type(None): "null"}
    if origin is tuple and args:
        return f"a list of {len(args)} {_type_name(args[0]).split(' ', 1)[-1]}s"
    if origin in (list, tuple):
        return "a list"
    return names.get(origin or hint, getattr(hint, "__name__", str(hint)))


def _check_section(d, cls, prefix: str, where) -> None:
    """Keys, types and ranges of one section of a training config (one line per error)."""
    section = prefix.rstrip(".") or "training"
    if not isinstance(d, dict):
        raise TypeError(f"{where(section)}{section} must be a mapping (key: value); got "
                        f"{d!r} ({type(d).__name__}).")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        from .._utils._validation import suggest

        raise ValueError(
            f"{where(prefix + unknown[0])}Unknown {section} config fields {unknown}. Known "
            f"fields: {sorted(known)}.{suggest(unknown[0], sorted(known))}"
        )
    hints = typing.get_type_hints(cls)
    for key, value in d.items():
        name = prefix + key
        if not _type_ok(value, hints[key]):
            raise TypeError(f"{where(name)}{name} must be {_type_name(hints[key])}; got "
                            f"{value!r} ({type(value).__name__}).")
        if name in _RANGES and value is not None:
            low, high, low_open = _RANGES[name]
            bad = (value < low or (low_open and value == low)
                   or (high is not None and value > high))
            if bad:
                allowed = (f"in [{low}, {high}]" if high is not None else
                           f"{'>' if low_open else '>='} {low}")
                raise ValueError(f"{where(name)}{name} must be {allowed}; got {value!r}.")
        if name in _OPTIONS and value not in _OPTIONS[name]:
            raise ValueError(f"{where(name)}{name} must be one of {list(_OPTIONS[name])}; "
                             f"got {value!r}.")
    if prefix == "" and "betas" in d and not all(0 <= b < 1 for b in d["betas"]):
        raise ValueError(f"{where('betas')}betas must be two numbers in [0, 1); got "
                         f"{d['betas']!r}.")


# --------------------------------------------------------------------------- resume
#: Config keys that may differ when a run resumes, with ``allow_config_change``: they
#: change when the run stops, how often it is evaluated, checkpointed or logged, and where
#: it runs, not what it learns up to the resume step. (``max_steps`` also stretches the
#: cosine learning-rate schedule from the resume step on; the model card records it.)
RESUMABLE_CHANGES = ("max_steps", "eval_interval", "eval_batches", "checkpoint_interval",
                     "threads", "device", "save_dtype", "name")
# never compared: how much is printed, and the folder that holds the checkpoint itself
_NOT_COMPARED = ("verbose", "out")


def _flat_config(cfg: TrainConfig) -> dict:
    """The config as flat ``key`` / ``section.key`` values, defaults filled in."""
    d = dataclasses.asdict(cfg)
    d["spatial"] = dataclasses.asdict(SpatialConfig(**cfg.spatial))
    d["model"] = dataclasses.asdict(GPTConfig.from_dict({**cfg.model,
                                                         "vocab_size": cfg.vocab_size}))
    d["model"].pop("vocab_size")
    d = json.loads(json.dumps(d, default=str))  # tuples -> lists, as on both sides
    flat = {}
    for k, v in d.items():
        if k in _NOT_COMPARED:
            continue
        if k in ("spatial", "model"):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            flat[k] = v
    return flat


def _check_allowed(allow) -> tuple[str, ...]:
    allow = (allow,) if isinstance(allow, str) else tuple(allow or ())
    allow = tuple(a.strip() for item in allow for a in str(item).split(",") if a.strip())
    for a in allow:
        if a not in RESUMABLE_CHANGES:
            from .._utils._validation import suggest

            raise ValueError(
                f"allow_config_change={a!r}: only {list(RESUMABLE_CHANGES)} may change "
                f"when a run resumes; anything else changes the model being trained, so "
                f"start a new run in another folder (out=) instead.{suggest(a, RESUMABLE_CHANGES)}"
            )
    return allow


def resume_changes(saved: dict | None, cfg: TrainConfig, *, allow=(), path=None) -> dict:
    """The config keys that differ from a checkpoint's, refused unless allowed.

    Parameters
    ----------
    saved : dict or None
        The checkpoint's config (``dataclasses.asdict`` of its TrainConfig).
    cfg : TrainConfig
        The config of the run that resumes.
    allow : iterable of str
        Keys of :data:`RESUMABLE_CHANGES` that may differ.
    path : path-like, optional
        The checkpoint, for the message.

    Returns
    -------
    dict
        ``{key: [checkpoint value, new value]}`` for the allowed keys that changed.

    Raises
    ------
    ValueError
        One line listing every key that differs, old and new values, and the way out.
    """
    allow = _check_allowed(allow)
    if saved is None:
        return {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        old = _flat_config(TrainConfig(**{k: v for k, v in saved.items() if k in known}))
    except (TypeError, ValueError):  # a checkpoint of another version: compare as saved
        old = {k: v for k, v in json.loads(json.dumps(saved, default=str)).items()
               if k not in _NOT_COMPARED}
    new = _flat_config(cfg)
    changed = {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k)}
    refused = {k: v for k, v in changed.items() if k not in allow}
    if refused:
        listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in refused.items())
        harmless = [k for k in refused if k in RESUMABLE_CHANGES]
        other = [k for k in refused if k not in RESUMABLE_CHANGES]
        fix = []
        if other:
            fix.append(f"restore {', '.join(other)} to resume, or train a new run into "
                       f"another folder (out=)")
        if harmless:
            fix.append(f"pass allow_config_change={','.join(harmless)!r} to resume with "
                       f"the new {', '.join(harmless)}")
        where = f"{path} was" if path is not None else "The checkpoint was"
        fix = "; ".join(fix)
        raise ValueError(f"{where} trained with another config: {listed}. "
                         f"{fix[:1].upper()}{fix[1:]}.")
    return changed


# --------------------------------------------------------------------------- corpus
def prepare_corpus(corpus, prepared, *, vocab_size=4096, tokenizer=None, val_fraction=0.05,
                   seed=0) -> Path:
    """Tokenise a folder of ``.txt`` documents once into memory-mapped token files.

    Writes ``train.bin`` and ``val.bin`` (uint16 or uint32 token ids, documents separated
    by ``<|endoftext|>``), ``tokenizer.json`` and ``meta.json`` in ``prepared``. Whole
    documents go to the validation split (a seeded ``val_fraction`` of them). A second
    call with the same corpus and options returns at once.
    """
    corpus, prepared = Path(corpus), Path(prepared)
    files = sorted(corpus.glob("*.txt"))
    if not files:
        raise FileNotFoundError(
            f"No .txt documents in {corpus}. Run `python scripts/get_corpus.py` first."
        )
    key = {"corpus": hash_files(files, names=True)[:16], "vocab_size": vocab_size,
           "tokenizer": None if tokenizer is None else str(tokenizer),
           "val_fraction": val_fraction, "seed": seed}
    meta_path = prepared / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return prepared
    prepared.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(tokenizer) if tokenizer else train_tokenizer(files, vocab_size)
    eot = tok.token_to_id(EOT)
    if eot is None:
        eot = tok.get_vocab_size() - 1
    rng = np.random.default_rng(seed)
    is_val = rng.random(len(files)) < val_fraction
    if len(files) > 1 and val_fraction > 0 and not is_val.any():
        is_val[rng.integers(len(files))] = True  # few documents: still one to validate on
    if is_val.all() and len(files) > 1:
        is_val[rng.integers(len(files))] = False
    dtype = np.uint16 if tok.get_vocab_size() < 2**16 else np.uint32
    texts = [f.read_text(encoding="utf-8") for f in files]
    encoded = tok.encode_batch(texts)
    counts = {}
    for split, flag in (("train", False), ("val", True)):
        ids = []
        for enc, v in zip(encoded, is_val, strict=True):
            if v == flag:
                ids.extend(enc.ids)
                ids.append(eot)
        arr = np.asarray(ids, dtype=dtype)
        atomic_write_bytes(prepared / f"{split}.bin", arr.tobytes())
        counts[split] = int(arr.size)
    atomic_write_text(prepared / "tokenizer.json", tok.to_str())
    meta = {"key": key, "dtype": np.dtype(dtype).name, "vocab_size": tok.get_vocab_size(),
            "eot_id": eot, "n_tokens": counts,
            "n_documents": {"train": int((~is_val).sum()), "val": int(is_val.sum())}}
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    return prepared


def _unigram_loss(train: np.ndarray, val: np.ndarray, vocab: int) -> float:
    """Cross-entropy (nats) of a unigram model fitted on train, on val (add-one)."""
    counts = np.bincount(train, minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[val].mean())


# --------------------------------------------------------------------------- loop
def _lr_at(step, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    frac = min(max(frac, 0.0), 1.0)
    cosine = 0.5 * (1 + math.cos(math.pi * frac))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def _batch(data: np.ndarray, rng: np.random.Generator, batch_size: int, block: int):
    starts = rng.integers(0, data.size - block - 1, size=batch_size)
    x = np.stack([data[s : s + block] for s in starts]).astype(np.int64)
    y = np.stack([data[s + 1 : s + 1 + block] for s in starts]).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def build_sheets(gcfg: GPTConfig, layout_seed: int, *,
                 identity: tuple[str, ...] = ()) -> dict[str, CorticalSheet]:
    """One seeded permuted sheet per spatial layer (TopoLM's layout).

    Layers named in ``identity`` get the identity (row-major) layout instead: the layout
    in which TopoLoss smooths the weight rows of the module that produces them.
    """
    seeds = np.random.SeedSequence(layout_seed).spawn(len(gcfg.layer_names))
    return {
        name: CorticalSheet(gcfg.sheet_shape, layout="identity", name=name)
        if name in identity else
        CorticalSheet(gcfg.sheet_shape, layout="permuted", seed=np.random.default_rng(s),
                      name=name)
        for name, s in zip(gcfg.layer_names, seeds, strict=True)
    }


def topoloss_layers(scfg: SpatialConfig, gcfg: GPTConfig) -> tuple[str, ...]:
    """The sheet layers whose producing module carries TopoLoss (none for other losses)."""
    if scfg.kind != "topoloss":
        return ()
    kinds = {_TOPOLOSS_SHEETS[m] for m in scfg.modules if m in _TOPOLOSS_SHEETS}
    return tuple(name for name in gcfg.layer_names if name.rsplit(".", 1)[-1] in kinds)


def spatial_loss(model: TopoGPT, acts: dict, sheets: dict, scfg: SpatialConfig,
                 generator: torch.Generator) -> torch.Tensor:
    """The configured spatial loss summed over layers (before the weight alpha)."""
    if scfg.kind == "correlation":
        total = 0.0
        for name, a in acts.items():
            pos = torch.from_numpy(np.array(sheets[name].positions))
            total = total + correlation_loss(
                a, pos, sheets[name].shape, radius=scfg.radius,
                n_neighbourhoods=scfg.n_neighbourhoods, inclusive=scfg.inclusive,
                distance=scfg.distance, generator=generator)
        return total
    if scfg.kind == "topoloss":
        total = 0.0
        for name, p in model.named_parameters():
            if name.endswith(".weight") and any(name.endswith(m + ".weight") for m in scfg.modules):
                total = total + topoloss(p, phi=scfg.phi, tau=scfg.tau)
        return total
    raise ValueError(f"Unknown spatial loss kind {scfg.kind!r}; use 'correlation' or 'topoloss'.")


@torch.no_grad()
def _evaluate(model, val, cfg, block, device, n_batches) -> float:
    model.eval()
    rng = np.random.default_rng(12345)  # the same validation batches every time
    losses = []
    for _ in range(n_batches):
        x, y = _batch(val, rng, cfg.batch_size, block)
        losses.append(float(model(x.to(device), y.to(device))))
    model.train()
    return float(np.mean(losses))


def train(config: TrainConfig | dict | str | os.PathLike, *,
          allow_config_change: Iterable[str] | str = ()) -> Path:
    """Train (or resume) a topographic GPT and export it as a model folder.

    A run whose ``<out>/checkpoint.pt`` exists resumes from it, exactly, after its config
    is compared with the checkpoint's: any difference is refused (one line listing the
    keys, old and new values), except the keys named in ``allow_config_change``.

    Parameters
    ----------
    config : TrainConfig, dict or path to a YAML file
    allow_config_change : iterable of str or str, default=()
        Keys that may differ from the checkpoint's config on resume, among
        :data:`RESUMABLE_CHANGES` (``max_steps``, ``eval_interval``, ``eval_batches``,
        ``checkpoint_interval``, ``threads``, ``device``, ``save_dtype``, ``name``); a
        comma-separated string works too. The model card lists every resume under
        ``resumes`` (step and the changed keys with old and new values).

    Returns
    -------
    pathlib.Path
        The exported model folder, ``<out>/model``.

    Raises
    ------
    ValueError
        For a config that differs from the checkpoint's beyond ``allow_config_change``,
        or a checkpoint that does not fit the configured model.
    """
    from tqdm.auto import tqdm

    from .checkpoint import save_model

    if isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    elif isinstance(config, TrainConfig):  # checked like a file's, and copied
        config = TrainConfig.from_dict(dataclasses.asdict(config))
    else:
        raise TypeError(f"config must be a TrainConfig, a dict or the path of a YAML file; "
                        f"got {type(config).__name__}.")
    cfg = config
    scfg = cfg.spatial_config
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    state, changed = None, {}
    allow = _check_allowed(allow_config_change)
    if ckpt_path.exists():  # compared before any corpus work: a refused resume is quick
        state = _load_checkpoint(ckpt_path)
        changed = resume_changes(state.get("config"), cfg, allow=allow, path=ckpt_path)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = check_device(cfg.device, parameter="device")
    if world > 1:
        import torch.distributed as dist

        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)

    prepared = Path(cfg.prepared)
    if rank == 0:
        prepare_corpus(cfg.corpus, prepared, vocab_size=cfg.vocab_size, tokenizer=cfg.tokenizer,
                       val_fraction=cfg.val_fraction, seed=cfg.seed)
    if world > 1:
        torch.distributed.barrier()
    meta = json.loads((prepared / "meta.json").read_text())
    train_data = np.memmap(prepared / "train.bin", dtype=meta["dtype"], mode="r")
    val_data = np.memmap(prepared / "val.bin", dtype=meta["dtype"], mode="r")

    gcfg = GPTConfig.from_dict({**cfg.model, "vocab_size": meta["vocab_size"]})
    for split, arr in (("train", train_data), ("validation", val_data)):
        if arr.size < gcfg.block_size + 2:
            raise ValueError(
                f"The {split} split of {prepared} has {arr.size} tokens, fewer than one "
                f"context of {gcfg.block_size} + 2: add documents to {cfg.corpus} or change "
                f"val_fraction ({cfg.val_fraction})."
            )
    torch.manual_seed(cfg.seed)
    model = TopoGPT(gcfg).to(device)
    sheets = build_sheets(gcfg, cfg.layout_seed, identity=topoloss_layers(scfg, gcfg))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=tuple(cfg.betas))
    rng = np.random.default_rng([cfg.seed, rank])
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    step, history = 0, {"step": [], "tokens": [], "train_loss": [], "spatial_loss": [],
                        "val_step": [], "val_loss": [], "seconds": 0.0}
    resumes = []
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = " ".join(str(exc).split())[:300]
            raise ValueError(
                f"{ckpt_path} does not fit the configured model ({first}); resume with the "
                f"config it was trained with, or train a new run into another folder (out=)."
            ) from None
        rng_state, gen_state = state["rng"], state["torch_rng"]
        if isinstance(rng_state, list):  # one state per process (data parallel)
            if len(rng_state) != world:
                raise ValueError(
                    f"{ckpt_path} was written by {len(rng_state)} processes; resume it with "
                    f"the same number (torchrun --nproc_per_node {len(rng_state)}) or "
                    f"delete it to restart from step 0."
                )
            rng_state, gen_state = rng_state[rank], gen_state[rank]
        rng.bit_generator.state = rng_state
        gen.set_state(gen_state)
        if "torch_global_rng" in state:  # dropout draws from torch's global generator
            torch.set_rng_state(state["torch_global_rng"])
            if device.type == "cuda" and "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
        step, history = state["step"], state["history"]
        resumes = [*state.get("resumes", []), {"step": step, "changed": changed}]
        if rank == 0:
            logger.info("resuming %s from step %d%s", cfg.name, step,
                        f" with {', '.join(f'{k} {a} -> {b}' for k, (a, b) in changed.items())}"
                        if changed else "")

    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    tokens_per_step = cfg.batch_size * gcfg.block_size * world
    bar = tqdm(total=cfg.max_steps, initial=step, disable=(cfg.verbose == 0 or rank != 0),
               desc=cfg.name, dynamic_ncols=True)
    t0 = time.perf_counter()
    seconds0 = history["seconds"]
    model.train()
    shown_spatial = float("nan")
    while step < cfg.max_steps:
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        x, y = _batch(train_data, rng, cfg.batch_size, gcfg.block_size)
        x, y = x.to(device), y.to(device)
        with autocast:
            if scfg.kind == "correlation":
                task, acts = train_model(x, y, return_activations=True)
            else:
                task, acts = train_model(x, y), None
            if scfg.alpha > 0:
                sp_loss = spatial_loss(model, acts, sheets, scfg, gen)
                loss = task + scfg.alpha * sp_loss
            else:
                # the control: the spatial loss is only monitored, every 10th step
                loss = task
                if step % 10 == 0:
                    with torch.no_grad():
                        sp_loss = spatial_loss(model, {k: v.detach() for k, v in acts.items()}
                                               if acts else None, sheets, scfg, gen)
                else:
                    sp_loss = torch.tensor(float("nan"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        history["step"].append(step)
        history["tokens"].append(step * tokens_per_step)
        history["train_loss"].append(task.item())
        history["spatial_loss"].append(float(sp_loss.detach()))
        bar.update(1)
        if np.isfinite(history["spatial_loss"][-1]):  # the control monitors every 10th step
            shown_spatial = history["spatial_loss"][-1]
        bar.set_postfix(task=f"{history['train_loss'][-1]:.3f}", spatial=f"{shown_spatial:.3f}")
        if rank == 0 and (step % cfg.eval_interval == 0 or step == cfg.max_steps):
            v = _evaluate(model, val_data, cfg, gcfg.block_size, device, cfg.eval_batches)
            history["val_step"].append(step)
            history["val_loss"].append(v)
            logger.info("%s step %d val %.4f", cfg.name, step, v)
        if step % cfg.checkpoint_interval == 0 or step == cfg.max_steps:
            rng_states, gen_states = rng, gen
            if world > 1:  # every process's data order and centres, so that all resume
                rng_states, gen_states = [None] * world, [None] * world
                torch.distributed.all_gather_object(rng_states, rng.bit_generator.state)
                torch.distributed.all_gather_object(gen_states, gen.get_state())
            if rank == 0:
                history["seconds"] = seconds0 + time.perf_counter() - t0
                _save_checkpoint(ckpt_path, model, opt, rng_states, gen_states, step,
                                 history, cfg, resumes=resumes)
    bar.close()
    if world > 1:
        torch.distributed.barrier()
    export = out / "model"
    if rank == 0:
        history["seconds"] = seconds0 + time.perf_counter() - t0
        unigram = _unigram_loss(np.asarray(train_data), np.asarray(val_data), meta["vocab_size"])
        card = {
            "name": cfg.name,
            "training": dataclasses.asdict(cfg),
            "spatial_loss": dataclasses.asdict(scfg),
            "data": {"corpus": str(cfg.corpus), **{k: meta[k] for k in ("n_tokens", "n_documents")},
                     "sources": _corpus_sources(cfg.corpus)},
            "tokens_seen": step * tokens_per_step,
            "steps": step,
            "train_seconds": history["seconds"],
            "final_val_loss": history["val_loss"][-1] if history["val_loss"] else None,
            "unigram_val_loss": unigram,
            "history": history,
            # every resume: the step, and the config keys changed then (old, new)
            "resumes": resumes,
        }
        save_model(export, model, sheets, load_tokenizer(prepared / "tokenizer.json"), card,
                   dtype=cfg.save_dtype)
    if world > 1:
        torch.distributed.barrier()
    return export


def _corpus_sources(corpus) -> dict | None:
    p = Path(corpus) / "SOURCES.json"
    return json.loads(p.read_text()) if p.exists() else None


def _save_checkpoint(path, model, opt, rng, gen, step, history, cfg, *, resumes=()):
    import io

    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "rng": rng if isinstance(rng, list) else rng.bit_generator.state,
             "torch_rng": gen if isinstance(gen, list) else gen.get_state(),
             "torch_global_rng": torch.get_rng_state(), "step": step,
             "history": history, "config": dataclasses.asdict(cfg),
             "resumes": list(resumes)}
    if torch.cuda.is_available() and next(model.parameters()).is_cuda:
        state["cuda_rng"] = torch.cuda.get_rng_state(next(model.parameters()).device)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"Training checkpoint {path} is truncated or corrupt ({exc}). Delete it to "
            f"restart the run from step 0."
        ) from exc
