"""The localizer end to end: ``localize`` runs a model (and its control) on a stimulus set
and writes the tables, maps, figures and report of a neuroimaging paper.

Flow, one direction: stimuli -> model -> activations (cached) -> [readout smoothing]
-> Welch t per unit -> FDR over all layers -> Moran's I with its label-permutation null
-> cluster-level FWE test -> distance profiles -> figures -> report.

Output folder::

    units.csv, units.parquet   one row per model x contrast x layer x unit
    layers.csv                 per model x contrast x layer: Moran's I, its null, % selective
    clusters.csv               suprathreshold clusters with FWE-corrected p-values
    selectivity.csv            (with selectivity=True) per model x layer x unit
    maps.nc                    t, effect and p_fdr maps (xarray, netCDF)
    figures/*.png, *.svg
    report.html                one self-contained page
    run.yaml                   settings, versions, input hashes
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils._hashing import hash_json
from ._utils._io import atomic_save, atomic_write_text
from ._utils._versions import versions
from ._utils._validation import check_option

__all__ = ["LocalizeResult", "localize"]

logger = logging.getLogger("topobrain")

RUN_FILE = "run.yaml"


@dataclass(frozen=True)
class LocalizeResult:
    """What ``localize`` wrote, with the main tables loaded.

    Attributes
    ----------
    out : pathlib.Path
        The output folder.
    units, layers, clusters : DataFrame
        The tables of ``units.csv``, ``layers.csv`` and ``clusters.csv``.
    report : pathlib.Path
        ``report.html``.
    settings : dict
        Everything ``run.yaml`` records.
    selectivity : DataFrame or None
        ``selectivity.csv`` when requested.
    """

    out: Path
    units: pd.DataFrame
    layers: pd.DataFrame
    clusters: pd.DataFrame
    report: Path
    settings: dict
    selectivity: pd.DataFrame | None = None
    summary: list = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"LocalizeResult(out={str(self.out)!r}, {len(self.units)} unit rows, "
                f"{len(self.layers)} layer rows, {len(self.clusters)} clusters)")


# --------------------------------------------------------------------------- helpers
def _settings_hash(settings: dict) -> str:
    keys = {k: v for k, v in settings.items() if k not in ("out", "overwrite", "verbose",
                                                           "n_jobs", "device", "cache")}
    return hash_json(keys)[:16]


def _prepare_out(out: Path, settings_hash: str, overwrite: bool) -> None:
    """Refuse a folder that holds anything but this same run, unless ``overwrite``."""
    import yaml

    if out.exists() and any(out.iterdir()):
        run_file = out / RUN_FILE
        previous = {}
        if run_file.exists():
            try:
                previous = yaml.safe_load(run_file.read_text()) or {}
            except yaml.YAMLError:
                pass
        if previous.get("settings_hash") == settings_hash:
            return  # the same run: resume (activations from the cache) and rewrite
        if not overwrite:
            what = ("holds another run (different settings)" if run_file.exists()
                    else "is not empty and holds no topobrain run")
            raise FileExistsError(
                f"The output folder {out} {what}. Pick another --out, or pass --overwrite "
                f"to replace its contents."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_save(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))


def _same_shape(maps: dict) -> bool:
    return len({np.shape(m) for m in maps.values()}) == 1


def _decay_distance(profile) -> float:
    """Distance (sheet units) at which the response correlation falls to half its value
    at the nearest distance bin, by linear interpolation; NaN if it never does."""
    d = np.asarray(profile.distance, float)
    r = np.asarray(profile.correlation, float)
    ok = np.isfinite(d) & np.isfinite(r)
    d, r = d[ok], r[ok]
    if d.size < 2 or r[0] <= 0:
        return float("nan")
    half = r[0] / 2
    below = np.flatnonzero(r <= half)
    if below.size == 0:
        return float("nan")
    k = below[0]
    if k == 0:
        return float(d[0])
    return float(d[k - 1] + (r[k - 1] - half) * (d[k] - d[k - 1]) / (r[k - 1] - r[k]))


def _unit_test(y, labels, contrast):
    """t, two-sided p, effect and df of every unit: Welch t for two-sample contrasts (the
    published localizer), the one-sample t of a single condition's items otherwise."""
    from scipy import stats

    from . import glm
    from ._utils._stats import one_sample_t

    if contrast.is_two_sample:
        r = glm.welch_t(y, labels, contrast)
        return r.t, r.p, r.effect, r.df
    items = y[np.asarray(labels) == contrast.positive[0]]
    t = one_sample_t(items)
    df = items.shape[0] - 1
    p = np.where(np.isfinite(t), 2 * stats.t.sf(np.abs(t), df), np.nan)
    return t, p, items.mean(0), np.full(t.shape, float(df))


def _check_contrast_kind(contrast) -> None:
    if contrast.is_two_sample:
        return
    if contrast.positive and not contrast.negative and len(contrast.positive) == 1:
        return
    raise ValueError(
        f"Contrast {contrast.expression!r} is neither two-sample (positive weights against "
        f"negative ones summing to zero, like 'S - N') nor one condition against zero (like "
        f"'S'). Write it as one of those, or use topobrain.glm.fit_glm for weighted contrasts."
    )


def _cluster_forming_t(p: float, df: float) -> float:
    from scipy import stats

    return float(stats.t.isf(p / 2, df))


# --------------------------------------------------------------------------- analysis
def _analyse_contrast(acts, labels, contrast, *, role, profs, alpha, correction,
                      n_permutations, cluster_p, seed, n_jobs, verbose):
    """All statistics of one model and one contrast; returns a dict of tables and maps."""
    from . import clusters as cl
    from . import inference, spatial
    from .correction import correct_pvalues

    layer_names = acts.layers
    sheets = acts.sheets
    res = {}
    t_layers, p_layers, eff_layers, dfs = {}, {}, {}, []
    for name in layer_names:
        t_layers[name], p_layers[name], eff_layers[name], df = _unit_test(
            acts[name], labels, contrast)
        dfs.append(np.asarray(df, dtype=float).ravel())
    df_welch = float(np.nanmedian(np.concatenate(dfs)))  # for the cluster-forming |t|
    corr = correct_pvalues(p_layers, method=correction, alpha=alpha, over="all")
    unit_rows = []
    for name in layer_names:
        sheet = sheets[name]
        p_fdr = corr.p_adjusted[name]
        selective = (np.nan_to_num(p_fdr, nan=1.0) < alpha) & (t_layers[name] > 0)
        unit_rows.append(pd.DataFrame({
            "model": role, "contrast": contrast.expression, "layer": name,
            "unit": np.arange(sheet.n_units), "row": sheet.positions[:, 0],
            "col": sheet.positions[:, 1], "effect": eff_layers[name], "t": t_layers[name],
            "p": p_layers[name], "p_fdr": p_fdr, "selective": selective,
        }))
    units = pd.concat(unit_rows, ignore_index=True)

    # maps and Moran's I (queen, row-standardised: as published)
    t_maps = {n: sheets[n].to_map(t_layers[n]) for n in layer_names}
    stacked = np.stack([t_maps[n] for n in layer_names]) if _same_shape(t_maps) else None
    moran = {}
    if stacked is not None:
        m = spatial.morans_i(stacked, alternative="greater")
        for k, n in enumerate(layer_names):
            moran[n] = (float(m.I[k]), float(m.p_rand[k]))
    else:
        for n in layer_names:
            m = spatial.morans_i(t_maps[n], alternative="greater")
            moran[n] = (float(m.I), float(m.p_rand))
    # label-permutation null of Moran's I (issue: topography beyond the null)
    null = None
    if n_permutations:
        null = inference.map_permutation_test(
            acts, labels, contrast, statistic="morans_i", n_permutations=n_permutations,
            seed=seed, n_jobs=n_jobs, verbose=verbose)
    # clusters: cluster-forming |t| from the Welch df at cluster_p (two-sided), rook
    # (face) connectivity as in volumetric fMRI; FWE by the max cluster mass over all layers
    threshold = _cluster_forming_t(cluster_p, df_welch)
    labels = np.asarray(labels)
    keep = np.isin(labels, contrast.positive + contrast.negative)
    groups = (np.stack([np.isin(labels[keep], contrast.positive),
                        np.isin(labels[keep], contrast.negative)])
              if contrast.is_two_sample else None)  # None: one-sample sign flips
    if n_permutations:
        data = np.stack([acts.to_maps(n)[keep] for n in layer_names], axis=1)
        table = cl.permutation_cluster_test(
            data, groups, stat="t", equal_var=False, threshold=threshold, tail=0,
            cluster_stat="mass", family="all", adjacency="rook",
            n_permutations=int(n_permutations), seed=seed, n_jobs=n_jobs,
            verbose=0).clusters
    else:  # clusters without FWE p-values
        table = cl.find_clusters({n: t_maps[n] for n in layer_names}, threshold,
                                 adjacency="rook", tail=0)
    clusters = table.to_frame()
    clusters["layer"] = [layer_names[int(i)] if not isinstance(i, str) else i
                         for i in clusters["layer"]]
    if not n_permutations:
        clusters["p_fwe"] = np.nan
    sig_ids = list(clusters.loc[clusters["p_fwe"] < 0.05, "cluster_id"])
    outlines = {n: np.isin(table.labels[k], sig_ids) for k, n in enumerate(layer_names)}
    clusters.insert(0, "contrast", contrast.expression)
    clusters.insert(0, "model", role)

    layer_rows = []
    for k, n in enumerate(layer_names):
        sheet = sheets[n]
        sel = units.loc[units["layer"] == n, "selective"]
        c_layer = clusters[clusters["layer"] == n]
        sig = c_layer[c_layer["p_fwe"] < 0.05] if n_permutations else c_layer
        prof = profs[n]
        row = {
            "model": role, "contrast": contrast.expression, "layer": n,
            "n_units": sheet.n_units, "n_rows": sheet.shape[0], "n_cols": sheet.shape[1],
            "morans_i": moran[n][0], "morans_i_p": moran[n][1],
            "null_mean": np.nan, "null_sd": np.nan, "null_z": np.nan, "null_p": np.nan,
            "percent_selective": 100.0 * float(sel.mean()),
            "n_selective": int(sel.sum()),
            "n_clusters": int(len(sig)),
            "largest_cluster_size": int(sig["size"].max()) if len(sig) else 0,
            "smoothness": float(prof.smoothness),
            "decay_distance": _decay_distance(prof),
        }
        if null is not None:
            row["null_mean"] = float(null.null_mean[k])
            row["null_sd"] = float(null.null_sd[k])
            row["null_z"] = float(null.z[k])
            row["null_p"] = float(null.p[k])
        layer_rows.append(row)
    layers = pd.DataFrame(layer_rows)
    profiles = pd.concat([profs[n].to_frame().assign(model=role, layer=n)
                          for n in layer_names], ignore_index=True)
    res.update(units=units, layers=layers, clusters=clusters, t_maps=t_maps,
               p_fdr_maps={n: sheets[n].to_map(corr.p_adjusted[n]) for n in layer_names},
               effect_maps={n: sheets[n].to_map(eff_layers[n]) for n in layer_names},
               null=null, profiles=profiles, threshold=threshold, outlines=outlines,
               n_excluded=corr.n_excluded)
    return res


def _profile_table(acts, labels, units_df, role) -> pd.DataFrame:
    """Mean response of each layer's selective units by condition (all conditions)."""
    from .selectivity import condition_profile

    rows = []
    all_conditions = list(dict.fromkeys(np.asarray(labels).tolist()))
    for name in acts.layers:
        sel = units_df.loc[units_df["layer"] == name, "selective"].to_numpy()
        if sel.sum() == 0:
            continue
        prof = condition_profile(acts[name], labels, units=sel)
        prof["layer"] = name
        rows.append(prof)
    if not rows:
        return pd.DataFrame(columns=["model", "condition", "mean", "ci_low", "ci_high"])
    # average the layer profiles of selective units, weighting layers alike
    df = pd.concat(rows)
    agg = df.groupby("condition", sort=False).agg(mean=("mean", "mean"),
                                                 ci_low=("ci_low", "mean"),
                                                 ci_high=("ci_high", "mean"),
                                                 n_layers=("layer", "nunique"))
    agg = agg.reindex(all_conditions).reset_index()
    agg.insert(0, "model", role)
    return agg


def _maps_dataset(results: dict, sheets: dict):
    import xarray as xr

    data = {}
    for (role, contrast), r in results.items():
        for kind in ("t", "effect", "p_fdr"):
            maps = r[f"{kind}_maps"]
            arr = np.stack([maps[n] for n in maps])
            key = f"{kind}__{role}__{contrast}"
            data[key] = xr.DataArray(arr, dims=("layer", "row", "col"),
                                     coords={"layer": list(maps)},
                                     attrs={"model": role, "contrast": contrast, "kind": kind})
    ds = xr.Dataset(data)
    ds.attrs["description"] = "topobrain localize maps: t, effect and FDR-adjusted p per layer"
    return ds


def localize(model, stimuli, contrasts, *, out, control=None, smooth_fwhm: float | None = None,
             pooling: str = "mean", correction: str = "bh", alpha: float = 0.05,
             n_permutations: int = 1000, cluster_p: float = 0.001,
             selectivity: bool = False, brain_reference: float | None = None,
             layers=None, batch_size: int = 32, device: str = "auto", seed: int = 0,
             cache: bool = True, overwrite: bool = False, n_jobs: int | None = 1,
             verbose: int = 1) -> LocalizeResult:
    """Run a localizer on a model (and its control) and write a full analysis folder.

    Parameters
    ----------
    model : str, path-like or SheetModel
        A bundled model name, a model folder or checkpoint, or a loaded model.
    stimuli : str, path-like or StimulusSet
        A bundled set name (``"langloc"``), a TSV/CSV file, a langloc folder, or a set.
    contrasts : str or list of str
        Contrasts over the stimuli's conditions (``"S - N"``).
    out : path-like
        Output folder. A folder holding another run is refused unless ``overwrite``;
        the same run resumes (activations come from the cache).
    control : str, path-like or SheetModel, optional
        The non-topographic control (alpha = 0), analysed identically and shown beside.
    smooth_fwhm : float, optional
        Readout smoothing of each item's map (FWHM in sheet units; published: 2).
    pooling : {"mean", "last", "first", "sum"}, default="mean"
        Pooling over an item's tokens (published: mean).
    correction : {"bh", "by", "bonferroni", "holm"}, default="bh"
        Multiple-comparison correction over all units of all layers (published: BH).
    alpha : float, default=0.05
        Level of the correction; a unit is *selective* when its corrected p is below
        ``alpha`` and its t is positive.
    n_permutations : int, default=1000
        Label permutations for the Moran's I null and the cluster FWE test (0 skips
        both; clusters are then listed without p-values).
    cluster_p : float, default=0.001
        Two-sided cluster-forming p (a |t| threshold from the Welch degrees of freedom).
    selectivity : bool, default=False
        Also write the omnibus F / preferred-condition analysis over all conditions.
    brain_reference : float, optional
        Moran's I of a brain map to draw beside the model's.
    layers : list of str, optional
        Sheet layers to analyse (default all).
    batch_size, device, cache
        Extraction options (see :func:`topobrain.extract.extract`).
    seed : int, default=0
        Seeds every permutation.
    n_jobs : int or None, default=1
        Parallel jobs for permutations (joblib).
    verbose : int, default=1
        0 silences progress bars and logs.

    Returns
    -------
    LocalizeResult
    """
    import yaml

    from . import __version__, spatial
    from .extract import extract
    from .models import load as load_model
    from .stimuli import StimulusSet, load_stimuli

    check_option("pooling", pooling, ("mean", "last", "first", "sum"))
    check_option("correction", correction, ("bh", "by", "bonferroni", "holm", "fdr_bh",
                                            "fdr_by"))
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}.")
    if smooth_fwhm is not None and smooth_fwhm <= 0:
        raise ValueError(f"smooth_fwhm must be positive (sheet units); got {smooth_fwhm}.")
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0; got {n_permutations}.")
    out = Path(out)
    contrasts = [contrasts] if isinstance(contrasts, str) else list(contrasts)
    if not contrasts:
        raise ValueError("Give at least one contrast, e.g. 'S - N'.")

    stim = stimuli if isinstance(stimuli, StimulusSet) else load_stimuli(stimuli)
    parsed = [stim.contrast(c) for c in contrasts]  # unknown conditions fail here, early
    for c in parsed:
        _check_contrast_kind(c)
    models = {"model": model}
    if control is not None:
        models["control"] = control
    loaded = {role: (m if hasattr(m, "activations") else load_model(m, device="cpu"))
              for role, m in models.items()}
    names = {role: m.name for role, m in loaded.items()}
    if control is not None and names["model"] == names["control"]:
        names["control"] = names["control"] + " (control)"
    settings = {
        "topobrain": __version__, "model": str(model if isinstance(model, (str, Path))
                                               else names["model"]),
        "model_identity": loaded["model"].identity,
        "control": None if control is None else str(control if isinstance(control, (str, Path))
                                                    else names["control"]),
        "control_identity": loaded["control"].identity if control is not None else None,
        "stimuli": str(stimuli if isinstance(stimuli, (str, Path)) else stim.name),
        "stimuli_identity": stim.identity, "n_items": len(stim),
        "conditions": {str(k): int(v) for k, v in stim.counts.items()},
        "contrasts": [c.expression for c in parsed], "smooth_fwhm": smooth_fwhm,
        "pooling": pooling, "correction": correction, "alpha": alpha,
        "n_permutations": n_permutations, "cluster_p": cluster_p,
        "selectivity": selectivity, "layers": layers, "seed": seed,
        "brain_reference": brain_reference,
        "unit_statistic": "Welch t (unequal variances), two-sided p",
        "morans_i_weights": "queen contiguity, row-standardised, unthresholded t-maps",
    }
    settings_hash = _settings_hash(settings)
    _prepare_out(out, settings_hash, overwrite)
    settings.update(settings_hash=settings_hash, out=str(out), device=device, n_jobs=n_jobs,
                    versions=versions())
    atomic_write_text(out / RUN_FILE, yaml.safe_dump(settings, sort_keys=False))

    results, acts_by_role, sel_frames = {}, {}, []
    labels = stim.labels
    for role, m in loaded.items():
        acts = extract(m, stim, layers=layers, pooling=pooling, batch_size=batch_size,
                       device=device, cache=cache, verbose=verbose)
        if smooth_fwhm:
            from .readout import smooth

            acts = smooth(acts, smooth_fwhm)
        acts_by_role[role] = acts
        # distance profiles describe the responses, not a contrast: once per model
        profs = {n: spatial.distance_profile(acts[n], acts.sheets[n]) for n in acts.layers}
        for c in parsed:
            logger.info("%s: %s", names[role], c.expression)
            r = _analyse_contrast(acts, labels, c, role=names[role], profs=profs, alpha=alpha,
                                  correction=correction, n_permutations=n_permutations,
                                  cluster_p=cluster_p, seed=seed, n_jobs=n_jobs,
                                  verbose=verbose)
            r["profile"] = _profile_table(acts, labels, r["units"], names[role])
            results[(names[role], c.expression)] = r
        if selectivity:
            from .selectivity import category_permutation_test, unit_adjacency
            from .selectivity import selectivity as run_selectivity

            s = run_selectivity({n: acts[n] for n in acts.layers}, labels, alpha=alpha)
            joins = category_permutation_test(
                {n: acts[n] for n in acts.layers}, labels,
                {n: unit_adjacency(acts.sheets[n], "rook") for n in acts.layers},
                n_permutations=n_permutations or 0, seed=seed)
            df = s.to_frame()
            df.insert(0, "model", names[role])
            pos = {n: acts.sheets[n].positions for n in acts.layers}
            df.insert(3, "row", np.concatenate([pos[n][:, 0] for n in acts.layers]))
            df.insert(4, "col", np.concatenate([pos[n][:, 1] for n in acts.layers]))
            sel_frames.append((names[role], s, df, joins))

    units = pd.concat([r["units"] for r in results.values()], ignore_index=True)
    layers_df = pd.concat([r["layers"] for r in results.values()], ignore_index=True)
    clusters = pd.concat([r["clusters"] for r in results.values()], ignore_index=True)
    _write_csv(units, out / "units.csv")
    atomic_save(out / "units.parquet", lambda tmp: units.to_parquet(tmp, index=False))
    _write_csv(layers_df, out / "layers.csv")
    _write_csv(clusters, out / "clusters.csv")
    sel_df = None
    if sel_frames:
        sel_df = pd.concat([f for _, _, f, _ in sel_frames], ignore_index=True)
        _write_csv(sel_df, out / "selectivity.csv")
    sheets = acts_by_role["model"].sheets
    ds = _maps_dataset(results, sheets)
    atomic_save(out / "maps.nc", lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))

    from .report import write_report

    summary = _summary_sentences(results, names, parsed, smooth_fwhm)
    sections = _figures_and_sections(out, results, names, parsed, acts_by_role, labels,
                                     layers_df, clusters, sel_frames, brain_reference, summary)
    report = write_report(out / "report.html",
                          title=f"topobrain localizer: {names['model']} on {stim.name}",
                          settings={k: v for k, v in settings.items() if k != "versions"},
                          sections=sections)
    return LocalizeResult(out=out, units=units, layers=layers_df, clusters=clusters,
                          report=report, settings=settings, selectivity=sel_df,
                          summary=summary)


def _summary_sentences(results, names, parsed, smooth_fwhm) -> list[str]:
    out = []
    for c in parsed:
        for role_name in names.values():
            r = results[(role_name, c.expression)]
            L, U, C = r["layers"], r["units"], r["clusters"]
            n_sel, n = int(U["selective"].sum()), len(U)
            s = (f"{role_name}, {c.expression}: {n_sel} of {n} units ({100 * n_sel / n:.1f}%) "
                 f"are selective (corrected p < alpha, t > 0); the mean Moran's I of the "
                 f"unthresholded t-maps over {len(L)} layers is {L['morans_i'].mean():.3f}")
            null = r["null"]
            if null is not None:
                nm = null.null_mean_over_layers
                s += (f", against a label-permutation null of {nm.mean():.3f} (sd "
                      f"{nm.std(ddof=1):.3f}; z = {null.z_mean:.2f}, p = {null.p_mean:.4f}); "
                      f"{int((L['null_p'] < 0.05).sum())} of {len(L)} layers exceed their own "
                      f"null at p < 0.05")
            s += "."
            if len(C) and C["p_fwe"].notna().any():
                s += (f" {int((C['p_fwe'] < 0.05).sum())} of {len(C)} clusters survive FWE "
                      f"correction (p < 0.05).")
            out.append(s)
    if smooth_fwhm:
        out.append(f"Responses were smoothed on the sheet with a Gaussian of FWHM {smooth_fwhm} "
                   f"units before the statistics; smoothing alone raises Moran's I, so compare "
                   f"with the control and the null.")
    if len(names) == 1:
        out.append("No control model was given: Moran's I stands only beside its label-"
                   "permutation null.")
    return out


def _figures_and_sections(out, results, names, parsed, acts_by_role, labels, layers_df,
                          clusters, sel_frames, brain_reference, summary):
    from . import plotting
    from .report import Section

    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    sections = [Section("Main results", sentences=summary)]
    for c in parsed:
        slug = "".join(ch if ch.isalnum() else "_" for ch in c.expression).strip("_")
        figs = []
        for role, role_name in names.items():
            r = results[(role_name, c.expression)]
            outlines = r["outlines"]
            fig = plotting.plot_layer_grid(
                r["t_maps"], outlines=outlines, cbar_label="Welch t",
                title=f"{role_name}: {c.expression} t-maps (outlined: cells above the "
                      f"cluster-forming threshold in FWE-significant clusters)")
            path = fig_dir / f"tmaps_{role}_{slug}"
            plotting.save_figure(fig, path)
            figs.append((f"{role_name}: unthresholded t-maps of {c.expression}, every layer",
                         path.with_suffix(".png")))
            # one file per layer, for papers (PNG only: the grid has the SVG)
            vmax = max(float(np.nanmax(np.abs(m))) for m in r["t_maps"].values()) or 1.0
            for layer, t_map in r["t_maps"].items():
                fig = plotting.plot_sheet_map(
                    t_map, vmax=vmax, outline=outlines[layer], cbar_label="Welch t",
                    title=f"{role_name}, {layer}: {c.expression}")
                plotting.save_figure(fig, fig_dir / "layers" / f"{role}_{slug}_{layer}",
                                     svg=False)
        L = layers_df[layers_df["contrast"] == c.expression]
        fig = plotting.plot_morans_by_layer(L, brain_reference=brain_reference,
                                            title=f"Moran's I by layer, {c.expression}")
        path = fig_dir / f"morans_i_{slug}"
        plotting.save_figure(fig, path)
        figs.append(("Moran's I of the t-maps by layer, beside the label-permutation null "
                     "(band: mean ± 2 sd) and the control", path.with_suffix(".png")))
        prof = pd.concat([results[(rn, c.expression)]["profile"] for rn in names.values()],
                         ignore_index=True)
        if len(prof):
            fig = plotting.plot_response_profiles(
                prof, title=f"Selective units ({c.expression}): response by condition")
            path = fig_dir / f"profiles_{slug}"
            plotting.save_figure(fig, path)
            figs.append(("Mean response of the selective units by condition (z-scored, 95% "
                         "CI over items, averaged over layers)", path.with_suffix(".png")))
        for role, role_name in names.items():  # the model's null beside the control's
            r0 = results[(role_name, c.expression)]
            if r0["null"] is None:
                continue
            null = r0["null"]
            fig = plotting.plot_null_distributions(
                null.null, null.observed, list(r0["t_maps"]),
                title=f"{role_name}: Moran's I ({c.expression}) against its "
                      f"label-permutation null")
            path = fig_dir / f"null_{role}_{slug}"
            plotting.save_figure(fig, path)
            figs.append((f"{role_name}: observed Moran's I (red) and its label-permutation "
                         f"null, per layer", path.with_suffix(".png")))
        tables = [(f"Layers: {c.expression}", L.drop(columns=["contrast"]))]
        C = clusters[clusters["contrast"] == c.expression] if len(clusters) else clusters
        if len(C):
            show = C.drop(columns=[k for k in ("contrast", "cells") if k in C]).sort_values(
                "p_fwe" if "p_fwe" in C else "size")
            tables.append((f"Clusters: {c.expression} (|t| above the cluster-forming threshold)",
                           show))
        sections.append(Section(f"Contrast {c.expression}", tables=tables, figures=figs))
    prof_frames = pd.concat([r["profiles"] for r in results.values()], ignore_index=True)
    prof_frames = prof_frames.drop_duplicates(["model", "layer", "bin_lower"])  # per model
    fig = plotting.plot_distance_curves(
        prof_frames, title="Response correlation vs distance (mean ± sd over layers)")
    path = fig_dir / "distance_curves"
    plotting.save_figure(fig, path)
    sections.append(Section("Spatial structure of the responses", figures=[
        ("Correlation of unit responses across items as a function of sheet distance",
         path.with_suffix(".png"))]))
    for role_name, s, df, joins in sel_frames:
        acts = acts_by_role["model" if role_name == names["model"] else "control"]
        maps = {}
        import matplotlib.pyplot as plt

        n = len(acts.layers)
        ncols = min(n, 4)
        nrows = -(-n // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False)
        for k, ax in enumerate(axes.ravel()):
            if k >= n:
                ax.axis("off")
                continue
            name = acts.layers[k]
            pref = s.preferred[name].astype(float)
            pref[~s.significant(name)] = -1
            maps[name] = acts.sheets[name].to_map(pref)
            plotting.plot_category_map(maps[name], s.conditions, ax=ax, title=name)
        path = fig_dir / f"preferred_{'model' if role_name == names['model'] else 'control'}"
        plotting.save_figure(fig, path)
        summary_tab = df.groupby(["layer", "preferred"]).agg(
            n_units=("unit", "size"), n_significant=("significant", "sum")).reset_index()
        join_tab = joins.to_frame()
        sections.append(Section(f"Selectivity: {role_name}", sentences=[
            "Join counts: same-preference neighbour pairs (rook) over their expectation under a "
            "random arrangement, minus 1; the null permutes item labels, keeping the units' "
            "correlations, so p asks whether units preferring the same condition sit together "
            "beyond what their correlations give."], tables=[
            ("Preferred condition by layer (omnibus F, BH-FDR over all layers)", summary_tab),
            ("Categorical topography: same-preference joins against the label-permutation null",
             join_tab)],
            figures=[("Preferred condition of each unit (blank: omnibus F not significant)",
                      path.with_suffix(".png"))]))
    return sections
