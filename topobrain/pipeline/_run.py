"""``localize``: the run, from settings to a published output folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils._io import atomic_save, atomic_write_text
from .._utils._outdir import RunFolder
from .._utils._repr import FrameReprMixin
from .._utils._validation import suggest
from .._utils._versions import versions
from ._analysis import analyse_contrast, distance_profiles
from ._report import _figures_and_sections, _summary_sentences
from ._settings import RUN_FILE, STREAMS, LocalizeSettings

logger = logging.getLogger("topobrain")


@dataclass(frozen=True, eq=False)
class LocalizeResult(FrameReprMixin):
    """What ``localize`` wrote, with the main tables loaded.

    Attributes
    ----------
    out : pathlib.Path
        The output folder.
    units, layers, clusters : DataFrame
        The tables of ``units.csv``, ``layers.csv`` and ``clusters.csv``.
    report : pathlib.Path
        ``report.html``.
    settings : LocalizeSettings
        The run's validated settings.
    record : dict
        Everything ``run.yaml`` records (settings, identities, versions).
    selectivity : DataFrame or None
        ``selectivity.csv`` when requested.
    summary : list of str
        The report's plain-sentence results.
    analyses : dict
        ``{(model name, contrast): ContrastAnalysis}``.
    """

    out: Path
    units: pd.DataFrame
    layers: pd.DataFrame
    clusters: pd.DataFrame
    report: Path
    settings: LocalizeSettings
    record: dict
    selectivity: pd.DataFrame | None = None
    summary: list = field(default_factory=list)
    analyses: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """The per-layer table of every model and contrast (a copy of :attr:`layers`)."""
        return self.layers.copy()

    def _repr_html_(self) -> str:
        """In a notebook: the summary sentences, the main figures and the layer table."""
        import html

        from .._utils._repr import frame_html, image_html

        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.summary)
        table = frame_html("Moran's I and its null by model, contrast and layer",
                           self.to_frame())
        figures = "".join(f"<figure style='margin:.5em 0'>{image_html(p)}</figure>"
                          for p in sorted((self.out / "figures").glob("main_*.png")))
        return (f"<div class='topobrain-result'><pre style='margin:0 0 .4em'>"
                f"{html.escape(repr(self))}</pre><ul>{items}</ul>"
                f"<div style='max-width:100%'>{figures}</div>"
                f"{table}"
                f"<p style='font-size:.85em;color:#666'>Full report: "
                f"{html.escape(str(self.report))}</p></div>")

    def __repr__(self) -> str:
        return (f"LocalizeResult(out={str(self.out)!r}, {len(self.units)} unit rows, "
                f"{len(self.layers)} layer rows, {len(self.clusters)} clusters)")


def localize(model, stimuli, contrasts, *, out, control=None, smooth_fwhm: float | None = None,
             pooling: str = "mean", correction: str = "bh", alpha: float = 0.05,
             n_permutations: int = 1000, cluster_p: float = 0.001,
             selectivity: bool = False, brain_reference: float | None = None,
             layers=None, batch_size: int = 32, device: str = "auto", seed=0,
             cache: bool = True, overwrite: bool = False, wait: bool | float = False,
             n_jobs: int | None = None, verbose: int = 1) -> LocalizeResult:
    """Run a localizer on a model (and its control) and write a full analysis folder.

    Parameters
    ----------
    model : str, path-like or SheetModel
        A bundled model name, a model folder or checkpoint, or a loaded model.
    stimuli : str, path-like or StimulusSet
        A bundled set name (``"langloc"``), a TSV/CSV file, a langloc folder, or a set.
    contrasts : str or list of str
        Contrasts over the stimuli's conditions (``"S - N"``, ``"(S + W)/2 - N"``, or one
        condition against zero, ``"S"``).
    out : path-like
        Output folder. It belongs to one run at a time (``.<name>.lock`` beside it names
        the holder); results are written beside it and published by one rename at the
        end, so a killed run never leaves a folder that looks complete. A folder holding
        another run is refused unless ``overwrite``; the same run replaces it
        (activations come from the cache).
    control : str, path-like or SheetModel, optional
        The non-topographic control (alpha = 0), analysed identically and shown beside.
    smooth_fwhm : float, optional
        Readout smoothing of each item's map (FWHM in sheet units; published: 2); at
        most the sheet's bound (:func:`topobrain.readout.max_fwhm`).
    pooling : {"mean", "last", "first", "sum"}, default="mean"
        Pooling over an item's tokens (published: mean).
    correction : {"bh", "by", "bonferroni", "holm"}, default="bh"
        Multiple-comparison correction over all units of all layers (published: BH).
    alpha : float, default=0.05
        Level of the correction, in (0, 1); a unit is *selective* when its corrected p is
        at most ``alpha`` and its t is positive.
    n_permutations : int, default=1000
        Label permutations for the Moran's I null and the cluster FWE test (0 skips
        both; clusters are then listed without p-values).
    cluster_p : float, default=0.001
        Two-sided cluster-forming p, in (0, 1) (a ``|t|`` threshold from the units' df).
    selectivity : bool, default=False
        Also write the omnibus F / preferred-condition analysis over all conditions.
    brain_reference : float, optional
        Moran's I of a brain map to draw beside the model's.
    layers : list of str, optional
        Sheet layers to analyse (default all).
    batch_size, device, cache
        Extraction options (see :func:`topobrain.extract.extract`).
    seed : int, SeedSequence, Generator or None, default=0
        The run's root seed. Each test draws from its own named stream of it
        (``"morans_i"``, ``"clusters"``, ``"selectivity"``), so two nulls of one run never
        share permutations, and each depends only on the seed and its own count. None
        draws fresh entropy, recorded in ``run.yaml``.
    overwrite : bool, default=False
        Replace a folder holding another run.
    wait : bool or float, default=False
        When another run holds the folder: False refuses, naming it; True waits until
        it finishes; a number waits at most that many seconds.
    n_jobs : int or None, default=None
        Parallel jobs for permutations (the core's joblib dispatcher).
    verbose : int, default=1
        0 silences progress bars and logs.

    Returns
    -------
    LocalizeResult
    """
    return run_localizer(LocalizeSettings(
        model=model, stimuli=stimuli, contrasts=contrasts, out=out, control=control,
        smooth_fwhm=smooth_fwhm, pooling=pooling, correction=correction, alpha=alpha,
        n_permutations=n_permutations, cluster_p=cluster_p, selectivity=selectivity,
        brain_reference=brain_reference, layers=layers, batch_size=batch_size,
        device=device, seed=seed, cache=cache, overwrite=overwrite, wait=wait,
        n_jobs=n_jobs, verbose=verbose))


def _accept_existing(run_id: str, overwrite: bool):
    """The rule for an existing, non-empty output folder (called under its lock)."""
    def accept(out: Path) -> None:
        import yaml

        run_file = out / RUN_FILE
        previous = {}
        if run_file.exists():
            try:
                previous = yaml.safe_load(run_file.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                previous = {}
        if isinstance(previous, dict) and previous.get("settings_hash") == run_id:
            return  # the same run: recompute (activations from the cache) and replace
        if overwrite:
            return
        what = ("holds another run (different settings)" if run_file.exists()
                else "is not empty and holds no topobrain run")
        raise FileExistsError(
            f"The output folder {out} {what}. Pick another output folder, or pass "
            f"overwrite=True (--overwrite) to replace its contents.")
    return accept


def _check_before_forward(settings: LocalizeSettings, loaded: dict) -> None:
    """What needs the models (device, layer names, FWHM against the sheets): checked
    before the first forward pass."""
    from .._utils._validation import check_device

    check_device(settings.device)
    for role, m in loaded.items():
        names = list(m.layer_names)
        for layer in settings.layers or ():
            if layer not in names:
                raise ValueError(f"The {role} {m.name!r} has no layer {layer!r}; its layers "
                                 f"are {names}.{suggest(layer, names)}")
        if settings.smooth_fwhm:
            from ..readout import check_fwhm

            sheets = m.sheets if settings.layers is None else {
                k: m.sheets[k] for k in settings.layers}
            check_fwhm(settings.smooth_fwhm, sheets)


def run_localizer(settings: LocalizeSettings) -> LocalizeResult:
    """Run the localizer that ``settings`` describes (see :func:`localize`).

    Parameters
    ----------
    settings : LocalizeSettings

    Returns
    -------
    LocalizeResult
    """
    import yaml

    from .. import __version__
    from .._utils._adjacency import DEFAULT_ADJACENCY
    from ..extract import extract
    from ..models import load as load_model
    from ..stimuli import StimulusSet, load_stimuli

    if not isinstance(settings, LocalizeSettings):
        raise TypeError(f"settings must be a LocalizeSettings; got {type(settings).__name__}. "
                        f"Call localize(...) with keywords instead.")
    s = settings
    stim = s.stimuli if isinstance(s.stimuli, StimulusSet) else load_stimuli(s.stimuli)
    for c in s.contrasts:
        stim.contrast(c)  # unknown conditions fail here, before any model is loaded
    models = {"model": s.model} | ({"control": s.control} if s.control is not None else {})
    loaded = {role: (m if hasattr(m, "activations") else load_model(m, device="cpu"))
              for role, m in models.items()}
    _check_before_forward(s, loaded)
    names = {role: m.name for role, m in loaded.items()}
    if s.control is not None and names["model"] == names["control"]:
        names["control"] = names["control"] + " (control)"
    identities = {
        "topobrain": __version__,
        "model_identity": loaded["model"].identity,
        "control_identity": loaded["control"].identity if s.control is not None else None,
        "stimuli_identity": stim.identity,
    }
    run_id = s.identity(**identities)
    record = {
        **{k: v for k, v in s.to_record().items() if k not in ("verbose",)},
        "complete": False,
        "model_name": names["model"], "control_name": names.get("control"),
        **identities, "n_items": len(stim),
        "conditions": {str(k): int(v) for k, v in stim.counts.items()},
        "contrast_names": s.contrast_slugs,
        "unit_statistic": "Welch t (unequal variances), two-sided p; one-sample t for a "
                          "single condition",
        "adjacency": DEFAULT_ADJACENCY,
        "morans_i_weights": f"{DEFAULT_ADJACENCY} contiguity, row-standardised, "
                            f"unthresholded t-maps",
        "permutation_streams": list(STREAMS),
        "settings_hash": run_id,
    }

    with RunFolder(s.out, accept=_accept_existing(run_id, s.overwrite), wait=s.wait) as rf:
        work = rf.work
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record["started"] = started
        atomic_write_text(work / RUN_FILE, yaml.safe_dump(record, sort_keys=False))

        results, sel_frames = {}, []
        labels = stim.labels
        root = s.root_seed
        for role, m in loaded.items():
            acts = extract(m, stim, layers=list(s.layers) if s.layers else None,
                           pooling=s.pooling, batch_size=s.batch_size, device=s.device,
                           cache=s.cache, verbose=s.verbose)
            if s.smooth_fwhm:
                from ..readout import smooth

                acts = smooth(acts, s.smooth_fwhm)
            profs = distance_profiles(acts)
            for c in s.contrasts:
                logger.info("%s: %s", names[role], c)
                results[(role, c)] = analyse_contrast(
                    acts, labels, c, model=names[role], alpha=s.alpha,
                    correction=s.correction, n_permutations=s.n_permutations,
                    cluster_p=s.cluster_p, seed=root, n_jobs=s.n_jobs, verbose=s.verbose,
                    profiles=profs)
            if s.selectivity:
                sel_frames.append(_selectivity(acts, labels, names[role], role, s))

        units = pd.concat([r.units for r in results.values()], ignore_index=True)
        layers_df = pd.concat([r.layers for r in results.values()], ignore_index=True)
        clusters = pd.concat([r.clusters for r in results.values()], ignore_index=True)
        _write_csv(units, work / "units.csv")
        atomic_save(work / "units.parquet", lambda tmp: units.to_parquet(tmp, index=False))
        _write_csv(layers_df, work / "layers.csv")
        _write_csv(clusters, work / "clusters.csv")
        sel_df = None
        if sel_frames:
            sel_df = pd.concat([f["table"] for f in sel_frames], ignore_index=True)
            _write_csv(sel_df, work / "selectivity.csv")
        ds = _maps_dataset(results, s.contrast_slugs)
        atomic_save(work / "maps.nc", lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))

        from ..report import write_report

        summary = _summary_sentences(results, names, s)
        sections = _figures_and_sections(work, results, names, s, layers_df, clusters,
                                         sel_frames, summary)
        shown = {k: v for k, v in record.items() if k not in ("complete", "started")}
        write_report(work / "report.html",
                     title=f"topobrain localizer: {names['model']} on {stim.name}",
                     settings=shown, sections=sections)
        record.update(complete=True,
                      finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      versions=versions())
        atomic_write_text(work / RUN_FILE, yaml.safe_dump(record, sort_keys=False))
        out = rf.publish()
    return LocalizeResult(out=out, units=units, layers=layers_df, clusters=clusters,
                          report=out / "report.html", settings=s, record=record,
                          selectivity=sel_df, summary=summary,
                          analyses={(names[role], c): r for (role, c), r in results.items()})


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_save(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))


def _selectivity(acts, labels, model_name: str, role: str, s: LocalizeSettings) -> dict:
    """Preferred conditions (omnibus F) and the join-count test of their arrangement."""
    from .._utils._adjacency import DEFAULT_ADJACENCY
    from ..selectivity import category_permutation_test, unit_adjacency
    from ..selectivity import selectivity as run_selectivity

    responses = {n: acts[n] for n in acts.layers}
    res = run_selectivity(responses, labels, alpha=s.alpha)
    joins = category_permutation_test(
        responses, labels, {n: unit_adjacency(acts.sheets[n], DEFAULT_ADJACENCY)
                            for n in acts.layers},
        n_permutations=s.n_permutations, seed=s.stream("selectivity"), n_jobs=s.n_jobs,
        verbose=s.verbose)
    df = res.to_frame()
    df.insert(0, "model", model_name)
    pos = {n: acts.sheets[n].positions for n in acts.layers}
    df.insert(3, "row", np.concatenate([pos[n][:, 0] for n in acts.layers]))
    df.insert(4, "col", np.concatenate([pos[n][:, 1] for n in acts.layers]))
    maps = {}
    for name in acts.layers:
        pref = res.preferred[name].astype(float)
        pref[~res.significant(name)] = -1
        maps[name] = acts.sheets[name].to_map(pref)
    return {"model": model_name, "role": role, "result": res, "table": df, "joins": joins,
            "maps": maps}


def _maps_dataset(results: dict, slugs: dict):
    import xarray as xr

    data = {}
    for (role, contrast), r in results.items():
        for kind, maps in (("t", r.t_maps), ("effect", r.effect_maps),
                           ("p_fdr", r.p_fdr_maps)):
            arr = np.stack([maps[n] for n in maps])
            data[f"{kind}__{role}__{slugs[contrast]}"] = xr.DataArray(
                arr, dims=("layer", "row", "col"), coords={"layer": list(maps)},
                attrs={"model": r.model, "role": role, "contrast": contrast, "kind": kind})
    ds = xr.Dataset(data)
    ds.attrs["description"] = "topobrain localize maps: t, effect and FDR-adjusted p per layer"
    return ds


