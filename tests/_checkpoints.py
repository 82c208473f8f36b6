"""Test helpers: checkpoints written the way their authors' code writes them.

- a tiny byte-level BPE (``tokenizer.json`` plus GPT-2's ``vocab.json``/``merges.txt``);
- TopoLM checkpoints as the authors' nanoGPT-derived ``train.py`` saves them: a
  ``torch.save`` dict with ``model`` (their state-dict keys, torch.compile's
  ``_orig_mod.`` prefix), ``model_args``, ``optimizer``, ``iter_num``, ... beside a folder
  with one pickled ``LayerPositions`` per layer (``layer.{i}.{attn,mlp}.pkl``), the class
  living in a module the loader never sees;
- ``authors_forward``: the authors' forward pass written out here, from their model.py's
  definition (LayerNorm with optional bias, causal attention, ``head_loss``'s head grid,
  ``attn_proj`` with a bias when ``bias``, residual or branch outputs), so that the loader
  is checked against an independent reference and not against itself.
"""

from __future__ import annotations

import math
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TEXT = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A small model reads sentences and predicts the next word in each one.",
    "Maps of the cortex show regions that respond to language and to faces.",
    "She walked to the market, bought bread and cheese, and went home again.",
] * 6


def make_bpe(folder: Path) -> Path:
    """A tiny byte-level BPE in ``folder``: tokenizer.json, vocab.json, merges.txt."""
    from tokenizers import ByteLevelBPETokenizer

    from topobrain.models.tokenizer import EOT

    folder.mkdir(parents=True, exist_ok=True)
    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator(TEXT, vocab_size=300, min_frequency=1, special_tokens=[EOT],
                            show_progress=False)
    tok.save_model(str(folder))  # vocab.json, merges.txt (the GPT-2 file pair)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def token_batch(sm, texts=("the fox reads", "maps of the cortex")):
    """A padded batch of a SheetModel's token ids and its attention mask."""
    ids = sm.tokenize(list(texts))
    t = max(len(i) for i in ids)
    x = torch.full((len(ids), t), sm.pad_token_id)
    mask = torch.zeros(len(ids), t, dtype=torch.bool)
    for k, row in enumerate(ids):
        x[k, : len(row)] = torch.tensor(row)
        mask[k, : len(row)] = True
    return x, mask


def save_tiny_folder(folder: Path, tokenizer_json: Path, seed=0, **kw) -> Path:
    """A tiny TopoGPT (config overrides in kw) saved as a topobrain model folder."""
    from topobrain.models.checkpoint import save_model
    from topobrain.models.gpt import GPTConfig, TopoGPT
    from topobrain.models.tokenizer import load_tokenizer
    from topobrain.models.train import build_sheets

    torch.manual_seed(seed)
    cfg = dict(vocab_size=320, block_size=16, n_layer=1, n_head=2, sheet_shape=(4, 4))
    cfg.update(kw)
    model = TopoGPT(GPTConfig(**cfg))
    return save_model(folder, model, build_sheets(model.config, 0),
                      load_tokenizer(tokenizer_json), {"name": folder.name})


def tiny_gpt(seed=0, **kw):
    """A tiny TopoGPT with non-trivial LayerNorm parameters."""
    from topobrain.models.gpt import GPTConfig, TopoGPT

    torch.manual_seed(seed)
    cfg = dict(vocab_size=320, block_size=32, n_layer=2, n_head=2, sheet_shape=(4, 6))
    cfg.update(kw)
    model = TopoGPT(GPTConfig(**cfg))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def authors_module():
    """A stand-in for the authors' code: LayerPositions lives in a module we then hide."""
    mod = types.ModuleType("topolm_authors_code")

    class LayerPositions:  # the authors' attribute names
        def __init__(self, name, coordinates, neighborhood_indices, neighborhoods_per_batch):
            self.name = name
            self.coordinates = coordinates
            self.neighborhood_indices = neighborhood_indices
            self.neighborhoods_per_batch = neighborhoods_per_batch

    LayerPositions.__module__ = mod.__name__
    LayerPositions.__qualname__ = "LayerPositions"
    mod.LayerPositions = LayerPositions
    return mod


def write_authors_checkpoint(folder: Path, state: dict, model_args: dict, coords: dict, *,
                             protocol=4, position_dir="positions", compiled=True,
                             name="ckpt-311.pt", mask_buffers=True) -> Path:
    """Save ``state`` and ``model_args`` as the authors' train.py does, plus positions.

    ``coords`` maps each layer to its (n_units, 2) ``(x, y)`` = (column, row); the
    pickles go to ``folder / Path(position_dir).name``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone() for k, v in state.items()}
    if mask_buffers:  # nanoGPT's causal-mask buffer, when flash attention is off
        for i in range(model_args["n_layer"]):
            state[f"transformer.h.{i}.attn.bias"] = torch.ones(
                1, 1, model_args["block_size"], model_args["block_size"]).tril()
    if compiled:
        state = {"_orig_mod." + k: v for k, v in state.items()}
    ckpt = {"model": state, "model_args": dict(model_args, position_dir=position_dir),
            "optimizer": {"state": {}, "param_groups": [{"lr": 6e-4, "params": [0, 1]}]},
            "iter_num": 311, "best_val_loss": torch.tensor(3.21),
            "config": {"batch_size": 48, "dataset": "fineweb"}}
    torch.save(ckpt, folder / name)
    pdir = folder / Path(position_dir).name
    write_position_pickles(pdir, coords, protocol=protocol)
    return folder / name


def write_position_pickles(pdir: Path, coords: dict, *, protocol=4) -> Path:
    """One pickled LayerPositions per layer, as the authors' init_pos.py writes them."""
    pdir.mkdir(parents=True, exist_ok=True)
    mod = authors_module()
    sys.modules[mod.__name__] = mod
    try:
        for layer, xy in coords.items():
            nbh = torch.zeros(3, xy.shape[0], dtype=torch.bool)
            nbh[:, :5] = True
            obj = mod.LayerPositions(layer, torch.as_tensor(xy, dtype=torch.float32), nbh, 5)
            with open(pdir / f"{layer}.pkl", "wb") as fh:
                pickle.dump(obj, fh, protocol=protocol)
    finally:
        del sys.modules[mod.__name__]  # the loader must not need the authors' class
    (pdir / "version.txt").write_text("1\n")
    return pdir


def model_args_of(model) -> dict:
    """The authors' model_args for a TopoGPT's configuration."""
    cfg = model.config
    return {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embed": cfg.n_embd,
            "block_size": cfg.block_size, "bias": cfg.bias, "vocab_size": cfg.vocab_size,
            "dropout": 0.0, "alpha": 2.5, "accum": "mean", "activation_decay": 0.0,
            "head_loss": cfg.head_loss, "attn_proj": cfg.attn_proj, "finetune": False,
            "with_resid": cfg.with_resid}


def write_topolm(folder: Path, model, coords: dict, *, protocol=4,
                 position_dir="positions") -> Path:
    """Write a TopoGPT in the TopoLM authors' layout (absolute position_dir)."""
    return write_authors_checkpoint(folder, model.state_dict(), model_args_of(model), coords,
                                    protocol=protocol,
                                    position_dir=f"/authors/cluster/{position_dir}")


def coords_from_sheets(sheets) -> dict:
    """Each sheet's positions as the authors' (x, y) = (column, row) float32 coordinates."""
    return {n: np.asarray(s.positions)[:, ::-1].astype(np.float32) for n, s in sheets.items()}


def random_coords(n_layer: int, shape, seed=0) -> dict:
    """A seeded random permutation of the grid per layer, as (x, y) coordinates."""
    rng = np.random.default_rng(seed)
    rows, cols = np.divmod(np.arange(shape[0] * shape[1]), shape[1])
    out = {}
    for i in range(n_layer):
        for kind in ("attn", "mlp"):
            p = rng.permutation(rows.size)
            out[f"layer.{i}.{kind}"] = np.stack([cols[p], rows[p]], 1).astype(np.float32)
    return out


# --------------------------------------------------------------------------- authors' model
def authors_state(model_args: dict, seed=0) -> dict:
    """A random state dict with the keys and shapes of the authors' GPT for model_args."""
    g = torch.Generator().manual_seed(seed)
    d, n_layer = model_args["n_embed"], model_args["n_layer"]
    bias = model_args.get("bias", True)

    def rand(*shape, scale=0.2):
        return scale * torch.randn(*shape, generator=g)

    def linear(prefix, n_in, n_out):
        out = {f"{prefix}.weight": rand(n_out, n_in)}
        if bias:
            out[f"{prefix}.bias"] = rand(n_out, scale=0.05)
        return out

    def norm(prefix):
        out = {f"{prefix}.weight": 1 + rand(d, scale=0.1)}
        if bias:
            out[f"{prefix}.bias"] = rand(d, scale=0.1)
        return out

    wte = rand(model_args["vocab_size"], d)
    state = {"transformer.wte.weight": wte,
             "transformer.wpe.weight": rand(model_args["block_size"], d)}
    for i in range(n_layer):
        p = f"transformer.h.{i}"
        state.update(norm(f"{p}.ln_1"))
        state.update(linear(f"{p}.attn.c_attn", d, 3 * d))
        if not model_args.get("head_loss", False):
            state.update(linear(f"{p}.attn.c_proj", d, d))
        state.update(norm(f"{p}.ln_2"))
        state.update(linear(f"{p}.mlp.c_fc", d, 4 * d))
        state.update(linear(f"{p}.mlp.c_proj", 4 * d, d))
        if model_args.get("attn_proj", False):
            state.update(linear(f"{p}.attn_proj", d, d))
    state.update(norm("transformer.ln_f"))
    state["lm_head.weight"] = wte  # tied: the authors' state dict holds both names
    return state


def head_grid_index(n_head: int, head: int) -> np.ndarray:
    """out[..., j] = y[..., index[j]] for the authors' head_loss reshape, element by element.

    Unit (r, c) of head (hr, hc) sits at row hr * s + r, column hc * s + c of a square
    sheet of side g * s (g = sqrt(n_head), s = sqrt(head)).
    """
    g, s = math.isqrt(n_head), math.isqrt(head)
    index = np.empty(n_head * head, dtype=np.int64)
    for hr in range(g):
        for hc in range(g):
            for r in range(s):
                for c in range(s):
                    row, col = hr * s + r, hc * s + c
                    index[row * (g * s) + col] = (hr * g + hc) * head + r * s + c
    return index


@torch.no_grad()
def authors_forward(state: dict, model_args: dict, idx: torch.Tensor, *, with_resid: bool):
    """The authors' GPT forward: (logits over every position, {layer: activations})."""
    d, n_head = model_args["n_embed"], model_args["n_head"]
    head = d // n_head
    b, t = idx.shape

    def lin(x, prefix):
        y = x @ state[f"{prefix}.weight"].T
        bias = state.get(f"{prefix}.bias")
        return y if bias is None else y + bias

    def ln(x, prefix):
        return F.layer_norm(x, (d,), state[f"{prefix}.weight"], state.get(f"{prefix}.bias"),
                            1e-5)

    causal = torch.ones(t, t, dtype=torch.bool).tril()
    x = state["transformer.wte.weight"][idx] + state["transformer.wpe.weight"][:t]
    acts = {}
    for i in range(model_args["n_layer"]):
        p = f"transformer.h.{i}"
        q, k, v = lin(ln(x, f"{p}.ln_1"), f"{p}.attn.c_attn").split(d, dim=2)
        q, k, v = (z.view(b, t, n_head, head).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(head)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        if model_args.get("head_loss", False):
            y = y[..., torch.from_numpy(head_grid_index(n_head, head))]
        else:
            y = lin(y, f"{p}.attn.c_proj")
        if model_args.get("attn_proj", False):
            y = lin(y, f"{p}.attn_proj")
        x_attn = x + y
        m = lin(F.gelu(lin(ln(x_attn, f"{p}.ln_2"), f"{p}.mlp.c_fc")), f"{p}.mlp.c_proj")
        x = x_attn + m
        acts[f"layer.{i}.attn"] = x_attn if with_resid else y
        acts[f"layer.{i}.mlp"] = x if with_resid else m
    logits = ln(x, "transformer.ln_f") @ state["lm_head.weight"].T
    return logits, acts
