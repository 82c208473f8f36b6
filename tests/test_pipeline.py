"""The localizer end to end on a tiny model: files, columns, resume, refusals, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from topobrain.cli import main
from topobrain.models.train import train
from topobrain.pipeline import localize
from topobrain.stimuli import StimulusSet

WORDS = ("the quiet river carried a small boat past old houses while children watched "
         "from the bridge and birds sang over fields of tall grass near the town").split()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny topographic model and its control, trained for a few steps."""
    root = tmp_path_factory.mktemp("tiny")
    corpus = root / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for k in range(6):
        text = " ".join(" ".join(rng.permutation(WORDS)) + "." for _ in range(40))
        (corpus / f"doc{k}.txt").write_text(text)
    folders = {}
    for name, alpha in (("tiny-topo", 2.5), ("tiny-control", 0.0)):
        folders[name] = train(dict(
            name=name, out=str(root / name), corpus=str(corpus), prepared=str(root / "prep"),
            vocab_size=300, val_fraction=0.2, model=dict(n_layer=2, n_head=2, sheet_shape=[6, 6],
                                                         block_size=24),
            spatial=dict(alpha=alpha, radius=2, n_neighbourhoods=2), batch_size=4,
            max_steps=4, eval_interval=4, eval_batches=1, checkpoint_interval=4, threads=1,
            verbose=0))
    return folders


@pytest.fixture(scope="module")
def stimuli():
    rng = np.random.default_rng(1)
    rows = []
    for k in range(16):
        rows.append({"item_id": f"s{k}", "condition": "S",
                     "text": " ".join(rng.choice(WORDS, size=8))})
        rows.append({"item_id": f"n{k}", "condition": "N",
                     "text": " ".join("".join(rng.permutation(list(w))) for w in
                                      rng.choice(WORDS, size=8))})
    return StimulusSet(pd.DataFrame(rows), name="tiny-langloc")


def _run(tiny_models, stimuli, out, **kw):
    opts = dict(control=tiny_models["tiny-control"], out=out, n_permutations=19,
                cache_dir=None) | kw
    opts.pop("cache_dir")
    return localize(tiny_models["tiny-topo"], stimuli, ["S - N"], verbose=0, **opts)


def test_localize_writes_every_output(tiny_models, stimuli, tmp_path, monkeypatch):
    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    res = _run(tiny_models, stimuli, out, selectivity=True)
    for f in ("units.csv", "units.parquet", "layers.csv", "clusters.csv", "maps.nc",
              "report.html", "run.yaml", "selectivity.csv"):
        assert (out / f).exists(), f
    units = pd.read_csv(out / "units.csv")
    required = {"contrast", "layer", "unit", "row", "col", "effect", "t", "p", "p_fdr",
                "selective"}
    assert required <= set(units.columns)
    # one row per model x contrast x layer x unit: 2 models, 4 layers of 36 units
    assert len(units) == 2 * 4 * 36
    assert units.groupby(["model", "layer"]).size().eq(36).all()
    assert (units["p_fdr"].dropna() >= units.loc[units["p_fdr"].notna(), "p"] - 1e-12).all()
    layers = pd.read_csv(out / "layers.csv")
    assert {"morans_i", "morans_i_p", "null_mean", "null_sd", "null_z", "null_p",
            "percent_selective", "n_clusters"} <= set(layers.columns)
    assert len(layers) == 8 and layers["null_mean"].notna().all()
    clusters = pd.read_csv(out / "clusters.csv")
    assert "p_fwe" in clusters.columns
    if len(clusters):
        assert clusters["p_fwe"].between(1 / 20, 1).all()
    ds = xr.open_dataset(out / "maps.nc", engine="h5netcdf")
    t_var = [v for v in ds.data_vars if v.startswith("t__")]
    assert len(t_var) == 2 and ds[t_var[0]].shape == (4, 6, 6)
    ds.close()
    run = yaml.safe_load((out / "run.yaml").read_text())
    assert run["contrasts"] == ["S - N"] and run["n_permutations"] == 19
    assert run["stimuli_identity"] == stimuli.identity and run["versions"]["numpy"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Moran" in html
    assert any("selective" in s for s in res.summary)
    assert list((out / "figures").glob("tmaps_model_*.png"))
    assert list((out / "figures").glob("tmaps_model_*.svg"))
    assert len(list((out / "figures" / "layers").glob("*.png"))) == 2 * 4  # models x layers


def test_units_match_direct_welch_and_moran(tiny_models, stimuli, tmp_path, monkeypatch):
    """The table's statistics are the library's own functions, not a re-derivation."""
    from topobrain import glm, spatial
    from topobrain.extract import extract

    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    res = _run(tiny_models, stimuli, tmp_path / "run", n_permutations=0, control=None)
    acts = extract(tiny_models["tiny-topo"], stimuli, verbose=0)
    layer = acts.layers[1]
    ref = glm.welch_t(acts[layer], stimuli.labels, "S - N")
    got = res.units[res.units["layer"] == layer]
    np.testing.assert_allclose(got["t"].to_numpy(), ref.t, rtol=1e-10)
    moran = spatial.morans_i(acts.sheets[layer].to_map(ref.t))
    row = res.layers[res.layers["layer"] == layer].iloc[0]
    assert row["morans_i"] == pytest.approx(float(moran.I), rel=1e-10)
    assert np.isnan(row["null_mean"])  # no permutations asked for
    assert any("No control model" in s for s in res.summary)


def test_rerun_resumes_and_other_run_is_refused(tiny_models, stimuli, tmp_path, monkeypatch):
    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    first = _run(tiny_models, stimuli, out, n_permutations=0)
    again = _run(tiny_models, stimuli, out, n_permutations=0)
    pd.testing.assert_frame_equal(first.units, again.units)
    with pytest.raises(FileExistsError, match="holds another run.*--overwrite"):
        _run(tiny_models, stimuli, out, n_permutations=0, alpha=0.01)
    res = _run(tiny_models, stimuli, out, n_permutations=0, alpha=0.01, overwrite=True)
    assert res.settings.alpha == 0.01
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no topobrain run"):
        _run(tiny_models, stimuli, stranger, n_permutations=0)


def test_bad_input_fails_early(tiny_models, stimuli, tmp_path):
    with pytest.raises(ValueError, match=r"unknown condition.*Did you mean 'S'"):
        localize(tiny_models["tiny-topo"], stimuli, "SS - N", out=tmp_path / "a", verbose=0)
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="No bundled model named 'topolm-tiyn'"):
        localize("topolm-tiyn", stimuli, "S - N", out=tmp_path / "b", verbose=0)
    with pytest.raises(ValueError, match="Invalid value for the 'pooling' parameter"):
        localize(tiny_models["tiny-topo"], stimuli, "S - N", out=tmp_path / "c",
                 pooling="max", verbose=0)


def test_cli_localize_and_one_line_errors(tiny_models, stimuli, tmp_path, capsys,
                                          monkeypatch):
    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    tsv = tmp_path / "items.tsv"
    stimuli.to_tsv(tsv)
    out = tmp_path / "cli"
    code = main(["-q", "localize", "--model", str(tiny_models["tiny-topo"]), "--stimuli",
                 str(tsv), "--contrast", "S - N", "--out", str(out), "--n-permutations", "0",
                 "--smooth-fwhm", "2"])
    assert code == 0
    assert "report:" in capsys.readouterr().out
    assert yaml.safe_load((out / "run.yaml").read_text())["smooth_fwhm"] == 2.0
    code = main(["localize", "--model", "no-such-model", "--stimuli", str(tsv),
                 "--contrast", "S - N", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Available models" in err
    code = main(["localize", "--model", str(tiny_models["tiny-topo"]), "--stimuli",
                 "no-such-set", "--contrast", "S - N", "--out", str(tmp_path / "y")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "langloc" in err
    code = main(["localize", "--model", str(tiny_models["tiny-topo"]), "--stimuli", str(tsv),
                 "--contrast", "S - N", "--out", str(out), "--n-permutations", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--overwrite" in err and "Traceback" not in err


def test_report_renders_in_a_real_browser(tiny_models, stimuli, tmp_path, monkeypatch):
    from _browser import find_chromium, render_in_browser

    if find_chromium() is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it): the report "
                    "cannot be rendered in a real browser here")
    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    res = _run(tiny_models, stimuli, tmp_path / "run", selectivity=True)
    shot = tmp_path / "report.png"
    first_screen = """(() => {
      const img = document.querySelector('figure img');
      const doc = document.documentElement;
      return {first_figure: img.getAttribute('alt'), top: img.getBoundingClientRect().top,
              scroll_width: doc.scrollWidth, client_width: doc.clientWidth,
              open_tables: document.querySelectorAll('details[open]').length,
              links: Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))};
    })()"""
    out = render_in_browser(res.report, shot, width=1280, height=800, evaluate=[first_screen])
    assert out["console_errors"] == []
    assert out["images_ok"] and out["n_images"] >= 6
    assert shot.exists() and shot.stat().st_size > 10_000
    (screen,) = out["evaluated"]
    # the summary, then the main figure (model above control) on the first screen, with
    # no horizontal scroll bar; the tables wait collapsed, linked to their CSV files
    assert screen["first_figure"] == "main_S_minus_N" and screen["top"] < 800
    assert screen["scroll_width"] <= screen["client_width"]
    assert screen["open_tables"] == 0
    assert {"layers.csv", "clusters.csv"} <= set(screen["links"])
    assert all((res.out / link).is_file() for link in screen["links"])


def test_one_sample_and_several_contrasts(tiny_models, stimuli, tmp_path, monkeypatch):
    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    res = localize(tiny_models["tiny-topo"], stimuli, ["S", "S - N"], out=tmp_path / "run",
                   n_permutations=9, verbose=0)
    assert set(res.layers["contrast"]) == {"S", "S - N"}
    assert res.layers["null_mean"].notna().all()
    one = res.units[res.units["contrast"] == "S"]
    # the one-sample t of S's items against 0
    from scipy import stats

    from topobrain.extract import extract

    acts = extract(tiny_models["tiny-topo"], stimuli, verbose=0)
    layer = acts.layers[0]
    ref = stats.ttest_1samp(acts[layer][stimuli.labels == "S"], 0.0)
    got = one[one["layer"] == layer]["t"].to_numpy()
    np.testing.assert_allclose(got, ref.statistic, rtol=1e-9)


def test_weighted_contrast_is_refused_early(tiny_models, stimuli, tmp_path):
    with pytest.raises(ValueError, match="neither two-sample.*fit_glm"):
        localize(tiny_models["tiny-topo"], stimuli, "S - 0.5*N", out=tmp_path / "w",
                 verbose=0)
    assert not (tmp_path / "w").exists()


# --------------------------------------------------------------------------- settings
def _settings(**kw):
    from topobrain.pipeline import LocalizeSettings

    base = dict(model="topolm-tiny", stimuli="langloc", contrasts=["S - N"], out="o")
    return LocalizeSettings(**(base | kw))


@pytest.mark.parametrize("kw, error, match", [
    ({"cluster_p": 0}, ValueError, r"cluster_p must be a finite number in \(0, 1\); got 0"),
    ({"cluster_p": 1.5}, ValueError, r"cluster_p .* in \(0, 1\); got 1.5"),
    ({"cluster_p": float("nan")}, ValueError, r"cluster_p .*; got nan"),
    ({"alpha": 1}, ValueError, r"alpha must be a finite number in \(0, 1\)"),
    ({"n_permutations": -1}, ValueError, r"n_permutations .* >= 0; got -1"),
    ({"n_permutations": 2.5}, TypeError, "n_permutations must be an integer"),
    ({"smooth_fwhm": -2}, ValueError, r"smooth_fwhm .* >= 0; got -2"),
    ({"smooth_fwhm": "2"}, TypeError, "smooth_fwhm must be a number"),
    ({"batch_size": 0}, ValueError, "batch_size .* >= 1"),
    ({"pooling": "max"}, ValueError, "Invalid value for the 'pooling' parameter"),
    ({"correction": "fdr"}, ValueError, "Invalid value for the 'correction' parameter"),
    ({"selectivity": "yes"}, TypeError, "selectivity must be True or False"),
    ({"wait": -1}, ValueError, r"wait \(seconds\) .* >= 0"),
    ({"seed": -3}, ValueError, "seed must be non-negative"),
    ({"seed": 1.5}, TypeError, "seed must be None"),
    ({"contrasts": []}, ValueError, "at least one contrast"),
    ({"contrasts": ["S - N", "S-N "]}, ValueError, "are the same contrast"),
    ({"contrasts": ["S - (N"]}, ValueError, "unbalanced parentheses"),
    ({"contrasts": ["S - 0.5*N"]}, ValueError, "neither two-sample"),
    ({"layers": []}, TypeError, "non-empty list of layer names"),
])
def test_settings_validated_once_with_one_line(kw, error, match):
    with pytest.raises(error, match=match) as info:
        _settings(**kw)
    assert "\n" not in str(info.value)


def test_settings_record_round_trip_and_seed(tmp_path):
    from topobrain.pipeline import LocalizeSettings

    s = _settings(contrasts=["(S + W)/2 - N", "S"], smooth_fwhm=2, layers=["a", "b"],
                  seed=None, wait=3, n_jobs=2, correction="fdr_bh")
    assert s.correction == "bh" and s.smooth_fwhm == 2.0 and s.layers == ("a", "b")
    assert _settings(smooth_fwhm=0).smooth_fwhm is None  # 0: no smoothing
    assert isinstance(s.seed, int) and s.seed > 2**32  # fresh entropy, recorded
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**s.to_record(), "complete": True, "extra": 1}))
    back = LocalizeSettings.from_yaml(path)
    assert back == s
    assert back.root_seed.entropy == s.root_seed.entropy
    assert back.stream("morans_i").spawn_key == s.stream("morans_i").spawn_key
    assert s.identity() == back.identity() != _settings(alpha=0.01).identity()
    assert s.identity() == LocalizeSettings.from_record(
        {**s.to_record(), "out": "elsewhere", "n_jobs": 1, "verbose": 0}).identity()
    assert s.contrast_slugs == {"(S + W)/2 - N": "S_plus_W_over_2_minus_N", "S": "S"}
    with pytest.raises(ValueError, match="lacks"):
        LocalizeSettings.from_record({"model": "m"})
    g = np.random.default_rng(5)
    ss = np.random.SeedSequence(7, spawn_key=(3,))
    assert _settings(seed=ss).root_seed.spawn_key == (3,)
    assert _settings(seed=g).seed == np.random.SeedSequence(
        int(np.random.default_rng(5).integers(2**63))).entropy


def test_slugs_of_one_run_are_unique():
    s = _settings(contrasts=["S - (N - W + X)", "S - N - W + X"])
    assert list(s.contrast_slugs.values()) == ["S_minus_N_minus_W_plus_X",
                                               "S_minus_N_minus_W_plus_X_2"]


# --------------------------------------------------------------------------- one run
def _no_leftovers(out):
    """Nothing but the published folder: no lock, no work or aside folder."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_slash_contrast_end_to_end_and_complete_run(tiny_models, stimuli, tmp_path,
                                                    monkeypatch):
    """'(S + W)/2 - N' through every file format: its names are sanitised, its text is
    kept as an attribute; run.yaml says complete only in the published folder."""
    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    rows = stimuli.to_frame().to_dict("records")
    rng = np.random.default_rng(3)
    rows += [{"item_id": f"w{k}", "condition": "W", "text": " ".join(rng.choice(WORDS, 8))}
             for k in range(8)]
    stim = StimulusSet(pd.DataFrame(rows), name="tiny-swn")
    out = tmp_path / "slash"
    res = localize(tiny_models["tiny-topo"], stim, ["(S + W)/2 - N"], out=out,
                   n_permutations=9, verbose=0)
    run = yaml.safe_load((out / "run.yaml").read_text())
    assert run["complete"] is True and run["contrasts"] == ["(S + W)/2 - N"]
    assert run["contrast_names"] == {"(S + W)/2 - N": "S_plus_W_over_2_minus_N"}
    ds = xr.open_dataset(out / "maps.nc", engine="h5netcdf")
    assert "t__model__S_plus_W_over_2_minus_N" in ds.data_vars
    assert ds["t__model__S_plus_W_over_2_minus_N"].attrs["contrast"] == "(S + W)/2 - N"
    ds.close()
    assert (out / "figures" / "tmaps_model_S_plus_W_over_2_minus_N.svg").is_file()
    assert set(pd.read_csv(out / "layers.csv")["contrast"]) == {"(S + W)/2 - N"}
    assert "(S + W)/2 - N" in (out / "report.html").read_text()
    assert res.out == out and _no_leftovers(out) == []
    analysis = next(iter(res.analyses.values()))
    assert "<table" in res._repr_html_() and "(S + W)/2 - N" in analysis._repr_html_()
    pd.testing.assert_frame_equal(analysis.to_frame(), res.layers)
    # W items are pooled with S against N (welch_t pools a side's conditions)
    assert res.analyses[(res.record["model_name"], "(S + W)/2 - N")].units.equals(res.units)


def test_validation_before_the_first_forward_pass(tiny_models, stimuli, tmp_path,
                                                  monkeypatch):
    from topobrain import extract as extract_module

    def no_forward(*a, **k):
        raise AssertionError("a forward pass ran before validation finished")

    monkeypatch.setattr(extract_module, "extract", no_forward)
    model = tiny_models["tiny-topo"]
    with pytest.raises(ValueError, match=r"no layer 'layer\.9\.mlp'.*Did you mean"):
        localize(model, stimuli, "S - N", out=tmp_path / "a", layers=["layer.9.mlp"],
                 verbose=0)
    with pytest.raises(ValueError, match="fwhm"):
        localize(model, stimuli, "S - N", out=tmp_path / "b", smooth_fwhm=1e9, verbose=0)
    with pytest.raises(ValueError, match=r"CUDA is not available|Invalid device"):
        if __import__("torch").cuda.is_available():
            pytest.skip("this machine has CUDA: the refusal cannot be shown")
        localize(model, stimuli, "S - N", out=tmp_path / "c", device="cuda", verbose=0)
    with pytest.raises(ValueError, match="cluster_p"):
        localize(model, stimuli, "S - N", out=tmp_path / "d", cluster_p=0, verbose=0)
    assert not any(tmp_path.iterdir())  # nothing written, not even a lock


def test_morans_null_and_cluster_null_use_different_permutations(tiny_models, stimuli,
                                                                 tmp_path, monkeypatch):
    """One run's two nulls draw from their own streams ('morans_i', 'clusters'): the
    label vectors they permute to are different (before, the first 64 were equal)."""
    from topobrain import clusters, inference

    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    drawn = {}

    def spy(module, name):
        real = module.label_permutations

        def wrapper(ss, n_permutations, labels, **kw):
            res = real(ss, n_permutations, labels, **kw)
            lab = np.asarray(labels)
            # label coding differs between the modules ("S"/"N" or group codes): compare
            # which items carry the first item's label
            drawn.setdefault(name, []).append(
                {tuple(r) for r in (lab[res.indices] == lab[0]).tolist()})
            return res
        monkeypatch.setattr(module, "label_permutations", wrapper)

    spy(inference, "morans_i")
    spy(clusters, "clusters")
    localize(tiny_models["tiny-topo"], stimuli, "S - N", out=tmp_path / "run",
             n_permutations=64, verbose=0)
    assert set(drawn) == {"morans_i", "clusters"}
    moran, clus = drawn["morans_i"][0], drawn["clusters"][0]
    assert len(moran) == len(clus) == 64
    # 32 items, 16 per side: two independent draws share a label vector with
    # probability ~ 64 * 64 / C(32, 16) < 1e-5
    assert len(moran & clus) == 0


# --------------------------------------------------------------------------- one folder,
# one run; killed runs
_PAUSED_RUN = """
import os, pathlib, sys, time
marker, model, tsv, out = sys.argv[1:5]
from topobrain import inference
real = inference.map_permutation_test

def paused(*args, **kwargs):  # stop in the middle of the permutations
    pathlib.Path(marker).touch()
    time.sleep(600)
    return real(*args, **kwargs)

inference.map_permutation_test = paused
from topobrain.pipeline import localize
localize(model, tsv, ["S - N"], out=out, n_permutations=19, verbose=0)
"""


def _start_paused_run(tmp_path, model, tsv, out):
    """A localize run in another process, stopped in its permutations; returns the
    process once it is there (its lock held, its activations cached)."""
    import subprocess
    import sys
    import time

    script = tmp_path / "paused_run.py"
    script.write_text(_PAUSED_RUN)
    marker = tmp_path / f"in_permutations_{out.name}"
    proc = subprocess.Popen([sys.executable, str(script), str(marker), str(model), str(tsv),
                             str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the paused run ended early: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the paused run never reached its permutations")
        time.sleep(0.2)
    return proc


def test_two_processes_one_folder(tiny_models, stimuli, tmp_path, monkeypatch):
    """A second run into a folder in use is refused naming the holder (or waits);
    a SIGKILLed holder leaves no stale lock and no folder that looks complete."""
    import signal
    import threading
    import time

    from topobrain._utils._outdir import OutputFolderBusy

    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    tsv = tmp_path / "items.tsv"
    stimuli.to_tsv(tsv)
    out = tmp_path / "shared"
    holder = _start_paused_run(tmp_path, tiny_models["tiny-topo"], tsv, out)
    try:
        with pytest.raises(OutputFolderBusy, match=rf"in use by another run: pid "
                                                   rf"{holder.pid} on .*paused_run\.py"):
            localize(tiny_models["tiny-topo"], tsv, ["S - N"], out=out, n_permutations=0,
                     verbose=0)
        t0 = time.monotonic()
        with pytest.raises(OutputFolderBusy, match=f"pid {holder.pid}"):
            localize(tiny_models["tiny-topo"], tsv, ["S - N"], out=out, n_permutations=0,
                     wait=0.6, verbose=0)
        assert time.monotonic() - t0 >= 0.6
        assert not out.exists()  # the holder writes beside it, never into it
        assert len(list(tmp_path.glob(".shared.partial-*"))) == 1
        # the holder dies by SIGKILL while this run waits: the lock frees itself
        threading.Timer(1.0, holder.send_signal, [signal.SIGKILL]).start()
        res = localize(tiny_models["tiny-topo"], tsv, ["S - N"], out=out, n_permutations=0,
                       wait=True, verbose=0)
    finally:
        holder.kill()
        holder.wait()
    assert yaml.safe_load((out / "run.yaml").read_text())["complete"] is True
    assert res.out == out and _no_leftovers(out) == []


def test_sigkill_mid_permutations_then_rerun_is_byte_identical(tiny_models, stimuli,
                                                               tmp_path, monkeypatch):
    import signal

    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))
    tsv = tmp_path / "items.tsv"
    stimuli.to_tsv(tsv)
    out = tmp_path / "run"
    model = tiny_models["tiny-topo"]
    localize(model, tsv, ["S - N"], out=out, n_permutations=19, verbose=0)
    reference = tmp_path / "reference"
    out.rename(reference)

    proc = _start_paused_run(tmp_path, model, tsv, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # a killed run never leaves a folder that looks complete
    assert list(tmp_path.glob(".run.partial-*"))
    assert any((tmp_path / "cache").rglob("*.npz"))  # its activations were cached

    localize(model, tsv, ["S - N"], out=out, n_permutations=19, verbose=0)
    assert _no_leftovers(out) == []
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    carrying_times = {Path("run.yaml")}
    different = [str(f) for f in files if f not in carrying_times
                 and (reference / f).read_bytes() != (out / f).read_bytes()]
    assert not different, f"rerun differs from the uninterrupted run in {different}"
    assert len(files) > 10 and any(f.suffix == ".svg" for f in files)


def test_run_folder_publishes_whole_and_recovers(tmp_path):
    """The publishing rules without a model: an exception leaves the target as it was;
    a run killed between its two renames gets its previous results back; leftovers of
    killed runs are removed by the next run; a file in the way is named."""
    from topobrain._utils._outdir import RunFolder, lock_path

    out = tmp_path / "res"
    with RunFolder(out) as rf:
        (rf.work / "a.txt").write_text("1")
        assert lock_path(out).is_file() and not out.exists()
        rf.publish()
    assert (out / "a.txt").read_text() == "1" and _no_leftovers(out) == []
    with pytest.raises(RuntimeError, match="boom"), RunFolder(out) as rf:
        (rf.work / "a.txt").write_text("2")
        raise RuntimeError("boom")
    assert (out / "a.txt").read_text() == "1" and _no_leftovers(out) == []
    # killed after moving the old results aside, before publishing the new ones
    out.rename(tmp_path / ".res.old-123")
    (tmp_path / ".res.partial-456-abcd").mkdir()
    refused = []
    with RunFolder(out, accept=refused.append) as rf:
        assert (out / "a.txt").read_text() == "1"  # restored before anything else
        assert refused == [out]
        assert _no_leftovers(out) == [".res.lock", rf.work.name]
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"), RunFolder(tmp_path / "file"):
        pass
    assert not lock_path(tmp_path / "file").exists()


def test_published_folder_respects_the_umask(tmp_path):
    """Colleagues on a shared server can read a run: the umask decides, not tempfile."""
    import os
    import stat

    from topobrain._utils._io import atomic_write_text
    from topobrain._utils._outdir import RunFolder

    old = os.umask(0o002)
    try:
        with RunFolder(tmp_path / "shared") as rf:
            atomic_write_text(rf.work / "units.csv", "a\n")
            out = rf.publish()
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o775
    assert stat.S_IMODE((out / "units.csv").stat().st_mode) == 0o664


# --------------------------------------------------------------------------- the pieces
@pytest.fixture
def synthetic_acts(rng):
    """Two 5 x 6 layers, 24 items (S, N), a planted S > N patch in layer a."""
    from topobrain.activations import Activations
    from topobrain.sheet import CorticalSheet

    labels = np.array(["S", "N"] * 12)
    data = {name: rng.standard_normal((24, 30)) for name in ("a", "b")}
    data["a"][labels == "S", :8] += 3.0
    sheets = {name: CorticalSheet((5, 6)) for name in data}
    return Activations.from_arrays(data, sheets, labels=labels), labels


def test_analyse_contrast_against_peers(synthetic_acts):
    """Welch t and p (scipy), BH over all layers (statsmodels), Moran's I of the t-maps
    with queen weights (esda), on fresh random data."""
    from scipy import stats

    from topobrain.pipeline import analyse_contrast

    esda = pytest.importorskip("esda")
    libpysal = pytest.importorskip("libpysal")
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    acts, labels = synthetic_acts
    a = analyse_contrast(acts, labels, "S - N", n_permutations=0, verbose=0)
    ps = []
    for name in acts.layers:
        ref = stats.ttest_ind(acts[name][labels == "S"], acts[name][labels == "N"],
                              equal_var=False)
        got = a.units[a.units["layer"] == name]
        np.testing.assert_allclose(got["t"], ref.statistic, rtol=1e-10)
        np.testing.assert_allclose(got["p"], ref.pvalue, rtol=1e-9)
        ps.append(ref.pvalue)
        w = libpysal.weights.lat2W(5, 6, rook=False)
        w.transform = "r"
        order = np.lexsort((acts.sheets[name].positions[:, 1],
                            acts.sheets[name].positions[:, 0]))
        moran = esda.Moran(np.asarray(ref.statistic)[order], w, permutations=0)
        row = a.layers[a.layers["layer"] == name].iloc[0]
        assert row["morans_i"] == pytest.approx(moran.I, rel=1e-10)
    reject, p_bh, *_ = multitest.multipletests(np.concatenate(ps), alpha=0.05,
                                               method="fdr_bh")
    np.testing.assert_allclose(a.units["p_fdr"], p_bh, rtol=1e-10)
    np.testing.assert_array_equal(a.units["significant"], reject)
    assert (a.units["selective"] == (reject & (a.units["t"] > 0))).all()
    assert a.units.loc[a.units["layer"] == "a", "selective"].to_numpy()[:8].all()
    assert np.isnan(a.layers["null_mean"]).all() and a.morans_null is None


def test_analyse_contrast_streams_and_seed_forms(synthetic_acts):
    """The Moran's I null is the core's 'morans_i' stream of the run seed; a Generator
    seed is resolved once (both tests of the run from one root)."""
    from topobrain import inference
    from topobrain._utils._permutation import stream
    from topobrain.pipeline import analyse_contrast

    acts, labels = synthetic_acts
    a = analyse_contrast(acts, labels, "S - N", n_permutations=30, seed=7, verbose=0,
                         clusters=False)
    ref = inference.map_permutation_test(acts, labels, "S - N", n_permutations=30,
                                         seed=stream(7, "morans_i"), verbose=0)
    np.testing.assert_array_equal(a.morans_null.null, ref.null)
    g = np.random.default_rng(3)
    entropy = int(np.random.default_rng(3).integers(2**63))
    b = analyse_contrast(acts, labels, "S - N", n_permutations=30, seed=g, verbose=0)
    c = analyse_contrast(acts, labels, "S - N", n_permutations=30,
                         seed=np.random.SeedSequence(entropy), verbose=0)
    np.testing.assert_array_equal(b.morans_null.null, c.morans_null.null)
    pd.testing.assert_frame_equal(b.clusters, c.clusters)


def test_decay_distance_rule():
    from topobrain.spatial import decay_distance

    d = np.array([1.0, 2.0, 3.0, 4.0])
    assert decay_distance(d, [1.0, 0.8, 0.4, 0.2]) == pytest.approx(2.75)
    assert decay_distance(d, [np.nan, 0.8, 0.4, 0.2]) == pytest.approx(3.0)  # first finite
    assert decay_distance(d, [1.0, 0.5, 0.4, 0.2]) == pytest.approx(2.0)  # on a bin
    assert np.isnan(decay_distance(d, [1.0, 0.9, 0.8, 0.7]))  # never halves
    assert np.isnan(decay_distance(d, [-0.1, -0.2, -0.3, -0.4]))
    assert np.isnan(decay_distance(d[:1], [1.0]))
    assert decay_distance(d, [1.0, 0.8, 0.4, 0.2], level=0.9) == pytest.approx(1.5)


def test_lock_without_flock_takes_over_a_dead_holder(tmp_path, monkeypatch):
    """Where flock is missing (Windows, some network file systems) the lock is the
    file's existence: a live holder refuses, a dead one on this host is taken over."""
    import json
    import socket
    import subprocess
    import sys

    from topobrain._utils import _outdir

    monkeypatch.setattr(_outdir, "fcntl", None)
    out = tmp_path / "res"
    first = _outdir.OutputLock(out).acquire()
    with pytest.raises(_outdir.OutputFolderBusy, match=rf"pid {first.holder.pid} on "):
        _outdir.OutputLock(out).acquire()
    first.release()
    assert not _outdir.lock_path(out).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    _outdir.lock_path(out).write_text(json.dumps({
        "pid": int(dead.stdout), "host": socket.gethostname(), "started": "then",
        "command": "killed"}))
    lock = _outdir.OutputLock(out).acquire()
    assert json.loads(_outdir.lock_path(out).read_text())["pid"] == lock.holder.pid
    lock.release()
