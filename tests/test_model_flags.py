"""Real checkpoints through the front door: the model flags of the CLI and the Python API.

Tiny random GPT-2, GPT-Neo, GPT-NeoX (Pythia) and Llama folders saved with transformers
are opened through the CLI with ``--sheet-spec`` presets (logits equal to transformers'
own, sheet activations against its hidden states and modules, a complete localize run);
TopoLM checkpoints written the way the authors' train.py writes them, in each variant
(bias, attn_proj, with_resid both ways and overridden, head_loss, torch.compile's prefix,
swap-optimised positions), against the authors' forward pass written out in
``_checkpoints.authors_forward``, through the CLI from another working directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _checkpoints import (
    authors_forward,
    authors_state,
    head_grid_index,
    random_coords,
    save_tiny_folder,
    token_batch,
    write_authors_checkpoint,
)

from topobrain.cli import main
from topobrain.models import MissingModelPart, load
from topobrain.models.describe import describe_model
from topobrain.sheet import CorticalSheet, toponets_shape

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    """16 tiny items, sentences (S) and pseudo-word lists (N)."""
    words = "the cat sat on the mat and the dog ran to the park".split()
    pseudo = ["blorp", "fep", "zun", "kib", "tor"]
    path = tmp_path_factory.mktemp("stim") / "items.tsv"
    rows = ["item_id\tcondition\ttext"]
    for k in range(16):
        text = (" ".join(words[k % 5: k % 5 + 6]) if k % 2 else
                " ".join(pseudo[: 2 + k % 4]))
        rows.append(f"{k}\t{'S' if k % 2 else 'N'}\t{text}")
    path.write_text("\n".join(rows) + "\n")
    return path


def run_localize(model, items, out, *flags) -> Path:
    rc = main(["-q", "localize", "--model", str(model), *flags, "--stimuli", str(items),
               "--contrast", "S - N", "--out", str(out), "--n-permutations", "9",
               "--no-cache"])
    assert rc == 0
    assert (out / "maps.nc").is_file() and (out / "report.html").is_file()
    return out


# --------------------------------------------------------------------------- Hugging Face
def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(vocab_size=320, n_positions=32, n_embd=16, n_layer=2,
                                      n_head=2, bos_token_id=0, eos_token_id=0))


def _gpt_neo():
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    return GPTNeoForCausalLM(GPTNeoConfig(
        vocab_size=320, hidden_size=16, num_layers=2, num_heads=2,
        attention_types=[[["global", "local"], 1]], max_position_embeddings=32, window_size=4,
        bos_token_id=0, eos_token_id=0))


def _gpt_neox():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    return GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=320, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32, bos_token_id=0, eos_token_id=0))


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(
        vocab_size=320, hidden_size=16, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
        bos_token_id=0, eos_token_id=0))


def _fc_input(ref, family, i, hs, attn):
    """The input of block i's MLP expansion, from transformers' modules and hidden states."""
    if family == "gpt2":
        block = ref.transformer.h[i]
        return block.mlp.c_fc(block.ln_2(hs[i] + attn)), block.mlp.c_proj, block.mlp.act
    if family == "neox":  # parallel residual: the MLP reads the block's input
        block = ref.gpt_neox.layers[i]
        return (block.mlp.dense_h_to_4h(block.post_attention_layernorm(hs[i])),
                block.mlp.dense_4h_to_h, block.mlp.act)
    block = ref.model.layers[i]
    x = block.post_attention_layernorm(hs[i] + attn)
    gate = block.mlp.gate_proj(x)
    up = block.mlp.up_proj(x)
    return gate, block.mlp.down_proj, lambda g: block.mlp.act_fn(g) * up


@pytest.mark.parametrize("family, build", [("gpt2", _gpt2), ("gpt2", _gpt_neo),
                                           ("neox", _gpt_neox), ("llama", _llama)],
                         ids=["gpt2", "gpt-neo", "gpt-neox", "llama"])
def test_hf_folders_through_the_cli(tmp_path, bpe_dir, items, capsys, family, build):
    torch.manual_seed(1)
    ref = build().eval()
    folder = tmp_path / "hf"
    ref.save_pretrained(folder)
    shutil.copy(bpe_dir / "tokenizer.json", folder / "tokenizer.json")

    # what the loader sees, through the CLI
    assert main(["models", "inspect", str(folder), "--sheet-spec", "attn+mlp:permuted:4"]) == 0
    out = capsys.readouterr().out
    assert "kind: huggingface" in out and "context length: 32 tokens" in out
    assert "sheet layers: 4" in out and "layer.1.mlp   4 x 4 (16 units)" in out
    assert "sheet spec attn+mlp:permuted:4: permuted layout" in out

    sm = load(folder, sheet_spec="attn+mlp:permuted:4")
    assert sm.layer_names == ["layer.0.attn", "layer.0.mlp", "layer.1.attn", "layer.1.mlp"]
    assert sm.identity in out
    x, mask = token_batch(sm)
    with torch.no_grad():
        want = ref(input_ids=x, attention_mask=mask.long(), output_hidden_states=True)
        got = sm.module(input_ids=x, attention_mask=mask.long()).logits
    torch.testing.assert_close(got, want.logits, rtol=0, atol=0)  # transformers' own logits
    acts = sm.activations(x, mask)
    hs = want.hidden_states
    # each block adds its attention and MLP outputs to the stream: block 0 against the
    # hidden states; the last block (whose hidden state has the final norm applied)
    # against the logits through the final norm and the output embedding
    torch.testing.assert_close(acts["layer.0.attn"] + acts["layer.0.mlp"], hs[1] - hs[0],
                               rtol=1e-5, atol=2e-6)
    final_norm = {"gpt2": lambda: ref.transformer.ln_f,
                  "neox": lambda: ref.gpt_neox.final_layer_norm,
                  "llama": lambda: ref.model.norm}[family]()
    with torch.no_grad():
        last = hs[1] + acts["layer.1.attn"] + acts["layer.1.mlp"]
        torch.testing.assert_close(ref.get_output_embeddings()(final_norm(last)), want.logits,
                                   rtol=1e-5, atol=2e-5)
    # seeded permutations, different for attn and mlp, the same on every load
    a, m = sm.sheets["layer.0.attn"].positions, sm.sheets["layer.0.mlp"].positions
    assert not np.array_equal(a, m) and not np.array_equal(a, CorticalSheet((4, 4)).positions)
    np.testing.assert_array_equal(load(folder, sheet_spec="attn+mlp:permuted:4")
                                  .sheets["layer.1.mlp"].positions,
                                  sm.sheets["layer.1.mlp"].positions)

    # toponets: the MLP expansion on the TopoNets sheet, identity layout (as TopoLoss)
    tn = load(folder, sheet_spec="toponets")
    width = {"gpt2": 64, "neox": 64, "llama": 48}[family]
    assert tn.layer_names == ["layer.0.fc", "layer.1.fc"]
    assert all(s.shape == toponets_shape(width) for s in tn.sheets.values())
    rows, cols = toponets_shape(width)
    np.testing.assert_array_equal(tn.sheets["layer.0.fc"].positions,
                                  np.stack(np.divmod(np.arange(width), cols), 1))
    fc = tn.activations(x, mask)
    with torch.no_grad():
        for i in range(2):
            pre, proj, act = _fc_input(ref, family, i, hs, acts[f"layer.{i}.attn"])
            torch.testing.assert_close(fc[f"layer.{i}.fc"], pre, rtol=1e-5, atol=2e-6)
            # and the expansion leads to the MLP output seen in the hidden states
            torch.testing.assert_close(proj(act(fc[f"layer.{i}.fc"])), acts[f"layer.{i}.mlp"],
                                       rtol=1e-5, atol=2e-6)

    # a complete localize run through the CLI with the preset
    res = run_localize(folder, items, tmp_path / "loc", "--sheet-spec", "attn+mlp:permuted")
    layers = (res / "layers.csv").read_text()
    assert "layer.1.mlp" in layers


def test_hf_spec_file_and_preset_errors(tmp_path, bpe_dir, capsys):
    torch.manual_seed(0)
    folder = tmp_path / "gpt2"
    _gpt2().save_pretrained(folder)
    shutil.copy(bpe_dir / "tokenizer.json", folder / "tokenizer.json")
    # a YAML and a JSON file: a preset with a layout, plus explicit layers
    (tmp_path / "spec.yaml").write_text("preset: mlp\nlayout: permuted\nseed: 2\n"
                                        "layers:\n  block.0: {module: transformer.h.0}\n")
    (tmp_path / "spec.json").write_text(json.dumps({"preset": "mlp", "layout": "permuted",
                                                    "seed": 2}))
    a = load(folder, sheet_spec=tmp_path / "spec.yaml")
    b = load(folder, sheet_spec=str(tmp_path / "spec.json"))
    c = load(folder, sheet_spec="mlp:permuted:2")
    assert a.layer_names == ["block.0", "layer.0.mlp", "layer.1.mlp"]
    for layer in ("layer.0.mlp", "layer.1.mlp"):
        np.testing.assert_array_equal(a.sheets[layer].positions, c.sheets[layer].positions)
        np.testing.assert_array_equal(b.sheets[layer].positions, c.sheets[layer].positions)
    assert b.identity == c.identity != a.identity
    assert load(folder, sheet_spec="mlp").identity != c.identity  # the layout counts
    # errors: one line each, naming the fix
    assert main(["models", "inspect", str(folder)]) == 1
    cap = capsys.readouterr()
    assert "missing: sheet spec; supply it with --sheet-spec" in cap.out
    assert "pass --sheet-spec" in cap.err
    with pytest.raises(FileNotFoundError, match="neither a file nor a preset.*Did you mean "
                                                "'attn\\+mlp'"):
        load(folder, sheet_spec="attn+mpl")
    with pytest.raises(ValueError, match="'toponets' preset lays units out as TopoLoss"):
        load(folder, sheet_spec="toponets:permuted")
    with pytest.raises(ValueError, match="seed in the sheet spec preset 'mlp:permuted:x'"):
        load(folder, sheet_spec="mlp:permuted:x")
    (tmp_path / "bad.yaml").write_text("preset: mlp\n  layout: [\n")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        load(folder, sheet_spec=tmp_path / "bad.yaml")
    assert main(["localize", "--model", str(folder), "--stimuli", "x", "--contrast", "S - N",
                 "--out", str(tmp_path / "o"), "--positions", str(tmp_path)]) == 2
    assert "--positions does not apply to " in capsys.readouterr().err


def test_hf_preset_refuses_unknown_families(tmp_path, bpe_dir):
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    OPTForCausalLM(OPTConfig(vocab_size=320, hidden_size=16, num_hidden_layers=1,
                             ffn_dim=32, num_attention_heads=2, max_position_embeddings=32,
                             word_embed_proj_dim=16)).save_pretrained(tmp_path / "opt")
    with pytest.raises(ValueError, match="preset 'mlp' knows GPT-2, GPT-Neo, GPT-NeoX/Pythia "
                                         "and Llama-style.*Write a sheet spec file"):
        load(tmp_path / "opt", sheet_spec="mlp", tokenizer=bpe_dir)


# --------------------------------------------------------------------------- TopoLM variants
ARGS = {"n_layer": 2, "n_head": 4, "n_embed": 16, "block_size": 32, "vocab_size": 320,
        "dropout": 0.0, "alpha": 2.5, "accum": "mean", "activation_decay": 0.0,
        "finetune": False}

VARIANTS = {
    "standard": dict(bias=False),
    "bias": dict(bias=True),
    "attn_proj": dict(bias=False, attn_proj=True),
    "attn_proj+bias": dict(bias=True, attn_proj=True),
    "with_resid": dict(bias=False, with_resid=True),
    "head_loss": dict(bias=False, head_loss=True),
    "head_loss+attn_proj+bias": dict(bias=True, head_loss=True, attn_proj=True),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_topolm_variants_match_the_authors_forward(tmp_path, bpe_dir, monkeypatch, capsys,
                                                   variant):
    args = dict(ARGS, **VARIANTS[variant])
    state = authors_state(args, seed=3)
    ckpt = write_authors_checkpoint(tmp_path / "models" / "out", state, args,
                                    random_coords(2, (4, 4), seed=1),
                                    position_dir="gpt2-positions-5-5")
    shutil.copy(bpe_dir / "vocab.json", ckpt.parent / "vocab.json")
    shutil.copy(bpe_dir / "merges.txt", ckpt.parent / "merges.txt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the relative position_dir is found beside the checkpoint
    assert main(["models", "inspect", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "kind: topolm-checkpoint" in out and "sheet layers: 4" in out
    assert "gpt2-positions-5-5" in out

    sm = load(ckpt)
    x, mask = token_batch(sm)
    with_resid = bool(args.get("with_resid", False))
    logits, ref = authors_forward(state, args, x, with_resid=with_resid)
    torch.testing.assert_close(sm.module(x), logits, rtol=1e-5, atol=1e-5)
    acts = sm.activations(x)
    for layer in ref:
        torch.testing.assert_close(acts[layer], ref[layer], rtol=1e-5, atol=1e-5)
    # the other way round, as the authors' evaluation configs override it
    flag = "--no-with-resid" if with_resid else "--with-resid"
    assert main(["models", "inspect", str(ckpt), flag]) == 0
    other = load(ckpt, with_resid=not with_resid)
    assert other.identity != sm.identity and other.identity in capsys.readouterr().out
    _, ref2 = authors_forward(state, args, x, with_resid=not with_resid)
    torch.testing.assert_close(other.activations(x)["layer.1.mlp"], ref2["layer.1.mlp"],
                               rtol=1e-5, atol=1e-5)
    assert other.card["with_resid_from"] == "override"


def test_head_grid_matches_the_authors_reshape():
    """The authors' view/permute of head_loss against the element-by-element rule."""
    from topobrain.models.gpt import HeadGrid

    y = torch.randn(2, 3, 9 * 16)
    idx = torch.from_numpy(head_grid_index(9, 16))
    torch.testing.assert_close(HeadGrid(9)(y), y[..., idx], rtol=0, atol=0)
    # each head fills one 4 x 4 patch of the 12 x 12 grid
    head_of = (idx // 16).reshape(12, 12).numpy()
    assert (head_of[:4, :4] == 0).all() and (head_of[4:8, 8:] == 5).all()


def test_head_loss_needs_square_heads():
    from topobrain.models.gpt import GPTConfig

    with pytest.raises(ValueError, match="n_head \\(2\\) and the head width \\(8\\) must "
                                         "both be perfect squares"):
        GPTConfig(n_head=2, sheet_shape=(4, 4), head_loss=True)


def test_topolm_through_the_cli_from_another_directory(tmp_path, bpe_dir, items,
                                                      monkeypatch, capsys):
    """The authors' layout run from their models/ folder: position_dir relative to it."""
    args = dict(ARGS, bias=True, attn_proj=True)
    state = authors_state(args, seed=5)
    coords = random_coords(2, (4, 4), seed=2)
    xy = coords["layer.1.mlp"]
    xy[1:3] = xy[0]  # swap-optimised positions: units 1 and 2 share unit 0's cell
    models_dir = tmp_path / "authors" / "models"
    ckpt = write_authors_checkpoint(models_dir / "out", state, args, coords,
                                    position_dir="gpt2-positions-5-5")
    shutil.move(models_dir / "out" / "gpt2-positions-5-5", models_dir / "gpt2-positions-5-5")
    # not beside the checkpoint: from the models/ folder it is found in the working directory
    monkeypatch.chdir(tmp_path)
    assert main(["models", "inspect", str(ckpt), "--tokenizer", str(bpe_dir)]) == 1
    cap = capsys.readouterr()
    assert "missing: unit positions; supply it with --positions" in cap.out
    assert f"tried {ckpt.parent / 'gpt2-positions-5-5'}, {tmp_path / 'gpt2-positions-5-5'}" \
        in " ".join(cap.out.split())
    assert "pass --positions" in cap.err
    assert main(["models", "inspect", str(ckpt)]) == 1
    assert "missing: unit positions" in capsys.readouterr().out  # positions come first
    monkeypatch.chdir(models_dir)
    assert main(["models", "inspect", str(ckpt), "--tokenizer", str(bpe_dir)]) == 0
    assert f"positions: {Path('gpt2-positions-5-5').resolve()}" in capsys.readouterr().out
    # with --positions from anywhere, and the shared cells reported
    monkeypatch.chdir(tmp_path)
    pos = models_dir / "gpt2-positions-5-5"
    assert main(["models", "inspect", str(ckpt), "--tokenizer", str(bpe_dir / "tokenizer.json"),
                 "--positions", str(pos)]) == 0
    out = capsys.readouterr().out
    assert "layer.1.mlp   4 x 4 (16 units, 2 share a cell)" in out
    assert "attn_proj=True" in out and "transformer.h.0.attn_proj" in out
    desc = describe_model(ckpt, tokenizer=bpe_dir, positions=pos)
    assert desc.loaded and desc.layers[3]["n_shared"] == 2
    # a complete localize run of the checkpoint, from the command line
    res = run_localize(ckpt, items, tmp_path / "loc", "--positions", str(pos),
                       "--tokenizer", str(bpe_dir))
    assert "layer.1.mlp" in (res / "layers.csv").read_text()
    # the model and the run from models/, with no flags but the tokenizer
    monkeypatch.chdir(models_dir)
    sm = load(ckpt, tokenizer=bpe_dir)
    assert sm.sheets["layer.1.mlp"].n_shared == 2


def test_missing_tokenizer_names_the_flag(tmp_path, capsys):
    args = dict(ARGS, bias=False)
    ckpt = write_authors_checkpoint(tmp_path, authors_state(args), args,
                                    random_coords(2, (4, 4)), position_dir="pos")
    with pytest.raises(MissingModelPart, match=r"No tokenizer.*pass tokenizer= "
                                               r"\(--tokenizer\)") as info:
        load(ckpt)
    assert info.value.parameter == "tokenizer"
    assert main(["models", "inspect", str(ckpt), "--json"]) == 1
    desc = json.loads(capsys.readouterr().out)
    assert desc["missing"] == "tokenizer" and desc["flag"] == "--tokenizer"
    assert desc["kind"] == "topolm-checkpoint" and "n_embed=16" in desc["details"]["model_args"]


# --------------------------------------------------------------------------- identity, finite
def test_identity_covers_config_json(tmp_path, bpe_dir):
    """n_head 4 -> 8 changes the forward pass without changing any tensor's shape."""
    folder = save_tiny_folder(tmp_path / "m", bpe_dir / "tokenizer.json", n_head=4,
                              sheet_shape=(4, 8))
    before = load(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["n_head"] = 8
    (folder / "config.json").write_text(json.dumps(cfg))
    after = load(folder)
    x, _ = token_batch(before)
    assert (after.activations(x)["layer.0.attn"] - before.activations(x)["layer.0.attn"]
            ).abs().max() > 1e-4
    assert after.identity != before.identity
    # and the tokenizer, positions and sheet spec count too
    tok = json.loads((folder / "tokenizer.json").read_text())
    tok["added_tokens"][0]["content"] = "<|pad|>"
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    assert load(folder).identity != after.identity


def test_non_finite_weights_are_named(tmp_path, bpe_dir):
    """A safetensors file with a valid header and a random payload."""
    folder = save_tiny_folder(tmp_path / "m", bpe_dir / "tokenizer.json")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    n_header = 8 + int.from_bytes(data[:8], "little")
    payload = np.random.default_rng(0).integers(0, 256, len(data) - n_header, dtype=np.uint8)
    weights.write_bytes(data[:n_header] + payload.tobytes())
    with pytest.raises(ValueError, match=r"the weight tensor '([\w.]+)' holds \d+ non-finite "
                                         r"values \(NaN or infinity\) of \d+") as info:
        load(folder)
    from safetensors.torch import load_file

    name = str(info.value).split("'")[1]
    assert not torch.isfinite(load_file(str(weights))[name].float()).all()
    assert "\n" not in str(info.value)
    # in a Hugging Face folder as well
    hf = tmp_path / "hf"
    _gpt2().save_pretrained(hf)
    shutil.copy(bpe_dir / "tokenizer.json", hf / "tokenizer.json")
    w = hf / "model.safetensors"
    raw = bytearray(w.read_bytes())
    n = 8 + int.from_bytes(raw[:8], "little")
    raw[n:n + 64] = np.full(16, np.nan, dtype=np.float32).tobytes()
    w.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="non-finite values"):
        load(hf, sheet_spec="mlp")


# --------------------------------------------------------------------------- the flags
def test_model_flags_parse_and_filter(capsys):
    import argparse

    from topobrain._cli._model_flags import add_model_flags, model_options

    p = argparse.ArgumentParser()
    p.add_argument("--model")
    add_model_flags(p)
    args = p.parse_args(["--model", "m", "--positions", "pos", "--tokenizer", "tok",
                         "--sheet-spec", "mlp", "--sheet-shape", "28x28", "--no-with-resid"])
    assert model_options(args) == {"positions": "pos", "tokenizer": "tok", "sheet_spec": "mlp",
                                   "sheet_shape": (28, 28), "with_resid": False}
    # a control model: only what applies to its kind, never the main model's positions
    assert model_options(args, kind="huggingface", positions=False) == {
        "tokenizer": "tok", "sheet_spec": "mlp"}
    assert model_options(args, kind="topolm-checkpoint", positions=False) == {
        "tokenizer": "tok", "sheet_shape": (28, 28), "with_resid": False}
    assert model_options(p.parse_args(["--model", "m"])) == {}
    with pytest.raises(SystemExit):
        p.parse_args(["--sheet-shape", "28x"])
    assert "a sheet shape is ROWSxCOLS" in capsys.readouterr().err
    assert main(["models", "inspect", "topolm-tiny", "--sheet-shape", "0x4"]) == 2


def test_localize_opens_model_and_control_with_the_flags(tmp_path, bpe_dir, monkeypatch):
    """--sheet-spec reaches both Hugging Face models; a TopoLM control keeps its positions."""
    import topobrain.pipeline as pipeline

    torch.manual_seed(0)
    hf = tmp_path / "hf"
    _gpt2().save_pretrained(hf)
    shutil.copy(bpe_dir / "tokenizer.json", hf / "tokenizer.json")
    seen = {}

    class Result:
        summary = ["ok"]
        report = "r.html"

    def fake(model, stimuli, contrasts, *, out, control=None, **kw):
        seen.update(model=model, control=control)
        return Result()

    monkeypatch.setattr(pipeline, "localize", fake)
    base = ["localize", "--stimuli", "s", "--contrast", "S - N", "--out", str(tmp_path / "o")]
    assert main([*base, "--model", str(hf), "--control", str(hf), "--sheet-spec",
                 "mlp:permuted:1"]) == 0
    assert seen["model"].layer_names == seen["control"].layer_names == ["layer.0.mlp",
                                                                       "layer.1.mlp"]
    assert seen["model"].identity == load(hf, sheet_spec="mlp:permuted:1").identity
    # an HF model with a TopoLM control: --positions is the model's, never the control's
    args = dict(ARGS, bias=False)
    ckpt = write_authors_checkpoint(tmp_path / "ctl", authors_state(args), args,
                                    random_coords(2, (4, 4)), position_dir="pos")
    assert main([*base, "--model", str(hf), "--control", str(ckpt), "--sheet-spec", "mlp",
                 "--tokenizer", str(bpe_dir)]) == 0
    assert seen["control"].sources["positions"] == str(tmp_path / "ctl" / "pos")
    # without model flags the name goes through unchanged (the pipeline opens it)
    assert main([*base, "--model", "topolm-tiny"]) == 0
    assert seen["model"] == "topolm-tiny"


def test_transformers_bars_follow_our_verbosity(tmp_path, bpe_dir, caplog, capfd):
    """-q silences transformers' loading bar too; its own setting is restored after."""
    import logging

    from transformers.utils import logging as hf_logging

    from topobrain.models.hf import _transformers_bars

    assert hf_logging.is_progress_bar_enabled()
    with _transformers_bars(False):
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    with pytest.raises(RuntimeError), _transformers_bars(False):
        raise RuntimeError("restored on errors too")
    assert hf_logging.is_progress_bar_enabled()
    with _transformers_bars(True):
        assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a user who turned them off keeps them off
    try:
        with _transformers_bars(True):
            assert not hf_logging.is_progress_bar_enabled()
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()
    torch.manual_seed(0)
    _gpt2().save_pretrained(tmp_path / "hf")
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="topobrain"):
        load(tmp_path / "hf", sheet_spec="mlp", tokenizer=bpe_dir)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
