"""The figures and report sections of a localizer run (drawn by :mod:`topobrain.plotting`,
assembled with :mod:`topobrain.report`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ._settings import LocalizeSettings

# the columns a reader scans first; the rest sit behind "show all columns" and in the CSV
_LAYER_COLUMNS = ("model", "layer", "n_selective", "morans_i", "null_mean", "null_z",
                  "null_p", "n_clusters")
_CLUSTER_COLUMNS = ("model", "layer", "cluster_id", "sign", "size", "mass", "peak_value",
                    "p_fwe")


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
    """Draw every figure (with :mod:`topobrain.plotting`) and assemble report sections.

    The report leads with what a reader looks at first: the summary, then for each
    contrast the main figure (the model's t-maps above the control's, FWE clusters
    outlined) and Moran's I against its null by layer; the per-contrast details and the
    tables (collapsed, linked to their CSV files) follow.
    """
    from .. import plotting
    from ..report import Section, Table

    fig_dir = work / "figures"
    fig_dir.mkdir(exist_ok=True)
    slugs = s.contrast_slugs
    lead = Section("Main results", sentences=summary)
    sections = [lead]
    for c in s.contrasts:
        slug = slugs[c]
        figs = []
        rows = {role_name: results[(role, c)].t_maps for role, role_name in names.items()}
        outlines = {role_name: results[(role, c)].cluster_outlines
                    for role, role_name in names.items()}
        labels = {}
        for role_name in names.values():
            L_role = layers_df[(layers_df["contrast"] == c)
                               & (layers_df["model"] == role_name)]
            text = f"{role_name}\nI = {L_role['morans_i'].mean():.2f}"
            if "null_mean" in L_role and L_role["null_mean"].notna().any():
                text += f" (null {L_role['null_mean'].mean():.2f})"
            labels[role_name] = text
        fig = plotting.plot_map_rows(
            rows, row_labels=labels, outlines=outlines, cbar_label="t",
            title=f"{c}: unthresholded t-maps of every layer"
                  + (", model above control" if len(names) > 1 else "")
                  + " (outlined: FWE-significant clusters)")
        path = fig_dir / f"main_{slug}"
        plotting.save_figure(fig, path)
        lead.figures.append((f"{c}: the t-maps of every layer"
                             + (" (model above its control)" if len(names) > 1 else "")
                             + "; outlined: cells of FWE-significant clusters; I: mean "
                             "Moran's I and its label-permutation null",
                             path.with_suffix(".png")))
        L = layers_df[layers_df["contrast"] == c]
        fig = plotting.plot_morans_by_layer(L, brain_reference=s.brain_reference,
                                            title=f"Moran's I by layer, {c}")
        path = fig_dir / f"morans_i_{slug}"
        plotting.save_figure(fig, path)
        lead.figures.append((f"{c}: Moran's I of the t-maps by layer, beside the label-"
                             "permutation null (band: mean ± 2 sd) and the control",
                             path.with_suffix(".png")))
        for role, role_name in names.items():
            r = results[(role, c)]
            # one grid per model and one file per layer, for papers (not in the page:
            # the main figure shows the same maps)
            fig = plotting.plot_layer_grid(
                r.t_maps, outlines=r.cluster_outlines, cbar_label="t",
                title=f"{role_name}: {c} t-maps (outlined: cells above the cluster-forming "
                      f"threshold in FWE-significant clusters)")
            plotting.save_figure(fig, fig_dir / f"tmaps_{role}_{slug}")
            vmax = max(float(np.nanmax(np.abs(m))) for m in r.t_maps.values()) or 1.0
            for layer, t_map in r.t_maps.items():
                fig = plotting.plot_sheet_map(
                    t_map, vmax=vmax, outline=r.cluster_outlines[layer], cbar_label="t",
                    title=f"{role_name}, {layer}: {c}")
                plotting.save_figure(
                    fig, fig_dir / "layers" / f"{role}_{slug}_{_file_safe(layer)}", svg=False)
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
        tables = [Table(f"Layers: {c}", L.drop(columns=["contrast"]),
                        columns=_LAYER_COLUMNS, csv="layers.csv")]
        C = clusters[clusters["contrast"] == c] if len(clusters) else clusters
        if len(C):
            show = C.drop(columns=[k for k in ("contrast", "cells") if k in C]).sort_values(
                "p_fwe" if "p_fwe" in C else "size")
            tables.append(Table(f"Clusters: {c} (|t| above the cluster-forming threshold)",
                                show, columns=_CLUSTER_COLUMNS, csv="clusters.csv"))
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
            Table("Preferred condition by layer (omnibus F, corrected over all layers)",
                  counts),
            Table("Categorical topography: same-preference joins against the "
                  "label-permutation null", f["joins"].to_frame())],
            figures=[("Preferred condition of each unit (blank: omnibus F not significant)",
                      path.with_suffix(".png"))]))
    return sections
