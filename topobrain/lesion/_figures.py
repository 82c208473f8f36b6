"""Figures of a lesion run: targets against their controls, and the lesions on the sheets.

Both return a :class:`matplotlib.figure.Figure` built without pyplot (the backend is
never touched); save them with :func:`topobrain.plotting.save_figure`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_controls", "plot_lesion_maps"]

_COLOURS = {"random-units": "#4C72B0", "random-patch": "#DD8452", "magnitude": "#55A868"}


def plot_controls(lesions: pd.DataFrame):
    """One panel per target x measure: the controls' values (a histogram per control
    kind), the target's value (black line) and the unlesioned value (dashed)."""
    from matplotlib.figure import Figure

    targets = list(dict.fromkeys(lesions.loc[lesions["kind"] == "target", "lesion_id"]))
    measures = list(dict.fromkeys(lesions["measure"]))
    nr, nc = max(1, len(targets)), max(1, len(measures))
    fig = Figure(figsize=(2.6 * nc + 0.6, 2.3 * nr + 0.6))
    axes = np.atleast_2d(fig.subplots(nr, nc, squeeze=False))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.9, wspace=0.35,
                        hspace=0.7)
    none = lesions[lesions["kind"] == "none"].set_index("measure")["value"]
    for i, t in enumerate(targets):
        for j, meas in enumerate(measures):
            ax = axes[i, j]
            rows = lesions[(lesions["measure"] == meas)]
            ctl = rows[rows["target"] == t]
            for kind, g in ctl[ctl["kind"] != "target"].groupby("kind"):
                vals = g["value"].to_numpy(float)
                vals = vals[np.isfinite(vals)]
                if vals.size:
                    ax.hist(vals, bins=min(30, max(5, vals.size // 4)), alpha=0.6,
                            color=_COLOURS.get(kind, "grey"), label=kind)
            tv = rows.loc[(rows["lesion_id"] == t) & (rows["kind"] == "target"), "value"]
            if len(tv) and np.isfinite(tv.iloc[0]):
                ax.axvline(float(tv.iloc[0]), color="black", lw=2, label="target")
            if meas in none.index and np.isfinite(none[meas]):
                ax.axvline(float(none[meas]), color="black", ls="--", lw=1, label="none")
            ax.set_title(f"{t}\n{meas}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, frameon=False)
    return fig


def plot_lesion_maps(model, maps, groups, *, max_layers: int = 8):
    """Each target's layers as t maps, its units in black and the first control of each
    kind outlined in colour."""
    from matplotlib.figure import Figure

    rows = [(t, ctl, [k for k in model.layer_names if k in t.units][:max_layers])
            for t, ctl in groups]
    nc = max(1, max(len(r[2]) for r in rows)) if rows else 1
    nr = max(1, len(rows))
    fig = Figure(figsize=(2.2 * nc + 0.4, 2.4 * nr + 0.4))
    axes = np.atleast_2d(fig.subplots(nr, nc, squeeze=False))
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.88, wspace=0.1,
                        hspace=0.45)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i, (t, ctl, layers) in enumerate(rows):
        for j, k in enumerate(layers):
            ax = axes[i, j]
            sheet = model.sheets[k]
            tmap = sheet.to_map(maps.t[k]) if k in maps.t else np.zeros(sheet.shape)
            lim = np.nanmax(np.abs(tmap)) or 1.0
            ax.imshow(tmap, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            pos = sheet.positions[t.units[k]]
            ax.scatter(pos[:, 1], pos[:, 0], s=6, c="black", marker="s", label=t.name)
            for kind, lst in ctl.items():
                if lst and k in lst[0].units:
                    p = sheet.positions[lst[0].units[k]]
                    ax.scatter(p[:, 1], p[:, 0], s=10, facecolors="none",
                               edgecolors=_COLOURS.get(kind, "grey"), linewidths=0.8,
                               label=kind)
            ax.set_title(f"{t.name}\n{k}", fontsize=7)
            if j == 0 and i == 0:
                ax.legend(fontsize=5, frameon=False, loc="upper right")
    return fig
