"""Forward throughput (tokens/s) of the bundled-size TopoGPT against a Hugging Face GPT-2.

The same size for both: 4 blocks, 4 heads, width 256 (a 16 x 16 sheet), vocabulary
4,096, context 128, batch 16, ``torch.no_grad``, one thread by default. Four paths:

- ``TopoGPT`` forward (logits only), the peer ``transformers`` ``GPT2LMHeadModel``
  forward (logits only): the ratio says whether our model is a fair GPT-2;
- ``SheetModel.activations`` of our folder model (8 sheets returned by the model itself)
  and of the GPT-2 through :func:`topobrain.models.hf.load_hf` with the ``attn+mlp``
  sheet spec preset on the same 8 modules (forward hooks): what extraction pays for each
  adapter.

Usage: ``python benchmarks/bench_forward.py [--reps 10] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def timeit(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel

    from topobrain.models.checkpoint import save_model
    from topobrain.models.gpt import GPTConfig, TopoGPT
    from topobrain.models.hf import load_hf
    from topobrain.models.loaders import load
    from topobrain.models.train import build_sheets

    vocab, ctx, batch = 4096, 128, 16
    torch.manual_seed(0)
    ours = TopoGPT(GPTConfig(vocab_size=vocab, block_size=ctx, n_layer=4, n_head=4,
                             sheet_shape=(16, 16))).eval()
    peer = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=ctx, n_embd=256,
                                      n_layer=4, n_head=4, bos_token_id=0,
                                      eos_token_id=0)).eval()
    x = torch.randint(0, vocab, (batch, ctx), generator=torch.Generator().manual_seed(1))

    with tempfile.TemporaryDirectory() as tmp:
        tok = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "[UNK]": 1}, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        folder = save_model(Path(tmp) / "ours", ours, build_sheets(ours.config, 0), tok,
                            {"name": "bench"})
        sm_ours = load(folder)
        peer.save_pretrained(Path(tmp) / "gpt2")
        tok.save(str(Path(tmp) / "gpt2" / "tokenizer.json"))
        # the same 8 sheets as ours, through the attn+mlp preset (hooks on attn and mlp)
        sm_peer = load_hf(Path(tmp) / "gpt2", "attn+mlp:permuted")
        assert sm_peer.layer_names == sm_ours.layer_names

        with torch.no_grad():
            t_ours = timeit(lambda: ours(x), args.reps)
            t_peer = timeit(lambda: peer(input_ids=x, use_cache=False), args.reps)
            t_sm_ours = timeit(lambda: sm_ours.activations(x), args.reps)
            t_sm_peer = timeit(lambda: sm_peer.activations(x), args.reps)

    n = batch * ctx
    print(f"bench_forward: 4 blocks, 4 heads, width 256 (16x16 sheet), vocab {vocab}, "
          f"context {ctx}, batch {batch}, {args.threads} thread(s), median of {args.reps}")
    print(f"  TopoGPT forward (logits)                 {n / t_ours:9.0f} tokens/s")
    print(f"  transformers GPT2LMHeadModel (logits)    {n / t_peer:9.0f} tokens/s")
    print(f"  ratio ours/peer: {t_peer / t_ours:.2f}x the peer's throughput")
    print(f"  SheetModel.activations, our folder       {n / t_sm_ours:9.0f} tokens/s "
          f"(8 sheets)")
    print(f"  SheetModel.activations, HF GPT-2 + hooks {n / t_sm_peer:9.0f} tokens/s "
          f"(8 sheets)")
    print(f"  ratio ours/peer: {t_sm_peer / t_sm_ours:.2f}x")


if __name__ == "__main__":
    main()
