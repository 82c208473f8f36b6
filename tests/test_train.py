"""Training: corpus preparation, the loop, exact resume, the CLI, torchrun with gloo.

A tiny config on a tiny corpus written to tmp_path (2 blocks, 4 x 4 sheet, context 16,
a few steps); nothing depends on data/ or runs/.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from topobrain.cli import main
from topobrain.models import load
from topobrain.models import train as train_mod
from topobrain.models.tokenizer import EOT, load_tokenizer
from topobrain.models.train import TrainConfig, load_config, prepare_corpus, train
from topobrain.sheet import CorticalSheet

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


WORDS = ("the a cortex map model reads writes word sentence language brain region unit "
         "sheet verb noun walks sees finds small large quiet green river stone house and "
         "of to in with near over under").split()


def write_corpus(folder: Path, n_docs=10, n_words=80, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_docs):
        sentences = []
        for _ in range(n_words // 8):
            words = rng.choice(WORDS, size=8)
            sentences.append(" ".join(words).capitalize() + ".")
        (folder / f"doc{k:02d}.txt").write_text(" ".join(sentences), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "txt")


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    """A prepared corpus shared by the runs below (prepare_corpus skips a second call)."""
    return prepare_corpus(corpus, tmp_path_factory.mktemp("prep") / "prepared",
                          vocab_size=300, val_fraction=0.3, seed=0)


def tiny_config(tmp_path, corpus, prepared, **over) -> dict:
    cfg = {
        "name": "tiny", "out": str(tmp_path / "run"), "corpus": str(corpus),
        "prepared": str(prepared), "vocab_size": 300, "val_fraction": 0.3, "seed": 0,
        "model": {"n_layer": 2, "n_head": 2, "sheet_shape": [4, 4], "block_size": 16},
        "spatial": {"kind": "correlation", "alpha": 2.5, "radius": 1, "n_neighbourhoods": 3},
        "batch_size": 4, "max_steps": 6, "warmup_steps": 2, "eval_interval": 3,
        "eval_batches": 2, "checkpoint_interval": 3, "verbose": 0, "save_dtype": "float32",
        "threads": 1, "device": "cpu",  # CPU even where CUDA exists: gloo, exact resume
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def history(folder: Path) -> dict:
    h = json.loads((Path(folder) / "card.json").read_text())["history"]
    h.pop("seconds")
    return h


# --------------------------------------------------------------------------- corpus
def test_prepare_corpus_round_trip(corpus, prepared):
    meta = json.loads((prepared / "meta.json").read_text())
    tok = load_tokenizer(prepared / "tokenizer.json")
    assert meta["vocab_size"] == tok.get_vocab_size() <= 300
    assert meta["eot_id"] == tok.token_to_id(EOT)
    assert meta["n_documents"]["train"] + meta["n_documents"]["val"] == 10
    assert meta["n_documents"]["val"] >= 1
    ids = {s: np.memmap(prepared / f"{s}.bin", dtype=meta["dtype"], mode="r")
           for s in ("train", "val")}
    for s, arr in ids.items():
        assert arr.size == meta["n_tokens"][s]
    docs = {p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.txt"))}
    decoded = []
    for arr in ids.values():
        cuts = np.flatnonzero(np.asarray(arr) == meta["eot_id"])
        start = 0
        for c in cuts:
            decoded.append(tok.decode(np.asarray(arr[start:c]).tolist()))
            start = c + 1
    assert set(decoded) == docs
    # a second call with the same corpus and options does not rewrite anything
    before = (prepared / "train.bin").stat().st_mtime_ns
    prepare_corpus(corpus, prepared, vocab_size=300, val_fraction=0.3, seed=0)
    assert (prepared / "train.bin").stat().st_mtime_ns == before


def test_prepare_corpus_with_gpt2_vocab_and_merges(corpus, prepared, tmp_path):
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train([str(p) for p in corpus.glob("*.txt")], vocab_size=280, min_frequency=1,
              special_tokens=[EOT], show_progress=False)
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    tok.save_model(str(gpt2))  # vocab.json + merges.txt, the GPT-2 file pair
    out = prepare_corpus(corpus, tmp_path / "prep", tokenizer=gpt2, val_fraction=0.3)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["vocab_size"] == tok.get_vocab_size()
    train_ids = np.memmap(out / "train.bin", dtype=meta["dtype"], mode="r")
    first = next(p for p in sorted(corpus.glob("*.txt")))
    expect = tok.encode(first.read_text(encoding="utf-8")).ids
    assert np.asarray(train_ids[: len(expect)]).tolist() == expect or meta["n_documents"]["val"]


def test_prepare_corpus_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No .txt documents"):
        prepare_corpus(tmp_path / "empty", tmp_path / "p")


# --------------------------------------------------------------------------- config
def test_unknown_config_fields_raise(tmp_path, corpus, prepared):
    base = tiny_config(tmp_path, corpus, prepared)
    with pytest.raises(ValueError, match=r"Unknown training config fields \['max_step'\]"):
        TrainConfig.from_dict({**base, "max_step": 5})
    with pytest.raises(ValueError, match=r"Unknown spatial config fields \['alpah'\]"):
        TrainConfig.from_dict({**base, "spatial": {"alpah": 1.0}})
    with pytest.raises(ValueError, match=r"Unknown model config fields \['n_embd'\]"):
        TrainConfig.from_dict({**base, "model": {"n_embd": 16}})
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({**base, "learning_rate": 0.1}))
    with pytest.raises(ValueError, match=r"Unknown training config fields \['learning_rate'\]"):
        load_config(p)
    p.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="must be a YAML mapping"):
        load_config(p)


def test_lr_schedule_warmup_and_cosine():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert train_mod._lr_at(0, cfg) == pytest.approx(1e-4)
    assert train_mod._lr_at(9, cfg) == pytest.approx(1e-3)
    assert train_mod._lr_at(10, cfg) == pytest.approx(1e-3)
    assert train_mod._lr_at(60, cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert train_mod._lr_at(110, cfg) == pytest.approx(1e-4)
    lrs = [train_mod._lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs[:-1], lrs[1:], strict=True))
    assert train_mod._lr_at(35, cfg) == pytest.approx(
        1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 25 / 100))))


# --------------------------------------------------------------------------- the loop
class Crash(Exception):
    pass


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_exact_resume(tmp_path, corpus, prepared, monkeypatch, dropout):
    """N steps in one go == N/2 steps, a crash, and a resume: same weights and history."""
    one = train(tiny_config(tmp_path / "a", corpus, prepared, model={"dropout": dropout}))
    cfg_b = tiny_config(tmp_path / "b", corpus, prepared, model={"dropout": dropout})
    real_save = train_mod._save_checkpoint

    def crash_after_half(path, model, opt, rng, gen, step, *args, **kw):
        real_save(path, model, opt, rng, gen, step, *args, **kw)
        if step == 3:
            raise Crash("simulated interruption after the step-3 checkpoint")

    monkeypatch.setattr(train_mod, "_save_checkpoint", crash_after_half)
    with pytest.raises(Crash):
        train(cfg_b)
    assert not (tmp_path / "b" / "run" / "model").exists()
    monkeypatch.setattr(train_mod, "_save_checkpoint", real_save)
    two = train(cfg_b)
    wa, wb = weights(one), weights(two)
    assert set(wa) == set(wb)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ha, hb = history(one), history(two)
    assert ha["step"] == list(range(1, 7)) and ha["val_step"] == [3, 6]
    assert ha == hb
    assert all(np.isfinite(ha["train_loss"])) and all(np.isfinite(ha["spatial_loss"]))


def test_alpha_zero_is_the_control(tmp_path, corpus, prepared):
    """alpha = 0: the spatial settings cannot change the weights; alpha > 0 does."""
    a = train(tiny_config(tmp_path / "a", corpus, prepared, max_steps=4,
                          spatial={"alpha": 0.0, "radius": 1}))
    b = train(tiny_config(tmp_path / "b", corpus, prepared, max_steps=4,
                          spatial={"alpha": 0.0, "radius": 3, "n_neighbourhoods": 7}))
    c = train(tiny_config(tmp_path / "c", corpus, prepared, max_steps=4))
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    ha = history(a)
    # the control monitors the spatial loss (without gradients) every 10th step only
    assert np.isfinite(ha["spatial_loss"][0]) and np.isnan(ha["spatial_loss"][1])
    assert history(a)["train_loss"] == history(b)["train_loss"]


def test_trained_folder_loads_and_card(tmp_path, corpus, prepared):
    out = train(tiny_config(tmp_path, corpus, prepared, max_steps=3, eval_interval=2,
                            spatial={"kind": "topoloss", "alpha": 1.0,
                                     "modules": ["mlp.c_proj"]}))
    sm = load(out)
    assert sm.layer_names == [f"layer.{i}.{k}" for i in range(2) for k in ("attn", "mlp")]
    assert all(s.shape == (4, 4) for s in sm.sheets.values())
    # the sheets TopoLoss smooths are laid out as it reshapes the weight rows (row-major,
    # as TopoNets); the others are permuted, one layout per layer, as TopoLM
    grid = CorticalSheet((4, 4)).positions
    for name, sheet in sm.sheets.items():
        assert np.array_equal(sheet.positions, grid) == name.endswith(".mlp"), name
    assert len({tuple(map(tuple, sm.sheets[f"layer.{i}.attn"].positions))
                for i in range(2)}) == 2
    card = json.loads((out / "card.json").read_text())
    assert card["steps"] == 3 and card["tokens_seen"] == 3 * 4 * 16
    assert card["history"]["val_step"] == [2, 3]
    assert card["spatial_loss"]["kind"] == "topoloss"
    assert card["unigram_val_loss"] > 0 and np.isfinite(card["final_val_loss"])


def test_cli_train_in_process(tmp_path, corpus, prepared, capsys):
    cfg = tiny_config(tmp_path, corpus, prepared)
    cfg.pop("verbose")
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(p), "--max-steps", "2",
                 "--out", str(tmp_path / "cli")]) == 0
    captured = capsys.readouterr()
    assert f"model written to {tmp_path / 'cli' / 'model'}" in captured.out
    assert "task=" in captured.err and "spatial=" in captured.err  # the tqdm bar
    assert json.loads((tmp_path / "cli" / "model" / "card.json").read_text())["steps"] == 2
    # an unknown field: exit status 2, the library's message on one line
    p.write_text(yaml.safe_dump({**cfg, "max_step": 3}))
    assert main(["train", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"topobrain train: error: {p}:" in err
    assert "Unknown training config fields ['max_step']" in err and "'max_steps'" in err


def test_torchrun_two_gloo_processes(tmp_path, corpus, prepared):
    cfg = tiny_config(tmp_path, corpus, prepared, max_steps=3, eval_interval=3)
    p = tmp_path / "ddp.yaml"
    p.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", "2", "-m", "topobrain", "-q", "train", "--config", str(p)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "run" / "model"
    card = json.loads((out / "card.json").read_text())
    assert card["steps"] == 3
    assert card["tokens_seen"] == 3 * 4 * 16 * 2  # two processes, each a batch of 4
    sm = load(out)
    assert len(sm.sheets) == 4
    # each process's own data order is checkpointed, so that a resume continues both
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert isinstance(state["rng"], list) and len(state["rng"]) == 2
    assert state["rng"][0] != state["rng"][1]


def test_corpus_too_small_for_a_context(tmp_path):
    corpus = write_corpus(tmp_path / "c", n_docs=3, n_words=8)
    cfg = tiny_config(tmp_path, corpus, tmp_path / "prep", model={"block_size": 32},
                      val_fraction=0.3)
    with pytest.raises(ValueError, match=r"split of .* has \d+ tokens, fewer than one "
                                         r"context of 32"):
        train(cfg)
    meta = json.loads((tmp_path / "prep" / "meta.json").read_text())
    assert meta["n_documents"]["val"] >= 1 and meta["n_documents"]["train"] >= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bf16 autocast)")
def test_cuda_bf16_training(tmp_path, corpus, prepared):  # pragma: no cover - CPU CI
    out = train(tiny_config(tmp_path, corpus, prepared, max_steps=3, device="cuda"))
    card = json.loads((out / "card.json").read_text())
    assert all(np.isfinite(card["history"]["train_loss"]))
    assert np.isfinite(card["final_val_loss"])


# --------------------------------------------------------------------------- resume checks
def card(folder: Path) -> dict:
    return json.loads((Path(folder) / "card.json").read_text())


def test_resume_refuses_a_changed_config(tmp_path, corpus, prepared):
    base = tiny_config(tmp_path, corpus, prepared, max_steps=3)
    train(base)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    before = ckpt.read_bytes()
    # alpha 2.5 -> 0: what the model learns changes; no flag allows it
    with pytest.raises(ValueError, match=r"checkpoint\.pt was trained with another config: "
                                         r"spatial\.alpha 2\.5 -> 0\.0\. Restore spatial\.alpha"):
        train(tiny_config(tmp_path, corpus, prepared, max_steps=3, spatial={"alpha": 0.0}))
    with pytest.raises(ValueError, match="only .* may change when a run resumes"):
        train(tiny_config(tmp_path, corpus, prepared, max_steps=3, spatial={"alpha": 0.0}),
              allow_config_change=["spatial.alpha"])
    # several keys: all listed, each with the checkpoint's and the new value
    with pytest.raises(ValueError) as exc:
        train(tiny_config(tmp_path, corpus, prepared, max_steps=5, lr=0.01,
                          model={"n_head": 4}))
    msg = str(exc.value)
    assert "\n" not in msg
    assert "lr 0.001 -> 0.01" in msg and "max_steps 3 -> 5" in msg
    assert "model.n_head 2 -> 4" in msg
    assert "allow_config_change='max_steps'" in msg
    # defaults written out or left out are the same config
    same = {**base, "spatial": {**base["spatial"], "distance": "inverse", "tau": 1.0}}
    train(same)
    assert ckpt.read_bytes() == before  # refused resumes never touched the checkpoint


def test_resume_with_allowed_changes_is_recorded(tmp_path, corpus, prepared):
    short = train(tiny_config(tmp_path / "a", corpus, prepared, max_steps=3))
    short_history, short_card = history(short), card(short)
    with pytest.raises(ValueError, match=r"max_steps 3 -> 6.*allow_config_change="
                                         r"'max_steps'"):
        train(tiny_config(tmp_path / "a", corpus, prepared, max_steps=6))
    longer = train(tiny_config(tmp_path / "a", corpus, prepared, max_steps=6,
                               eval_interval=2),
                   allow_config_change="max_steps, eval_interval")
    c = card(longer)
    assert c["steps"] == 6 and c["training"]["max_steps"] == 6
    assert c["resumes"] == [{"step": 3, "changed": {"eval_interval": [3, 2],
                                                    "max_steps": [3, 6]}}]
    h = history(longer)
    assert h["step"] == list(range(1, 7)) and h["val_step"] == [3, 4, 6]
    assert h["train_loss"][:3] == short_history["train_loss"]
    # a second resume keeps the first in the record; an unchanged resume is listed too
    again = train(tiny_config(tmp_path / "a", corpus, prepared, max_steps=6,
                              eval_interval=2))
    assert card(again)["resumes"] == [c["resumes"][0], {"step": 6, "changed": {}}]
    # a fresh run has no resumes
    assert short_card["resumes"] == []


def test_checkpoint_that_does_not_fit_the_model(tmp_path, corpus, prepared):
    """A checkpoint whose weights disagree with its own config: one line, no RuntimeError."""
    train(tiny_config(tmp_path, corpus, prepared, max_steps=3))
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    state["config"]["model"]["n_layer"] = 3  # as if written by another version
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match=r"checkpoint\.pt does not fit the configured model "
                                         r"\(.*\); resume with the config it was trained with"):
        train(tiny_config(tmp_path, corpus, prepared, max_steps=3, model={"n_layer": 3}))


def test_cli_resume_errors_are_one_line(tmp_path, corpus, prepared, capsys):
    cfg = tiny_config(tmp_path, corpus, prepared, max_steps=2)
    cfg.pop("verbose")
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert main(["-q", "train", "--config", str(p)]) == 0
    capsys.readouterr()
    # an architecture change: one line, the key, no traceback
    p.write_text(yaml.safe_dump({**cfg, "model": {**cfg["model"], "n_layer": 3}}))
    assert main(["train", "--config", str(p), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "model.n_layer 2 -> 3" in err and "another folder (--out)" in err
    # a longer run: the message names the flag, which then resumes
    p.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(p), "--max-steps", "3", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "max_steps 2 -> 3" in err
    assert "--allow-config-change 'max_steps'" in err
    assert main(["train", "--config", str(p), "--max-steps", "3", "-q",
                 "--allow-config-change", "max_steps"]) == 0
    c = card(tmp_path / "run" / "model")
    assert c["steps"] == 3 and c["resumes"] == [{"step": 2, "changed": {"max_steps": [2, 3]}}]
    assert main(["train", "--config", str(p), "--allow-config-change", "alpha"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--allow-config-change 'alpha': only" in err


def test_config_types_and_ranges(tmp_path, corpus, prepared):
    base = tiny_config(tmp_path, corpus, prepared)
    bad = [
        ({"max_steps": "ten"}, TypeError, r"max_steps must be an integer; got 'ten' \(str\)"),
        ({"max_steps": 2.0}, TypeError, "max_steps must be an integer"),
        ({"lr": "fast"}, TypeError, "lr must be a number"),
        ({"seed": True}, TypeError, "seed must be an integer"),
        ({"threads": "2"}, TypeError, "threads must be an integer or null"),
        ({"model": {"n_layer": "two"}}, TypeError, "model.n_layer must be an integer"),
        ({"model": {"sheet_shape": [4]}}, TypeError, "model.sheet_shape must be a list of 2"),
        ({"spatial": {"inclusive": "yes"}}, TypeError, "spatial.inclusive must be true or "
                                                        "false"),
        ({"spatial": [1]}, TypeError, "spatial must be a mapping"),
        ({"max_steps": 0}, ValueError, r"max_steps must be >= 1; got 0"),
        ({"val_fraction": 1.5}, ValueError, r"val_fraction must be in \[0, 1\]"),
        ({"lr": 0}, ValueError, "lr must be > 0"),
        ({"model": {"dropout": 2.0}}, ValueError, r"model.dropout must be in \[0, 1\]"),
        ({"spatial": {"kind": "moran"}}, ValueError, "spatial.kind must be one of"),
        ({"spatial": {"distance": "l2"}}, ValueError, "spatial.distance must be one of"),
        ({"betas": [0.9, 1.5]}, ValueError, r"betas must be two numbers in \[0, 1\)"),
        ({"betas": [0.9]}, TypeError, "betas must be a list of 2 numbers"),
    ]
    for over, exc, match in bad:
        cfg = {**base}
        for k, v in over.items():
            cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg[k], dict) else v
        with pytest.raises(exc, match=match):
            TrainConfig.from_dict(cfg)
    # what is right passes: ints for floats, null threads, tuples or lists
    TrainConfig.from_dict({**base, "lr": 1, "threads": None, "betas": (0.9, 0.95)})


def test_train_checks_a_config_object(tmp_path, corpus, prepared):
    cfg = TrainConfig.from_dict(tiny_config(tmp_path, corpus, prepared))
    cfg.max_steps = "ten"  # set after loading, as a script might
    with pytest.raises(TypeError, match="max_steps must be an integer; got 'ten'"):
        train(cfg)
    with pytest.raises(TypeError, match="config must be a TrainConfig, a dict or the path"):
        train(42)


def test_train_device_cuda_without_cuda(tmp_path, corpus, prepared, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='cuda': CUDA is not available"):
        train(tiny_config(tmp_path, corpus, prepared, device="cuda"))


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")),
                         ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_bundled_configs_pass_the_checks(path):
    cfg = load_config(path)
    assert cfg.name == path.stem and cfg.max_steps >= 1
    # the schema check is the same one: a bad value in a copy of the file is caught
    text = path.read_text(encoding="utf-8").replace(f"max_steps: {cfg.max_steps}",
                                                    "max_steps: ten")
    with pytest.raises(TypeError, match="max_steps must be an integer"):
        TrainConfig.from_dict(yaml.safe_load(text))


def test_topoloss_only_on_modules_whose_rows_are_sheet_units(tmp_path, corpus, prepared):
    # mlp.c_fc's rows are the MLP's hidden units: no sheet layer shows them
    with pytest.raises(ValueError, match="spatial.modules.*Use mlp.c_proj"):
        train(tiny_config(tmp_path, corpus, prepared, max_steps=1,
                          spatial={"kind": "topoloss", "modules": ["mlp.c_fc"]}))
    with pytest.raises(ValueError, match="TopoLoss reshapes 12 rows to \\[3, 4\\]"):
        train(tiny_config(tmp_path, corpus, prepared, max_steps=1,
                          model={"n_layer": 1, "n_head": 2, "sheet_shape": [2, 6],
                                 "block_size": 16},
                          spatial={"kind": "topoloss", "modules": ["mlp.c_proj"]}))


def test_topoloss_trains_the_exported_sheets_smooth(tmp_path, corpus, prepared):
    """The rows TopoLoss smooths are the units the exported sheet lays out: the trained
    model's mlp.c_proj rows, read on the exported sheet, are smooth there."""
    from topobrain.models.losses import topoloss

    out = train(tiny_config(tmp_path, corpus, prepared, max_steps=30, eval_interval=30,
                            spatial={"kind": "topoloss", "alpha": 50.0, "phi": 2.0,
                                     "modules": ["mlp.c_proj"]}))
    sm = load(out)
    w = sm.module.transformer.h[0].mlp.c_proj.weight.detach().double()
    sheet = sm.sheets["layer.0.mlp"]
    cells = sheet.positions[:, 0] * sheet.shape[1] + sheet.positions[:, 1]
    on_sheet = torch.zeros_like(w)
    on_sheet[torch.as_tensor(cells)] = w  # each unit's row at its cell, row-major
    shuffled = w[torch.as_tensor(np.random.default_rng(0).permutation(w.shape[0]))]
    assert float(topoloss(on_sheet, phi=2.0)) < 0.5 * float(topoloss(shuffled, phi=2.0))
