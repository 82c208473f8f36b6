"""Training throughput with the spatial loss (alpha = 2.5) against the control (alpha = 0).

The bundled size: 4 blocks, 4 heads, a 16 x 16 sheet (width 256), vocabulary 4,096,
context 128, batch 16, one thread, AdamW with gradient clipping, the correlation loss
on 5 neighbourhoods of l-infinity radius 5 per sheet (8 sheets), exactly the step that
``topobrain.models.train.train`` takes (the control monitors the spatial loss without
gradients every 10th step, as the training loop does).

Steps of the two arms alternate in blocks after a warm-up, so a background load hits
both alike. Also times the spatial loss alone (forward and backward over 8 sheets):
the batched implementation against a one-neighbourhood-at-a-time loop (the form it
replaced, written here), and checks that they agree.

Usage: ``python benchmarks/bench_train.py [--steps 20] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from topobrain.models.gpt import GPTConfig, TopoGPT
from topobrain.models.losses import correlation_loss, neighbourhood_loss
from topobrain.models.train import SpatialConfig, build_sheets, spatial_loss


def loop_correlation_loss(acts, positions, sheet_shape, *, radius=5, n_neighbourhoods=5,
                          generator=None):
    """One neighbourhood at a time (the earlier implementation), same draws."""
    x = acts.reshape(-1, acts.shape[-1])
    n_rows, n_cols = sheet_shape
    cr = torch.randint(0, n_rows, (n_neighbourhoods,), generator=generator)
    cc = torch.randint(0, n_cols, (n_neighbourhoods,), generator=generator)
    total, used = x.new_zeros(()), 0
    for r, c in zip(cr.tolist(), cc.tolist(), strict=True):
        d = torch.maximum((positions[:, 0] - r).abs(), (positions[:, 1] - c).abs())
        sel = torch.nonzero(d <= radius).squeeze(1)
        if sel.numel() < 3:
            continue
        total = total + neighbourhood_loss(x[:, sel], positions[sel])
        used += 1
    return total / max(used, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per arm")
    parser.add_argument("--block", type=int, default=5, help="steps per alternation block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    gcfg = GPTConfig(vocab_size=4096, block_size=128, n_layer=4, n_head=4,
                     sheet_shape=(16, 16))
    batch = 16
    sheets = build_sheets(gcfg, 0)
    rng = np.random.default_rng(0)
    data = rng.integers(0, gcfg.vocab_size, size=200_000)

    arms = {}
    for alpha in (2.5, 0.0):
        torch.manual_seed(0)
        model = TopoGPT(gcfg)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95),
                                weight_decay=0.1)
        arms[alpha] = dict(model=model, opt=opt, scfg=SpatialConfig(alpha=alpha),
                           gen=torch.Generator().manual_seed(0), step=0, times=[])

    def one_step(arm):
        starts = rng.integers(0, data.size - gcfg.block_size - 1, size=batch)
        x = torch.from_numpy(np.stack([data[s:s + gcfg.block_size] for s in starts]))
        y = torch.from_numpy(np.stack([data[s + 1:s + 1 + gcfg.block_size] for s in starts]))
        model, opt, scfg = arm["model"], arm["opt"], arm["scfg"]
        t0 = time.perf_counter()
        task, acts = model(x, y, return_activations=True)
        if scfg.alpha > 0:
            loss = task + scfg.alpha * spatial_loss(model, acts, sheets, scfg, arm["gen"])
        else:
            loss = task
            if arm["step"] % 10 == 0:
                with torch.no_grad():
                    spatial_loss(model, {k: v.detach() for k, v in acts.items()}, sheets,
                                 scfg, arm["gen"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        arm["step"] += 1
        return time.perf_counter() - t0

    for arm in arms.values():
        for _ in range(args.warmup):
            one_step(arm)
    done = 0
    while done < args.steps:
        n = min(args.block, args.steps - done)
        for arm in arms.values():
            arm["times"].extend(one_step(arm) for _ in range(n))
        done += n

    tokens = batch * gcfg.block_size
    print(f"bench_train: 4 blocks, 4 heads, 16x16 sheet, vocab 4096, context 128, batch 16, "
          f"{args.threads} thread(s), {args.steps} timed steps per arm after "
          f"{args.warmup} warm-up steps")
    med = {}
    for alpha, arm in arms.items():
        t = np.array(arm["times"])
        med[alpha] = np.median(t)
        print(f"  alpha={alpha:<4} {tokens / med[alpha]:8.0f} tokens/s  "
              f"(median {med[alpha]:.3f} s/step, mean {t.mean():.3f}, "
              f"min {t.min():.3f}, max {t.max():.3f})")
    print(f"  spatial loss overhead (median step time): "
          f"{100 * (med[2.5] / med[0.0] - 1):+.1f}%  (goal: at most +20%)")

    # the spatial loss alone, batched vs the loop, on one batch's activations
    model = arms[2.5]["model"]
    x = torch.from_numpy(data[: batch * gcfg.block_size].reshape(batch, -1))
    _, acts = model(x, return_activations=True)
    acts = {k: v.detach().requires_grad_() for k, v in acts.items()}
    pos = {k: torch.from_numpy(np.array(s.positions)) for k, s in sheets.items()}

    def run(fn, seed):
        g = torch.Generator().manual_seed(seed)
        total = sum(fn(a, pos[k], (16, 16), radius=5, n_neighbourhoods=5, generator=g)
                    for k, a in acts.items())
        grads = torch.autograd.grad(total, list(acts.values()))
        return float(total.detach()), grads

    (vb, gb), (vl, gl) = run(correlation_loss, 1), run(loop_correlation_loss, 1)
    gdiff = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(gb, gl, strict=True))
    times = {"batched": [], "loop": []}
    for rep in range(5):
        for name, fn in (("batched", correlation_loss), ("loop", loop_correlation_loss)):
            t0 = time.perf_counter()
            run(fn, rep)
            times[name].append(time.perf_counter() - t0)
    tb, tl = np.median(times["batched"]), np.median(times["loop"])
    print(f"  spatial loss alone, 8 sheets, forward + backward: batched {tb * 1e3:.1f} ms, "
          f"loop {tl * 1e3:.1f} ms, ratio loop/batched {tl / tb:.2f}")
    print(f"  same value: batched {vb:.7f} vs loop {vl:.7f}; gradients max rel diff "
          f"{gdiff:.1e}")


if __name__ == "__main__":
    main()
