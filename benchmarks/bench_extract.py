"""Benchmark: extraction wall time over the raw model forward on the same batches.

Model of the bundled size (4 blocks, 4 heads, 16 x 16 sheet = width 256, vocabulary
4,096, context 128; random init), 480 items of 12 words, batch size 32. The raw
forward runs the torch module on exactly the padded batches (and attention masks) that
the harness builds, so the ratio is the harness's own cost: tokenisation, batching,
pooling, conversion to float64, labels. Goal: <= 1.15.

Also printed: the cost of a cached second run relative to the first.

Timings alternate raw forward and harness five times (one torch thread; the GPU when
there is one); the ratio of the minima is the harness's cost. Run:
``.venv/bin/python benchmarks/bench_extract.py``
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from topobrain._utils._hashing import hash_bytes
from topobrain.extract import extract
from topobrain.models.gpt import GPTConfig, TopoGPT
from topobrain.models.loaders import sheet_model_from_topogpt
from topobrain.models.tokenizer import train_tokenizer
from topobrain.models.train import build_sheets

N_ITEMS, N_WORDS, BATCH, REPEATS = 480, 12, 32, 5
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def make_words(n=6000):
    try:
        from wordfreq import top_n_list

        return top_n_list("en", n)
    except ImportError:  # pragma: no cover - a reproducible pseudo-vocabulary
        rng = np.random.default_rng(1)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        return ["".join(rng.choice(letters, size=rng.integers(2, 9))) for _ in range(n)]


def build_model(tmp: Path):
    rng = np.random.default_rng(0)
    words = np.array(make_words())
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, size=20)) for _ in range(20000)),
                      encoding="utf-8")
    tok = train_tokenizer([corpus], vocab_size=4096)
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=4096, block_size=128, n_layer=4, n_head=4, sheet_shape=(16, 16))
    module = TopoGPT(cfg).eval()
    identity = hash_bytes("bench-extract-random-init-seed-0")[:20]
    model = sheet_model_from_topogpt("bench-tiny", module, build_sheets(cfg, 0), tok, identity)
    texts = [" ".join(rng.choice(words, size=N_WORDS)) for _ in range(N_ITEMS)]
    return model, texts


def harness_batches(model, texts):
    """The padded batches and masks that extract builds (longest items first)."""
    tokens = model.tokenize(texts)
    lengths = np.array([min(len(t), model.context_length) for t in tokens])
    order = np.argsort(-lengths, kind="stable")
    batches = []
    for i in range(0, len(order), BATCH):
        idx = order[i:i + BATCH]
        width = int(lengths[idx].max())
        ids = np.full((idx.size, width), model.pad_token_id, dtype=np.int64)
        for r, k in enumerate(idx):
            ids[r, :lengths[k]] = tokens[k][:lengths[k]]
        mask = np.arange(width)[None, :] < lengths[idx][:, None]
        batches.append((torch.from_numpy(ids), torch.from_numpy(mask) if not mask.all() else None))
    return batches


def raw_forward(model, batches):
    """The torch module alone, on batches already on the device."""
    with torch.inference_mode():
        for ids, mask in batches:
            model.module(ids, attention_mask=mask)
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    # one thread, as the project's CPU runs use: two threads on a shared two-core
    # machine spend their time waiting on each other
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, texts = build_model(tmp)
        model.to(DEVICE)
        batches = [(ids.to(DEVICE), None if m is None else m.to(DEVICE))
                   for ids, m in harness_batches(model, texts)]
        n_tokens = sum(int(ids.shape[0] * ids.shape[1]) for ids, _ in batches)
        # warm-up of both paths (allocator, kernels), untimed
        raw_forward(model, batches[:2])
        extract(model, texts[:64], batch_size=BATCH, cache=False, verbose=0, device=DEVICE)

        # alternate the two: on a shared machine the spread shows, the minimum is the cost
        t_raw, t_ext, c_raw, c_ext = [], [], [], []
        for _ in range(REPEATS):
            t0, c0 = time.perf_counter(), time.process_time()
            raw_forward(model, batches)
            t_raw.append(time.perf_counter() - t0)
            c_raw.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            acts = extract(model, texts, batch_size=BATCH, cache=False, verbose=0,
                           device=DEVICE)
            t_ext.append(time.perf_counter() - t0)
            c_ext.append(time.process_time() - c0)

        cache_dir = tmp / "cache"
        t0 = time.perf_counter()
        extract(model, texts, batch_size=BATCH, cache_dir=cache_dir, verbose=0, device=DEVICE)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        extract(model, texts, batch_size=BATCH, cache_dir=cache_dir, verbose=0, device=DEVICE)
        t_hit = time.perf_counter() - t0

    print(f"model: 4 blocks, 4 heads, 16x16 sheet, vocab 4096, ctx 128 (random init); "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {DEVICE}")
    print(f"items: {N_ITEMS} x {N_WORDS} words, batch {BATCH}: {len(batches)} batches, "
          f"{n_tokens} padded tokens; {len(acts.layers)} layers x {acts[acts.layers[0]].shape}")
    fmt = ", ".join
    print(f"raw forward (same batches and masks): {fmt(f'{t:.3f}' for t in t_raw)} s")
    print(f"extract (cache=False):                {fmt(f'{t:.3f}' for t in t_ext)} s")
    ratios = [e / r for e, r in zip(t_ext, t_raw, strict=True)]
    print(f"ratio extract / raw forward, per pair: {fmt(f'{q:.3f}' for q in ratios)}")
    print(f"wall-time ratio of minima {min(t_ext) / min(t_raw):.3f}, of medians "
          f"{np.median(t_ext) / np.median(t_raw):.3f}  (goal <= 1.15)")
    print(f"CPU time (process, 1 thread): raw {fmt(f'{t:.3f}' for t in c_raw)} s; "
          f"extract {fmt(f'{t:.3f}' for t in c_ext)} s")
    print(f"CPU-time ratio of medians {np.median(c_ext) / np.median(c_raw):.3f} (insensitive "
          f"to other processes on a shared machine)")
    print(f"extract with cache, first run:        {t_cold:.3f} s")
    print(f"extract with cache, second run (hit): {t_hit:.4f} s  "
          f"(ratio to first {t_hit / t_cold:.4f}, goal < 0.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
