"""compare(): model results folders against a brain map, the table, the figure, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from topobrain.brain import BrainMap, Mesh, summarize_map
from topobrain.compare import (
    CLUSTERS_COLUMNS,
    LAYERS_COLUMNS,
    PUBLISHED,
    ComparisonResult,
    compare,
    read_model_results,
)

nib = pytest.importorskip("nibabel")

UNITS_COLUMNS = ("contrast", "layer", "unit", "row", "col", "effect", "t", "p", "p_fdr",
                 "selective")
LAYERS_ALL = ("contrast", "layer", "n_units", "n_rows", "n_cols", "morans_i", "morans_i_p",
              "null_mean", "null_sd", "null_z", "null_p", "percent_selective", "n_clusters",
              "largest_cluster_size", "smoothness", "decay_distance")
CLUSTERS_ALL = ("contrast", "layer", "cluster_id", "sign", "size", "mass", "peak_value",
                "peak_row", "peak_col", "centroid_row", "centroid_col", "p_fwe")


def write_results(folder, rng, *, model="topolm-tiny", contrasts=("verb - noun",),
                  layers=("layer.0.attn", "layer.0.mlp", "layer.1.attn"), n_rows=6, n_cols=6,
                  drop=(), p_fwe=0.04):
    """A small results folder in the layout of `topobrain localize`."""
    folder.mkdir(parents=True, exist_ok=True)
    n = n_rows * n_cols
    units, lay, clus = [], [], []
    for c in contrasts:
        for layer in layers:
            t = rng.standard_normal(n) * 3
            p = rng.random(n)
            sel = p < 0.2
            for u in range(n):
                units.append((c, layer, u, u // n_cols, u % n_cols, t[u] / 3, t[u], p[u],
                              min(1, p[u] * 2), bool(sel[u])))
            sizes = rng.integers(1, 8, size=3)
            for k, s in enumerate(sizes, 1):
                clus.append((c, layer, k, 1, int(s), float(s * 3), 4.0, 1, 1, 1.5, 1.5, p_fwe))
            lay.append((c, layer, n, n_rows, n_cols, rng.uniform(0.1, 0.9), 0.01, 0.1, 0.02,
                        3.0, 0.01, 100 * sel.mean(), len(sizes), int(sizes.max()),
                        rng.uniform(0, 1), rng.uniform(1, 4)))
    pd.DataFrame(units, columns=UNITS_COLUMNS).to_csv(folder / "units.csv", index=False)
    pd.DataFrame(lay, columns=LAYERS_ALL).drop(columns=list(drop)).to_csv(
        folder / "layers.csv", index=False)
    pd.DataFrame(clus, columns=CLUSTERS_ALL).to_csv(folder / "clusters.csv", index=False)
    (folder / "run.yaml").write_text(f"model: {model}\nseed: 0\nsmooth_fwhm: null\n")
    return folder


@pytest.fixture
def brain_map(rng):
    """A smooth t map on a small triangulated grid (a flat 'cortex' in mm)."""
    side = 20
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    coords = np.c_[ii.ravel() * 2.0, jj.ravel() * 2.0, np.zeros(side * side)]
    faces = []
    for i in range(side - 1):
        for j in range(side - 1):
            a, b, c, d = i * side + j, i * side + j + 1, (i + 1) * side + j, (i + 1) * side + j + 1
            faces += [(a, b, c), (b, d, c)]
    mesh = Mesh(coords, np.array(faces), name="grid20")
    from scipy import ndimage

    t = ndimage.gaussian_filter(rng.standard_normal((side, side)), 2.0)
    t = 5 * t / t.std()
    return BrainMap(t.ravel(), "surface", mesh=mesh, name="toy t-map")


def test_compare_table(tmp_path, rng, brain_map):
    model = write_results(tmp_path / "topo", rng)
    control = write_results(tmp_path / "ctrl", rng, model="control-tiny")
    res = compare(model, brain_map, control_results=control, seed=0)
    assert isinstance(res, ComparisonResult)
    t = res.to_frame()
    assert "<table" in res._repr_html_() and "control-tiny" in res._repr_html_()
    assert list(t["source"].value_counts().sort_index().items()) == [
        ("brain", 1), ("control", 4), ("model", 4), ("published", len(PUBLISHED))]
    lay = pd.read_csv(model / "layers.csv")
    m = t[(t["source"] == "model") & (t["layer"] != "mean")].reset_index(drop=True)
    np.testing.assert_allclose(m["morans_i"], lay["morans_i"])
    np.testing.assert_allclose(m["largest_cluster_fraction"],
                               lay["largest_cluster_size"] / lay["n_units"])
    cl = pd.read_csv(model / "clusters.csv")
    med = cl.groupby("layer", sort=False)["size"].median().to_numpy() / 36
    np.testing.assert_allclose(m["median_cluster_fraction"], med)
    mean = t[(t["source"] == "model") & (t["layer"] == "mean")].iloc[0]
    for k in ("morans_i", "percent_selective", "n_clusters", "decay_distance"):
        assert mean[k] == pytest.approx(m[k].mean())
    # the brain row is summarize_map of the same map
    s = summarize_map(brain_map, seed=0)
    b = t[t["source"] == "brain"].iloc[0]
    assert b["morans_i"] == pytest.approx(s.morans_i)
    assert b["percent_selective"] == pytest.approx(s.percent_selective)
    assert b["n_clusters"] == s.n_clusters
    assert b["largest_cluster_fraction"] == pytest.approx(s.largest_cluster_fraction)
    assert b["distance_unit"] == "mm" and mean["distance_unit"] == "sheet units"
    # published rows are marked, and carry only Moran's I
    pub = t[t["published"]]
    assert sorted(pub["morans_i"]) == [0.11, 0.48, 0.6, 0.81, 0.96]
    assert pub["percent_selective"].isna().all()
    assert not t.loc[~t["source"].eq("published"), "published"].any()
    assert res.model_name == "topolm-tiny" and res.control_name == "control-tiny"
    wide = res.summary()
    assert list(wide.columns) == ["model", "control", "brain"]
    assert "topolm-tiny vs brain" in repr(res)


def test_localize_folder_with_model_column(tmp_path, rng, brain_map):
    """localize writes model and control into one folder, told apart by a model column."""
    a = write_results(tmp_path / "a", rng)
    b = write_results(tmp_path / "b", rng)
    both = tmp_path / "both"
    both.mkdir()
    for f in ("layers.csv", "clusters.csv", "units.csv"):
        ta = pd.read_csv(a / f)
        tb = pd.read_csv(b / f)
        ta.insert(0, "model", "topo-tiny")
        tb.insert(0, "model", "control-tiny")
        pd.concat([ta, tb]).to_csv(both / f, index=False)
    # clusters without FWE p-values: all of them count
    cl = pd.read_csv(both / "clusters.csv")
    cl["p_fwe"] = np.nan
    cl.to_csv(both / "clusters.csv", index=False)
    res = compare(both, brain_map, include_published=False)
    assert (res.model_name, res.control_name) == ("topo-tiny", "control-tiny")
    t = res.table
    m = t[(t["source"] == "model") & (t["layer"] != "mean")]
    c = t[(t["source"] == "control") & (t["layer"] != "mean")]
    np.testing.assert_allclose(m["morans_i"], pd.read_csv(a / "layers.csv")["morans_i"])
    np.testing.assert_allclose(c["morans_i"], pd.read_csv(b / "layers.csv")["morans_i"])
    sizes = pd.read_csv(b / "clusters.csv").groupby("layer", sort=False)["size"].median()
    np.testing.assert_allclose(c["median_cluster_fraction"], sizes.to_numpy() / 36)
    # non-significant clusters are left out of the medians, as localize leaves them out
    write_results(tmp_path / "ns", rng, p_fwe=0.5)
    t2 = compare(tmp_path / "ns", brain_map, include_published=False).table
    assert t2.loc[t2["source"] == "model", "median_cluster_fraction"].isna().all()


def test_compare_writes_files(tmp_path, rng, brain_map):
    pytest.importorskip("matplotlib")
    model = write_results(tmp_path / "topo", rng)
    out = tmp_path / "out"
    res = compare(model, brain_map, out=out, include_published=False)
    assert (out / "comparison.csv").is_file() and (out / "figures" / "comparison.png").is_file()
    back = pd.read_csv(out / "comparison.csv")
    assert len(back) == len(res.table) and not back["published"].any()
    assert (out / "figures" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries
    assert set(res.files) == {str(out / "comparison.csv"),
                              str(out / "figures" / "comparison.png")}


def test_compare_reads_brain_file(tmp_path, rng, brain_map):
    model = write_results(tmp_path / "topo", rng)
    np.save(tmp_path / "t.npy", brain_map.values)
    res = compare(model, tmp_path / "t.npy", brain_map.mesh)
    b = res.table[res.table["source"] == "brain"].iloc[0]
    assert b["name"] == "t.npy"
    assert b["morans_i"] == pytest.approx(summarize_map(brain_map).morans_i)


def test_compare_contrast_selection(tmp_path, rng, brain_map):
    model = write_results(tmp_path / "topo", rng, contrasts=("S - N", "verb - noun"))
    with pytest.raises(ValueError, match="pass contrast="):
        compare(model, brain_map)
    with pytest.raises(ValueError, match="Did you mean 'verb - noun'"):
        compare(model, brain_map, contrast="verb - nun")
    res = compare(model, brain_map, contrast="S - N", include_published=False)
    assert set(res.table["contrast"]) == {"S - N"}
    ctrl = write_results(tmp_path / "ctrl", rng, contrasts=("verb - noun",))
    with pytest.raises(ValueError, match="'S - N' is not in"):
        compare(model, brain_map, contrast="S - N", control_results=ctrl)


def test_missing_columns_are_named(tmp_path, rng, brain_map):
    model = write_results(tmp_path / "topo", rng, drop=("decay_distance", "n_clusters"))
    with pytest.raises(ValueError, match="lacks the column\\(s\\) n_clusters, decay_distance"):
        compare(model, brain_map)
    ok = write_results(tmp_path / "ok", rng)
    pd.read_csv(ok / "clusters.csv").drop(columns=["size"]).to_csv(ok / "clusters.csv",
                                                                   index=False)
    with pytest.raises(ValueError, match="clusters.csv lacks the column\\(s\\) size"):
        read_model_results(ok)


def test_missing_files_and_types(tmp_path, rng, brain_map):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        compare(tmp_path / "nowhere", brain_map)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no layers.csv"):
        compare(tmp_path / "empty", brain_map)
    model = write_results(tmp_path / "topo", rng)
    with pytest.raises(TypeError, match="path or a BrainMap"):
        compare(model, 3.0)


def test_results_without_run_yaml_or_clusters(tmp_path, rng, brain_map):
    model = write_results(tmp_path / "topo", rng)
    (model / "run.yaml").unlink()
    (model / "clusters.csv").unlink()
    res = read_model_results(model)
    assert res.name == "topo" and res.clusters is None
    t = compare(model, brain_map, include_published=False).table
    assert t.loc[t["source"] == "model", "median_cluster_fraction"].isna().all()
    assert set(LAYERS_COLUMNS) <= set(LAYERS_ALL) and set(CLUSTERS_COLUMNS) <= set(CLUSTERS_ALL)


def test_cli_compare(tmp_path, rng, capsys, brain_map):
    from topobrain.cli import main

    mesh = brain_map.mesh
    nib.save(nib.gifti.GiftiImage(darrays=[
        nib.gifti.GiftiDataArray(mesh.coordinates.astype(np.float32),
                                 intent="NIFTI_INTENT_POINTSET"),
        nib.gifti.GiftiDataArray(mesh.faces.astype(np.int32), intent="NIFTI_INTENT_TRIANGLE"),
    ]), tmp_path / "grid.surf.gii")
    img = nib.gifti.GiftiImage(darrays=[
        nib.gifti.GiftiDataArray(brain_map.values.astype(np.float32))])
    nib.save(img, tmp_path / "lh.verb_noun.func.gii")
    model = write_results(tmp_path / "topo", rng)
    control = write_results(tmp_path / "ctrl", rng)
    out = tmp_path / "cmp"
    code = main(["-q", "compare", "--model-results", str(model), "--control-results",
                 str(control), "--brain", str(tmp_path / "lh.verb_noun.func.gii"),
                 "--mesh", str(tmp_path / "grid.surf.gii"), "--out", str(out), "--seed", "0"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "morans_i" in printed and "brain" in printed
    assert (out / "comparison.csv").is_file() and (out / "figures" / "comparison.png").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["command"] == "compare" and len(prov["inputs"]["brain"]["sha256"]) == 64
    t = pd.read_csv(out / "comparison.csv")
    expected = summarize_map(brain_map, seed=0).morans_i
    assert t.loc[t["source"] == "brain", "morans_i"].iloc[0] == pytest.approx(expected, rel=1e-6)
    # errors: one line, exit status 2
    code = main(["compare", "--model-results", str(tmp_path / "nope"), "--brain",
                 str(tmp_path / "lh.verb_noun.func.gii"), "--mesh",
                 str(tmp_path / "grid.surf.gii"), "--out", str(out)])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_model_moran_carries_its_label_null(tmp_path, rng, brain_map):
    """Moran's I of a model never stands alone: the localizer's null comes along."""
    model = write_results(tmp_path / "topo", rng)
    layers = pd.read_csv(model / "layers.csv")
    res = compare(model, brain_map, include_published=False)
    t = res.table
    per_layer = t[(t["source"] == "model") & (t["layer"] != "mean")]
    np.testing.assert_allclose(per_layer["morans_i_null_mean"].to_numpy(float),
                               layers["null_mean"].to_numpy(float))
    mean_row = t[(t["source"] == "model") & (t["layer"] == "mean")].iloc[0]
    assert mean_row["morans_i_null_mean"] == pytest.approx(layers["null_mean"].mean())
    assert np.isnan(t[t["source"] == "brain"]["morans_i_null_mean"]).all()
    assert "morans_i_null_mean" in res.summary().index
