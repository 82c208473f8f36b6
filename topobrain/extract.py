"""Activation harness: a model and a stimulus set in, per-layer unit responses out.

:func:`extract` runs every item of a stimulus set through a
:class:`~topobrain.models.SheetModel`, pools each item's token activations into one
response per unit, and returns :class:`~topobrain.activations.Activations`: for each
sheet layer an ``(n_items, n_units)`` float64 array labelled with item ids, conditions,
and each unit's ``(row, col)`` on its :class:`~topobrain.sheet.CorticalSheet`.

Results are cached on disk, keyed by the model's identity, the stimuli, the tokens fed
and every option that changes the responses, and an interrupted run resumes from its
partial files. A damaged cache file is dropped with a warning and recomputed.

This module imports torch only inside :func:`extract`. :class:`Activations` lives in
:mod:`topobrain.activations` (no torch) and is re-exported here.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import shutil
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ._utils._hashing import hash_arrays, hash_json
from ._utils._io import atomic_write_bytes
from ._utils._validation import check_device, check_option, suggest
from .activations import Activations, _as_1d, _from_npz, _npz_bytes, load_activations

__all__ = ["Activations", "extract", "load_activations", "default_cache_dir", "POOLINGS"]

logger = logging.getLogger("topobrain")

Pooling = Literal["mean", "last", "first", "sum"]
POOLINGS: tuple[str, ...] = ("mean", "last", "first", "sum")

_CACHE_FORMAT = 2


# =========================================================================== inputs
@dataclass(frozen=True)
class _Items:
    texts: list
    item_ids: np.ndarray
    conditions: np.ndarray | None
    identity: str
    name: str


def _hash_items(texts, ids, conditions) -> str:
    return hash_json([list(texts), [str(i) for i in ids],
                      None if conditions is None else [str(c) for c in conditions]])[:20]


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
def _cache_key(model, items: _Items, layers, sheets, pooling_name, bos_id,
               tokens_digest: str) -> str:
    """The content key of one extraction: everything that changes its numbers.

    The model's identity (its loader hashes weights, config, positions, tokenizer and
    sheet spec), the dtype its parameters are in now, the context length, the stimuli,
    the token ids actually fed (after truncation: this sees the tokenizer that ran), the
    layers and their sheets, the pooling and the BOS token. Not the batch size or the
    device, which change results only at float32 rounding.
    """
    record = {"format": _CACHE_FORMAT, "model": str(model.identity),
              "dtype": _model_dtypes(model), "context_length": int(model.context_length),
              "stimuli": items.identity, "tokens": tokens_digest, "layers": list(layers),
              "sheets": {k: [list(sheets[k].shape), hash_arrays(sheets[k].positions)]
                         for k in layers},
              "pooling": pooling_name, "bos": None if bos_id is None else int(bos_id),
              "readout": None}  # readout smoothing runs after the cache, on its result
    return hash_json(record)[:24]


def _model_dtypes(model) -> list[str]:
    """The dtypes of the model's parameters (a model cast to float16 computes otherwise)."""
    module = getattr(model, "module", None)
    params = getattr(module, "parameters", None)
    if params is None:
        return []
    return sorted({str(p.dtype) for p in params()})


def _tokens_digest(token_lists, lengths) -> str:
    """A hash of the token ids each item feeds the model (truncated to ``lengths``)."""
    flat = np.fromiter(itertools.chain.from_iterable(
        t[:n] for t, n in zip(token_lists, lengths, strict=True)), dtype=np.int64)
    return hash_arrays(np.asarray(lengths, dtype=np.int64), flat)


def _cached(path: Path, key: str, layers, items: _Items, n_units) -> Activations | None:
    """The cached result at ``path``, or None; a damaged or foreign file is dropped.

    Damage (a truncated or overwritten file, wrong shapes, other items or layers than
    the key promises) is reported with a warning naming the file, which is deleted so
    that the run recomputes and rewrites it.
    """
    try:
        hit = _from_npz(path)
    except ValueError as exc:
        cause = exc.__cause__
        problem = f"unreadable: {type(cause).__name__}: {cause}" if cause else str(exc)
    else:
        problem = None
        if hit.params.get("cache_key") != key:
            problem = "its key does not match its name"
        elif hit.layers != list(layers):
            problem = f"it holds layers {hit.layers}, not {list(layers)}"
        elif hit.n_items != len(items.texts) or [str(i) for i in hit.item_ids] != [
                str(i) for i in items.item_ids]:
            problem = "it holds other items"
        else:
            for layer in layers:
                if hit[layer].shape != (len(items.texts), n_units[layer]):
                    problem = f"layer {layer!r} has shape {hit[layer].shape}"
                    break
        if problem is None:
            return hit
    warnings.warn(f"Dropping the damaged activation cache file {path} ({problem}); the "
                  f"activations are recomputed and the file rewritten.", UserWarning,
                  stacklevel=3)
    try:
        path.unlink()
    except OSError as exc:
        logger.warning("could not delete the damaged cache file %s (%s)", path, exc)
    return None


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
        run and moved back afterwards. A device this machine lacks is refused before any
        work (:func:`topobrain._utils._validation.check_device`).
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
        When a cache file is damaged (it is deleted and the activations recomputed).

    Notes
    -----
    Items are sorted by length before batching so that batches carry little padding;
    padding sits at the end of each row and is masked in attention and pooling. The
    cache key hashes the model's identity (weights, config, positions, tokenizer and
    sheet spec, as its loader computes it), the dtype of its parameters, its context
    length, the stimuli's identity, the token ids fed after truncation, the layers and
    their sheet positions, the pooling and the BOS token; batch size and device are not
    part of it. Readout smoothing (:func:`topobrain.readout.smooth`) runs on the result,
    after the cache. A damaged cache file is dropped with a warning and recomputed.
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
    dev = check_device(device)  # a device this machine lacks fails here, not mid-run
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
    key = (_cache_key(model, items, layer_names, sheets, key_pooling, bos_id,
                      _tokens_digest(token_lists, lengths)) if use_cache else None)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final_path = root / "activations" / f"{key}.npz"
    partial_dir = root / "activations" / f"{key}.partial"
    if use_cache and final_path.exists():
        hit = _cached(final_path, key, layer_names, items, n_units)
        if hit is not None:
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
                     n_units, pooling, results, dev, tqdm, verbose,
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
                 n_units, pooling, results, dev, tqdm, verbose, checkpoint):
    import torch

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
