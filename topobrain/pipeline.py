"""The localizer end to end: ``localize`` runs a model (and its control) on a stimulus set
and writes the tables, maps, figures and report of a neuroimaging paper.

Flow, one direction: settings (validated once) -> stimuli and models (checked before any
forward pass) -> activations (cached) -> [readout smoothing] -> unit t per layer -> FDR
over all layers -> Moran's I with its label-permutation null -> cluster-level FWE test ->
distance profiles -> figures -> report.

The pieces are public, so that analyses reuse them rather than re-derive them:
:class:`LocalizeSettings` (one validated record shared by the CLI, this API and
``run.yaml``), :func:`unit_statistics`, :func:`distance_profiles`,
:func:`analyse_contrast` (a typed :class:`ContrastAnalysis`) and :func:`run_localizer`.

Output folder (it belongs to one run at a time: a lock file beside it names the holder;
everything is written into a hidden folder beside it and published by one rename)::

    units.csv, units.parquet   one row per model x contrast x layer x unit
    layers.csv                 per model x contrast x layer: Moran's I, its null, % selective
    clusters.csv               suprathreshold clusters with FWE-corrected p-values
    selectivity.csv            (with selectivity=True) per model x layer x unit
    maps.nc                    t, effect and p_fdr maps (xarray, netCDF)
    figures/*.png, *.svg
    report.html                one self-contained page
    run.yaml                   settings, identities, versions; ``complete: true``
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils._hashing import hash_json
from ._utils._io import atomic_save, atomic_write_text
from ._utils._outdir import RunFolder
from ._utils._validation import check_option, suggest
from ._utils._versions import versions
from .contrast import Contrast, parse_contrast

__all__ = ["ContrastAnalysis", "LocalizeResult", "LocalizeSettings", "UnitStatistics",
           "analyse_contrast", "distance_profiles", "localize", "run_localizer",
           "unit_statistics"]

logger = logging.getLogger("topobrain")

RUN_FILE = "run.yaml"
#: Names of the permutation streams of one run (see ``_utils._permutation.stream``).
STREAMS = ("morans_i", "clusters", "selectivity")
_POOLINGS = ("mean", "last", "first", "sum")
_CORRECTION_ALIASES = {"fdr_bh": "bh", "fdr_by": "by"}
# settings that change how a run runs, never what it finds: not part of its identity
_RUNTIME = ("out", "overwrite", "wait", "verbose", "n_jobs", "device", "cache", "batch_size")


# =========================================================================== settings
def _name_of(obj) -> str:
    if isinstance(obj, (str, Path)):
        return str(obj)
    return str(getattr(obj, "name", type(obj).__name__))


def _number(name, value, *, low=None, high=None, low_open=True, high_open=True,
            integer=False, allow_none=False):
    """One checked number: the allowed range in the message."""
    if value is None and allow_none:
        return None
    kinds = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        what = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {what}; got {value!r} ({type(value).__name__}).")
    value = int(value) if integer else float(value)
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or (value < high if high_open else value <= high)
    if not (math.isfinite(value) and lo_ok and hi_ok):
        lo = "" if low is None else f"{'(' if low_open else '['}{low}"
        hi = "" if high is None else f"{high}{')' if high_open else ']'}"
        rng = (f"in {lo}, {hi}" if low is not None and high is not None
               else f"{'>' if low_open else '>='} {low}" if low is not None
               else f"{'<' if high_open else '<='} {high}")
        raise ValueError(f"{name} must be a finite number {rng}; got {value}.")
    return value


def _check_contrast_kind(contrast: Contrast) -> None:
    if contrast.is_two_sample:
        return
    if contrast.positive and not contrast.negative and len(contrast.positive) == 1:
        return
    raise ValueError(
        f"Contrast {contrast.expression!r} is neither two-sample (positive weights against "
        f"negative ones summing to zero, like 'S - N') nor one condition against zero (like "
        f"'S'). Write it as one of those, or use topobrain.glm.fit_glm for weighted contrasts."
    )


@dataclass(frozen=True)
class LocalizeSettings:
    """Everything that defines a localizer run, validated once.

    The CLI builds it from its flags, :func:`localize` from its keywords, and
    :meth:`from_yaml` from a run's ``run.yaml`` (which :meth:`to_record` writes). Every
    range, option and contrast's syntax is checked here, before anything is loaded;
    what needs the stimuli or the model (condition names, layer names, the FWHM against
    the sheet, the device) is checked by :func:`run_localizer` before the first forward
    pass. The parameters are those of :func:`localize`.

    ``seed`` is stored resolved: the entropy of the run's root ``SeedSequence`` (an int
    seed is its own entropy; None draws fresh entropy, recorded so the run can be
    repeated), with ``seed_spawn_key`` for a SeedSequence given with a spawn key.
    """

    model: object
    stimuli: object
    contrasts: tuple
    out: Path
    control: object = None
    smooth_fwhm: float | None = None
    pooling: str = "mean"
    correction: str = "bh"
    alpha: float = 0.05
    n_permutations: int = 1000
    cluster_p: float = 0.001
    selectivity: bool = False
    brain_reference: float | None = None
    layers: tuple | None = None
    batch_size: int = 32
    device: str = "auto"
    seed: object = 0
    seed_spawn_key: tuple = ()
    cache: bool = True
    overwrite: bool = False
    wait: bool | float = False
    n_jobs: int | None = None
    verbose: int = 1

    def __post_init__(self):
        from ._utils._permutation import as_seed_sequence, check_n_jobs

        def put(name, value):
            object.__setattr__(self, name, value)

        if self.model is None:
            raise TypeError("model is required: a bundled name, a model folder or a loaded "
                            "model.")
        if self.stimuli is None:
            raise TypeError("stimuli is required: a bundled set name, a TSV/CSV file or a "
                            "StimulusSet.")
        contrasts = self.contrasts
        if isinstance(contrasts, (str, Contrast)):
            contrasts = [contrasts]
        if contrasts is None or not isinstance(contrasts, (list, tuple)):
            raise TypeError(f"contrasts must be a string like 'S - N' or a list of them; got "
                            f"{type(contrasts).__name__}.")
        parsed = [parse_contrast(c) for c in contrasts]  # syntax, here and once
        if not parsed:
            raise ValueError("Give at least one contrast, e.g. 'S - N'.")
        for c in parsed:
            _check_contrast_kind(c)
        expressions = tuple(c.expression for c in parsed)
        seen = {}
        for c in parsed:  # the same weights written twice is one contrast
            key = tuple(sorted(c.weights.items()))
            if key in seen:
                raise ValueError(f"contrasts {seen[key]!r} and {c.expression!r} are the same "
                                 f"contrast; give each contrast once.")
            seen[key] = c.expression
        put("contrasts", expressions)
        if self.out is None:
            raise TypeError("out is required: the folder to write the results into.")
        put("out", Path(self.out))
        if self.smooth_fwhm is not None:  # 0 means no smoothing, as in readout.smooth
            fwhm = _number("smooth_fwhm", self.smooth_fwhm, low=0, low_open=False)
            put("smooth_fwhm", fwhm or None)
        check_option("pooling", self.pooling, _POOLINGS)
        correction = _CORRECTION_ALIASES.get(self.correction, self.correction)
        from .correction import METHODS

        check_option("correction", correction, METHODS)
        put("correction", correction)
        put("alpha", _number("alpha", self.alpha, low=0, high=1))
        put("n_permutations", _number("n_permutations", self.n_permutations, low=0,
                                      low_open=False, integer=True))
        put("cluster_p", _number("cluster_p", self.cluster_p, low=0, high=1))
        put("brain_reference", _number("brain_reference", self.brain_reference,
                                       allow_none=True))
        put("batch_size", _number("batch_size", self.batch_size, low=1, low_open=False,
                                  integer=True))
        if self.layers is not None:
            layers = [self.layers] if isinstance(self.layers, str) else list(self.layers)
            if not layers or not all(isinstance(x, str) for x in layers):
                raise TypeError(f"layers must be None (all layers) or a non-empty list of "
                                f"layer names; got {self.layers!r}.")
            put("layers", tuple(layers))
        if not isinstance(self.device, str):
            put("device", str(self.device))
        for name in ("selectivity", "cache", "overwrite"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False; got {getattr(self, name)!r}.")
            put(name, bool(getattr(self, name)))
        if not isinstance(self.wait, (bool, np.bool_)):
            put("wait", _number("wait (seconds)", self.wait, low=0, low_open=False))
        put("verbose", _number("verbose", self.verbose, low=0, low_open=False, integer=True))
        put("n_jobs", check_n_jobs(self.n_jobs))
        # the seed, resolved once to what reproduces it
        if isinstance(self.seed, np.random.SeedSequence):
            ss = self.seed
        elif self.seed_spawn_key and isinstance(self.seed, (numbers.Integral, list, tuple)):
            ss = np.random.SeedSequence(self.seed, spawn_key=tuple(self.seed_spawn_key))
        elif isinstance(self.seed, (list, tuple)):  # a multi-word entropy read back
            ss = np.random.SeedSequence([int(x) for x in self.seed])
        else:
            ss = as_seed_sequence(self.seed)
        entropy = ss.entropy
        put("seed", int(entropy) if isinstance(entropy, numbers.Integral)
            else tuple(int(x) for x in entropy))
        put("seed_spawn_key", tuple(int(k) for k in ss.spawn_key))

    # ------------------------------------------------------------------ derived
    @property
    def parsed_contrasts(self) -> list[Contrast]:
        return [parse_contrast(c) for c in self.contrasts]

    @property
    def contrast_slugs(self) -> dict:
        """``{contrast: name}`` for files and netCDF variables, unique within the run."""
        out, used = {}, set()
        for c in self.parsed_contrasts:
            slug, k = c.slug, 2
            while slug in used:
                slug, k = f"{c.slug}_{k}", k + 1
            used.add(slug)
            out[c.expression] = slug
        return out

    @property
    def root_seed(self) -> np.random.SeedSequence:
        """The run's root ``SeedSequence``."""
        return np.random.SeedSequence(self.seed, spawn_key=self.seed_spawn_key)

    def stream(self, name: str) -> np.random.SeedSequence:
        """The named permutation stream of this run (one per test: :data:`STREAMS`)."""
        from ._utils._permutation import stream

        return stream(self.root_seed, name)

    # ------------------------------------------------------------------ records
    def to_record(self) -> dict:
        """The settings as plain YAML/JSON values (models and sets by name or path)."""
        rec = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("model", "stimuli", "control"):
                v = None if v is None else _name_of(v)
            elif isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple):
                v = list(v)
            rec[f.name] = v
        return rec

    @classmethod
    def from_record(cls, record: dict) -> LocalizeSettings:
        """Settings from a record (``run.yaml``); keys that are not settings are ignored."""
        if not isinstance(record, dict):
            raise TypeError(f"a settings record must be a mapping; got "
                            f"{type(record).__name__}.")
        names = {f.name for f in fields(cls)}
        missing = [k for k in ("model", "stimuli", "contrasts", "out") if k not in record]
        if missing:
            raise ValueError(f"the settings record lacks {missing}; it is not a localize "
                             f"run.yaml.")
        return cls(**{k: v for k, v in record.items() if k in names})

    @classmethod
    def from_yaml(cls, path) -> LocalizeSettings:
        """The settings of a finished run, read back from its ``run.yaml``."""
        import yaml

        with open(path, encoding="utf-8") as fh:
            return cls.from_record(yaml.safe_load(fh) or {})

    def identity(self, **extra) -> str:
        """A digest of everything that defines the results (not how they are computed:
        ``out``, ``overwrite``, ``wait``, ``verbose``, ``n_jobs``, ``device``, ``cache``
        and ``batch_size`` leave it unchanged), with ``extra`` entries (identities)."""
        rec = {k: v for k, v in self.to_record().items() if k not in _RUNTIME}
        return hash_json({**rec, **extra})[:16]


# =========================================================================== results
@dataclass(frozen=True, eq=False)
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

    def __repr__(self) -> str:
        return (f"LocalizeResult(out={str(self.out)!r}, {len(self.units)} unit rows, "
                f"{len(self.layers)} layer rows, {len(self.clusters)} clusters)")


@dataclass(frozen=True, eq=False)
class UnitStatistics:
    """The unit test of one contrast in every layer.

    Attributes
    ----------
    contrast : Contrast
    statistic : {"welch_t", "one_sample_t"}
        Welch's t of the positive against the negative items (two-sample contrasts, the
        published localizer), or the one-sample t of one condition's items against 0.
    t, p, effect, df : dict of str to ndarray of shape (n_units,)
        Per layer: t, two-sided p, effect (difference of means, or the mean) and degrees
        of freedom.
    """

    contrast: Contrast
    statistic: str
    t: dict
    p: dict
    effect: dict
    df: dict


def unit_statistics(acts, labels, contrast) -> UnitStatistics:
    """Welch t (two-sample contrasts) or one-sample t of every unit of every layer.

    Parameters
    ----------
    acts : Activations
        Responses per layer, ``acts[layer]`` of shape ``(n_items, n_units)``.
    labels : array-like of shape (n_items,)
        Condition of each item.
    contrast : str or Contrast
        ``"S - N"`` (Welch, :func:`topobrain.glm.welch_t`) or ``"S"`` (one-sample t of
        S's items, :func:`topobrain.glm.fit_glm` with an intercept).

    Returns
    -------
    UnitStatistics
    """
    from . import glm

    con = parse_contrast(contrast)
    _check_contrast_kind(con)
    t, p, effect, df = {}, {}, {}, {}
    labels = np.asarray(labels)
    for name in acts.layers:
        if con.is_two_sample:
            r = glm.welch_t(acts[name], labels, con)
        else:
            items = acts[name][labels == con.positive[0]]
            r = glm.fit_glm(items, pd.DataFrame({"mean": np.ones(items.shape[0])})
                            ).contrast("mean")
        n = acts.sheets[name].n_units
        t[name], p[name], effect[name] = r.t, r.p, r.effect
        df[name] = np.broadcast_to(np.asarray(r.df, float), (n,)).copy()
    return UnitStatistics(con, "welch_t" if con.is_two_sample else "one_sample_t",
                          t, p, effect, df)


def distance_profiles(acts) -> dict:
    """:func:`topobrain.spatial.distance_profile` of every layer: ``{layer: profile}``.

    They describe the responses, not a contrast: compute them once per model."""
    from . import spatial

    return {n: spatial.distance_profile(acts[n], acts.sheets[n]) for n in acts.layers}


@dataclass(frozen=True, eq=False)
class ContrastAnalysis:
    """Every statistic of one model and one contrast (see :func:`analyse_contrast`).

    Attributes
    ----------
    model : str
        The model's name.
    contrast : str
        The contrast as written.
    units : DataFrame
        One row per layer x unit: position, effect, t, p, p_fdr, significant, selective.
    layers : DataFrame
        One row per layer: Moran's I and its p, the label-permutation null (mean, sd, z,
        p), % selective, significant clusters, smoothness, half-decay distance.
    clusters : DataFrame
        Suprathreshold clusters with FWE p-values (NaN without permutations).
    t_maps, effect_maps, p_fdr_maps : dict of str to ndarray of shape (n_rows, n_cols)
        Per layer, NaN where no unit sits.
    cluster_outlines : dict of str to ndarray of bool, shape (n_rows, n_cols)
        Cells of FWE-significant clusters.
    cluster_threshold : float
        The cluster-forming |t|.
    morans_null : topobrain.inference.PermutationResult or None
        The label-permutation null of Moran's I (None without permutations).
    distance_curves : DataFrame
        The model's response correlation by distance, per layer (``model``, ``layer``,
        ``distance``, ``correlation``, ...).
    condition_responses : DataFrame
        Mean response of the selective units by condition (``model``, ``condition``,
        ``mean``, ``ci_low``, ``ci_high``, ``n_layers``), averaged over layers.
    n_excluded : int
        Units left out of the correction (NaN p).
    """

    model: str
    contrast: str
    units: pd.DataFrame
    layers: pd.DataFrame
    clusters: pd.DataFrame
    t_maps: dict
    effect_maps: dict
    p_fdr_maps: dict
    cluster_outlines: dict
    cluster_threshold: float
    morans_null: object
    distance_curves: pd.DataFrame
    condition_responses: pd.DataFrame
    n_excluded: int

    @property
    def mean_morans_i(self) -> float:
        """Moran's I averaged over layers (the published summary)."""
        return float(np.nanmean(self.layers["morans_i"]))

    def __repr__(self) -> str:
        return (f"ContrastAnalysis({self.model!r}, {self.contrast!r}: {len(self.layers)} "
                f"layers, mean Moran's I {self.mean_morans_i:.3f}, "
                f"{int(self.units['selective'].sum())} selective units, "
                f"{len(self.clusters)} clusters)")


def _cluster_forming_t(p: float, df: float) -> float:
    from scipy import stats

    return float(stats.t.isf(p / 2, df))


def _same_shape(maps: dict) -> bool:
    return len({np.shape(m) for m in maps.values()}) == 1


def analyse_contrast(acts, labels, contrast, *, model: str = "model", alpha: float = 0.05,
                     correction: str = "bh", n_permutations: int = 1000,
                     cluster_p: float = 0.001, clusters: bool = True, seed=0,
                     n_jobs=None, verbose: int = 1, profiles: dict | None = None
                     ) -> ContrastAnalysis:
    """All statistics of one model and one contrast: the localizer's analysis.

    Parameters
    ----------
    acts : Activations
        The (possibly smoothed) responses of every layer.
    labels : array-like of shape (n_items,)
        Condition of each item.
    contrast : str or Contrast
        Two-sample (``"S - N"``) or one condition against 0 (``"S"``).
    model : str, default="model"
        Name written in the tables' ``model`` column.
    alpha : float, default=0.05
        Level of the correction; a unit is *significant* when its corrected p is at most
        ``alpha``, *selective* when also its t is positive.
    correction : {"bh", "by", "bonferroni", "holm"}, default="bh"
        Over all units of all layers at once.
    n_permutations : int, default=1000
        Label permutations (sign flips for one-sample contrasts) for the Moran's I null
        and for the cluster FWE test; 0 skips both.
    cluster_p : float, default=0.001
        Two-sided cluster-forming p (|t| from the median unit df).
    clusters : bool, default=True
        Run the cluster analysis (False leaves ``clusters`` empty and the cluster
        columns of ``layers`` at 0).
    seed : int, SeedSequence, Generator or None, default=0
        The run's root seed: the Moran's I null draws from its stream ``"morans_i"`` and
        the cluster test from ``"clusters"``, so the two nulls never share permutations.
    n_jobs : int or None, default=None
        Parallel jobs for the permutations (the core's dispatcher).
    verbose : int, default=1
    profiles : dict of str to DistanceProfile, optional
        :func:`distance_profiles` of ``acts``, when already computed.

    Returns
    -------
    ContrastAnalysis
    """
    from . import clusters as cl
    from . import inference, spatial
    from ._utils._adjacency import DEFAULT_ADJACENCY
    from ._utils._permutation import stream
    from .correction import correct_pvalues
    from .selectivity import condition_profile

    layer_names = list(acts.layers)
    sheets = acts.sheets
    stats = unit_statistics(acts, labels, contrast)
    con = stats.contrast
    profiles = distance_profiles(acts) if profiles is None else profiles
    corr = correct_pvalues(stats.p, method=correction, alpha=alpha, over="all")
    unit_rows = []
    for name in layer_names:
        sheet = sheets[name]
        significant = np.asarray(corr.mask[name], bool)
        unit_rows.append(pd.DataFrame({
            "model": model, "contrast": con.expression, "layer": name,
            "unit": np.arange(sheet.n_units), "row": sheet.positions[:, 0],
            "col": sheet.positions[:, 1], "effect": stats.effect[name], "t": stats.t[name],
            "p": stats.p[name], "p_fdr": corr.p_adjusted[name], "significant": significant,
            "selective": significant & (stats.t[name] > 0),
        }))
    units = pd.concat(unit_rows, ignore_index=True)

    # Moran's I of the unthresholded t-maps (queen, row-standardised: as published)
    t_maps = {n: sheets[n].to_map(stats.t[n]) for n in layer_names}
    if _same_shape(t_maps):
        m = spatial.morans_i(np.stack([t_maps[n] for n in layer_names]),
                             alternative="greater")
        moran = {n: (float(m.I[k]), float(m.p_rand[k])) for k, n in enumerate(layer_names)}
    else:
        moran = {}
        for n in layer_names:
            m = spatial.morans_i(t_maps[n], alternative="greater")
            moran[n] = (float(m.I), float(m.p_rand))
    null = None
    if n_permutations:
        null = inference.map_permutation_test(
            acts, labels, con, statistic="morans_i", n_permutations=n_permutations,
            seed=stream(seed, "morans_i"), n_jobs=n_jobs, verbose=verbose)

    # clusters: the cluster-forming |t| at cluster_p (two-sided) from the median unit df;
    # FWE by the maximum cluster mass over all layers
    df_median = float(np.nanmedian(np.concatenate([stats.df[n] for n in layer_names])))
    threshold = _cluster_forming_t(cluster_p, df_median)
    lab = np.asarray(labels)
    if not clusters:
        table = None
        cl_frame = pd.DataFrame(columns=["model", "contrast", "layer", "cluster_id", "size",
                                         "p_fwe"])
    elif n_permutations:
        keep = np.isin(lab, con.positive + con.negative)
        groups = (np.stack([np.isin(lab[keep], con.positive),
                            np.isin(lab[keep], con.negative)])
                  if con.is_two_sample else None)  # None: one-sample sign flips
        data = np.stack([acts.to_maps(n)[keep] for n in layer_names], axis=1)
        table = cl.permutation_cluster_test(
            data, groups, stat="t", equal_var=False, threshold=threshold, tail=0,
            cluster_stat="mass", family="all", adjacency=DEFAULT_ADJACENCY,
            n_permutations=int(n_permutations), seed=stream(seed, "clusters"),
            n_jobs=n_jobs, verbose=0).clusters
    else:  # clusters without FWE p-values
        table = cl.find_clusters({n: t_maps[n] for n in layer_names}, threshold,
                                 adjacency=DEFAULT_ADJACENCY, tail=0)
    if table is not None:
        cl_frame = table.to_frame()
        cl_frame["layer"] = [layer_names[int(i)] if not isinstance(i, str) else i
                             for i in cl_frame["layer"]]
        if not n_permutations:
            cl_frame["p_fwe"] = np.nan
        cl_frame.insert(0, "contrast", con.expression)
        cl_frame.insert(0, "model", model)
    sig_ids = list(cl_frame.loc[cl_frame["p_fwe"] < 0.05, "cluster_id"])
    outlines = {n: (np.isin(table.labels[k], sig_ids) if table is not None
                    else np.zeros(t_maps[n].shape, bool))
                for k, n in enumerate(layer_names)}

    layer_rows = []
    for k, n in enumerate(layer_names):
        sheet = sheets[n]
        sel = units.loc[units["layer"] == n, "selective"]
        c_layer = cl_frame[cl_frame["layer"] == n]
        sig = c_layer[c_layer["p_fwe"] < 0.05] if n_permutations else c_layer
        prof = profiles[n]
        layer_rows.append({
            "model": model, "contrast": con.expression, "layer": n,
            "n_units": sheet.n_units, "n_rows": sheet.shape[0], "n_cols": sheet.shape[1],
            "morans_i": moran[n][0], "morans_i_p": moran[n][1],
            "null_mean": float(null.null_mean[k]) if null is not None else np.nan,
            "null_sd": float(null.null_sd[k]) if null is not None else np.nan,
            "null_z": float(null.z[k]) if null is not None else np.nan,
            "null_p": float(null.p[k]) if null is not None else np.nan,
            "percent_selective": 100.0 * float(sel.mean()),
            "n_selective": int(sel.sum()),
            "n_clusters": int(len(sig)),
            "largest_cluster_size": int(sig["size"].max()) if len(sig) else 0,
            "smoothness": float(prof.smoothness),
            "decay_distance": spatial.decay_distance(prof.distance, prof.correlation),
        })
    layers = pd.DataFrame(layer_rows)
    curves = pd.concat([profiles[n].to_frame().assign(model=model, layer=n)
                        for n in layer_names], ignore_index=True)

    # mean response of each layer's selective units by condition (all conditions)
    per_layer = []
    all_conditions = list(dict.fromkeys(lab.tolist()))
    for name in layer_names:
        sel = units.loc[units["layer"] == name, "selective"].to_numpy()
        if sel.sum():
            prof = condition_profile(acts[name], lab, units=sel)
            prof["layer"] = name
            per_layer.append(prof)
    if per_layer:  # layers weigh alike
        agg = pd.concat(per_layer).groupby("condition", sort=False).agg(
            mean=("mean", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"),
            n_layers=("layer", "nunique"))
        responses = agg.reindex(all_conditions).reset_index()
        responses.insert(0, "model", model)
    else:
        responses = pd.DataFrame(columns=["model", "condition", "mean", "ci_low", "ci_high",
                                          "n_layers"])
    return ContrastAnalysis(
        model=model, contrast=con.expression, units=units, layers=layers, clusters=cl_frame,
        t_maps=t_maps, effect_maps={n: sheets[n].to_map(stats.effect[n]) for n in layer_names},
        p_fdr_maps={n: sheets[n].to_map(corr.p_adjusted[n]) for n in layer_names},
        cluster_outlines=outlines, cluster_threshold=threshold, morans_null=null,
        distance_curves=curves, condition_responses=responses, n_excluded=corr.n_excluded)


# =========================================================================== the run
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
        Two-sided cluster-forming p, in (0, 1) (a |t| threshold from the units' df).
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


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


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


def _check_before_forward(settings: LocalizeSettings, stim, loaded: dict) -> None:
    """What needs the stimuli and the models: checked before the first forward pass."""
    from .extract import _resolve_device

    for c in settings.contrasts:
        stim.contrast(c)  # unknown conditions, with a suggestion
    _resolve_device(settings.device)
    if settings.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device={settings.device!r} but CUDA is not available here. "
                             f"Pass device='cpu' (--device cpu) or 'auto'.")
    for role, m in loaded.items():
        names = list(m.layer_names)
        for layer in settings.layers or ():
            if layer not in names:
                raise ValueError(f"The {role} {m.name!r} has no layer {layer!r}; its layers "
                                 f"are {names}.{suggest(layer, names)}")
        if settings.smooth_fwhm:
            from .readout import check_fwhm

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

    from . import __version__
    from ._utils._adjacency import DEFAULT_ADJACENCY
    from .extract import extract
    from .models import load as load_model
    from .stimuli import StimulusSet, load_stimuli

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
    _check_before_forward(s, stim, loaded)
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

        results, acts_by_role, sel_frames = {}, {}, []
        labels = stim.labels
        root = s.root_seed
        for role, m in loaded.items():
            acts = extract(m, stim, layers=list(s.layers) if s.layers else None,
                           pooling=s.pooling, batch_size=s.batch_size, device=s.device,
                           cache=s.cache, verbose=s.verbose)
            if s.smooth_fwhm:
                from .readout import smooth

                acts = smooth(acts, s.smooth_fwhm)
            acts_by_role[role] = acts
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

        from .report import write_report

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


# =========================================================================== pieces
def _write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_save(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))


def _selectivity(acts, labels, model_name: str, role: str, s: LocalizeSettings) -> dict:
    """Preferred conditions (omnibus F) and the join-count test of their arrangement."""
    from ._utils._adjacency import DEFAULT_ADJACENCY
    from .selectivity import category_permutation_test, unit_adjacency
    from .selectivity import selectivity as run_selectivity

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
    from . import plotting
    from .report import Section

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
