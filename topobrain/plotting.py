"""Figures of sheet maps and their statistics (matplotlib, imported here and only here).

Every function takes arrays or tidy tables and returns a ``matplotlib.figure.Figure``;
:func:`save_figure` writes PNG (and SVG) atomically. Colour maps of signed statistics
are diverging and centred on 0; every axis is labelled and every image has a colour bar.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ._utils._io import atomic_save  # noqa: E402

__all__ = ["plot_sheet_map", "plot_layer_grid", "plot_morans_by_layer", "plot_distance_curves",
           "plot_response_profiles", "plot_null_distributions", "plot_category_map",
           "save_figure"]

DIVERGING = "RdBu_r"


def save_figure(fig, path, *, svg: bool = True, dpi: int = 120) -> list[Path]:
    """Save ``fig`` as ``path`` (PNG) and, with ``svg=True``, beside it as SVG; close it."""
    path = Path(path)
    written = [atomic_save(path.with_suffix(".png"),
                           lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight",
                                                   format="png"))]
    if svg:
        written.append(atomic_save(path.with_suffix(".svg"),
                                   lambda tmp: fig.savefig(tmp, bbox_inches="tight",
                                                           format="svg")))
    plt.close(fig)
    return written


def _outline(ax, mask: np.ndarray, color="k", lw=1.2) -> None:
    """Draw the boundary of the True cells of ``mask`` on an imshow axis."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = mask.shape
    segs = []
    for r in range(rows):
        for c in range(cols):
            if not mask[r, c]:
                continue
            if r == 0 or not mask[r - 1, c]:
                segs.append(((c - 0.5, c + 0.5), (r - 0.5, r - 0.5)))
            if r == rows - 1 or not mask[r + 1, c]:
                segs.append(((c - 0.5, c + 0.5), (r + 0.5, r + 0.5)))
            if c == 0 or not mask[r, c - 1]:
                segs.append(((c - 0.5, c - 0.5), (r - 0.5, r + 0.5)))
            if c == cols - 1 or not mask[r, c + 1]:
                segs.append(((c + 0.5, c + 0.5), (r - 0.5, r + 0.5)))
    for xs, ys in segs:
        ax.plot(xs, ys, color=color, lw=lw, solid_capstyle="round")


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
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.6, 3.2))
    else:
        fig = ax.figure
    if vmax is None:
        finite = np.abs(stat_map[np.isfinite(stat_map)])
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    cm = plt.get_cmap(cmap).copy()
    cm.set_bad("0.8")
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
    n_cols = n_cols or min(n, 6 if n > 8 else 4)
    n_rows = math.ceil(n / n_cols)
    if vmax is None:
        vals = np.concatenate([np.abs(np.asarray(m, float)[np.isfinite(m)]) for m in maps.values()])
        vmax = float(np.percentile(vals, 99)) if vals.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.3 * n_cols + 1.0, 2.3 * n_rows + 0.6),
                             squeeze=False)
    cm = plt.get_cmap(DIVERGING).copy()
    cm.set_bad("0.8")
    im = None
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        m = np.asarray(maps[names[k]], float)
        im = ax.imshow(np.ma.masked_invalid(m), cmap=cm, vmin=-vmax, vmax=vmax,
                       interpolation="nearest")
        if outlines is not None and names[k] in outlines and np.any(outlines[names[k]]):
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
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * layers["layer"].nunique() + 2), 3.4))
    order = list(dict.fromkeys(layers["layer"]))
    x = np.arange(len(order))
    palette = plt.get_cmap("tab10")
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
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    palette = plt.get_cmap("tab10")
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
    models = list(dict.fromkeys(profile["model"]))
    conds = list(dict.fromkeys(profile["condition"]))
    fig, ax = plt.subplots(figsize=(1.1 * len(conds) * len(models) + 2.0, 3.4))
    width = 0.8 / max(1, len(models))
    palette = plt.get_cmap("tab10")
    for k, model in enumerate(models):
        df = profile[profile["model"] == model].set_index("condition").reindex(conds)
        x = np.arange(len(conds)) + (k - (len(models) - 1) / 2) * width
        err = np.vstack([df["mean"] - df["ci_low"], df["ci_high"] - df["mean"]])
        ax.bar(x, df["mean"], width, yerr=err, capsize=3, color=palette(k), label=model)
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
    null = np.asarray(null, float)
    n = len(layer_names)
    n_cols = min(n, 6 if n > 8 else 4)
    n_rows = math.ceil(n / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.3 * n_cols, 1.9 * n_rows + 0.5),
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
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.4))
    else:
        fig = ax.figure
    colors = plt.get_cmap("tab10").colors[: max(1, len(labels))]
    cm = ListedColormap(colors)
    cm.set_bad("white")
    masked = np.ma.masked_where(~np.isfinite(cat) | (cat < 0), cat)
    ax.imshow(masked, cmap=cm, vmin=-0.5, vmax=len(labels) - 0.5, interpolation="nearest")
    ax.set_xlabel("sheet column (units)")
    ax.set_ylabel("sheet row (units)")
    ax.legend(handles=[Patch(color=colors[i], label=l) for i, l in enumerate(labels)],
              fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    if title:
        ax.set_title(title, fontsize=9)
    return fig
