"""Figures: labelled axes with units, zero-centred colour bars, cluster outlines, legends,
atomic PNG/SVG output. Small synthetic maps with NaN holes; Agg backend (conftest)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgb

from topobrain import plotting
from topobrain.plotting import (
    plot_category_map,
    plot_distance_curves,
    plot_layer_grid,
    plot_morans_by_layer,
    plot_null_distributions,
    plot_response_profiles,
    plot_sheet_map,
    save_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _t_map(rng, shape=(7, 9), n_holes=6):
    t = rng.normal(scale=2.0, size=shape)
    holes = rng.choice(t.size, n_holes, replace=False)
    t.flat[holes] = np.nan
    return t


def _brute_outline(mask):
    """Every cell edge between a True cell and a False cell or the border, as a set of
    ((x0, y0), (x1, y1)) with endpoints sorted: the reference for the outline."""
    mask = np.asarray(mask, bool)
    rows, cols = mask.shape
    edges = set()
    for r in range(rows):
        for c in range(cols):
            if not mask[r, c]:
                continue
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < rows and 0 <= cc < cols and mask[rr, cc]:
                    continue
                if dr:  # horizontal edge at y = r + dr/2
                    y = r + dr / 2
                    edges.add(((c - 0.5, y), (c + 0.5, y)))
                else:  # vertical edge at x = c + dc/2
                    x = c + dc / 2
                    edges.add(((x, r - 0.5), (x, r + 0.5)))
    return edges


def _as_edge_set(segments):
    out = set()
    for seg in segments:
        a, b = (tuple(float(v) for v in p) for p in np.asarray(seg))
        out.add(tuple(sorted([a, b])))
    return out


def _outline_collections(ax):
    return [c for c in ax.collections
            if isinstance(c, LineCollection) and c.get_label() == "_cluster_outline"]


def _colorbar_axes(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _luminance(rgb):
    r, g, b = rgb[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# --------------------------------------------------------------------------- sheet map
def test_sheet_map_labels_colorbar_centred_on_zero(rng):
    t = _t_map(rng)
    fig = plot_sheet_map(t, title="layer 3", cbar_label="Welch t")
    ax = fig.axes[0]
    assert "(units)" in ax.get_xlabel() and "(units)" in ax.get_ylabel()
    assert ax.get_title() == "layer 3"
    (im,) = ax.images
    # colour bar: its own axis, labelled, attached to the image
    assert len(_colorbar_axes(fig)) == 1
    assert im.colorbar is not None and im.colorbar.ax in fig.axes
    assert im.colorbar.ax.get_ylabel() == "Welch t"
    # zero-centred norm, limit = the largest |t| on the sheet
    vmax = np.nanmax(np.abs(t))
    assert im.norm.vmin == pytest.approx(-vmax) and im.norm.vmax == pytest.approx(vmax)
    # diverging: the middle of the map is lighter than both ends, which differ in hue
    cmap = im.get_cmap()
    assert _luminance(cmap(0.5)) > max(_luminance(cmap(0.0)), _luminance(cmap(1.0))) + 0.3
    assert cmap(0.0)[2] > cmap(0.0)[0] and cmap(1.0)[0] > cmap(1.0)[2]  # blue < 0 < red
    # NaN holes are masked (drawn in the 'bad' colour), the rest is drawn as given
    arr = im.get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(arr), np.isnan(t))
    np.testing.assert_array_equal(arr.filled(np.nan), t)
    assert cmap.get_bad()[3] > 0  # holes visible, not transparent
    # no mask, no outline
    assert _outline_collections(ax) == []


def test_sheet_map_given_vmax_and_all_nan(rng):
    t = _t_map(rng)
    im = plot_sheet_map(t, vmax=2.5).axes[0].images[0]
    assert (im.norm.vmin, im.norm.vmax) == (-2.5, 2.5)
    im = plot_sheet_map(np.full((4, 5), np.nan)).axes[0].images[0]
    assert (im.norm.vmin, im.norm.vmax) == (-1.0, 1.0)
    assert np.ma.getmaskarray(im.get_array()).all()
    fig = plot_sheet_map(t, colorbar=False)
    assert _colorbar_axes(fig) == []


def test_sheet_map_outlines_every_cluster_edge(rng):
    t = _t_map(rng, shape=(8, 10))
    mask = np.zeros((8, 10), bool)
    mask[1:4, 2:5] = True      # a 3 x 3 block: 12 edges
    mask[6, 8] = True          # a single cell: 4 edges
    mask[5:8, 0] = True        # a bar on the border: 8 edges
    fig = plot_sheet_map(t, outline=mask)
    (lc,) = _outline_collections(fig.axes[0])
    segs = lc.get_segments()
    assert len(segs) == 12 + 4 + 8
    assert _as_edge_set(segs) == _brute_outline(mask)
    # the outline must not change the view (it lies on the image's edge)
    assert fig.axes[0].get_xlim() == (-0.5, 9.5)
    # an all-False mask draws nothing
    assert _outline_collections(plot_sheet_map(t, outline=np.zeros_like(mask)).axes[0]) == []


def test_sheet_map_draws_into_given_axes(rng):
    fig, (a, b) = plt.subplots(1, 2)
    out = plot_sheet_map(_t_map(rng), ax=b, colorbar=False)
    assert out is fig and len(b.images) == 1 and len(a.images) == 0


def test_sheet_map_does_not_mutate_inputs(rng):
    t = _t_map(rng)
    mask = t > 1
    t0, m0 = t.copy(), mask.copy()
    plot_sheet_map(t, outline=mask)
    np.testing.assert_array_equal(t, t0)
    np.testing.assert_array_equal(mask, m0)


def test_sheet_map_errors(rng):
    t = _t_map(rng)
    with pytest.raises(ValueError, match="outline must be a boolean mask of the map's shape"):
        plot_sheet_map(t, outline=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="2-D sheet map"):
        plot_sheet_map(t.ravel())
    with pytest.raises(ValueError, match="vmax must be a positive finite number"):
        plot_sheet_map(t, vmax=0)
    with pytest.raises(ValueError, match="vmax must be a positive finite number"):
        plot_sheet_map(t, vmax=np.nan)


@settings(max_examples=60, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 7), st.integers(1, 7))))
def test_outline_segments_match_brute_force(mask):
    segs = plotting._outline_segments(mask)
    assert segs.shape == (len(segs), 2, 2)
    assert len(segs) == len(_as_edge_set(segs))  # no edge twice
    assert _as_edge_set(segs) == _brute_outline(mask)
    # every segment has unit length and lies on the half-integer grid
    if len(segs):
        np.testing.assert_allclose(np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1), 1.0)
        np.testing.assert_allclose((segs + 0.5) % 1.0 == 0, True)


# --------------------------------------------------------------------------- layer grid
def test_layer_grid_shared_centred_colorbar_and_outlines(rng):
    names = [f"blocks.{k}" for k in range(5)]
    maps = {n: _t_map(rng, shape=(6, 6)) for n in names}
    maps["blocks.2"] = np.full((6, 6), np.nan)  # a layer with no finite value
    outlines = {"blocks.0": maps["blocks.0"] > 1.0, "blocks.3": np.zeros((6, 6), bool)}
    fig = plot_layer_grid(maps, outlines=outlines, cbar_label="Welch t", title="S - N")
    cbars = _colorbar_axes(fig)
    assert len(cbars) == 1 and cbars[0].get_ylabel() == "Welch t"
    map_axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in map_axes] == names
    # one norm for every layer, centred on 0, at the 99th percentile of |t|
    vals = np.concatenate([np.abs(m[np.isfinite(m)]) for m in maps.values()])
    vmax = np.percentile(vals, 99)
    for ax in map_axes:
        im = ax.images[0]
        assert im.norm.vmin == pytest.approx(-vmax) and im.norm.vmax == pytest.approx(vmax)
    # outlines only where a non-empty mask was given, and exactly its edges
    n_outlined = [len(_outline_collections(ax)) for ax in map_axes]
    assert n_outlined == [1, 0, 0, 0, 0]
    segs = _outline_collections(map_axes[0])[0].get_segments()
    assert _as_edge_set(segs) == _brute_outline(outlines["blocks.0"])
    # 5 layers in a 2 x 4 grid: unused cells hidden; every row labelled on the left and
    # every column at its lowest map
    grid = [ax for ax in fig.axes if ax not in cbars]
    assert len(grid) == 8 and [ax.axison for ax in grid[5:]] == [False] * 3
    assert all(grid[k].get_ylabel() for k in (0, 4))
    assert all(grid[k].get_xlabel() for k in (1, 2, 3, 4))
    assert fig._suptitle.get_text() == "S - N"


def test_layer_grid_given_vmax_and_errors(rng):
    maps = {"a": _t_map(rng, shape=(4, 4)), "b": _t_map(rng, shape=(4, 4))}
    fig = plot_layer_grid(maps, vmax=3.0, n_cols=1)
    ims = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(ims) == 2 and all((i.norm.vmin, i.norm.vmax) == (-3.0, 3.0) for i in ims)
    with pytest.raises(ValueError, match="maps is empty"):
        plot_layer_grid({})
    with pytest.raises(ValueError, match=r"outlines\['b'\] must be a boolean mask"):
        plot_layer_grid(maps, outlines={"b": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match="vmax must be a positive finite number"):
        plot_layer_grid(maps, vmax=-1.0)


# --------------------------------------------------------------------------- Moran's I
def _layers_table(rng):
    layers = [f"blocks.{k}" for k in range(4)]
    model = pd.DataFrame({"layer": layers, "model": "topolm-tiny",
                          "morans_i": rng.uniform(0.2, 0.6, 4),
                          "null_mean": rng.normal(0, 0.01, 4), "null_sd": [0.02] * 4})
    model.loc[2, "morans_i"] = np.nan
    control = pd.DataFrame({"layer": layers, "model": "control",
                            "morans_i": rng.uniform(0, 0.1, 4),
                            "null_mean": np.nan, "null_sd": np.nan})
    return pd.concat([model, control], ignore_index=True)


def test_morans_by_layer_models_control_and_brain(rng):
    df = _layers_table(rng)
    fig = plot_morans_by_layer(df, brain_reference=0.96, title="S - N")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "layer" and "Moran's I" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"blocks.{k}" for k in range(4)]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("topolm-tiny" in s for s in legend) and any("control" in s for s in legend)
    assert any("brain" in s for s in legend) and any("null" in s for s in legend)
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for model in ("topolm-tiny", "control"):
        y = lines[f"{model}: observed"].get_ydata()
        np.testing.assert_array_equal(y, df.loc[df["model"] == model, "morans_i"].to_numpy())
    np.testing.assert_array_equal(lines["brain map"].get_ydata(), [0.96, 0.96])
    # the null band only where a null was computed (the control has none)
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1


def test_morans_by_layer_without_brain_reference_and_errors(rng):
    df = _layers_table(rng)
    fig = plot_morans_by_layer(df.drop(columns=["null_mean", "null_sd"]))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["topolm-tiny: observed", "control: observed"]
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['morans_i'\]"):
        plot_morans_by_layer(df.drop(columns=["morans_i"]))
    with pytest.raises(ValueError, match="null_mean but no null_sd"):
        plot_morans_by_layer(df.drop(columns=["null_sd"]))
    with pytest.raises(ValueError, match="layers is empty"):
        plot_morans_by_layer(df.iloc[:0])
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        plot_morans_by_layer(df.to_dict())


# --------------------------------------------------------------------------- distance
def test_distance_curves_mean_over_layers_per_model(rng):
    rows = []
    for model in ("topolm-tiny", "control"):
        for layer in ("l0", "l1", "l2"):
            for d in (1.0, 2.0, 3.0, 4.5):
                rows.append((model, layer, d, rng.uniform(-0.1, 0.8)))
    df = pd.DataFrame(rows, columns=["model", "layer", "distance", "correlation"])
    df.loc[5, "correlation"] = np.nan
    fig = plot_distance_curves(df, title="decay")
    (ax,) = fig.axes
    assert "units" in ax.get_xlabel() and "correlation" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["topolm-tiny", "control"]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for model in ("topolm-tiny", "control"):
        sub = df[df["model"] == model]
        expect = [np.nanmean(sub.loc[sub["distance"] == d, "correlation"])
                  for d in (1.0, 2.0, 3.0, 4.5)]
        np.testing.assert_array_equal(lines[model].get_xdata(), [1.0, 2.0, 3.0, 4.5])
        np.testing.assert_allclose(lines[model].get_ydata(), expect, rtol=1e-12)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['distance'\]"):
        plot_distance_curves(df.drop(columns=["distance"]))


# --------------------------------------------------------------------------- profiles
def _profile_table():
    conds = ["S", "W", "J", "N"]
    rows = []
    for k, model in enumerate(("topolm-tiny", "control")):
        for j, c in enumerate(conds):
            m = 1.0 - 0.4 * j + 0.1 * k
            rows.append((model, c, m, m - 0.2, m + 0.3))
    df = pd.DataFrame(rows, columns=["model", "condition", "mean", "ci_low", "ci_high"])
    # a percentile interval that misses its mean (legal for a bootstrap) and a NaN row
    df.loc[1, ["ci_low", "ci_high"]] = [0.7, 0.75]
    df.loc[7, ["mean", "ci_low", "ci_high"]] = np.nan
    return df


def test_response_profiles_bars_and_intervals():
    df = _profile_table()
    fig = plot_response_profiles(df, title="selective units")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "condition" and "CI" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["S", "W", "J", "N"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["topolm-tiny", "control"]
    heights = [c.patches for c in ax.containers if hasattr(c, "patches")]
    assert [len(p) for p in heights] == [4, 4]
    for k, model in enumerate(("topolm-tiny", "control")):
        got = [p.get_height() for p in heights[k]]
        np.testing.assert_array_equal(got, df.loc[df["model"] == model, "mean"].to_numpy())
    # error bars span exactly [ci_low, ci_high], even where the interval misses the mean
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    spans = sorted((round(min(s[:, 1]), 9), round(max(s[:, 1]), 9))
                   for lc in bars for s in lc.get_segments()
                   if s.shape == (2, 2) and np.isfinite(s).all())
    ok = df.dropna()
    assert spans == sorted(zip(ok["ci_low"].round(9), ok["ci_high"].round(9), strict=True))


def test_response_profiles_errors():
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['ci_low', 'ci_high'\]"):
        plot_response_profiles(_profile_table().drop(columns=["ci_low", "ci_high"]))


# --------------------------------------------------------------------------- nulls
def test_null_distributions_histograms_and_observed(rng):
    null = rng.normal(0, 0.05, size=(200, 3))
    null[:7, 1] = np.nan
    observed = np.array([0.3, -0.02, np.nan])
    fig = plot_null_distributions(null, observed, ["a", "b", "c"], title="null")
    axes = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in axes] == ["a", "b", "c"]
    assert axes[0].get_ylabel() == "permutations"
    for k, ax in enumerate(axes):
        assert ax.get_xlabel() == "Moran's I"
        counts = sum(p.get_height() for p in ax.patches)
        assert counts == np.isfinite(null[:, k]).sum()
        (vline,) = ax.get_lines()
        np.testing.assert_array_equal(vline.get_xdata(), [observed[k]] * 2)
    # one layer: a 1-D null is accepted
    fig = plot_null_distributions(null[:, 0], 0.3, ["a"], xlabel="Geary's C")
    assert fig.axes[0].get_xlabel() == "Geary's C"
    with pytest.raises(ValueError, match=r"null must have shape \(n_permutations, n_layers\)"):
        plot_null_distributions(null, observed, ["a", "b"])
    with pytest.raises(ValueError, match="len\\(layer_names\\) = 0"):
        plot_null_distributions(null, observed, [])


# --------------------------------------------------------------------------- categories
def test_category_map_legend_and_blanks(rng):
    cat = rng.integers(0, 4, size=(6, 7)).astype(float)
    cat[0, 0], cat[2, 3] = -1, np.nan
    labels = ["S", "W", "J", "N"]
    fig = plot_category_map(cat, labels, title="preferred")
    ax = fig.axes[0]
    assert "(units)" in ax.get_xlabel() and "(units)" in ax.get_ylabel()
    handles = ax.get_legend().legend_handles
    assert [h.get_label() for h in handles] == labels
    im = ax.images[0]
    mask = np.ma.getmaskarray(im.get_array())
    assert mask[0, 0] and mask[2, 3] and mask.sum() == 2
    # each code is drawn in its legend colour
    for code in range(4):
        drawn = im.cmap(im.norm(code))[:3]
        np.testing.assert_allclose(drawn, to_rgb(handles[code].get_facecolor()), atol=1e-6)


def test_category_map_many_labels_distinct_colours():
    labels = [f"c{k}" for k in range(13)]
    cat = np.arange(13, dtype=float).reshape(1, 13)
    ax = plot_category_map(cat, labels).axes[0]
    colours = {to_rgb(h.get_facecolor()) for h in ax.get_legend().legend_handles}
    assert len(colours) == 13


def test_category_map_errors():
    with pytest.raises(ValueError, match="integer codes 0..1"):
        plot_category_map(np.array([[0, 2]]), ["a", "b"])
    with pytest.raises(ValueError, match="integer codes"):
        plot_category_map(np.array([[0, 0.5]]), ["a", "b"])
    with pytest.raises(ValueError, match="labels is empty"):
        plot_category_map(np.array([[0]]), [])


# --------------------------------------------------------------------------- saving
def test_save_figure_png_and_svg_atomic(tmp_path, rng):
    fig = plot_sheet_map(_t_map(rng), outline=np.eye(7, 9, dtype=bool))
    written = save_figure(fig, tmp_path / "sub" / "tmap", dpi=50)
    assert written == [tmp_path / "sub" / "tmap.png", tmp_path / "sub" / "tmap.svg"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["tmap.png", "tmap.svg"]
    png = written[0].read_bytes()
    assert png[:8] == PNG_SIGNATURE
    img = mpimg.imread(written[0])
    assert img.ndim == 3 and min(img.shape[:2]) > 50 and np.ptp(img[..., :3]) > 0.5
    root = ET.parse(written[1]).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert fig.canvas.manager is None  # drawn outside pyplot: no window, nothing to close


def test_save_figure_closes_a_pyplot_figure(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "p", svg=False)
    assert not plt.fignum_exists(fig.number)


def test_svg_and_png_are_byte_reproducible(tmp_path, rng):
    """The same figure drawn twice gives the same bytes: no date, fixed element ids
    (imshow clip paths and images carry ids that are random by default)."""
    t = _t_map(rng)
    outline = np.abs(np.nan_to_num(t)) > 1
    files = []
    for k in range(2):
        fig = plot_layer_grid({"a": t, "b": -t}, outlines={"a": outline}, title="x")
        files.append(save_figure(fig, tmp_path / f"run{k}" / "grid"))
    for a, b in zip(*files, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    svg = files[0][1].read_text()
    assert "<dc:date>" not in svg
    assert 'id="p' in svg  # clip-path ids exist, and they were equal above

def test_save_figure_png_only_and_overwrite(tmp_path, rng):
    (tmp_path / "m.png").write_bytes(b"old")
    written = save_figure(plot_sheet_map(_t_map(rng)), tmp_path / "m.png", svg=False)
    assert written == [tmp_path / "m.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]
    assert (tmp_path / "m.png").read_bytes()[:8] == PNG_SIGNATURE


def test_save_figure_failure_leaves_no_file(tmp_path, rng, monkeypatch):
    fig = plot_sheet_map(_t_map(rng))
    (tmp_path / "keep.png").write_bytes(b"previous")

    def broken(fname, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, tmp_path / "keep")
    # no temp file left and the previous file untouched
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]
    assert (tmp_path / "keep.png").read_bytes() == b"previous"


@pytest.mark.parametrize("backend", ["pdf", "svg"])
def test_plotting_and_compare_leave_the_backend_alone(backend, tmp_path):
    """A user's backend survives importing, plotting and saving; pyplot is never loaded
    by the library (its figures live outside pyplot's registry)."""
    import subprocess
    import sys

    code = f"""
import sys, matplotlib
matplotlib.use({backend!r})
import numpy as np, pandas as pd
import topobrain.plotting as p, topobrain.compare as c
assert "matplotlib.pyplot" not in sys.modules, "import loaded pyplot"
fig = p.plot_sheet_map(np.arange(12.0).reshape(3, 4) - 5)
p.save_figure(fig, {str(tmp_path / "m")!r})
table = pd.DataFrame({{"source": ["model", "brain"], "name": ["m", "b"],
                      "layer": ["mean", "map"], "published": [False, False],
                      **{{k: [0.5, 0.7] for k in c.METRICS}}}})
res = c.ComparisonResult(table, None, "m", None, "S - N")
c.plot_comparison(res, path={str(tmp_path / "cmp.png")!r})
assert "matplotlib.pyplot" not in sys.modules, "plotting loaded pyplot"
print(matplotlib.get_backend())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == backend
    assert (tmp_path / "m.svg").is_file() and (tmp_path / "cmp.png").is_file()


def test_save_figure_keeps_dots_in_names(tmp_path):
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    written = save_figure(fig, tmp_path / "layer.3.mlp")
    assert [p.name for p in written] == ["layer.3.mlp.png", "layer.3.mlp.svg"]
    fig, _ = plt.subplots()
    assert save_figure(fig, tmp_path / "map.png", svg=False)[0].name == "map.png"


def test_plot_map_rows_shares_one_colour_scale(rng):
    a = {"l0": _t_map(rng), "l1": _t_map(rng)}
    b = {"l0": 3 * _t_map(rng), "l1": _t_map(rng)}
    fig = plotting.plot_map_rows({"topo": a, "ctrl": b}, row_labels={"topo": "T"},
                                 cbar_label="t", title="x")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 4
    limits = {ax.images[0].get_clim() for ax in axes}
    assert len(limits) == 1
    lo, hi = limits.pop()
    expected = max(np.nanpercentile(np.abs(m), 99) for d in (a, b) for m in d.values())
    assert hi == pytest.approx(expected) and lo == pytest.approx(-expected)
    assert axes[0].get_ylabel() == "T" and axes[2].get_ylabel() == "ctrl"
    assert [ax.get_title() for ax in axes[:2]] == ["l0", "l1"]
    with pytest.raises(ValueError, match="every row needs the layers"):
        plotting.plot_map_rows({"topo": a, "ctrl": {"l1": a["l1"], "l0": a["l0"]}})
    with pytest.raises(ValueError, match="rows is empty"):
        plotting.plot_map_rows({})


def test_plot_preferred_conditions_grid(rng):
    maps = {f"l{k}": rng.integers(-1, 3, size=(5, 6)).astype(float) for k in range(5)}
    fig = plotting.plot_preferred_conditions(maps, ["a", "b", "c"], title="pref")
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == list(maps)
    assert len(fig.axes) == 8  # 2 x 4 grid, the last three blank
    with pytest.raises(ValueError, match="maps is empty"):
        plotting.plot_preferred_conditions({}, ["a"])
