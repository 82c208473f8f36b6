"""Model clusters against brain clusters: one table, one figure.

:func:`compare` reads the folder that ``topobrain localize`` writes for a model (and
optionally for its non-topographic control), reads a brain statistic map, runs the same
statistics on the brain map (:func:`topobrain.brain.summarize_map`) and lays the numbers
side by side: Moran's I, percent selective, cluster count, cluster sizes relative to the
sheet (model) or to the analysed cortex (brain), and the distance at which similarity
decays. Published reference numbers (TopoLM, Rathi et al., 2025) can be added as rows
marked ``source="published"``.

References
----------
Rathi, N., Mehrer, J., AlKhamissi, B., Binhuraib, T., Blauch, N. M. & Schrimpf, M. (2025).
TopoLM: brain-like spatio-functional organization in a topographic language model.
ICLR 2025.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils._io import atomic_write_text
from ._utils._repr import FrameReprMixin

__all__ = ["ComparisonResult", "compare", "read_model_results", "plot_comparison",
           "PUBLISHED", "LAYERS_COLUMNS", "CLUSTERS_COLUMNS"]

#: Columns of ``layers.csv`` that :func:`compare` needs.
LAYERS_COLUMNS = ("contrast", "layer", "n_units", "morans_i", "percent_selective",
                  "n_clusters", "largest_cluster_size", "decay_distance")
#: Columns of ``clusters.csv`` that :func:`compare` needs (when the file exists).
CLUSTERS_COLUMNS = ("contrast", "layer", "cluster_id", "size")

#: Published Moran's I of verb - noun maps (TopoLM, Rathi et al., ICLR 2025).
PUBLISHED = (
    {"source": "published", "name": "TopoLM", "contrast": "verb - noun", "layer": "mean",
     "morans_i": 0.48, "note": "Rathi et al. 2025 (ICLR), unsmoothed, 28x28 sheets"},
    {"source": "published", "name": "TopoLM", "contrast": "verb - noun", "layer": "mean",
     "morans_i": 0.81, "note": "Rathi et al. 2025 (ICLR), after FWHM-2 readout smoothing"},
    {"source": "published", "name": "TopoLM control", "contrast": "verb - noun",
     "layer": "mean", "morans_i": 0.11, "note": "Rathi et al. 2025 (ICLR), unsmoothed"},
    {"source": "published", "name": "TopoLM control", "contrast": "verb - noun",
     "layer": "mean", "morans_i": 0.60,
     "note": "Rathi et al. 2025 (ICLR), after FWHM-2 readout smoothing"},
    {"source": "published", "name": "human brain", "contrast": "verb - noun",
     "layer": "group", "morans_i": 0.96,
     "note": "Rathi et al. 2025 (ICLR), group t-map on the fs_LR 32k mesh"},
)

METRICS = ("morans_i", "percent_selective", "n_clusters", "largest_cluster_fraction",
           "median_cluster_fraction", "decay_distance")
_TABLE_COLUMNS = ("source", "name", "contrast", "layer") + METRICS + (
    "morans_i_null_mean", "morans_i_p", "distance_unit", "size_relative_to", "published",
    "note")


@dataclass(frozen=True, eq=False)
class ModelResults:
    """The tables of one ``topobrain localize`` folder (see :func:`read_model_results`).

    ``models`` lists the values of the tables' ``model`` column in order of appearance
    (``localize`` writes the model first, then its control); a single entry (the
    name) when the tables have no such column.
    """

    path: Path
    name: str
    layers: pd.DataFrame
    clusters: pd.DataFrame | None
    settings: dict = field(default_factory=dict)
    models: tuple = ()

    def select(self, model: str) -> ModelResults:
        """The rows of one model of a folder holding several."""
        if "model" not in self.layers.columns:
            return self
        lay = self.layers[self.layers["model"].astype(str) == model]
        cl = self.clusters
        if cl is not None and "model" in cl.columns:
            cl = cl[cl["model"].astype(str) == model]
        return ModelResults(self.path, model, lay, cl, self.settings, (model,))


def _require(df: pd.DataFrame, columns, file: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{file} lacks the column(s) {', '.join(missing)} (it has "
            f"{', '.join(map(str, df.columns))}). Point to a folder written by "
            "`topobrain localize`, or add the missing columns."
        )


def read_model_results(path) -> ModelResults:
    """Read ``layers.csv`` (required), ``clusters.csv`` and ``run.yaml`` of a results folder.

    Parameters
    ----------
    path : path-like
        A folder written by ``topobrain localize``.

    Returns
    -------
    ModelResults
        ``name`` is ``run.yaml``'s ``model`` entry (the folder name without one).

    Raises
    ------
    FileNotFoundError
        When the folder or its ``layers.csv`` is missing.
    ValueError
        When a table lacks columns; the message names them.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model results folder {folder} does not exist.")
    lay_path = folder / "layers.csv"
    if not lay_path.is_file():
        raise FileNotFoundError(
            f"{folder} has no layers.csv; run `topobrain localize ... --out {folder}` first."
        )
    layers = pd.read_csv(lay_path)
    _require(layers, LAYERS_COLUMNS, lay_path)
    clusters = None
    cl_path = folder / "clusters.csv"
    if cl_path.is_file():
        clusters = pd.read_csv(cl_path)
        _require(clusters, CLUSTERS_COLUMNS, cl_path)
    settings: dict = {}
    run_path = folder / "run.yaml"
    if run_path.is_file():
        import yaml

        with open(run_path, encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh)
        settings = loaded if isinstance(loaded, dict) else {}
    if "model" in layers.columns:
        models = tuple(dict.fromkeys(layers["model"].astype(str)))
        name = models[0]
    else:
        model = settings.get("model")
        if isinstance(model, dict):
            model = model.get("name") or model.get("path")
        name = str(model) if model else folder.name
        models = (name,)
    return ModelResults(folder, name, layers, clusters, settings, models)


def _pick_contrast(results: ModelResults, contrast: str | None) -> str:
    available = list(dict.fromkeys(results.layers["contrast"].astype(str)))
    if contrast is None:
        if len(available) != 1:
            raise ValueError(
                f"{results.path / 'layers.csv'} holds the contrasts {available}; pass "
                "contrast= (--contrast) to pick one."
            )
        return available[0]
    if str(contrast) not in available:
        from ._utils._validation import suggest

        raise ValueError(
            f"contrast {contrast!r} is not in {results.path / 'layers.csv'}; it holds "
            f"{available}.{suggest(str(contrast), available)}"
        )
    return str(contrast)


def _model_rows(results: ModelResults, contrast: str, source: str) -> list[dict]:
    lay = results.layers[results.layers["contrast"].astype(str) == contrast]
    rows = []
    for _, r in lay.iterrows():
        n_units = float(r["n_units"])
        med = np.nan
        if results.clusters is not None:
            cl = results.clusters[(results.clusters["contrast"].astype(str) == contrast) &
                                  (results.clusters["layer"].astype(str) == str(r["layer"]))]
            if "p_fwe" in cl.columns and np.isfinite(cl["p_fwe"].to_numpy(float)).any():
                cl = cl[cl["p_fwe"] < 0.05]  # the clusters that localize counts
            if len(cl):
                med = float(np.median(cl["size"].to_numpy(float))) / n_units
        rows.append({
            "source": source, "name": results.name, "contrast": contrast,
            "layer": str(r["layer"]), "morans_i": float(r["morans_i"]),
            # the label-permutation null of localize, when it ran: Moran's I never alone
            "morans_i_null_mean": float(r["null_mean"]) if "null_mean" in r else np.nan,
            "percent_selective": float(r["percent_selective"]),
            "n_clusters": float(r["n_clusters"]),
            "largest_cluster_fraction": float(r["largest_cluster_size"]) / n_units,
            "median_cluster_fraction": med,
            "decay_distance": float(r["decay_distance"]),
            "distance_unit": "sheet units", "size_relative_to": "sheet (n_units)",
            "published": False, "note": "",
        })
    if rows:
        frame = pd.DataFrame(rows)
        mean = {k: float(np.nanmean(frame[k].to_numpy(float)))
                if np.isfinite(frame[k].to_numpy(float)).any() else np.nan
                for k in (*METRICS, "morans_i_null_mean")}
        rows.append({**rows[0], **mean, "layer": "mean",
                     "note": f"mean over {len(frame)} layers"})
    return rows


@dataclass(frozen=True, eq=False)
class ComparisonResult(FrameReprMixin):
    """Model (and control) against brain, one row per source x layer.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``source`` ("model", "control", "brain", "published"), ``name``,
        ``contrast``, ``layer`` (a layer name, "mean" over layers, or "map" for the brain),
        ``morans_i``, ``percent_selective``, ``n_clusters``,
        ``largest_cluster_fraction`` and ``median_cluster_fraction`` (cluster size over
        the sheet's units or the analysed cortex area/volume; model medians over the
        clusters of ``clusters.csv`` with ``p_fwe < 0.05`` when it has p-values),
        ``decay_distance`` (in ``distance_unit``: sheet units for models, mm for the
        brain), ``morans_i_null_mean`` (the model's label-permutation null from
        ``layers.csv``, NaN for the brain and when no permutations ran), ``morans_i_p``
        (the brain map's two-sided permutation p of Moran's I with ``n_permutations``;
        NaN without permutations and for model rows), ``published``
        (True for reference numbers from the literature) and ``note``.
    brain_summary : topobrain.brain.BrainSummary
    model_name, control_name : str or None
    contrast : str
    files : tuple of str
        Files written (empty without ``out``).
    params : dict
    """

    table: pd.DataFrame
    brain_summary: object
    model_name: str
    control_name: str | None
    contrast: str
    files: tuple = ()
    params: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """A copy of :attr:`table`."""
        return self.table.copy()

    def summary(self) -> pd.DataFrame:
        """Wide view: one row per metric, one column per source (model/control: the mean
        over layers; published rows left out)."""
        t = self.table
        keep = t[(t["layer"].isin(["mean", "map"])) & (~t["published"])]
        wide = keep.set_index("source")[[*METRICS, "morans_i_null_mean", "morans_i_p"]].T
        wide.index.name = "metric"
        return wide

    def __repr__(self) -> str:
        s = self.summary()
        return (f"ComparisonResult({self.model_name} vs brain, contrast {self.contrast!r}, "
                f"{len(self.table)} rows)\n" + s.to_string(float_format=lambda v: f"{v:.4g}"))


def compare(
    model_results,
    brain,
    mesh=None,
    *,
    control_results=None,
    contrast: str | None = None,
    out=None,
    include_published: bool = True,
    df: float | None = None,
    alpha: float = 0.05,
    tail: int = 1,
    n_permutations: int = 0,
    seed=None,
    hemi: str | None = None,
    mask=None,
    variable: str | None = None,
) -> ComparisonResult:
    """Compare model maps with a brain map on the same statistics.

    Parameters
    ----------
    model_results : path-like
        A ``topobrain localize`` folder (``layers.csv``, optionally ``clusters.csv`` and
        ``run.yaml``). When its tables hold a ``model`` column with two models (localize
        run with a control), the first is the model and the second the control.
    brain : path-like or topobrain.brain.BrainMap
        The brain t (or z) map; read with :func:`topobrain.brain.load_map`.
    mesh : str, path-like or Mesh, optional
        The brain map's mesh (surfaces): ``"fsaverage5"``, ``"fs_LR_32k"``, a surface file.
    control_results : path-like, optional
        The non-topographic control's folder, for rows ``source="control"`` (overrides
        a control found in ``model_results``).
    contrast : str, optional
        Which contrast of the results (required when they hold several).
    out : path-like, optional
        Folder for ``comparison.csv`` and ``figures/comparison.png`` (atomic writes).
    include_published : bool, default=True
        Add the published TopoLM numbers as rows with ``published=True``.
    df : float, optional
        Degrees of freedom of the brain t map (z map when None).
    alpha : float, default=0.05
        FDR level for the brain's selective locations.
    tail : {1, 0, -1}, default=1
        Brain locations that count as selective: positive (the localizer's rule,
        ``p_FDR < alpha`` and ``t > 0``), either sign, or negative.
    n_permutations : int, default=0
        Permutations for the brain Moran's I p-value.
    seed : None, int or numpy.random.Generator
    hemi, mask, variable
        Passed to :func:`topobrain.brain.load_map`.

    Returns
    -------
    ComparisonResult
    """
    from .brain import BrainMap, load_map, summarize_map

    model = read_model_results(model_results)
    control = None
    if len(model.models) > 1:
        # a localize folder with a control holds both: the model first, then the control
        if len(model.models) > 2:
            raise ValueError(
                f"{model.path / 'layers.csv'} holds the models {list(model.models)}; "
                "compare takes one model and one control per folder."
            )
        if control_results is None:
            control = model.select(model.models[1])
        model = model.select(model.models[0])
    contrast = _pick_contrast(model, contrast)
    if control_results is not None:
        control = read_model_results(control_results)
        control = control.select(control.models[0])
    if control is not None:
        _pick_contrast(control, contrast)
    if isinstance(brain, BrainMap):
        bm = brain
    elif isinstance(brain, (str, os.PathLike)):
        bm = load_map(brain, mesh, mask, hemi=hemi, variable=variable)
    else:
        raise TypeError(
            f"brain must be a path or a BrainMap; got {type(brain).__name__}."
        )
    summ = summarize_map(bm, df=df, alpha=alpha, tail=tail, n_permutations=n_permutations,
                         seed=seed)
    rows = _model_rows(model, contrast, "model")
    if control is not None:
        rows += _model_rows(control, contrast, "control")
    rows.append({
        "source": "brain", "name": bm.name, "contrast": contrast, "layer": "map",
        "morans_i": summ.morans_i, "percent_selective": summ.percent_selective,
        "morans_i_p": np.nan if summ.morans_i_p is None else summ.morans_i_p,
        "n_clusters": float(summ.n_clusters),
        "largest_cluster_fraction": summ.largest_cluster_fraction,
        "median_cluster_fraction": summ.median_cluster_fraction,
        "decay_distance": summ.decay_distance, "distance_unit": "mm",
        "size_relative_to": f"analysed cortex ({summ.total_size:.6g} {summ.size_unit})"
        if bm.kind == "surface" else f"analysed volume ({summ.total_size:.6g} mm3)",
        "published": False,
        "note": f"FDR (BH) q < {alpha}, tail {tail}; "
        + ("t map, df " + f"{df:g}" if df is not None else "z map"),
    })
    if include_published:
        for p in PUBLISHED:
            rows.append({**{k: np.nan for k in METRICS}, "distance_unit": "",
                         "size_relative_to": "", **p, "published": True})
    table = pd.DataFrame(rows, columns=list(_TABLE_COLUMNS))
    files: tuple = ()
    result = ComparisonResult(table, summ, model.name, None if control is None else
                              control.name, contrast, files, params={
                                  "model_results": str(model.path),
                                  "control_results": None if control is None
                                  else str(control.path),
                                  "brain": bm.source or bm.name, "alpha": alpha, "tail": tail,
                                  "df": df, "n_permutations": n_permutations,
                                  "include_published": include_published})
    if out is not None:
        out = Path(out)
        csv = atomic_write_text(out / "comparison.csv", table.to_csv(index=False))
        fig = plot_comparison(result, path=out / "figures" / "comparison.png")
        files = (str(csv), str(fig))
        result = ComparisonResult(table, summ, result.model_name, result.control_name,
                                  contrast, files, result.params)
    return result


def plot_comparison(result: ComparisonResult, path=None):
    """Side-by-side bars: model and control (mean over layers, dots per layer), brain,
    and published reference values (open diamonds) for each metric.

    The figure is drawn by :func:`topobrain.plotting.plot_comparison`; the backend is never
    switched.

    Parameters
    ----------
    result : ComparisonResult
    path : path-like, optional
        Save the figure there (PNG, atomically) and return the path; otherwise return
        the figure.
    """
    from .plotting import plot_comparison as draw
    from .plotting import save_figure

    fig = draw(result)
    if path is None:
        return fig
    return save_figure(fig, path, svg=False)[0]
