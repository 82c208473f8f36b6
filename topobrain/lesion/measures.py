"""What a lesion costs: surprisal per item, loss on held-out text, minimal-pair accuracy.

Every measure reduces to one engine, :func:`score_sequences`: the summed negative
log-probability (nats) of each sequence's tokens after its first, for the unlesioned
model and any number of lesions at once. Two things make many lesions cheap:

- *prefix sharing*: the blocks before the first lesioned one give the same residual
  stream under every lesion; they run once per batch of items and their output is
  reused (TopoGPT models; Hugging Face models run the full forward);
- *batched lesions*: the lesions of one pass are stacked along the batch dimension and
  the hooks edit each lesion's rows (:mod:`topobrain.lesion._interventions`).

References
----------
Rathi, N. et al. (2025). TopoLM: brain-like spatio-functional organization in a
topographic language model. ICLR 2025 (eval/ablate.py: summed surprisal, the first
token as context, no BOS).
Warstadt, A. et al. (2020). BLiMP: The Benchmark of Linguistic Minimal Pairs for
English. TACL 8, 377-392.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._interventions import (
    Lesion,
    Mode,
    _batched_hooks,
    _check_lesion_layers,
    check_means,
    lesion_tensors,
)

__all__ = ["Scores", "score_sequences", "item_surprisal", "text_loss", "text_windows",
           "minimal_pair_accuracy", "reference_means", "tokenize_items"]

logger = logging.getLogger("topobrain")

NONE = Lesion({}, name="none", kind="none")


@dataclass(frozen=True)
class Scores:
    """Summed surprisal of sequences under several lesions.

    Attributes
    ----------
    nats : ndarray of float64, shape (n_lesions, n_sequences)
        Sum over each sequence's scored tokens of ``-log p(token | earlier tokens)``,
        in nats.
    n_tokens : ndarray of int, shape (n_sequences,)
        Scored tokens per sequence (its length minus one).
    lesions : tuple of str
        Lesion names, in row order.
    pooled : dict of str to ndarray of shape (n_lesions, n_sequences, n_units)
        Mean response over each sequence's own tokens (BOS excluded) in the captured
        layers, under each lesion; empty unless requested.
    params : dict
        ``bos``, ``mode``, ``truncated`` (items cut to the context), ``shared_blocks``.
    """

    nats: np.ndarray
    n_tokens: np.ndarray
    lesions: tuple
    pooled: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"Scores({len(self.lesions)} lesions x {self.nats.shape[1]} sequences, "
                f"{int(self.n_tokens.sum())} scored tokens)")


def tokenize_items(model, texts: Sequence[str], *, bos: bool = False) -> tuple[list, int]:
    """Token ids of each text, BOS prepended when asked, cut to the model's context.

    Returns
    -------
    sequences : list of list of int
    n_truncated : int
        How many items were longer than the context (they keep their first tokens).
    """
    bos_id = None
    if bos:
        bos_id = getattr(model, "bos_token_id", None)
        if bos_id is None:
            raise ValueError(f"bos=True but {model.name!r} has no BOS token; use bos=False.")
    ctx = int(model.context_length)
    out, cut = [], 0
    for ids in model.tokenize(list(texts)):
        seq = ([bos_id] if bos else []) + list(ids)
        if len(seq) > ctx:
            cut += 1
            seq = seq[:ctx]
        out.append(seq)
    return out, cut


def _first_block(layer: str) -> int | None:
    parts = layer.split(".")
    if len(parts) >= 3 and parts[0] == "layer" and parts[1].isdigit():
        return int(parts[1])
    return None


def _prefix_plan(model, touched: list[str]):
    """(block index where the unshared part starts, the TopoGPT) or (0, None)."""
    from ..models.gpt import TopoGPT

    gpt = model.module
    if not isinstance(gpt, TopoGPT) or not touched:
        return 0, None
    blocks = [_first_block(k) for k in touched]
    if any(b is None for b in blocks):
        return 0, None
    return min(blocks), gpt


class _Stop(Exception):
    pass


def _gpt_prefix(gpt, ids, mask, start: int):
    """Residual stream entering block ``start`` and the attention mask the model built."""
    got = {}

    def pre(_m, args):
        got["x"] = args[0]
        got["mask"] = args[1] if len(args) > 1 else None
        raise _Stop

    h = gpt.transformer.h[start].register_forward_pre_hook(pre)
    try:
        gpt(ids, attention_mask=mask)
    except _Stop:
        pass
    finally:
        h.remove()
    return got["x"], got["mask"]


def _gpt_suffix(gpt, x, mask, start: int):
    for block in gpt.transformer.h[start:]:
        x = block(x, mask)[0]
    return gpt.lm_head(gpt.transformer.ln_f(x))


def _logits(model, ids, mask):
    from ..models.gpt import TopoGPT

    if isinstance(model.module, TopoGPT):
        return model.module(ids, attention_mask=mask)
    kwargs = {"input_ids": ids, "use_cache": False}
    if mask is not None:
        kwargs["attention_mask"] = mask.long()
    return model.module(**kwargs).logits


def _batches(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    out, cur, width = [], [], 0
    for i in order:
        w = max(width, int(lengths[i]))
        if cur and w * (len(cur) + 1) > max_tokens:
            out.append(np.array(cur))
            cur, w = [], int(lengths[i])
        cur.append(int(i))
        width = w
    if cur:
        out.append(np.array(cur))
    return out


def score_sequences(model, sequences: Sequence[Sequence[int]], lesions: Sequence[Lesion] = (),
                    *, mode: Mode = "zero", means: Mapping[str, np.ndarray] | None = None,
                    capture: Sequence[str] = (), offset: int = 0, share_prefix: bool = True,
                    lesions_per_pass: int | None = None, max_tokens: int | None = None,
                    verbose: int = 1) -> Scores:
    """Summed surprisal of token sequences under each lesion (the engine of all measures).

    Parameters
    ----------
    model : SheetModel
    sequences : list of list of int
        Token ids, each no longer than the context; every token after a sequence's first
        is scored given the earlier ones.
    lesions : list of Lesion
        Scored in this order; an empty lesion (or ``[]``) is the unlesioned model.
    mode : {"zero", "mean"}, default="zero"
    means : mapping of str to ndarray of shape (n_units,), optional
        Reference means for ``mode="mean"``.
    capture : list of str
        Sheet layers whose responses are pooled (mean over each sequence's tokens from
        ``offset`` on) under every lesion, e.g. to redo the localizer after a lesion.
    offset : int, default=0
        Leading tokens (a BOS) excluded from the pooled responses.
    share_prefix : bool, default=True
        Run the blocks before the first lesioned block once per batch (TopoGPT models).
        ``False`` gives the plain hooked forward, for benchmarks and checks.
    lesions_per_pass : int, optional
        Lesions stacked in one forward (default: as many as ``max_tokens`` allows).
    max_tokens : int, optional
        Tokens per forward, lesions times items times time steps (default: logits of
        about 64 MB).
    verbose : int, default=1
        0 silences the progress bar.

    Returns
    -------
    Scores
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    lesions = list(lesions) or [NONE]
    for les in lesions:
        if not isinstance(les, Lesion):
            raise TypeError(f"lesions must be Lesion objects; got {type(les).__name__}.")
        _check_lesion_layers(model, les)
    means = check_means(model, lesions, mode, means)
    capture = list(capture)
    for layer in capture:
        if layer not in model.sheets:
            raise ValueError(f"capture names layer {layer!r}, which {model.name!r} does not "
                             f"have; its layers: {model.layer_names}.")
    seqs = [list(map(int, s)) for s in sequences]
    if not seqs:
        raise ValueError("No sequences to score.")
    lengths = np.array([len(s) for s in seqs])
    if lengths.min() < 1:
        raise ValueError("Every sequence needs at least one token.")
    if lengths.max() > model.context_length:
        raise ValueError(f"A sequence has {lengths.max()} tokens, more than the context "
                         f"({model.context_length}); cut it with tokenize_items().")
    vocab = int(model.vocab_size)
    if max_tokens is None:
        max_tokens = max(512, int(2 ** 26 // (4 * vocab)))
    n_les = len(lesions)
    device = model.device
    touched = [k for k in model.layer_names if any(k in les.units for les in lesions)]
    start, gpt = _prefix_plan(model, touched + capture) if share_prefix else (0, None)
    if gpt is not None and start == 0:
        gpt = None
    masks, values = lesion_tensors(model, lesions, mode, means, device=device)
    nats = np.zeros((n_les, len(seqs)))
    pooled = {k: np.zeros((n_les, len(seqs), model.sheets[k].n_units)) for k in capture}
    pad = int(getattr(model, "pad_token_id", 0) or 0)
    batches = _batches(lengths, max(int(lengths.max()), max_tokens // max(1, min(n_les, 8))))
    module = model.module
    was_training = module.training
    module.eval()
    bar = tqdm(total=len(batches) * n_les, disable=verbose == 0, unit="lesion",
               desc=f"lesions {model.name}", dynamic_ncols=True)
    try:
        with torch.inference_mode():
            for batch in batches:
                n_tok = lengths[batch]
                width = int(n_tok.max())
                ids_np = np.full((batch.size, width), pad, dtype=np.int64)
                for r, i in enumerate(batch):
                    ids_np[r, :n_tok[r]] = seqs[i]
                ids = torch.from_numpy(ids_np).to(device)
                valid = np.arange(width)[None, :] < n_tok[:, None]
                amask = torch.from_numpy(valid).to(device) if not valid.all() else None
                # next-token targets, -1 (ignored) where nothing is predicted
                tgt_np = np.full((batch.size, width), -1, dtype=np.int64)
                tgt_np[:, :-1] = np.where(valid[:, 1:], ids_np[:, 1:], -1)
                tgt = torch.from_numpy(tgt_np).to(device)
                if gpt is not None:
                    x0, m0 = _gpt_prefix(gpt, ids, amask, start)
                per = lesions_per_pass or max(1, max_tokens // (batch.size * width))
                for lo in range(0, n_les, per):
                    hi = min(n_les, lo + per)
                    k = hi - lo
                    sub_m = {n: m[lo:hi] for n, m in masks.items()}
                    sub_v = {n: (v if v.shape[0] == 1 else v[lo:hi]) for n, v in values.items()}
                    sinks = {n: [] for n in capture}
                    with _batched_hooks(model, sub_m, sub_v, k, sinks):
                        if gpt is not None:
                            x = x0.repeat(k, 1, 1)
                            m = None if m0 is None else m0.repeat(k, 1, 1, 1)
                            logits = _gpt_suffix(gpt, x, m, start)
                        else:
                            logits = _logits(model, ids.repeat(k, 1),
                                             None if amask is None else amask.repeat(k, 1))
                    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                          tgt.repeat(k, 1).reshape(-1), ignore_index=-1,
                                          reduction="none")
                    nats[lo:hi, batch] = nll.view(k, batch.size, width).double().sum(-1).cpu(
                    ).numpy()
                    if capture:
                        keep = torch.from_numpy(valid & (np.arange(width)[None, :] >= offset))
                        keep = keep.to(device)
                        cnt = keep.sum(1).clamp(min=1).double()
                        for n in capture:
                            a = sinks[n][-1].double().view(k, batch.size, width, -1)
                            s = (a * keep[None, :, :, None]).sum(2) / cnt[None, :, None]
                            pooled[n][lo:hi, batch] = s.cpu().numpy()
                    bar.update(k)
    finally:
        bar.close()
        if was_training:
            module.train()
    return Scores(nats=nats, n_tokens=np.maximum(lengths - 1, 0), lesions=tuple(
        les.name for les in lesions), pooled=pooled,
        params={"mode": mode, "shared_blocks": start if gpt is not None else 0,
                "share_prefix": share_prefix})


def item_surprisal(model, texts: Sequence[str], lesions: Sequence[Lesion] = (), *,
                   mode: Mode = "zero", means=None, bos: bool = False, capture=(),
                   verbose: int = 1, **engine) -> Scores:
    """Surprisal of each item (nats) under each lesion.

    The surprisal of an item is the sum over its tokens after the first of
    ``-log p(token | the item's earlier tokens)``, in nats; the item is cut to the
    model's context, and no BOS is prepended unless ``bos=True`` (then the first token is
    scored too, given the BOS). This is how TopoLM's ablation script scores.

    Parameters
    ----------
    model : SheetModel
    texts : list of str
    lesions : list of Lesion
    mode, means
        See :func:`score_sequences`.
    bos : bool, default=False
    capture : list of str
        Layers whose pooled responses are returned (see :func:`score_sequences`).
    verbose : int, default=1
    **engine
        ``share_prefix``, ``lesions_per_pass``, ``max_tokens``.

    Returns
    -------
    Scores
        ``nats`` of shape (n_lesions, n_items); ``params["truncated"]`` counts cut items.
    """
    seqs, cut = tokenize_items(model, texts, bos=bos)
    if cut:
        logger.warning("%d items are longer than the context (%d tokens) and were cut",
                       cut, model.context_length)
    s = score_sequences(model, seqs, lesions, mode=mode, means=means, capture=capture,
                        offset=1 if bos else 0, verbose=verbose, **engine)
    return Scores(nats=s.nats, n_tokens=s.n_tokens, lesions=s.lesions, pooled=s.pooled,
                  params={**s.params, "bos": bos, "truncated": cut})


def text_windows(model, text: str, *, max_windows: int | None = None) -> list[list[int]]:
    """A held-out text as consecutive, non-overlapping windows of the context length.

    The last window keeps what is left when it has at least two tokens.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__}. Read the file first.")
    ids = model.tokenize([text])[0]
    ctx = int(model.context_length)
    wins = [ids[i:i + ctx] for i in range(0, len(ids), ctx)]
    wins = [w for w in wins if len(w) >= 2]
    if not wins:
        raise ValueError("The held-out text has fewer than two tokens; give a longer text.")
    return wins[:max_windows] if max_windows else wins


def text_loss(model, text: str, lesions: Sequence[Lesion] = (), *, mode: Mode = "zero",
              means=None, max_windows: int | None = None, verbose: int = 1,
              **engine) -> np.ndarray:
    """Mean next-token loss per token (nats) on a held-out text, under each lesion.

    The text is cut into non-overlapping windows of the context length; every token of a
    window after its first is predicted from the window's earlier tokens.

    Returns
    -------
    ndarray of float64, shape (n_lesions,)
    """
    s = score_sequences(model, text_windows(model, text, max_windows=max_windows), lesions,
                        mode=mode, means=means, verbose=verbose, **engine)
    return s.nats.sum(1) / s.n_tokens.sum()


def minimal_pair_accuracy(model, pairs, lesions: Sequence[Lesion] = (), *,
                          mode: Mode = "zero", means=None, bos: bool = False,
                          verbose: int = 1, **engine):
    """Minimal-pair accuracy: a pair is right when the good sentence is less surprising.

    Parameters
    ----------
    model : SheetModel
    pairs : MinimalPairs or DataFrame
        Columns ``pair_id``, ``good``, ``bad`` and ``phenomenon`` (see
        :func:`topobrain.stimuli.load_minimal_pairs`).
    lesions, mode, means, bos, verbose, **engine
        As in :func:`item_surprisal`.

    Returns
    -------
    accuracy : ndarray of float64, shape (n_lesions,)
        Share of pairs right (ties, equal surprisal, count as wrong).
    good, bad : Scores
        Surprisal of the good and bad sentences (``nats`` of shape (n_lesions, n_pairs)).
    """
    frame = pairs.to_frame() if hasattr(pairs, "to_frame") else pairs
    for col in ("good", "bad"):
        if col not in frame:
            raise ValueError(f"Minimal pairs need a {col!r} column; got {list(frame.columns)}.")
    texts = list(frame["good"]) + list(frame["bad"])
    s = item_surprisal(model, texts, lesions, mode=mode, means=means, bos=bos,
                       verbose=verbose, **engine)
    n = len(frame)
    good = Scores(s.nats[:, :n], s.n_tokens[:n], s.lesions, params=s.params)
    bad = Scores(s.nats[:, n:], s.n_tokens[n:], s.lesions, params=s.params)
    return (good.nats < bad.nats).mean(1), good, bad


def reference_means(model, stimuli, *, layers=None, bos: bool = False, batch_size: int = 32,
                    cache: bool = True, verbose: int = 1) -> dict[str, np.ndarray]:
    """Mean response of every unit over a reference set: the value of a mean ablation.

    Each item's response is its mean over the item's tokens (the localizer's pooling);
    the reference mean is the average of those over items.

    Returns
    -------
    dict of str to ndarray of float64, shape (n_units,)
    """
    from ..extract import extract

    acts = extract(model, stimuli, layers=layers, pooling="mean", bos=bos,
                   batch_size=batch_size, cache=cache, verbose=verbose)
    return {k: np.asarray(acts[k], dtype=np.float64).mean(0) for k in acts.layers}
