"""Figures of sheet maps and their statistics (matplotlib, imported here and only here).

Every function takes arrays or tidy tables and returns a ``matplotlib.figure.Figure``;
:func:`save_figure` writes PNG (and SVG) atomically. Colour maps of signed statistics
are diverging and centred on 0; every axis is labelled and every image has a colour bar.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._utils._io import atomic_save

__all__ = ["plot_sheet_map", "plot_layer_grid", "plot_morans_by_layer", "plot_distance_curves",
           "plot_response_profiles", "plot_null_distributions", "plot_category_map",
           "plot_preferred_conditions", "plot_comparison", "plot_map_rows", "save_figure"]

DIVERGING = "RdBu_r"
SVG_HASHSALT = "topobrain"  # fixed SVG element ids: the same figure, the same bytes


def _figure(n_rows: int = 1, n_cols: int = 1, *, figsize, squeeze: bool = True):
    """A new ``Figure`` and its axes, outside pyplot.

    The figure belongs to no pyplot window and no backend is switched: the caller's
    backend (a notebook's inline one, a GUI) stays as it was, and nothing needs closing.
    """
    fig = Figure(figsize=figsize)
    axes = fig.subplots(n_rows, n_cols, squeeze=squeeze)
    return fig, axes


def _cmap(name):
    return matplotlib.colormaps[name]


def save_figure(fig, path, *, svg: bool = True, dpi: int = 120) -> list[Path]:
    """Save ``fig`` as ``path`` (PNG) and, with ``svg=True``, beside it as SVG.

    ``path`` may end in ``.png``/``.svg`` or have no extension; any other dot stays part
    of the name (``layer.3.mlp`` becomes ``layer.3.mlp.png``). Both files are
    byte-reproducible: the same figure gives the same bytes (the SVG carries no date and
    its element ids come from a fixed salt). A pyplot figure is closed after saving.

    Returns
    -------
    list of pathlib.Path
        The PNG, then the SVG when written.
    """
    path = Path(path)
    if path.suffix.lower() in (".png", ".svg"):
        path = path.with_suffix("")
    written = [atomic_save(path.with_name(path.name + ".png"),
                           lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight",
                                                   format="png"))]
    if svg:
        def write_svg(tmp):
            with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT}):
                fig.savefig(tmp, bbox_inches="tight", format="svg", metadata={"Date": None})

        written.append(atomic_save(path.with_name(path.name + ".svg"), write_svg))
    _close_if_pyplot(fig)
    return written


def _close_if_pyplot(fig) -> None:
    """Close ``fig`` in pyplot's registry when it came from there (never imports pyplot)."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None and getattr(fig.canvas, "manager", None) is not None:
        plt.close(fig)


def _outline_segments(mask: np.ndarray) -> np.ndarray:
    """Unit-length cell edges between True cells of ``mask`` and the rest, shape (n, 2, 2).

    Each segment is ``((x0, y0), (x1, y1))`` in imshow data coordinates (cell centres on
    integers, so edges sit on half-integers).
    """
    pad = np.pad(np.asarray(mask, dtype=bool), 1, constant_values=False)
    core = pad[1:-1, 1:-1]
    segs = []
    # (neighbour that must be False, start offset, end offset) for the four cell sides
    for nb, (dx0, dy0), (dx1, dy1) in (
            (pad[:-2, 1:-1], (-0.5, -0.5), (0.5, -0.5)),   # top
            (pad[2:, 1:-1], (-0.5, 0.5), (0.5, 0.5)),      # bottom
            (pad[1:-1, :-2], (-0.5, -0.5), (-0.5, 0.5)),   # left
            (pad[1:-1, 2:], (0.5, -0.5), (0.5, 0.5))):     # right
        r, c = np.nonzero(core & ~nb)
        segs.append(np.stack([np.column_stack([c + dx0, r + dy0]),
                              np.column_stack([c + dx1, r + dy1])], axis=1))
    return np.concatenate(segs, axis=0)


def _outline(ax, mask: np.ndarray, color="k", lw=1.2) -> None:
    """Draw the boundary of the True cells of ``mask`` on an imshow axis.

    One ``LineCollection`` (label ``"_cluster_outline"``) holds every edge: one artist
    per edge made a 64 x 64 sheet take seconds to draw.
    """
    from matplotlib.collections import LineCollection

    segs = _outline_segments(mask)
    if len(segs):
        ax.add_collection(LineCollection(segs, colors=color, linewidths=lw,
                                         capstyle="projecting", label="_cluster_outline"),
                          autolim=False)


def _check_outline(outline, shape, name="outline"):
    outline = np.asarray(outline)
    if outline.shape != shape:
        raise ValueError(f"{name} must be a boolean mask of the map's shape {shape}; got shape "
                         f"{outline.shape}. Pass sheet.to_map(mask) for a per-unit mask.")
    return outline.astype(bool)


def _require_columns(df, columns, name) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame; got {type(df).__name__}.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(df.columns)}. "
                         f"Pass the tidy table with columns {list(columns)}.")
    if df.empty:
        raise ValueError(f"{name} is empty: there is nothing to plot.")


def plot_sheet_map(stat_map, *, ax=None, vmax=None, outline=None, title=None,
                   cbar_label="t", cmap=DIVERGING, colorbar=True):
    """One sheet map of a signed statistic with optional cluster outlines.

    Parameters
    ----------
    stat_map : ndarray of shape (n_rows, n_cols)
        NaN where no unit sits (drawn grey).
    vmax : float, optional
        Colour limit; the map is centred on 0 (``[-vmax, vmax]``).
    outline : ndarray of bool, shape (n_rows, n_cols), optional
        Cells to outline (e.g. units in significant clusters).
    """
    stat_map = np.asarray(stat_map, dtype=float)
    if stat_map.ndim != 2:
        raise ValueError(f"stat_map must be a 2-D sheet map (n_rows, n_cols); got shape "
                         f"{stat_map.shape}. Pass sheet.to_map(values).")
    if outline is not None:
        outline = _check_outline(outline, stat_map.shape)
    if vmax is not None and not (np.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a positive finite number (the colour limit); got {vmax}.")
    if ax is None:
        fig, ax = _figure(figsize=(3.6, 3.2))
    else:
        fig = ax.figure
    if vmax is None:
        finite = np.abs(stat_map[np.isfinite(stat_map)])
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    cm = _cmap(cmap).with_extremes(bad="0.8")
    im = ax.imshow(np.ma.masked_invalid(stat_map), cmap=cm, vmin=-vmax, vmax=vmax,
                   interpolation="nearest")
    if outline is not None and np.any(outline):
        _outline(ax, outline)
    ax.set_xlabel("sheet column (units)")
    ax.set_ylabel("sheet row (units)")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label(cbar_label)
    return fig


def plot_layer_grid(maps: dict, *, outlines: dict | None = None, title=None, cbar_label="t",
                    vmax=None, n_cols=None):
    """All layers' maps in one grid with a shared, zero-centred colour bar."""
    names = list(maps)
    n = len(names)
    if n == 0:
        raise ValueError("maps is empty: pass a dict {layer name: 2-D map} with at least "
                         "one layer.")
    if vmax is not None and not (np.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a positive finite number (the colour limit); got {vmax}.")
    outlines = {name: _check_outline(mask, np.shape(maps[name]), f"outlines[{name!r}]")
                for name, mask in (outlines or {}).items() if name in maps}
    n_cols = n_cols or min(n, 6 if n > 8 else 4)
    n_rows = math.ceil(n / n_cols)
    if vmax is None:
        vals = np.concatenate([np.abs(np.asarray(m, float)[np.isfinite(m)]) for m in maps.values()])
        vmax = float(np.percentile(vals, 99)) if vals.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
    fig, axes = _figure(n_rows, n_cols, figsize=(2.3 * n_cols + 1.0, 2.3 * n_rows + 0.6),
                             squeeze=False)
    cm = _cmap(DIVERGING).with_extremes(bad="0.8")
    im = None
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        m = np.asarray(maps[names[k]], float)
        im = ax.imshow(np.ma.masked_invalid(m), cmap=cm, vmin=-vmax, vmax=vmax,
                       interpolation="nearest")
        if names[k] in outlines and np.any(outlines[names[k]]):
            _outline(ax, outlines[names[k]], lw=0.8)
        ax.set_title(names[k], fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        if k % n_cols == 0:
            ax.set_ylabel("row")
        if k >= n - n_cols:
            ax.set_xlabel("column")
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02)
    cb.set_label(cbar_label)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_map_rows(rows: dict, *, row_labels: dict | None = None, outlines: dict | None = None,
                  title=None, cbar_label="t", vmax=None):
    """Maps of several models side by side: one row per model, one column per layer.

    Parameters
    ----------
    rows : dict of str to dict of str to ndarray of shape (n_rows, n_cols)
        ``{model: {layer: map}}``; every model has the same layers, in the same order.
    row_labels : dict of str to str, optional
        Text beside each row (default: the model name).
    outlines : dict of str to dict of str to ndarray of bool, optional
        ``{model: {layer: mask}}``: cells to outline (e.g. those of FWE-significant
        clusters); models or layers left out get no outline.
    vmax : float, optional
        The shared colour limit (maps centred on 0); default the largest of the maps'
        99th percentiles of ``|value|``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not rows:
        raise ValueError("rows is empty: pass {model: {layer: 2-D map}} with one model or "
                         "more.")
    layers = list(next(iter(rows.values())))
    for name, maps in rows.items():
        if list(maps) != layers:
            raise ValueError(f"rows[{name!r}] has layers {list(maps)}; every row needs the "
                             f"layers {layers}, in that order.")
    if vmax is None:
        vmax = max(float(np.nanpercentile(np.abs(m), 99)) for maps in rows.values()
                   for m in maps.values())
        vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    elif not (np.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a positive finite number (the colour limit); got {vmax}.")
    fig, axes = _figure(len(rows), len(layers), figsize=(1.9 * len(layers) + 1.2,
                                                        2.3 * len(rows)), squeeze=False)
    cm = _cmap(DIVERGING).with_extremes(bad="0.8")
    for i, (name, maps) in enumerate(rows.items()):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            im = ax.imshow(np.ma.masked_invalid(np.asarray(maps[layer], float)), cmap=cm,
                           vmin=-vmax, vmax=vmax, interpolation="nearest")
            mask = ((outlines or {}).get(name) or {}).get(layer)
            if mask is not None:
                _outline(ax, _check_outline(mask, np.shape(maps[layer]),
                                            f"outlines[{name!r}][{layer!r}]"))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(layer, fontsize=8)
            if j == 0:
                ax.set_ylabel((row_labels or {}).get(name, name), fontsize=8)
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
    cb.set_label(cbar_label)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_morans_by_layer(layers: pd.DataFrame, *, brain_reference: float | None = None,
                         title=None):
    """Moran's I per layer: model, its label-permutation null and its control.

    Parameters
    ----------
    layers : DataFrame
        Columns ``layer``, ``morans_i``, ``model`` (e.g. ``"topolm-tiny"`` and its
        control), and optionally ``null_mean`` and ``null_sd`` (label-permutation null).
    brain_reference : float, optional
        Moran's I of a brain map, drawn as a horizontal line.
    """
    _require_columns(layers, ["layer", "morans_i", "model"], "layers")
    if "null_mean" in layers and "null_sd" not in layers:
        raise ValueError("layers has null_mean but no null_sd: pass both (label-permutation "
                         "null mean and sd) or neither.")
    fig, ax = _figure(figsize=(max(5.0, 0.45 * layers["layer"].nunique() + 2), 3.4))
    order = list(dict.fromkeys(layers["layer"]))
    x = np.arange(len(order))
    palette = _cmap("tab10")
    for k, (model, df) in enumerate(layers.groupby("model", sort=False)):
        df = df.set_index("layer").reindex(order)
        color = palette(k)
        ax.plot(x, df["morans_i"], "o-", color=color, label=f"{model}: observed")
        if "null_mean" in df and df["null_mean"].notna().any():
            lo = df["null_mean"] - 2 * df["null_sd"]
            hi = df["null_mean"] + 2 * df["null_sd"]
            ax.fill_between(x, lo, hi, color=color, alpha=0.18,
                            label=f"{model}: label-shuffled null (mean ± 2 sd)")
            ax.plot(x, df["null_mean"], ":", color=color)
    if brain_reference is not None:
        ax.axhline(brain_reference, color="k", ls="--", lw=1, label="brain map")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(order, rotation=60, ha="right", fontsize=8)
    ax.set_xlabel("layer")
    ax.set_ylabel("Moran's I (queen, unthresholded t-map)")
    ax.legend(fontsize=7, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_distance_curves(profiles: pd.DataFrame, *, title=None):
    """Response correlation vs sheet distance, one line per model (mean over layers).

    ``profiles`` has columns ``model``, ``layer``, ``distance`` (sheet units) and
    ``correlation``.
    """
    _require_columns(profiles, ["model", "layer", "distance", "correlation"], "profiles")
    fig, ax = _figure(figsize=(4.6, 3.4))
    palette = _cmap("tab10")
    for k, (model, df) in enumerate(profiles.groupby("model", sort=False)):
        g = df.groupby("distance")["correlation"]
        mean, sd = g.mean(), g.std().fillna(0)
        ax.plot(mean.index, mean.values, "o-", ms=3, color=palette(k), label=model)
        ax.fill_between(mean.index, mean - sd, mean + sd, color=palette(k), alpha=0.15)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("distance on the sheet (units)")
    ax.set_ylabel("response correlation (Pearson r)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_response_profiles(profile: pd.DataFrame, *, title=None):
    """Mean response of selective units by condition, with 95% intervals.

    ``profile`` has columns ``model``, ``condition``, ``mean``, ``ci_low``, ``ci_high``.
    """
    _require_columns(profile, ["model", "condition", "mean", "ci_low", "ci_high"], "profile")
    models = list(dict.fromkeys(profile["model"]))
    conds = list(dict.fromkeys(profile["condition"]))
    fig, ax = _figure(figsize=(1.1 * len(conds) * len(models) + 2.0, 3.4))
    width = 0.8 / max(1, len(models))
    palette = _cmap("tab10")
    for k, model in enumerate(models):
        df = profile[profile["model"] == model].set_index("condition").reindex(conds)
        x = np.arange(len(conds)) + (k - (len(models) - 1) / 2) * width
        ax.bar(x, df["mean"], width, color=palette(k), label=model)
        # the interval is drawn as given, centred on its own midpoint: a bootstrap
        # percentile interval need not contain the mean, and matplotlib refuses
        # negative error lengths
        lo, hi = df["ci_low"].to_numpy(float), df["ci_high"].to_numpy(float)
        ax.errorbar(x, (lo + hi) / 2, yerr=np.abs(hi - lo) / 2, fmt="none", ecolor="k",
                    elinewidth=1, capsize=3)
    ax.set_xticks(np.arange(len(conds)))
    ax.set_xticklabels(conds)
    ax.set_xlabel("condition")
    ax.set_ylabel("mean response of selective units\n(z-scored over items, ± 95% CI)")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_null_distributions(null: np.ndarray, observed: np.ndarray, layer_names, *,
                            title=None, xlabel="Moran's I"):
    """Per-layer histograms of a permutation null with the observed value marked."""
    layer_names = list(layer_names)
    n = len(layer_names)
    null = np.asarray(null, float)
    if null.ndim == 1 and n == 1:
        null = null[:, None]
    observed = np.atleast_1d(np.asarray(observed, float))
    if n == 0 or null.ndim != 2 or null.shape[1] != n or observed.shape != (n,):
        raise ValueError(f"null must have shape (n_permutations, n_layers) and observed "
                         f"shape (n_layers,) with n_layers = len(layer_names) = {n} >= 1; got "
                         f"null {null.shape} and observed {observed.shape}.")
    n_cols = min(n, 6 if n > 8 else 4)
    n_rows = math.ceil(n / n_cols)
    fig, axes = _figure(n_rows, n_cols, figsize=(2.3 * n_cols, 1.9 * n_rows + 0.5),
                             squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        ax.hist(null[:, k][np.isfinite(null[:, k])], bins=25, color="0.6")
        ax.axvline(observed[k], color="C3", lw=2)
        ax.set_title(layer_names[k], fontsize=8)
        ax.tick_params(labelsize=7)
        if k % n_cols == 0:
            ax.set_ylabel("permutations", fontsize=8)
        ax.set_xlabel(xlabel, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_category_map(categories: np.ndarray, labels: list[str], *, ax=None, title=None):
    """A categorical map: integer codes (-1 or NaN for blank) with a legend."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    cat = np.asarray(categories, dtype=float)
    labels = list(labels)
    n = len(labels)
    if n == 0:
        raise ValueError("labels is empty: pass one label per category code 0..n-1.")
    codes = cat[np.isfinite(cat) & (cat >= 0)]
    if codes.size and (codes.max() >= n or np.any(codes != np.round(codes))):
        raise ValueError(f"categories must hold integer codes 0..{n - 1} (one per label), -1 "
                         f"or NaN for blank; got codes up to {codes.max():g}. Pass one "
                         f"label per category.")
    if n <= 10:
        colors = list(_cmap("tab10").colors[:n])
    elif n <= 20:
        colors = list(_cmap("tab20").colors[:n])
    else:
        colors = [tuple(c) for c in _cmap("turbo")(np.linspace(0, 1, n))]
    if ax is None:
        fig, ax = _figure(figsize=(4.2, 3.4))
    else:
        fig = ax.figure
    cm = ListedColormap(colors).with_extremes(bad="white")
    masked = np.ma.masked_where(~np.isfinite(cat) | (cat < 0), cat)
    ax.imshow(masked, cmap=cm, vmin=-0.5, vmax=len(labels) - 0.5, interpolation="nearest")
    ax.set_xlabel("sheet column (units)")
    ax.set_ylabel("sheet row (units)")
    ax.legend(handles=[Patch(color=colors[i], label=l) for i, l in enumerate(labels)],
              fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_preferred_conditions(maps: dict, conditions, *, title=None):
    """Each layer's map of preferred conditions in one grid (blank: no preference).

    Parameters
    ----------
    maps : dict of str to ndarray of shape (n_rows, n_cols)
        Integer codes into ``conditions`` per layer; -1 or NaN where a unit prefers none.
    conditions : list of str
        The condition of each code.
    """
    names = list(maps)
    n = len(names)
    if n == 0:
        raise ValueError("maps is empty: pass a dict {layer name: 2-D map of codes} with at "
                         "least one layer.")
    n_cols = min(n, 4)
    n_rows = math.ceil(n / n_cols)
    fig, axes = _figure(n_rows, n_cols, figsize=(3.6 * n_cols, 3.0 * n_rows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        plot_category_map(maps[names[k]], conditions, ax=ax, title=names[k])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_comparison(result):
    """Side-by-side bars of a model/brain comparison, one panel per metric.

    Model and control: the mean over layers (bars) and each layer (dots); the brain map;
    the label-shuffled null mean of Moran's I (dashed) and published reference values
    (open diamonds).

    Parameters
    ----------
    result : topobrain.compare.ComparisonResult
    """
    t = result.table
    titles = {  # the metrics of topobrain.compare, in its order
        "morans_i": "Moran's I", "percent_selective": "% selective",
        "n_clusters": "clusters", "largest_cluster_fraction": "largest cluster\n(fraction)",
        "median_cluster_fraction": "median cluster\n(fraction)",
        "decay_distance": "decay distance\n(model: sheet units, brain: mm)",
    }
    sources = [s for s in ("model", "control", "brain") if (t["source"] == s).any()]
    colors = {"model": "#1b9e77", "control": "#7570b3", "brain": "#d95f02"}
    metrics = [m for m in titles if m in t.columns]
    fig, axes = _figure(1, len(metrics), figsize=(3.0 * len(metrics), 3.4), squeeze=False)
    for axm, metric in zip(axes[0], metrics, strict=True):
        for i, src in enumerate(sources):
            sub = t[(t["source"] == src) & (~t["published"])]
            summary = sub[sub["layer"].isin(["mean", "map"])][metric].to_numpy(float)
            val = summary[0] if summary.size else np.nan
            axm.bar(i, 0 if not np.isfinite(val) else val, color=colors[src], alpha=0.8)
            per_layer = sub[~sub["layer"].isin(["mean", "map"])][metric].to_numpy(float)
            if per_layer.size:
                jitter = np.linspace(-0.2, 0.2, per_layer.size)
                axm.plot(i + jitter, per_layer, "o", color="k", ms=2.5, alpha=0.6)
        if metric == "morans_i" and "morans_i_null_mean" in t:
            for i, src in enumerate(sources):
                sub = t[(t["source"] == src) & (t["layer"] == "mean")]
                null = sub["morans_i_null_mean"].to_numpy(float)
                if null.size and np.isfinite(null[0]):
                    axm.hlines(null[0], i - 0.4, i + 0.4, colors="k", linestyles="--", lw=1.2,
                               label="label-shuffled null" if i == 0 else None)
        if metric == "morans_i":
            pub = t[t["published"]]
            xs = {"TopoLM": 0, "TopoLM control": 1, "human brain": len(sources) - 1}
            for _, r in pub.iterrows():
                x = xs.get(r["name"], len(sources) - 1)
                if r["name"] == "TopoLM control" and "control" not in sources:
                    x = 0
                axm.plot(x + 0.3, r["morans_i"], "D", mfc="none", mec="k", ms=5)
            axm.plot([], [], "D", mfc="none", mec="k", ms=5, label="published")
            axm.legend(fontsize=7, loc="upper left", frameon=False)
        axm.set_xticks(range(len(sources)))
        axm.set_xticklabels(sources, rotation=30, fontsize=8)
        axm.set_title(titles[metric], fontsize=9)
        axm.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"{result.model_name} vs brain: {result.contrast}", fontsize=10)
    fig.tight_layout()
    return fig
