"""The topobrain command: help, version, sys-info, errors on one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from topobrain import __version__
from topobrain.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "localize", "compare", "stimuli", "sys-info"):
        assert command in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: topobrain" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"topobrain {__version__}"


def test_sys_info(capsys):
    assert main(["sys-info"]) == 0
    out = capsys.readouterr().out
    assert "topobrain" in out and "numpy" in out


def test_errors_are_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: x\nlearning_rate: 3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Unknown training config fields ['learning_rate']" in err
    assert "Traceback" not in err


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "topobrain", "--version"],
                         capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


# --------------------------------------------------------------------------- one line
def one_line(err: str) -> str:
    """The error printed by main: exactly one line, no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv", [
    ["sys-info", "-q"], ["-q", "sys-info"], ["sys-info", "--debug"], ["sys-info", "-v", "-v"],
    ["stimuli", "list", "-q"], ["stimuli", "-q", "list"],
])
def test_global_options_anywhere(argv, capsys):
    assert main(argv) == 0
    assert "error" not in capsys.readouterr().err


def test_global_options_reach_the_command(monkeypatch):
    from topobrain._cli import sys_info

    seen = {}
    monkeypatch.setattr(sys_info, "run", lambda args: seen.update(vars(args)) or 0)
    assert main(["sys-info", "-q"]) == 0
    assert seen["quiet"] and seen["verbose"] == 0 and not seen["debug"]
    assert main(["-v", "sys-info", "-v", "--debug"]) == 0
    assert seen["verbose"] == 3 and seen["debug"] and not seen["quiet"]
    assert main(["sys-info"]) == 0
    assert seen["verbose"] == 1
    assert not any(k.startswith("sub_") for k in seen)


def test_usage_errors_are_one_line(capsys):
    assert main(["localize", "--model", "m"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("topobrain localize: error: the following arguments are required")
    assert "--stimuli" in line and "--help" in line
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in one_line(capsys.readouterr().err)


LOCALIZE = ["localize", "--model", "m", "--stimuli", "s", "--contrast", "S - N", "--out", "o"]
COMPARE = ["compare", "--model-results", "r", "--brain", "b.nii", "--out", "o"]


@pytest.mark.parametrize("base, flag, value, allowed", [
    (LOCALIZE, "--cluster-p", "0", "in (0, 1)"),
    (LOCALIZE, "--cluster-p", "1.5", "in (0, 1)"),
    (LOCALIZE, "--cluster-p", "1", "in (0, 1)"),
    (LOCALIZE, "--cluster-p", "nan", "finite"),
    (LOCALIZE, "--cluster-p", "x", "a number"),
    (LOCALIZE, "--alpha", "0", "in (0, 1)"),
    (LOCALIZE, "--n-permutations", "-1", ">= 0"),
    (LOCALIZE, "--n-permutations", "2.5", "an integer"),
    (LOCALIZE, "--smooth-fwhm", "-1", ">= 0"),
    (LOCALIZE, "--smooth-fwhm", "inf", "finite"),
    (LOCALIZE, "--smooth-fwhm", "nan", "finite"),
    (LOCALIZE, "--n-jobs", "0", "non-zero"),
    (LOCALIZE, "--batch-size", "0", ">= 1"),
    (LOCALIZE, "--seed", "-3", ">= 0"),
    (LOCALIZE, "--brain-reference", "2", "in [-1, 1]"),
    (LOCALIZE, "--device", "gpu", "auto, cpu, cuda, cuda:N or mps"),
    (COMPARE, "--alpha", "1.5", "in (0, 1)"),
    (COMPARE, "--n-permutations", "-20", ">= 0"),
    (COMPARE, "--df", "0", "> 0"),
    (COMPARE, "--index", "one", "int"),
    (["train", "--config", "c.yaml"], "--max-steps", "0", ">= 1"),
    (["stimuli", "make", "pseudowords"], "--n", "-2", ">= 1"),
    (["stimuli", "make", "pseudowords", "--n", "3"], "--length", "0", ">= 1"),
    (["stimuli", "make", "nonwords", "langloc"], "--seed", "-1", ">= 0"),
    (["stimuli", "show", "langloc"], "--head", "-1", ">= 0"),
])
def test_numeric_flags_are_range_checked(base, flag, value, allowed, capsys):
    assert main([*base, flag, value]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"argument {flag}:" in line and allowed in line and value in line, line


def test_device_cuda_without_cuda(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # refused before the model or the stimuli are read (both do not exist here)
    assert main([*LOCALIZE, "--device", "cuda"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--device cuda: CUDA is not available" in line and "--device cpu" in line
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert main([*LOCALIZE, "--device", "cuda:3"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "1 CUDA device(s)" in line and "cuda:0" in line


def test_train_config_errors_name_file_and_line(tmp_path, capsys):
    marker = tmp_path / "executed"
    cases = {
        "max_steps: ten\n": ("max_steps must be an integer; got 'ten' (str)", 1),
        "name: x\nspatial: {alpha: 2.5\nlr: 1\n": ("not valid YAML", 3),
        f"name: x\nout: !!python/object/apply:os.mkdir ['{marker}']\n":
            ("the YAML tag", 2),
        "name: x\n\nmodel:\n  n_head: 2\n  sheet_shape: [4, four]\n":
            ("model.sheet_shape must be a list of 2 integers", 5),
        "batch_size: 0\n": ("batch_size must be >= 1; got 0", 1),
        "spatial:\n  alpha: -1\n": ("spatial.alpha must be >= 0", 2),
        "spatial:\n  alpah: 1\n": ("Unknown spatial config fields ['alpah']", 2),
        "save_dtype: int8\n": ("save_dtype must be one of", 1),
        "- a\n- list\n": ("must be a YAML mapping", None),
    }
    for text, (message, line_no) in cases.items():
        cfg = tmp_path / "c.yaml"
        cfg.write_text(text)
        assert main(["train", "--config", str(cfg)]) == 2, text
        line = one_line(capsys.readouterr().err)
        assert message in line, line
        where = f"{cfg}:{line_no}: " if line_no else f"{cfg}: "
        assert line.startswith(f"topobrain train: error: {where}"), line
    assert not marker.exists()  # the python tag was never constructed
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in one_line(capsys.readouterr().err)
    assert main(["train", "--config", str(tmp_path)]) == 2
    assert f"Training config {tmp_path} is a folder" in one_line(capsys.readouterr().err)


def test_keywords_in_library_messages_become_flags():
    from topobrain.cli import with_flags

    flags = {"index": "--index", "encoding": "--encoding", "contrast": "--contrast",
             "alpha": "--alpha", "mesh": "--mesh"}
    assert (with_flags("x.npy holds 2 rows; pass index= (0-based) to pick one.", flags)
            == "x.npy holds 2 rows; pass --index (0-based) to pick one.")
    assert (with_flags("Re-save it, or pass encoding='utf-8-sig'.", flags)
            == "Re-save it, or pass --encoding 'utf-8-sig'.")
    assert (with_flags("pass contrast= (--contrast) to pick one.", flags)
            == "pass --contrast to pick one.")
    assert with_flags("pass mesh=.", flags) == "pass --mesh."
    flags.update(wait="--wait", device="--device")
    assert (with_flags("pass wait=True (--wait) to queue behind it", flags)
            == "pass --wait to queue behind it")
    assert (with_flags("Pass device='cpu' (--device cpu) or 'auto'.", flags)
            == "Pass --device cpu or 'auto'.")
    # values and other words stay
    for text in ("got alpha=2.", "reindex= x", "pass seed= here", "n_head=4 must"):
        assert with_flags(text, flags) == text


def test_unexpected_errors_are_one_line_with_debug_pointer(monkeypatch, capsys):
    from topobrain._cli import sys_info

    def boom(args):
        raise RuntimeError("something\nbroke\n  inside")

    monkeypatch.setattr(sys_info, "run", boom)
    assert main(["sys-info"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("topobrain sys-info: error: RuntimeError: something broke inside")
    assert "--debug" in line
    with pytest.raises(RuntimeError, match="something"):
        main(["sys-info", "--debug"])

    def missing(args):
        raise KeyError("model")

    monkeypatch.setattr(sys_info, "run", missing)
    assert main(["sys-info"]) == 2
    assert "missing key 'model'" in one_line(capsys.readouterr().err)


def test_warnings_are_one_line(monkeypatch, capsys):
    import warnings

    from topobrain._cli import sys_info

    def warn(args):
        warnings.warn("3 of 8 units are constant;\n  pass alpha= lower", UserWarning,
                      stacklevel=1)
        return 0

    monkeypatch.setattr(sys_info, "run", warn)
    assert main(["sys-info"]) == 0
    err = capsys.readouterr().err
    assert err == "topobrain sys-info: warning: 3 of 8 units are constant; pass alpha= lower\n"
    assert warnings.showwarning is not None and "show_warning" not in repr(warnings.showwarning)


def test_config_json_without_model(tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"format": "topobrain-topogpt"}')
    (folder / "model.safetensors").write_bytes(b"")
    assert main(["localize", "--model", str(folder), "--stimuli", "langloc", "--contrast",
                 "S - N", "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "config.json" in line and "'model'" in line


# --------------------------------------------------------------------------- stimuli files
LATIN1_TSV = "item_id\tcondition\ttext\n" + "".join(
    f"{k}\t{'S' if k % 2 else 'N'}\t{'the café sat on the mat' if k % 2 else 'blorp fep zun'}\n"
    for k in range(1, 13))


def test_stimulus_file_encoding_flag(tmp_path, capsys):
    path = tmp_path / "items.tsv"
    path.write_text(LATIN1_TSV, encoding="latin-1")
    assert main(["localize", "--model", "topolm-tiny", "--stimuli", str(path), "--contrast",
                 "S - N", "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "not valid utf-8" in line and "--encoding 'latin-1'" in line
    assert "encoding=" not in line
    assert main(["stimuli", "validate", str(path)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("topobrain stimuli validate: error: ")
    assert "--encoding 'latin-1'" in line
    assert main(["stimuli", "validate", str(path), "--encoding", "latin-1"]) == 0
    assert "12 items" in capsys.readouterr().out
    # with --encoding the file is read; the next problem is the (missing) model
    assert main(["localize", "--model", "no-such-model", "--stimuli", str(path),
                 "--encoding", "latin-1", "--contrast", "S - N",
                 "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "no-such-model" in line and "encoding" not in line


def test_localize_wait_flag_reaches_the_localizer(tmp_path, monkeypatch, capsys):
    import topobrain.pipeline as pipeline

    seen = {}

    class Result:
        summary = ["ok"]
        report = "r.html"

    def fake(model, stimuli, contrasts, *, out, wait=False, **kw):
        seen.update(wait=wait, smooth_fwhm=kw["smooth_fwhm"], n_jobs=kw["n_jobs"])
        return Result()

    monkeypatch.setattr(pipeline, "localize", fake)
    assert main([*LOCALIZE, "--wait", "--smooth-fwhm", "0", "--n-jobs", "-1"]) == 0
    assert seen == {"wait": True, "smooth_fwhm": None, "n_jobs": -1}
    assert main([*LOCALIZE, "--wait", "2.5"]) == 0
    assert seen["wait"] == 2.5
    assert main(LOCALIZE) == 0
    assert seen["wait"] is False and seen["n_jobs"] is None
    assert main([*LOCALIZE, "--wait", "-1"]) == 2
    assert "argument --wait: must be >= 0" in one_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- compare
def _results_folder(folder):
    import pandas as pd

    from topobrain.compare import LAYERS_COLUMNS

    folder.mkdir()
    row = {"contrast": "S - N", "layer": "layer.0.mlp", "n_units": 36, "morans_i": 0.5,
           "percent_selective": 10.0, "n_clusters": 2, "largest_cluster_size": 5,
           "decay_distance": 1.5}
    pd.DataFrame([row], columns=list(LAYERS_COLUMNS)).to_csv(folder / "layers.csv",
                                                             index=False)
    return folder


def test_compare_index_picks_a_map(tmp_path, rng, capsys):
    two = tmp_path / "two.npy"
    np.save(two, rng.standard_normal((2, 50)))
    results = _results_folder(tmp_path / "res")
    assert main(["compare", "--model-results", str(results), "--brain", str(two),
                 "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "2 rows" in line and "--index" in line and "index=" not in line
    # with --index the row is picked: the next problem is the missing mesh
    assert main(["compare", "--model-results", str(results), "--brain", str(two),
                 "--index", "1", "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--index" not in line and "--mesh" in line


def test_compare_writes_the_permutation_p(tmp_path, rng, capsys):
    import nibabel as nib
    from scipy.ndimage import gaussian_filter

    from topobrain.brain import load_map, summarize_map

    vol = gaussian_filter(rng.standard_normal((6, 6, 6)), 1.0) * 10
    brain = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(vol.astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), brain)
    results = _results_folder(tmp_path / "res")
    out = tmp_path / "cmp"
    assert main(["-q", "compare", "--model-results", str(results), "--brain", str(brain),
                 "--out", str(out), "--n-permutations", "20", "--seed", "0"]) == 0
    printed = capsys.readouterr().out
    expected = summarize_map(load_map(brain), n_permutations=20, seed=0)
    assert expected.morans_i_p is not None and 1 / 21 <= expected.morans_i_p <= 1
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["brain_morans_i_p"] == pytest.approx(expected.morans_i_p, rel=1e-12)
    assert prov["brain_morans_i"] == pytest.approx(expected.morans_i, rel=1e-12)
    table = pd.read_csv(out / "comparison.csv")
    brain_row = table[table["source"] == "brain"].iloc[0]
    assert brain_row["morans_i_p"] == pytest.approx(expected.morans_i_p, rel=1e-12)
    assert table.loc[table["source"] == "model", "morans_i_p"].isna().all()
    assert f"permutation p = {expected.morans_i_p:.4g}" in printed
    assert "two-sided, 20 permutations" in printed
    # without permutations there is no p, and none is printed
    assert main(["-q", "compare", "--model-results", str(results), "--brain", str(brain),
                 "--out", str(out)]) == 0
    assert "permutation p" not in capsys.readouterr().out
    assert json.loads((out / "provenance.json").read_text())["brain_morans_i_p"] is None
    assert pd.read_csv(out / "comparison.csv")["morans_i_p"].isna().all()


def test_localize_refuses_or_waits_for_a_held_folder(tmp_path, capsys):
    """Another run holds --out: one line naming it and --wait; --wait queues behind it."""
    import threading

    from topobrain._utils._outdir import OutputLock

    items = tmp_path / "items.tsv"
    items.write_text("item_id\tcondition\ttext\n" + "".join(
        f"s{k}\tS\tthe river runs past the old stone house\nn{k}\tN\tblorp fep zun krat\n"
        for k in range(6)), encoding="utf-8")
    out = tmp_path / "out"
    argv = ["-q", "localize", "--model", "topolm-tiny", "--stimuli", str(items), "--contrast",
            "S - N", "--out", str(out), "--n-permutations", "0", "--layers", "layer.0.mlp",
            "--no-cache"]
    held = OutputLock(out).acquire()
    try:
        assert main(argv) == 2
        line = one_line(capsys.readouterr().err)
        assert "in use by another run" in line and f"pid {os.getpid()}" in line
        assert "--wait" in line and "wait=" not in line
        assert main([*argv, "--wait", "0.2"]) == 2  # a bounded wait gives up
        assert "in use by another run" in one_line(capsys.readouterr().err)
        threading.Timer(1.0, held.release).start()
        assert main([*argv, "--wait"]) == 0  # queues until the holder lets go
    finally:
        held.release()
    assert "report:" in capsys.readouterr().out
    assert (out / "run.yaml").is_file()


def test_parser_loads_no_heavy_modules():
    """`topobrain --help` and a usage error stay quick: no torch, pandas or matplotlib."""
    code = ("import sys; from topobrain.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
