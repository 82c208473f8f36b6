"""The localizer end to end on a tiny model: files, columns, resume, refusals, CLI."""

from __future__ import annotations

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
    out = render_in_browser(res.report, shot)
    assert out["console_errors"] == []
    assert out["images_ok"] and out["n_images"] >= 6
    assert shot.exists() and shot.stat().st_size > 10_000


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
