"""The figures and report sections of a localizer run (drawn by :mod:`topobrain.plotting`,
assembled with :mod:`topobrain.report`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ._settings import LocalizeSettings


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"



def _summary_sentences(results, names, s: LocalizeSettings) -> list[str]:
    out = []
    for c in s.contrasts:
        for role, role_name in names.items():
            r = results[(role, c)]
            L, U, C = r.layers, r.units, r.clusters
            n_sel, n = int(U["selective"].sum()), len(U)
            line = (f"{role_name}, {c}: {n_sel} of {n} units ({100 * n_sel / n:.1f}%) "
                    f"are selective (corrected p <= alpha, t > 0); the mean Moran's I of the "
                    f"unthresholded t-maps over {len(L)} layers is {L['morans_i'].mean():.3f}")
            null = r.morans_null
            if null is not None:
                nm = null.null_mean_over_layers
                line += (f", against a label-permutation null of {nm.mean():.3f} (sd "
                         f"{nm.std(ddof=1):.3f}; z = {null.z_mean:.2f}, p = "
                         f"{null.p_mean:.4f}); {int((L['null_p'] < 0.05).sum())} of {len(L)} "
                         f"layers exceed their own null at p < 0.05")
            line += "."
            if len(C) and C["p_fwe"].notna().any():
                line += (f" {int((C['p_fwe'] < 0.05).sum())} of {len(C)} clusters survive "
                         f"FWE correction (p < 0.05).")
            out.append(line)
    if s.smooth_fwhm:
        out.append(f"Responses were smoothed on the sheet with a Gaussian of FWHM "
                   f"{s.smooth_fwhm} units before the statistics; smoothing alone raises "
                   f"Moran's I, so compare with the control and the null.")
    if len(names) == 1:
        out.append("No control model was given: Moran's I stands only beside its label-"
                   "permutation null.")
    return out


def _figures_and_sections(work: Path, results, names, s: LocalizeSettings, layers_df,
                          clusters, sel_frames, summary):
    """Draw every figure (with :mod:`topobrain.plotting`) and assemble report sections."""
    from .. import plotting
    from ..report import Section

    fig_dir = work / "figures"
    fig_dir.mkdir(exist_ok=True)
    slugs = s.contrast_slugs
    sections = [Section("Main results", sentences=summary)]
    for c in s.contrasts:
        slug = slugs[c]
        figs = []
        for role, role_name in names.items():
            r = results[(role, c)]
            fig = plotting.plot_layer_grid(
                r.t_maps, outlines=r.cluster_outlines, cbar_label="t",
                title=f"{role_name}: {c} t-maps (outlined: cells above the cluster-forming "
                      f"threshold in FWE-significant clusters)")
            path = fig_dir / f"tmaps_{role}_{slug}"
            plotting.save_figure(fig, path)
            figs.append((f"{role_name}: unthresholded t-maps of {c}, every layer",
                         path.with_suffix(".png")))
            # one file per layer, for papers (PNG only: the grid has the SVG)
            vmax = max(float(np.nanmax(np.abs(m))) for m in r.t_maps.values()) or 1.0
            for layer, t_map in r.t_maps.items():
                fig = plotting.plot_sheet_map(
                    t_map, vmax=vmax, outline=r.cluster_outlines[layer], cbar_label="t",
                    title=f"{role_name}, {layer}: {c}")
                plotting.save_figure(
                    fig, fig_dir / "layers" / f"{role}_{slug}_{_file_safe(layer)}", svg=False)
        L = layers_df[layers_df["contrast"] == c]
        fig = plotting.plot_morans_by_layer(L, brain_reference=s.brain_reference,
                                            title=f"Moran's I by layer, {c}")
        path = fig_dir / f"morans_i_{slug}"
        plotting.save_figure(fig, path)
        figs.append(("Moran's I of the t-maps by layer, beside the label-permutation null "
                     "(band: mean ± 2 sd) and the control", path.with_suffix(".png")))
        prof = pd.concat([results[(role, c)].condition_responses for role in names],
                         ignore_index=True)
        if len(prof):
            fig = plotting.plot_response_profiles(
                prof, title=f"Selective units ({c}): response by condition")
            path = fig_dir / f"profiles_{slug}"
            plotting.save_figure(fig, path)
            figs.append(("Mean response of the selective units by condition (z-scored, 95% "
                         "CI over items, averaged over layers)", path.with_suffix(".png")))
        for role, role_name in names.items():  # the model's null beside the control's
            r = results[(role, c)]
            if r.morans_null is None:
                continue
            fig = plotting.plot_null_distributions(
                r.morans_null.null, r.morans_null.observed, list(r.t_maps),
                title=f"{role_name}: Moran's I ({c}) against its label-permutation null")
            path = fig_dir / f"null_{role}_{slug}"
            plotting.save_figure(fig, path)
            figs.append((f"{role_name}: observed Moran's I (red) and its label-permutation "
                         f"null, per layer", path.with_suffix(".png")))
        tables = [(f"Layers: {c}", L.drop(columns=["contrast"]))]
        C = clusters[clusters["contrast"] == c] if len(clusters) else clusters
        if len(C):
            show = C.drop(columns=[k for k in ("contrast", "cells") if k in C]).sort_values(
                "p_fwe" if "p_fwe" in C else "size")
            tables.append((f"Clusters: {c} (|t| above the cluster-forming threshold)", show))
        sections.append(Section(f"Contrast {c}", tables=tables, figures=figs))
    # distance curves describe the responses: once per model
    first = s.contrasts[0]
    curves = pd.concat([results[(role, first)].distance_curves for role in names],
                       ignore_index=True)
    fig = plotting.plot_distance_curves(
        curves, title="Response correlation vs distance (mean ± sd over layers)")
    path = fig_dir / "distance_curves"
    plotting.save_figure(fig, path)
    sections.append(Section("Spatial structure of the responses", figures=[
        ("Correlation of unit responses across items as a function of sheet distance",
         path.with_suffix(".png"))]))
    for f in sel_frames:
        res, df = f["result"], f["table"]
        fig = plotting.plot_preferred_conditions(f["maps"], res.conditions)
        path = fig_dir / f"preferred_{f['role']}"
        plotting.save_figure(fig, path)
        counts = df.groupby(["layer", "preferred"]).agg(
            n_units=("unit", "size"), n_significant=("significant", "sum")).reset_index()
        sections.append(Section(f"Selectivity: {f['model']}", sentences=[
            "Join counts: same-preference neighbour pairs over their expectation under a "
            "random arrangement, minus 1; the null permutes item labels, keeping the units' "
            "correlations, so p asks whether units preferring the same condition sit together "
            "beyond what their correlations give."], tables=[
            ("Preferred condition by layer (omnibus F, corrected over all layers)", counts),
            ("Categorical topography: same-preference joins against the label-permutation null",
             f["joins"].to_frame())],
            figures=[("Preferred condition of each unit (blank: omnibus F not significant)",
                      path.with_suffix(".png"))]))
    return sections
