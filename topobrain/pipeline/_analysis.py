"""The localizer's statistics for one model and one contrast: typed results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._utils._repr import FrameReprMixin
from ..contrast import Contrast, parse_contrast
from ._settings import _check_contrast_kind


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
    from .. import glm

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
    from .. import spatial

    return {n: spatial.distance_profile(acts[n], acts.sheets[n]) for n in acts.layers}


@dataclass(frozen=True, eq=False)
class ContrastAnalysis(FrameReprMixin):
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
        The cluster-forming ``|t|``.
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

    def to_frame(self) -> pd.DataFrame:
        """The per-layer table (a copy of :attr:`layers`)."""
        return self.layers.copy()

    @property
    def mean_morans_i(self) -> float:
        """Moran's I averaged over layers (the published summary)."""
        return float(np.nanmean(self.layers["morans_i"]))

    def __repr__(self) -> str:
        return (f"ContrastAnalysis({self.model!r}, {self.contrast!r}: {len(self.layers)} "
                f"layers, mean Moran's I {self.mean_morans_i:.3f}, "
                f"{int(self.units['selective'].sum())} selective units, "
                f"{len(self.clusters)} clusters)")


def cluster_threshold(stats: UnitStatistics, layers, cluster_p: float) -> float:
    """The localizer's cluster-forming ``|t|``: a two-sided ``cluster_p`` at the median
    unit degrees of freedom over ``layers`` (the rule of :func:`analyse_contrast`)."""
    from ..clusters import cluster_forming_threshold

    df = np.concatenate([stats.df[n] for n in layers])
    return cluster_forming_threshold(cluster_p, float(np.nanmedian(df)))


def cluster_frame(table, layers) -> pd.DataFrame:
    """A :class:`~topobrain.clusters.ClusterTable` as a frame with layer names (the table
    numbers the layers of a multi-layer search in the order of ``layers``)."""
    frame = table.to_frame()
    frame["layer"] = [layers[int(i)] if not isinstance(i, str) else i for i in frame["layer"]]
    return frame


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
        Two-sided cluster-forming p (``|t|`` from the median unit df).
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
    from .. import clusters as cl
    from .. import inference, spatial
    from .._utils._adjacency import DEFAULT_ADJACENCY
    from .._utils._permutation import as_seed_sequence, stream
    from ..correction import correct_pvalues
    from ..selectivity import condition_profile

    root = as_seed_sequence(seed)  # once: a Generator advances once, not per test
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
            seed=stream(root, "morans_i"), n_jobs=n_jobs, verbose=verbose)

    # clusters: the cluster-forming |t| at cluster_p (two-sided) from the median unit df;
    # FWE by the maximum cluster mass over all layers
    threshold = cluster_threshold(stats, layer_names, cluster_p)
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
            n_permutations=int(n_permutations), seed=stream(root, "clusters"),
            n_jobs=n_jobs, verbose=0).clusters
    else:  # clusters without FWE p-values
        table = cl.find_clusters({n: t_maps[n] for n in layer_names}, threshold,
                                 adjacency=DEFAULT_ADJACENCY, tail=0)
    if table is not None:
        cl_frame = cluster_frame(table, layer_names)
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
