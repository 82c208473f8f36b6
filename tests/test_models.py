"""Model loading: our folder, bundled names, the TopoLM authors' layout, Hugging Face folders.

Every loader is checked against the model it was written from (same activations, same
unit positions) and on bad input (clear errors). The checkpoints are written here, in
tmp_path: nothing depends on data/ or runs/, nothing is downloaded.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _checkpoints import (
    coords_from_sheets,
    tiny_gpt,
    write_topolm,
)
from _checkpoints import (
    token_batch as batch,
)

from topobrain.models import MissingModelPart, SheetModel, available_models, load
from topobrain.models import loaders as loaders_mod
from topobrain.models.checkpoint import save_model, write_positions_csv
from topobrain.models.gpt import GPTConfig
from topobrain.models.tokenizer import EOT
from topobrain.models.topolm_format import (
    positions_dir_to_csv,
    read_layer_positions,
    read_positions_dir,
)
from topobrain.models.train import build_sheets
from topobrain.sheet import CorticalSheet

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tokenizer(bpe_dir):
    from topobrain.models.tokenizer import load_tokenizer

    return load_tokenizer(bpe_dir / "tokenizer.json")


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """Our folder format, written by save_model; returns (folder, model, sheets)."""
    model = tiny_gpt()
    sheets = build_sheets(model.config, 3)
    folder = save_model(tmp_path_factory.mktemp("ours") / "tiny", model, sheets, tokenizer,
                        {"name": "tiny"}, dtype="float32")
    return folder, model, sheets


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------------------- our folder
def test_folder_round_trip_same_activations(saved):
    folder, model, sheets = saved
    sm = load(folder)
    assert isinstance(sm, SheetModel)
    assert sm.layer_names == model.layer_names == list(sheets)
    for layer, sheet in sheets.items():
        np.testing.assert_array_equal(sm.sheets[layer].positions, sheet.positions)
        assert sm.sheets[layer].shape == (4, 6)
    x, mask = batch(sm)
    got = sm.activations(x, mask)
    _, ref = model(x, return_activations=True, attention_mask=mask)
    for layer in sheets:
        torch.testing.assert_close(got[layer], ref[layer], rtol=0, atol=0)
    assert set(sm.activations(x, mask, layers=["layer.1.mlp"])) == {"layer.1.mlp"}
    assert sm.context_length == 32 and sm.vocab_size == 320
    assert sm.bos_token_id == sm.tokenizer.token_to_id(EOT)
    assert load(folder).identity == sm.identity
    assert "2 sheet layers" not in repr(sm) and "4 sheet layers of (4, 6)" in repr(sm)


def test_bundled_by_name(saved, tmp_path, monkeypatch):
    folder, model, _ = saved
    root = tmp_path / "models"
    copy_folder(folder, root / "tiny-bundled")
    monkeypatch.setattr(loaders_mod, "_models_root", lambda: root)
    assert available_models() == ["tiny-bundled"]
    sm = load("tiny-bundled")
    assert sm.name == "tiny-bundled"
    x, _ = batch(sm)
    torch.testing.assert_close(sm.activations(x)["layer.0.attn"],
                               model(x, return_activations=True)[1]["layer.0.attn"])
    with pytest.raises(ValueError, match="No bundled model named 'tiny-bundeld'.*Did you mean "
                                         "'tiny-bundled'"):
        load("tiny-bundeld")


@pytest.mark.parametrize("name", ["topolm-tiny", "topolm-tiny-control"])
def test_real_bundled_models(name):
    if name not in available_models():
        pytest.skip(f"{name} is not bundled in this checkout yet (trained by "
                    f"configs/{name}.yaml, then copied into topobrain/data/models)")
    sm = load(name)
    assert len(sm.sheets) == 8 and all(s.shape == (16, 16) for s in sm.sheets.values())
    x, mask = batch(sm)
    acts = sm.activations(x, mask)
    assert all(torch.isfinite(a).all() for a in acts.values())


def test_folder_missing_and_unexpected_keys_are_listed(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = copy_folder(saved[0], tmp_path / "m")
    state = load_file(str(folder / "model.safetensors"))
    del state["transformer.h.1.mlp.c_fc.weight"]
    state["transformer.h.1.mlp.c_fc2.weight"] = torch.zeros(1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"Missing keys: \['transformer\.h\.1\.mlp\.c_fc\."
                                         r"weight'\]; unexpected keys: \['transformer\.h\.1\."
                                         r"mlp\.c_fc2\.weight'\]"):
        load(folder)


def test_folder_sheet_shape_not_matching_width(saved, tmp_path):
    folder = copy_folder(saved[0], tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["sheet_shape"] = [4, 5]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"wrong shape.*checkpoint \(320, 24\), model "
                                         r"\(320, 20\).*sheet shape"):
        load(folder)


def test_folder_positions_of_another_width(saved, tmp_path):
    folder = copy_folder(saved[0], tmp_path / "m")
    write_positions_csv(folder / "positions.csv",
                        {n: CorticalSheet((4, 4), name=n) for n in saved[2]})
    with pytest.raises(ValueError, match="16 unit positions but the model width is 24"):
        load(folder)


def test_folder_truncated_and_corrupt_safetensors(saved, tmp_path):
    folder = copy_folder(saved[0], tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(folder)
    weights.write_bytes(b"\x00" * 8 + data[8:])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(folder)


def test_folder_unknown_config_fields(saved, tmp_path):
    folder = copy_folder(saved[0], tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["n_embed"] = 24
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"Unknown model config fields \['n_embed'\]"):
        load(folder)


def test_load_bad_paths_and_arguments(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load("ckpt-missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a model this version can read"):
        load(tmp_path / "empty")
    with pytest.raises(TypeError, match="positions do not apply to a topobrain model folder"):
        load(saved[0], positions=tmp_path)


# --------------------------------------------------------------------------- TopoLM layout
@pytest.mark.parametrize("kw", [dict(), dict(attn_proj=True), dict(with_resid=True),
                                dict(bias=True, attn_proj=True)])
def test_topolm_checkpoint_matches_source_model(tmp_path, bpe_dir, kw):
    model = tiny_gpt(seed=1, **kw)
    sheets = build_sheets(model.config, 5)
    ckpt = write_topolm(tmp_path, model, coords_from_sheets(sheets), protocol=2)
    sm = load(ckpt, positions=tmp_path / "positions", tokenizer=bpe_dir)  # vocab/merges
    assert sm.layer_names == model.layer_names
    for layer, sheet in sheets.items():
        assert sm.sheets[layer].shape == (4, 6)
        # x = column, y = row
        np.testing.assert_array_equal(sm.sheets[layer].positions, sheet.positions)
    x, mask = batch(sm)
    got = sm.activations(x, mask)
    _, ref = model(x, return_activations=True, attention_mask=mask)
    for layer in sheets:
        torch.testing.assert_close(got[layer], ref[layer], rtol=0, atol=0)
    assert sm.card["model_args"]["alpha"] == 2.5 and sm.card["iter_num"] == 311
    cfg = sm.module.config
    assert (cfg.attn_proj, cfg.with_resid, cfg.bias) == (kw.get("attn_proj", False),
                                                         kw.get("with_resid", False),
                                                         kw.get("bias", False))


def test_topolm_with_resid_reports_the_residual_stream(tmp_path, bpe_dir):
    model = tiny_gpt(seed=2, with_resid=True)
    ckpt = write_topolm(tmp_path, model, coords_from_sheets(build_sheets(model.config, 0)))
    sm = load(ckpt, positions=tmp_path / "positions", tokenizer=bpe_dir / "tokenizer.json")
    x, _ = batch(sm)
    acts = sm.activations(x)
    # the residual stream after block 1's MLP add, then ln_f and the tied head: the logits
    logits = sm.module.lm_head(sm.module.transformer.ln_f(acts["layer.1.mlp"]))
    torch.testing.assert_close(logits, sm.module(x), rtol=1e-6, atol=1e-6)


def test_topolm_shared_cells_are_counted(tmp_path, bpe_dir):
    model = tiny_gpt()
    coords = coords_from_sheets(build_sheets(model.config, 0))
    xy = coords["layer.0.mlp"].copy()
    xy[1:4] = xy[0]  # units 1-3 share unit 0's cell
    coords["layer.0.mlp"] = xy
    ckpt = write_topolm(tmp_path, model, coords)
    sm = load(ckpt, positions=tmp_path / "positions", tokenizer=bpe_dir)
    assert sm.sheets["layer.0.mlp"].n_shared == 3
    assert sm.sheets["layer.0.attn"].n_shared == 0
    assert sm.card["n_shared"]["layer.0.mlp"] == 3
    sheet = sm.sheets["layer.0.mlp"]
    values = np.arange(24.0)
    m = sheet.to_map(values)
    r, c = sheet.positions[0]
    assert m[r, c] == pytest.approx(np.mean([0, 1, 2, 3]))
    assert np.isnan(m).sum() == 3


def test_topolm_sheet_shape_from_positions(tmp_path, bpe_dir):
    """The grid the positions fill wins over the TopoNets rule ((4, 6) for 24 units)."""
    model = tiny_gpt(sheet_shape=(6, 4))
    sheets = build_sheets(model.config, 1)
    ckpt = write_topolm(tmp_path / "a", model, coords_from_sheets(sheets))
    sm = load(ckpt, tokenizer=bpe_dir)
    assert sm.module.config.sheet_shape == (6, 4)
    assert all(s.shape == (6, 4) for s in sm.sheets.values())
    np.testing.assert_array_equal(sm.sheets["layer.0.attn"].positions,
                                  sheets["layer.0.attn"].positions)
    # shared cells leave the last row empty: the (3, 6) extent has too few cells, so the
    # TopoNets grid (4, 6) that holds it is used
    model = tiny_gpt()
    coords = coords_from_sheets(build_sheets(model.config, 1))
    for xy in coords.values():
        xy[xy[:, 1] == 3, 1] = 2
    ckpt = write_topolm(tmp_path / "b", model, coords)
    sm = load(ckpt, tokenizer=bpe_dir)
    assert all(s.shape == (4, 6) and s.n_shared == 6 for s in sm.sheets.values())
    assert not sm.sheets["layer.1.mlp"].occupied[3].any()


def test_topolm_default_positions_and_tokenizer_beside_checkpoint(tmp_path, bpe_dir):
    model = tiny_gpt()
    sheets = build_sheets(model.config, 4)
    ckpt = write_topolm(tmp_path, model, coords_from_sheets(sheets), position_dir="pos-v2")
    shutil.copy(bpe_dir / "vocab.json", tmp_path / "vocab.json")
    shutil.copy(bpe_dir / "merges.txt", tmp_path / "merges.txt")
    sm = load(ckpt)  # position_dir's last part, found beside the checkpoint
    np.testing.assert_array_equal(sm.sheets["layer.1.attn"].positions,
                                  sheets["layer.1.attn"].positions)
    # the CSV interchange format works as positions too
    write_positions_csv(tmp_path / "pos.csv", sheets)
    sm2 = load(ckpt, positions=tmp_path / "pos.csv")
    np.testing.assert_array_equal(sm2.sheets["layer.1.mlp"].positions,
                                  sheets["layer.1.mlp"].positions)


def test_positions_pickle_fields_all_protocols(tmp_path):
    model = tiny_gpt()
    coords = coords_from_sheets(build_sheets(model.config, 0))
    for protocol in (0, 2, 5):
        d = tmp_path / f"p{protocol}"
        write_topolm(d, model, coords, protocol=protocol)
        rec = read_layer_positions(d / "positions" / "layer.1.mlp.pkl")
        assert rec.name == "layer.1.mlp"
        np.testing.assert_array_equal(rec.coordinates, coords["layer.1.mlp"])
        assert rec.neighborhood_indices.shape == (3, 24)
        assert rec.neighborhood_indices.dtype == bool
        assert rec.neighborhoods_per_batch == 5
    assert "topolm_authors_code" not in sys.modules
    sheets = read_positions_dir(tmp_path / "p5" / "positions", n_units=24)
    assert list(sheets) == model.layer_names
    csv = positions_dir_to_csv(tmp_path / "p5" / "positions", tmp_path / "pos.csv")
    for layer, sheet in sheets.items():
        back = CorticalSheet.from_csv(csv, layer, shape=(4, 6))
        np.testing.assert_array_equal(back.positions, sheet.positions)
    with pytest.raises(ValueError, match="24 unit positions but the model's width is 16"):
        read_positions_dir(tmp_path / "p5" / "positions", n_units=16)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_positions_dir(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="holds no layer"):
        read_positions_dir(tmp_path)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_positions_pickle_refuses_other_globals(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "layer.0.mlp.pkl"
    bad.write_bytes(pickle.dumps({"coordinates": _Evil(marker)}))
    with pytest.raises(ValueError, match=r"refused to unpickle the global pathlib.*Path"):
        read_layer_positions(bad)
    assert not marker.exists()
    import os

    bad.write_bytes(pickle.dumps(os.getcwd.__reduce__() if False else (os.system,)))
    with pytest.raises(ValueError, match="refused to unpickle the global"):
        read_layer_positions(bad)
    bad.write_bytes(pickle.dumps({"coordinates": [[0, 0]]}))
    with pytest.raises(ValueError, match="does not hold a LayerPositions object; got dict"):
        read_layer_positions(bad)


def test_positions_renamed_or_off_grid(tmp_path):
    model = tiny_gpt()
    coords = coords_from_sheets(build_sheets(model.config, 0))
    write_topolm(tmp_path, model, coords)
    pos = tmp_path / "positions"
    shutil.copy(pos / "layer.0.attn.pkl", pos / "layer.0.mlp.pkl")
    with pytest.raises(ValueError, match="holds the positions of 'layer.0.attn', not "
                                         "'layer.0.mlp'"):
        read_positions_dir(pos)
    coords["layer.0.mlp"] = coords["layer.0.mlp"] + 0.5
    write_topolm(tmp_path / "half", model, coords)
    with pytest.raises(ValueError, match="coordinates must be integer grid positions"):
        read_layer_positions(tmp_path / "half" / "positions" / "layer.0.mlp.pkl")


def test_positions_pickle_truncated(tmp_path):
    model = tiny_gpt()
    write_topolm(tmp_path, model, coords_from_sheets(build_sheets(model.config, 0)))
    p = tmp_path / "positions" / "layer.0.attn.pkl"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_layer_positions(p)


def test_topolm_checkpoint_truncated(tmp_path, bpe_dir):
    model = tiny_gpt()
    ckpt = write_topolm(tmp_path, model, coords_from_sheets(build_sheets(model.config, 0)))
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(ckpt, positions=tmp_path / "positions", tokenizer=bpe_dir)
    # the legacy (pre-zip) torch.save format, truncated
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": model.state_dict(), "model_args": {}}, legacy,
               _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    legacy.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(legacy, positions=tmp_path / "positions", tokenizer=bpe_dir)


class _Custom:
    pass


def test_topolm_checkpoint_needing_more_than_weights_only_is_refused(tmp_path, bpe_dir):
    p = tmp_path / "ckpt.pt"
    torch.save({"model": {}, "model_args": {}, "extra": _Custom()}, p)
    with pytest.raises(ValueError, match=r"refused: it needs more than torch.load\("
                                         r"weights_only=True\)"):
        load(p, positions=tmp_path, tokenizer=bpe_dir)
    torch.save({"state_dict": {}}, p)
    with pytest.raises(ValueError, match="not a TopoLM checkpoint.*'model'"):
        load(p, positions=tmp_path, tokenizer=bpe_dir)


def test_topolm_bad_checkpoints(tmp_path, bpe_dir):
    model = tiny_gpt()
    coords = coords_from_sheets(build_sheets(model.config, 0))
    ckpt = write_topolm(tmp_path, model, coords)
    pos = tmp_path / "positions"
    raw = torch.load(ckpt, weights_only=True)
    # missing and unexpected keys, listed
    broken = dict(raw, model={k.replace("ln_f", "ln_final"): v for k, v in raw["model"].items()})
    torch.save(broken, tmp_path / "keys.pt")
    with pytest.raises(ValueError, match=r"Missing keys: \['transformer\.ln_f\.weight'\]; "
                                         r"unexpected keys: \['transformer\.ln_final\.weight'\]"):
        load(tmp_path / "keys.pt", positions=pos, tokenizer=bpe_dir)
    # a sheet shape that does not match the width
    with pytest.raises(ValueError, match=r"5 x 5 sheet does not match the width n_embed = 24"):
        load(ckpt, positions=pos, tokenizer=bpe_dir, sheet_shape=(5, 5))
    # model_args lacking fields
    torch.save(dict(raw, model_args={"n_layer": 2, "n_embed": 24}), tmp_path / "args.pt")
    with pytest.raises(ValueError, match=r"model_args lacks \['n_head', 'block_size', "
                                         r"'vocab_size'\]"):
        load(tmp_path / "args.pt", positions=pos, tokenizer=bpe_dir)
    # positions of another model
    other = tmp_path / "other"
    write_topolm(other, tiny_gpt(sheet_shape=(4, 4)),
                 coords_from_sheets(build_sheets(GPTConfig(n_layer=2, n_head=2,
                                                           sheet_shape=(4, 4)), 0)))
    with pytest.raises(ValueError, match="16 unit positions but the model's width is 24"):
        load(ckpt, positions=other / "positions", tokenizer=bpe_dir)
    # no positions, no tokenizer
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(ckpt, lonely / "ckpt.pt")
    with pytest.raises(MissingModelPart, match=r"No unit positions.*'/authors/cluster/"
                                               r"positions'; tried /authors/cluster/positions, "
                                               r".*lonely/positions\. Pass positions= "
                                               r"\(--positions\)") as info:
        load(lonely / "ckpt.pt", tokenizer=bpe_dir)
    assert (info.value.part, info.value.parameter) == ("unit positions", "positions")
    with pytest.raises(ValueError, match="No tokenizer for"):
        load(ckpt, positions=pos)
    with pytest.raises(TypeError, match="sheet_spec do not apply to a TopoLM checkpoint"):
        load(ckpt, positions=pos, sheet_spec={})


# --------------------------------------------------------------------------- Hugging Face
@pytest.fixture(scope="module")
def hf_gpt2(tmp_path_factory, bpe_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("hf") / "gpt2-tiny"
    model = GPT2LMHeadModel(GPT2Config(vocab_size=320, n_positions=32, n_embd=16, n_layer=2,
                                       n_head=2, bos_token_id=0, eos_token_id=0))
    model.save_pretrained(d)
    shutil.copy(bpe_dir / "tokenizer.json", d / "tokenizer.json")
    return d, model.eval()


@pytest.fixture(scope="module")
def hf_llama(tmp_path_factory, bpe_dir):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("hf") / "llama-tiny"
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=320, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
        bos_token_id=0, eos_token_id=0))
    model.save_pretrained(d)
    return d, model.eval()


GPT2_SPEC = {
    "layers": {"block.0": {"module": "transformer.h.0", "shape": [4, 4]},
               "layer.0.attn": {"module": "transformer.h.0.attn", "layout": "permuted",
                                "seed": 3}},
    "patterns": [{"name": "layer.{i}.mlp", "module": "transformer.h.{i}.mlp",
                  "shape": [2, 8], "layout": "permuted", "seed": 7}],
}


def test_hf_gpt2_hooks_match_hidden_states(hf_gpt2, tmp_path):
    folder, ref = hf_gpt2
    sm = load(folder, sheet_spec=GPT2_SPEC)
    assert sm.layer_names == ["block.0", "layer.0.attn", "layer.0.mlp", "layer.1.mlp"]
    assert sm.context_length == 32 and sm.vocab_size == 320
    x, mask = batch(sm)
    acts = sm.activations(x, mask)
    with torch.no_grad():
        hs = ref(input_ids=x, attention_mask=mask.long(), output_hidden_states=True).hidden_states
    torch.testing.assert_close(acts["block.0"], hs[1], rtol=0, atol=0)
    # the residual decomposition of block 0: h1 = h0 + attn + mlp
    torch.testing.assert_close(acts["layer.0.mlp"], hs[1] - hs[0] - acts["layer.0.attn"],
                               rtol=1e-5, atol=1e-6)
    assert all(a.shape == (2, x.shape[1], 16) for a in acts.values())
    # layouts: identity; an explicit seed; a pattern's independent child seeds
    np.testing.assert_array_equal(sm.sheets["block.0"].positions, CorticalSheet((4, 4)).positions)
    np.testing.assert_array_equal(sm.sheets["layer.0.attn"].positions,
                                  CorticalSheet((4, 4), layout="permuted", seed=3).positions)
    kids = np.random.SeedSequence(7).spawn(2)
    for i in range(2):
        np.testing.assert_array_equal(
            sm.sheets[f"layer.{i}.mlp"].positions,
            CorticalSheet((2, 8), layout="permuted", seed=np.random.default_rng(kids[i])).positions)
    assert not ref.transformer.h[0].mlp._forward_hooks  # hooks removed after each pass
    # a permuted layout without a seed is seeded (0), not random
    # and positions may come from a layer,unit,x,y CSV
    csv_sheet = CorticalSheet((4, 4), layout="permuted", seed=5, name="b")
    write_positions_csv(tmp_path / "b.csv", {"b": csv_sheet})
    again = load(folder, sheet_spec={"layers": {
        "a": {"module": "transformer.h.1", "layout": "permuted"},
        "b": {"module": "transformer.h.1.mlp", "positions": str(tmp_path / "b.csv")}}})
    np.testing.assert_array_equal(again.sheets["a"].positions,
                                  CorticalSheet((4, 4), layout="permuted", seed=0).positions)
    np.testing.assert_array_equal(again.sheets["b"].positions, csv_sheet.positions)


def test_hf_padding_does_not_change_real_tokens(hf_gpt2):
    sm = load(hf_gpt2[0], sheet_spec=GPT2_SPEC)
    x, mask = batch(sm)
    both = sm.activations(x, mask)
    n = int(mask[0].sum())
    alone = sm.activations(x[:1, :n])
    for layer in both:
        torch.testing.assert_close(both[layer][0, :n], alone[layer][0], rtol=1e-5, atol=1e-6)


def test_hf_llama_with_yaml_spec(hf_llama, bpe_dir, tmp_path):
    folder, ref = hf_llama
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "patterns:\n"
        "  - {name: 'layer.{i}.attn', module: 'model.layers.{i}.self_attn', layout: permuted}\n"
        "  - {name: 'layer.{i}.mlp', module: 'model.layers.{i}.mlp'}\n"
        "layers:\n"
        "  block.0: {module: model.layers.0}\n")
    sm = load(folder, sheet_spec=spec, tokenizer=bpe_dir / "tokenizer.json")
    assert set(sm.layer_names) == {"layer.0.attn", "layer.1.attn", "layer.0.mlp",
                                   "layer.1.mlp", "block.0"}
    assert all(s.shape == (4, 4) for s in sm.sheets.values())  # TopoNets rule for 16
    x, mask = batch(sm)
    acts = sm.activations(x, mask)
    with torch.no_grad():
        hs = ref(input_ids=x, attention_mask=mask.long(), output_hidden_states=True).hidden_states
    torch.testing.assert_close(acts["block.0"], hs[1], rtol=0, atol=0)
    torch.testing.assert_close(acts["layer.0.mlp"], hs[1] - hs[0] - acts["layer.0.attn"],
                               rtol=1e-5, atol=1e-6)
    assert sm.bos_token_id == 0


def test_hf_gpt_neo_pattern(tmp_path, bpe_dir):
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    torch.manual_seed(0)
    ref = GPTNeoForCausalLM(GPTNeoConfig(
        vocab_size=320, hidden_size=16, num_layers=2, num_heads=2,
        attention_types=[[["global", "local"], 1]], max_position_embeddings=32,
        window_size=4, bos_token_id=0, eos_token_id=0)).eval()
    ref.save_pretrained(tmp_path / "neo")
    sm = load(tmp_path / "neo", tokenizer=bpe_dir,
              sheet_spec={"pattern": {"name": "block.{i}", "module": "transformer.h.{i}"}})
    assert sm.layer_names == ["block.0", "block.1"] and sm.context_length == 32
    x, mask = batch(sm)
    with torch.no_grad():
        hs = ref(input_ids=x, attention_mask=mask.long(), output_hidden_states=True).hidden_states
    # not bit-identical: GPT-Neo builds its mask differently with use_cache=False
    torch.testing.assert_close(sm.activations(x, mask)["block.0"], hs[1], rtol=1e-6,
                               atol=1e-7)


def test_hf_errors(hf_gpt2, tmp_path):
    folder, _ = hf_gpt2
    with pytest.raises(ValueError, match="pass sheet_spec="):
        load(folder)
    with pytest.raises(ValueError, match=r"16 units but its sheet shape \(3, 5\) holds 15.*"
                                         r"\[4, 4\]"):
        load(folder, sheet_spec={"layers": {"a": {"module": "transformer.h.0.mlp",
                                                  "shape": [3, 5]}}})
    with pytest.raises(ValueError, match="no module 'transformer.h.0.mpl'.*Did you mean "
                                         "'transformer.h.0.mlp'"):
        load(folder, sheet_spec={"layers": {"a": {"module": "transformer.h.0.mpl"}}})
    with pytest.raises(ValueError, match=r"unknown fields \['shap'\].*Did you mean 'shape'"):
        load(folder, sheet_spec={"layers": {"a": {"module": "transformer.h.0.mlp",
                                                  "shap": [4, 4]}}})
    with pytest.raises(ValueError, match=r"Unknown sheet spec fields \['layer'\]"):
        load(folder, sheet_spec={"layer": {}})
    with pytest.raises(ValueError, match="Allowed values are 'identity', 'permuted'"):
        load(folder, sheet_spec={"layers": {"a": {"module": "transformer.h.0", "layout": "x"}}})
    with pytest.raises(ValueError, match="pattern 'transformer.blocks.{i}' matches no module"):
        load(folder, sheet_spec={"pattern": {"module": "transformer.blocks.{i}",
                                             "name": "b.{i}"}})
    with pytest.raises(ValueError, match="must contain '{i}'"):
        load(folder, sheet_spec={"patterns": [{"module": "transformer.h.0"}]})
    with pytest.raises(TypeError, match="sheet_spec must be a dict"):
        load(folder, sheet_spec=["transformer.h.0"])
    with pytest.raises(TypeError, match="positions do not apply to a Hugging Face folder"):
        load(folder, sheet_spec=GPT2_SPEC, positions=tmp_path)


def test_hf_truncated_weights_and_missing_tokenizer(hf_gpt2, tmp_path):
    folder = copy_folder(hf_gpt2[0], tmp_path / "m")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match="No tokenizer for"):
        load(folder, sheet_spec=GPT2_SPEC)
    w = folder / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(folder, sheet_spec=GPT2_SPEC)


def test_cards_record_the_topoloss_rule(tmp_path, tokenizer):
    from topobrain.models.losses import TOPOLOSS_SHRINK

    model = tiny_gpt()
    card = {"name": "t", "spatial_loss": {"kind": "topoloss", "phi": 3.0, "tau": 1.0,
                                          "modules": ["mlp.c_fc"]}}
    folder = save_model(tmp_path / "t", model, build_sheets(model.config, 0), tokenizer, card)
    assert "shrink" not in card["spatial_loss"]  # the caller's card is not changed
    saved = json.loads((folder / "card.json").read_text())
    assert saved["spatial_loss"]["shrink"] == TOPOLOSS_SHRINK
    assert f"blur rule {TOPOLOSS_SHRINK}" in (folder / "README.md").read_text()
    card["spatial_loss"]["kind"] = "correlation"
    folder = save_model(tmp_path / "c", model, build_sheets(model.config, 0), tokenizer, card)
    assert "TopoLoss: not used (correlation loss)" in (folder / "README.md").read_text()


@pytest.mark.parametrize("name", ["topolm-tiny", "topolm-tiny-control"])
def test_bundled_cards_say_topoloss_was_not_used(name):
    """Both were trained with the correlation loss: the TopoLoss resize fix cannot touch them."""
    if name not in available_models():
        pytest.skip(f"{name} is not bundled in this checkout")
    card = load(name).card
    assert card["spatial_loss"]["kind"] == "correlation"
    assert card["training"]["spatial"]["kind"] == "correlation"
    assert card["spatial_loss"]["topoloss_used"] is False
    readme = (loaders_mod.bundled_model_dir(name) / "README.md").read_text()
    assert "TopoLoss: not used (correlation loss)" in readme
