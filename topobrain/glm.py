"""General linear models over model units: design matrices, OLS, t and F contrasts, Welch t.

Every function works on all units at once: one QR decomposition of the design, then
matrix products over blocks of units (never a loop over units). Activations are
``(n_items, n_units)`` per layer; several layers can be passed together as a dict
``layer -> (n_items, n_units)`` or an array ``(n_items, n_layers, n_units)``, and every
per-unit result then has shape ``(n_layers, n_units)``.

The public names:

- :func:`design_matrix` builds a readable design (one-hot conditions, covariates, nuisance).
- :func:`fit_glm` fits ordinary least squares and returns a :class:`GLMResult`, whose
  :meth:`GLMResult.contrast` gives a :class:`ContrastResult` (t or F, p, z, effect, se,
  Cohen's d).
- :func:`welch_t` is the unequal-variance (or, with ``equal_var=True``, Student) two-sample
  t-test of the published localizers (Fedorenko et al., 2010; TopoLM, Rathi et al., 2025).
- :func:`p_to_z` converts p-values into standard-normal z-scores.

References
----------
Fedorenko, E., Hsieh, P.-J., Nieto-Castanon, A., Whitfield-Gabrieli, S. & Kanwisher, N.
(2010). New method for fMRI investigations of language: defining ROIs functionally in
individual subjects. Journal of Neurophysiology, 104, 1177-1194.

Rathi, N., Mehrer, J., AlKhamissi, B., Binhuraib, T., Blauch, N. M. & Schrimpf, M. (2025).
TopoLM: brain-like spatio-functional organization in a topographic language model. ICLR.

Welch, B. L. (1947). The generalization of "Student's" problem when several different
population variances are involved. Biometrika, 34, 28-35.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from ._utils._repr import FrameReprMixin
from ._utils._stats import group_moments, two_sample_t
from ._utils._validation import check_option, suggest
from .contrast import Contrast, parse_contrast

__all__ = [
    "ContrastResult",
    "GLMResult",
    "RankDeficiencyError",
    "design_matrix",
    "fit_glm",
    "p_to_z",
    "welch_t",
]

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")

# A unit whose residual (or within-group) variation is below this fraction of its own
# magnitude is constant to float64 precision: its t is undefined (NaN).
_DEGENERATE_RTOL2 = (1e4 * np.finfo(np.float64).eps) ** 2
# Units per block: keeps the temporaries of one block in cache (about 2 MB).
_BLOCK_BYTES = 2**21


class RankDeficiencyError(ValueError):
    """The design matrix is rank deficient.

    Attributes
    ----------
    columns : list of str
        The columns that are linear combinations of the columns before them.
    """

    def __init__(self, message: str, columns: list[str]):
        super().__init__(message)
        self.columns = list(columns)


# --------------------------------------------------------------------------------------
# Stimuli and design
# --------------------------------------------------------------------------------------

def _stimulus_frame(stimuli, name: str = "stimuli"):
    """Return (frame or None, (labels, condition order)) from the accepted stimulus forms."""
    frame = None
    if hasattr(stimuli, "to_frame") and not isinstance(stimuli, (pd.Series, pd.Index)):
        frame = stimuli.to_frame()
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f"{name}.to_frame() must return a pandas DataFrame; got "
                f"{type(frame).__name__}."
            )
    elif isinstance(stimuli, pd.DataFrame):
        frame = stimuli
    if frame is not None:
        if "condition" not in frame.columns:
            raise ValueError(
                f"{name} must have a 'condition' column; its columns are "
                f"{list(frame.columns)}.{suggest('condition', map(str, frame.columns))} "
                f"Rename the column holding the condition labels to 'condition'."
            )
        labels = frame["condition"]
        if isinstance(labels.dtype, pd.CategoricalDtype):
            observed = set(labels.dropna())
            order = [c for c in labels.cat.categories if c in observed]
        else:
            order = list(pd.unique(labels))
        return frame, _check_labels(list(labels), order, name)
    if isinstance(stimuli, (str, bytes)) or not isinstance(stimuli, (Sequence, np.ndarray,
                                                                      pd.Series, pd.Index)):
        raise TypeError(
            f"{name} must be a pandas DataFrame with a 'condition' column, an object with a "
            f"to_frame() method (a StimulusSet), or a sequence of condition labels; got "
            f"{type(stimuli).__name__}."
        )
    arr = np.asarray(stimuli, dtype=object)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} as condition labels must be one-dimensional (one label per item); got "
            f"shape {arr.shape}."
        )
    labels = list(arr)
    return None, _check_labels(labels, list(pd.unique(arr)), name)


def _check_labels(labels: list, order: list, name: str) -> list:
    missing = [i for i, c in enumerate(labels) if c is None or (isinstance(c, float)
                                                                and np.isnan(c))]
    if missing:
        raise ValueError(
            f"{name} has {len(missing)} item(s) without a condition label (first at item "
            f"{missing[:5]}). Give every item a condition or drop those items."
        )
    if not labels:
        raise ValueError(f"{name} holds no items.")
    return [str(c) for c in labels], [str(c) for c in order]


def _extra_columns(spec, frame: pd.DataFrame | None, n_items: int, what: str) -> dict:
    """Resolve covariate / nuisance specifications into {name: 1-d array}."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, pd.Series):
        spec = {spec.name if spec.name is not None else what: spec}
    if isinstance(spec, pd.DataFrame):
        spec = {c: spec[c] for c in spec.columns}
    out = {}
    if isinstance(spec, Mapping):
        for key, values in spec.items():
            arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values)
            if arr.ndim != 1 or arr.shape[0] != n_items:
                raise ValueError(
                    f"{what} {key!r} must have one value per item ({n_items}); got shape "
                    f"{arr.shape}."
                )
            out[str(key)] = arr
        return out
    if isinstance(spec, Sequence):
        if frame is None:
            raise TypeError(
                f"{what} given by name ({list(spec)}) need stimuli with columns (a "
                f"DataFrame or a StimulusSet); with plain condition labels pass {what} as "
                f"a dict name -> values or a DataFrame."
            )
        for key in spec:
            if key not in frame.columns:
                raise ValueError(
                    f"{what} {key!r} is not a column of the stimuli; the columns are "
                    f"{list(frame.columns)}.{suggest(str(key), map(str, frame.columns))}"
                )
            out[str(key)] = frame[key].to_numpy()
        return out
    raise TypeError(
        f"{what} must be None, a column name, a list of column names, a dict name -> "
        f"values or a DataFrame; got {type(spec).__name__}."
    )


def design_matrix(stimuli, covariates=None, nuisance=None, *,
                  center_covariates: bool = True) -> pd.DataFrame:
    """Build a GLM design matrix: one-hot conditions, covariates and nuisance factors.

    Parameters
    ----------
    stimuli : DataFrame, StimulusSet or sequence of str
        A DataFrame with a ``condition`` column (one row per item), any object whose
        ``to_frame()`` returns one (a :class:`~topobrain.stimuli.StimulusSet`), or the
        condition label of each item. Conditions appear in order of first appearance
        (the category order for a categorical column).
    covariates : str, list of str, dict or DataFrame, optional
        Continuous regressors (word count, log frequency, ...): column names of the
        stimuli, or a mapping name -> values (one per item), or a DataFrame with one row
        per item (aligned by position).
    nuisance : str, list of str, dict or DataFrame, optional
        Categorical factors to adjust for (run, block), in the same forms as
        ``covariates``. Each factor is coded by centred indicator columns for every level
        but the first, named ``factor[level]``, so that the condition betas stay the
        condition means averaged over the factor's levels.
    center_covariates : bool, default=True
        Subtract each covariate's mean, so that condition betas are condition means at
        the average covariate value.

    Returns
    -------
    DataFrame of shape (n_items, n_regressors)
        Float columns: the conditions (0/1), then the covariates, then the nuisance
        columns. The index is the stimuli's ``item_id`` column when present, else the
        stimuli's index (``RangeIndex`` named ``item`` for labels). ``attrs`` records
        ``conditions``, ``covariates`` and ``nuisance`` (column names), which
        :func:`fit_glm` uses to parse contrast strings.

    Raises
    ------
    RankDeficiencyError
        When a column is a linear combination of the columns before it (for example a
        nuisance factor nested in the conditions); the message names the columns.

    Notes
    -----
    The conditions are cell-means coded (no separate intercept): the one-hot columns
    span the intercept, and each condition's beta is its mean response.

    Examples
    --------
    >>> design_matrix(["S", "N", "S", "N"]).columns.tolist()
    ['S', 'N']
    >>> import pandas as pd
    >>> stim = pd.DataFrame({"condition": ["S", "N"] * 3, "n_words": [12, 11, 9, 8, 10, 14],
    ...                      "run": [1, 1, 2, 2, 3, 3]})
    >>> design_matrix(stim, covariates="n_words", nuisance="run").columns.tolist()
    ['S', 'N', 'n_words', 'run[2]', 'run[3]']
    """
    frame, (labels, conditions) = _stimulus_frame(stimuli)
    n_items = len(labels)
    cov = _extra_columns(covariates, frame, n_items, "covariate")
    nuis = _extra_columns(nuisance, frame, n_items, "nuisance factor")

    columns: dict[str, np.ndarray] = {}
    lab = np.asarray(labels, dtype=object)
    for c in conditions:
        columns[c] = (lab == c).astype(np.float64)
    cov_names = []
    for key, values in cov.items():
        if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
            raise TypeError(
                f"covariate {key!r} must be numeric; got dtype {values.dtype}. Pass a "
                f"categorical variable as nuisance={key!r} instead."
            )
        values = values.astype(np.float64)
        if not np.isfinite(values).all():
            bad = np.flatnonzero(~np.isfinite(values))
            raise ValueError(
                f"covariate {key!r} holds {bad.size} NaN or infinite value(s) (items "
                f"{bad[:5].tolist()}). Impute them or drop those items."
            )
        if center_covariates:
            values = values - values.mean()
        _add_column(columns, key, values)
        cov_names.append(key)
    nuis_names = []
    for key, values in nuis.items():
        values = np.asarray(values, dtype=object)
        levels = list(pd.unique(values))
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in levels):
            raise ValueError(f"nuisance factor {key!r} holds missing values; fill them in.")
        for level in levels[1:]:
            ind = (values == level).astype(np.float64)
            name = f"{key}[{level}]"
            _add_column(columns, name, ind - ind.mean())
            nuis_names.append(name)

    if frame is not None:
        index = (pd.Index(frame["item_id"].to_numpy(), name="item_id")
                 if "item_id" in frame.columns else frame.index)
    else:
        index = pd.RangeIndex(n_items, name="item")
    design = pd.DataFrame(columns, index=index)
    design.attrs = {"conditions": list(conditions), "covariates": cov_names,
                    "nuisance": nuis_names}
    _check_rank(design.to_numpy(), list(design.columns))
    return design


def _add_column(columns: dict, name: str, values: np.ndarray) -> None:
    if name in columns:
        raise ValueError(
            f"Two design columns are named {name!r} (a condition, covariate or nuisance "
            f"level share the name). Rename the covariate or the condition."
        )
    columns[name] = values


def _check_rank(x: np.ndarray, names: list[str]) -> int:
    """Raise RankDeficiencyError naming the columns that add no rank; return the rank."""
    n, p = x.shape
    if p == 0:
        raise ValueError("The design has no column.")
    s = np.linalg.svd(x, compute_uv=False)
    tol = s.max() * max(n, p) * np.finfo(np.float64).eps if s.size else 0.0
    rank = int((s > tol).sum())
    if rank == p:
        return rank
    at_fault, kept = [], []
    details = []
    for j in range(p):
        trial = x[:, kept + [j]]
        st = np.linalg.svd(trial, compute_uv=False)
        if int((st > tol).sum()) == len(kept) + 1:
            kept.append(j)
            continue
        at_fault.append(names[j])
        if kept and np.any(x[:, j]):
            coef = np.linalg.lstsq(x[:, kept], x[:, j], rcond=None)[0]
            parts = [names[k] for k, w in zip(kept, coef, strict=True) if abs(w) > 1e-8]
            details.append(f"{names[j]!r} = combination of {parts}")
        else:
            details.append(f"{names[j]!r} is all zeros")
    raise RankDeficiencyError(
        f"The design matrix is rank deficient (rank {rank} < {p} columns): "
        f"{'; '.join(details)}. Drop the column(s) {at_fault} or the factor they come "
        f"from (a nuisance factor nested in the conditions cannot be separated from them).",
        at_fault,
    )


# --------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Units:
    y: np.ndarray          # (n_items, n_total) view or array, any numeric dtype
    unit_shape: tuple
    layers: tuple | None


def _as_units(y, name: str = "Y") -> _Units:
    """Accept ndarray (n_items, ...), dict layer -> (n_items, n_units), or xarray."""
    layers = None
    if isinstance(y, (pd.DataFrame, pd.Series)):
        y = y.to_numpy()
    elif hasattr(y, "to_xarray") and not isinstance(y, (np.ndarray, Mapping)):
        y = y.to_xarray()  # topobrain.activations.Activations -> xarray.Dataset
    if hasattr(y, "data_vars"):  # xarray.Dataset: one variable per layer
        for k, v in y.data_vars.items():
            if "item" not in v.dims:
                raise ValueError(
                    f"{name} layer {k!r} needs an 'item' dimension; got dims {v.dims}."
                )
        y = {k: np.asarray(v.transpose("item", ...).values) for k, v in y.data_vars.items()}
    if hasattr(y, "dims") and hasattr(y, "transpose") and hasattr(y, "values"):
        dims = tuple(y.dims)
        if "item" not in dims:
            raise ValueError(
                f"{name} as a labelled array needs an 'item' dimension; got dims {dims}."
            )
        rest = [d for d in dims if d != "item"]
        if "layer" in rest:
            rest = ["layer"] + [d for d in rest if d != "layer"]
            layers = tuple(np.asarray(y["layer"].values).tolist())
        y = np.asarray(y.transpose("item", *rest).values)
    elif isinstance(y, Mapping):
        if not y:
            raise ValueError(f"{name} is an empty dict; pass at least one layer.")
        layers = tuple(y.keys())
        arrays = [np.asarray(v) for v in y.values()]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or arrays[0].ndim != 2:
            got = {k: a.shape for k, a in zip(layers, arrays, strict=True)}
            raise ValueError(
                f"{name} as a dict must map each layer to an (n_items, n_units) array of "
                f"the same shape; got {got}. Analyse layers of different sizes separately."
            )
        y = np.stack(arrays, axis=1)
    else:
        y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(f"{name} must hold numbers; got dtype {y.dtype}.")
    if np.iscomplexobj(y):
        raise TypeError(f"{name} must be real-valued; got dtype {y.dtype}.")
    if y.ndim < 2:
        raise ValueError(
            f"{name} must have shape (n_items, n_units) (or (n_items, n_layers, n_units)); "
            f"got shape {y.shape}. Pass Y.reshape(-1, 1) for a single unit."
        )
    unit_shape = y.shape[1:]
    if 0 in unit_shape:
        raise ValueError(f"{name} has no unit; got shape {y.shape}.")
    return _Units(y.reshape(y.shape[0], -1), tuple(unit_shape), layers)


def _unit_name(flat: int, units: _Units) -> str:
    idx = np.unravel_index(flat, units.unit_shape)
    if units.layers is not None:
        return f"layer {units.layers[idx[0]]!r} unit {', '.join(map(str, idx[1:]))}"
    if len(idx) == 1:
        return f"unit {idx[0]}"
    return f"unit {tuple(int(i) for i in idx)}"


def _raise_nonfinite(bad_cols: list[np.ndarray], counts: int, units: _Units, name: str):
    cols = np.concatenate(bad_cols)
    if units.layers is not None:
        per_layer: dict = {}
        for c in cols:
            idx = np.unravel_index(int(c), units.unit_shape)
            per_layer.setdefault(units.layers[idx[0]], []).append(
                int(np.ravel_multi_index(idx[1:], units.unit_shape[1:])))
        where = "; ".join(
            f"layer {k!r}: unit(s) {v[:10]}{' ...' if len(v) > 10 else ''}"
            for k, v in per_layer.items())
    else:
        where = ", ".join(_unit_name(int(c), units) for c in cols[:10])
        if cols.size > 10:
            where += f" and {cols.size - 10} more unit(s)"
    raise ValueError(
        f"{name} holds {counts} NaN or infinite value(s) in {cols.size} unit(s): {where}. "
        f"Remove those units (or items) or impute the values before the analysis."
    )


def _blocks(n_items: int, n_cols: int):
    step = max(64, _BLOCK_BYTES // (8 * max(n_items, 1)))
    for start in range(0, n_cols, step):
        yield slice(start, min(start + step, n_cols))


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

def _unit_frame(unit_shape: tuple, layers: tuple | None) -> dict:
    n = int(np.prod(unit_shape))
    if layers is not None and len(unit_shape) >= 2:
        lay = np.repeat(np.asarray(layers, dtype=object), n // len(layers))
        unit = np.tile(np.arange(n // len(layers)), len(layers))
        return {"layer": lay, "unit": unit}
    return {"unit": np.arange(n)}


@dataclass(frozen=True, repr=False)
class ContrastResult(FrameReprMixin):
    """A t or F contrast evaluated for every unit.

    Shapes below write ``U`` for the unit shape of the activations: ``(n_units,)`` for
    one layer, ``(n_layers, n_units)`` for several.

    Attributes
    ----------
    contrast : str
        The contrast as written (or a rendering of its weights).
    weights : ndarray of shape (n_regressors,) or (q, n_regressors)
        The contrast vector (t) or matrix (F) over the design columns; for
        :func:`welch_t`, ``(2, n_conditions)`` membership of the two pooled sides.
    columns : tuple of str
        Names of the weights' columns.
    stat : {"t", "F"}
        Which statistic was computed.
    t : ndarray of shape U or None
        t statistic (None for F). NaN for degenerate units.
    f : ndarray of shape U or None
        F statistic (None for t). NaN for degenerate units.
    p : ndarray of shape U
        p-value with the sidedness of ``alternative`` (F: upper tail). NaN for degenerate
        units.
    z : ndarray of shape U
        Standard-normal score with the same tail probability as the statistic: for t,
        ``sign(t) * Phi^-1(1 - P(T > |t|))`` whatever ``alternative`` (the nilearn
        convention); for F, ``Phi^-1(1 - p)``.
    effect : ndarray of shape ``U`` (t) or ``(q, *U)`` (F)
        Contrast estimate ``c @ beta`` in activation units (Welch: mean of the positive
        side minus mean of the negative side).
    se : ndarray of shape ``U`` (t) or ``(q, *U)`` (F)
        Standard error of ``effect``.
    cohen_d : ndarray of shape U or None
        Standardised effect: ``effect`` over the residual standard deviation (GLM) or
        over the pooled within-group standard deviation (two-sample). None for F.
    df : float or ndarray of shape U
        Residual (denominator) degrees of freedom; an array for Welch's t.
    df_num : int or None
        Numerator degrees of freedom of F (the contrast's rank); None for t.
    alternative : str
        ``"two-sided"``, ``"greater"`` or ``"less"``.
    degenerate : ndarray of bool, shape U
        Units with no residual variance (constant units): NaN statistics.
    n_degenerate : int
        Number of degenerate units.
    layers : tuple or None
        Labels of the first unit axis when the activations had several layers.
    params : dict
        How the result was computed (``method``, ``alternative``, ``contrast``, ...).
    """

    contrast: str
    weights: np.ndarray
    columns: tuple
    stat: str
    t: np.ndarray | None
    f: np.ndarray | None
    p: np.ndarray
    z: np.ndarray
    effect: np.ndarray
    se: np.ndarray
    cohen_d: np.ndarray | None
    df: Any
    df_num: int | None
    alternative: str
    degenerate: np.ndarray
    n_degenerate: int
    layers: tuple | None = None
    params: dict = field(default_factory=dict)

    @property
    def unit_shape(self) -> tuple:
        return self.p.shape

    @property
    def value(self) -> np.ndarray:
        """The statistic (``t`` or ``f``)."""
        return self.t if self.stat == "t" else self.f

    def to_frame(self) -> pd.DataFrame:
        """Tidy table, one row per unit (per layer x unit with several layers).

        Columns: ``contrast``, (``layer``), ``unit``, ``t`` or ``f``, ``p``, ``z``,
        ``effect``, ``se``, ``cohen_d`` (t only), ``df``, (``df_num``, F only),
        ``degenerate``.
        """
        cols = {"contrast": self.contrast}
        cols.update(_unit_frame(self.unit_shape, self.layers))
        if self.stat == "t":
            cols["t"] = self.t.ravel()
        else:
            cols["f"] = self.f.ravel()
        cols["p"] = self.p.ravel()
        cols["z"] = self.z.ravel()
        if self.stat == "t":
            cols["effect"] = self.effect.ravel()
            cols["se"] = self.se.ravel()
            cols["cohen_d"] = self.cohen_d.ravel()
        else:
            q = self.effect.shape[0]
            for i in range(q):
                cols[f"effect_{i}"] = self.effect[i].ravel()
                cols[f"se_{i}"] = self.se[i].ravel()
        cols["df"] = np.broadcast_to(np.asarray(self.df, dtype=float),
                                     self.unit_shape).ravel()
        if self.stat == "F":
            cols["df_num"] = self.df_num
        cols["degenerate"] = self.degenerate.ravel()
        return pd.DataFrame(cols)

    def __repr__(self) -> str:
        v = self.value
        finite = np.isfinite(v)
        rng = (f"[{np.nanmin(v):.3g}, {np.nanmax(v):.3g}]" if finite.any() else "[all NaN]")
        if np.ndim(self.df) == 0:
            df = f"{float(self.df):g}"
        elif np.isfinite(self.df).any():
            df = f"{np.nanmin(self.df):.3g}..{np.nanmax(self.df):.3g}"
        else:
            df = "nan"
        if self.stat == "F":
            df = f"({self.df_num}, {df})"
        return (f"ContrastResult({self.contrast!r}, {self.stat}, units={self.unit_shape}, "
                f"{self.stat} in {rng}, df={df}, alternative={self.alternative!r}, "
                f"method={self.params.get('method')!r}, n_degenerate={self.n_degenerate})")


@dataclass(frozen=True, repr=False)
class GLMResult(FrameReprMixin):
    """An ordinary least squares fit of every unit on one design.

    ``U`` is the unit shape of the activations: ``(n_units,)`` or ``(n_layers, n_units)``.

    Attributes
    ----------
    betas : ndarray of shape ``(n_regressors, *U)``
        Least squares coefficients, one row per design column, in activation units.
    sigma2 : ndarray of shape U
        Residual variance, ``RSS / df_resid``.
    df_resid : int
        Residual degrees of freedom, ``n_items - n_regressors``.
    columns : tuple of str
        Design column names.
    conditions : tuple of str
        The condition columns (from ``design.attrs``; all columns for a plain design).
    design : DataFrame of shape (n_items, n_regressors)
        The design as fitted.
    cov_unscaled : ndarray of shape (n_regressors, n_regressors)
        ``(X' X)^-1``; the covariance of the betas of a unit is ``sigma2 * cov_unscaled``.
    degenerate : ndarray of bool, shape U
        Units whose residual variance is zero to float64 precision (constant units).
    n_degenerate : int
    layers : tuple or None
        Labels of the first unit axis when several layers were fitted together.
    params : dict
        ``method`` ("ols"), ``n_items``, ``n_regressors``.
    """

    betas: np.ndarray
    sigma2: np.ndarray
    df_resid: int
    columns: tuple
    conditions: tuple
    design: pd.DataFrame
    cov_unscaled: np.ndarray
    degenerate: np.ndarray
    n_degenerate: int
    layers: tuple | None = None
    params: dict = field(default_factory=dict)

    @property
    def unit_shape(self) -> tuple:
        return self.sigma2.shape

    def contrast(self, contrast, *, alternative: Alternative = "two-sided") -> ContrastResult:
        """Evaluate a t or F contrast for every unit.

        Parameters
        ----------
        contrast : str, Contrast, dict, array-like or list of those
            A string such as ``"S - N"`` parsed with
            :func:`topobrain.contrast.parse_contrast` over the design columns (names
            holding ``-``, spaces or brackets are written in backticks:
            ```run[2]```); a dict column -> weight; a vector of length ``n_regressors``
            (t); or a list of strings/vectors, or a ``(q, n_regressors)`` matrix, for an
            F test of ``q`` rows jointly (a single row gives t).
        alternative : {"two-sided", "greater", "less"}, default="two-sided"
            Sidedness of the t p-value: ``"greater"`` tests contrast > 0. F tests take
            only ``"two-sided"`` (their p is the upper tail of F).

        Returns
        -------
        ContrastResult
            t: ``t = c beta / sqrt(sigma2 * c' (X'X)^-1 c)`` on ``df_resid`` degrees of
            freedom; F: ``(C beta)' [C (X'X)^-1 C']^+ (C beta) / (r sigma2)`` on ``(r,
            df_resid)`` degrees of freedom, ``r`` the rank of ``C``.
        """
        check_option("alternative", alternative, ALTERNATIVES)
        cmat, label = _contrast_matrix(contrast, self.columns)
        n_units = int(np.prod(self.unit_shape))
        betas = self.betas.reshape(len(self.columns), n_units)
        sigma2 = self.sigma2.ravel()
        bad = self.degenerate.ravel()
        df = float(self.df_resid)
        params = {"method": "ols", "alternative": alternative, "contrast": label}
        if cmat.shape[0] == 1:
            c = cmat[0]
            effect = c @ betas
            var_c = float(c @ self.cov_unscaled @ c)
            sd = np.sqrt(sigma2)
            se = np.sqrt(var_c) * sd
            with np.errstate(divide="ignore", invalid="ignore"):
                t = effect / se
                d = effect / sd
            t[bad] = np.nan
            d[bad] = np.nan
            p = _t_pvalue(t, df, alternative)
            z = _t_to_z(t, df)
            shape = self.unit_shape
            return ContrastResult(
                contrast=label, weights=c, columns=self.columns, stat="t",
                t=t.reshape(shape), f=None, p=p.reshape(shape), z=z.reshape(shape),
                effect=effect.reshape(shape), se=se.reshape(shape),
                cohen_d=d.reshape(shape), df=df, df_num=None, alternative=alternative,
                degenerate=self.degenerate, n_degenerate=self.n_degenerate,
                layers=self.layers, params=params)
        if alternative != "two-sided":
            raise ValueError(
                f"An F contrast ({cmat.shape[0]} rows) has no direction: alternative must "
                f"be 'two-sided'; got {alternative!r}. Test a single row for a one-sided t."
            )
        effect = cmat @ betas                                   # (q, n_units)
        v = cmat @ self.cov_unscaled @ cmat.T                   # (q, q)
        rank = int(np.linalg.matrix_rank(v))
        v_inv = np.linalg.pinv(v)
        quad = np.einsum("qm,qm->m", effect, v_inv @ effect)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = quad / (rank * sigma2)
        f[bad] = np.nan
        p = special.fdtrc(rank, df, f)
        z = -special.ndtri(p)
        se = np.sqrt(np.diag(v))[:, None] * np.sqrt(sigma2)[None, :]
        shape = self.unit_shape
        q = cmat.shape[0]
        return ContrastResult(
            contrast=label, weights=cmat, columns=self.columns, stat="F", t=None,
            f=f.reshape(shape), p=p.reshape(shape), z=z.reshape(shape),
            effect=effect.reshape((q,) + shape), se=se.reshape((q,) + shape), cohen_d=None,
            df=df, df_num=rank, alternative=alternative, degenerate=self.degenerate,
            n_degenerate=self.n_degenerate, layers=self.layers, params=params)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table, one row per unit: ``(layer,) unit, beta_<column>..., sigma2, df``."""
        cols = _unit_frame(self.unit_shape, self.layers)
        for name, b in zip(self.columns, self.betas, strict=True):
            cols[f"beta_{name}"] = b.ravel()
        cols["sigma2"] = self.sigma2.ravel()
        cols["df"] = self.df_resid
        cols["degenerate"] = self.degenerate.ravel()
        return pd.DataFrame(cols)

    def __repr__(self) -> str:
        return (f"GLMResult(units={self.unit_shape}, n_items={self.params.get('n_items')}, "
                f"columns={list(self.columns)}, df_resid={self.df_resid}, "
                f"n_degenerate={self.n_degenerate})")


# --------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------

def _t_pvalue(t: np.ndarray, df, alternative: str) -> np.ndarray:
    if alternative == "two-sided":
        return np.minimum(2.0 * special.stdtr(df, -np.abs(t)), 1.0)
    if alternative == "greater":
        return special.stdtr(df, -t)
    return special.stdtr(df, t)


def _t_to_z(t: np.ndarray, df) -> np.ndarray:
    """z with the same one-sided tail probability as t, accurate in both tails."""
    with np.errstate(invalid="ignore"):
        upper = -special.ndtri(special.stdtr(df, -t))
        lower = special.ndtri(special.stdtr(df, t))
    return np.where(t > 0, upper, lower)


def p_to_z(p, *, alternative: Alternative = "greater", sign=None) -> np.ndarray:
    """Convert p-values into standard-normal z-scores.

    Parameters
    ----------
    p : array-like of float in [0, 1]
        p-values (NaN allowed and kept).
    alternative : {"greater", "less", "two-sided"}, default="greater"
        The sidedness of ``p``: ``"greater"`` gives ``z = Phi^-1(1 - p)`` (upper tail),
        ``"less"`` gives ``z = Phi^-1(p)``, and ``"two-sided"`` gives
        ``|z| = Phi^-1(1 - p / 2)`` with the sign of ``sign``.
    sign : array-like, optional
        For two-sided p-values, the statistic whose sign ``z`` takes (non-negative z
        when omitted).

    Returns
    -------
    ndarray of the shape of ``p``
        ``+inf``/``-inf`` where ``p`` is 0 or 1 at the matching tail.

    Examples
    --------
    >>> round(float(p_to_z(0.025)), 6)
    1.959964
    >>> round(float(p_to_z(0.05, alternative="two-sided", sign=-2.0)), 6)
    -1.959964
    """
    check_option("alternative", alternative, ALTERNATIVES)
    p = np.asarray(p, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(
            f"p must lie in [0, 1]; got values from {np.nanmin(p)} to {np.nanmax(p)}."
        )
    if alternative == "greater":
        return -special.ndtri(p)
    if alternative == "less":
        return special.ndtri(p)
    z = -special.ndtri(p / 2.0)
    if sign is not None:
        s = np.sign(np.asarray(sign, dtype=np.float64))
        z = np.where(s < 0, -z, z)
    return z


# --------------------------------------------------------------------------------------
# Contrasts
# --------------------------------------------------------------------------------------

def _contrast_matrix(contrast, columns: tuple) -> tuple[np.ndarray, str]:
    """(q, p) contrast matrix and a label from any accepted contrast form."""
    p = len(columns)

    def row(item) -> tuple[np.ndarray, str]:
        if isinstance(item, (str, Contrast, dict)):
            con = parse_contrast(item, columns)
            return con.vector(columns), con.expression
        vec = np.asarray(item, dtype=np.float64)
        return vec, None

    if isinstance(contrast, (str, Contrast, dict)):
        vec, label = row(contrast)
        return vec[None, :], label
    if isinstance(contrast, (list, tuple)) and contrast and all(
            isinstance(c, (str, Contrast, dict)) for c in contrast):
        rows = [row(c) for c in contrast]
        return np.vstack([r[0] for r in rows]), "; ".join(r[1] for r in rows)
    try:
        cmat = np.asarray(contrast, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"contrast must be a string like 'S - N', a dict, a vector of {p} weights or "
            f"a (q, {p}) matrix; got {type(contrast).__name__}."
        ) from None
    if cmat.ndim not in (1, 2) or cmat.shape[-1] != p or cmat.size == 0:
        raise ValueError(
            f"A contrast vector needs one weight per design column ({p}: {list(columns)}); "
            f"got shape {cmat.shape}."
        )
    cmat = np.atleast_2d(cmat)
    if not np.isfinite(cmat).all():
        raise ValueError("The contrast weights must be finite.")
    zero = np.flatnonzero(~cmat.any(axis=1))
    if zero.size:
        raise ValueError(f"Contrast row(s) {zero.tolist()} are all zeros.")
    label = "; ".join(" ".join(f"{w:+g}*{c}" for w, c in zip(r, columns, strict=True) if w != 0)
                      for r in cmat)
    return cmat, label


# --------------------------------------------------------------------------------------
# OLS
# --------------------------------------------------------------------------------------

def _as_design(design, n_items: int) -> pd.DataFrame:
    if isinstance(design, pd.DataFrame) and "condition" not in design.columns:
        frame = design
    elif isinstance(design, np.ndarray) and design.ndim == 2:
        frame = pd.DataFrame(design, columns=[f"x{i}" for i in range(design.shape[1])])
    else:
        frame = design_matrix(design)
    non_numeric = [c for c in frame.columns
                   if not (pd.api.types.is_numeric_dtype(frame[c])
                           or pd.api.types.is_bool_dtype(frame[c]))]
    if non_numeric:
        raise TypeError(
            f"The design's columns must be numeric; {non_numeric} are not. Build the design "
            f"with topobrain.glm.design_matrix(stimuli, covariates, nuisance)."
        )
    if frame.shape[0] != n_items:
        raise ValueError(
            f"The design has {frame.shape[0]} rows but Y has {n_items} items (rows). They "
            f"must match, in the same item order."
        )
    x = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("The design holds NaN or infinite values; fill or drop them.")
    return frame


def fit_glm(Y, design) -> GLMResult:
    """Fit ordinary least squares for every unit at once.

    Parameters
    ----------
    Y : ndarray of shape (n_items, n_units) or (n_items, n_layers, n_units), dict,
        xarray.DataArray or Dataset, or Activations
        Activations: items in rows, units in the trailing axes (any trailing shape is
        kept); or a dict ``layer -> (n_items, n_units)`` (layers of one size); or a
        DataArray with an ``item`` dimension (a ``layer`` dimension, when present,
        becomes the first unit axis); or a Dataset with one variable per layer, as
        :meth:`topobrain.activations.Activations.to_xarray` gives (an ``Activations`` is
        accepted as it is). Several layers give results of shape ``(n_layers,
        n_units)`` with ``layers`` naming them. Never modified.
    design : DataFrame or ndarray of shape (n_items, n_regressors), or stimuli
        The design matrix (see :func:`design_matrix`), or stimuli / condition labels
        from which :func:`design_matrix` builds one.

    Returns
    -------
    GLMResult
        Betas, residual variance and degrees of freedom; ``.contrast("S - N")`` gives t,
        F, p, z and effect sizes.

    Raises
    ------
    ValueError
        When ``Y`` holds NaN or infinite values (the message names the layers and
        units), when the shapes disagree, or when the design is rank deficient
        (:class:`RankDeficiencyError`, naming the columns).

    Warns
    -----
    UserWarning
        When some units are constant (zero residual variance): their t, F and p are
        NaN, and :mod:`topobrain.correction` leaves them out.

    Notes
    -----
    One thin QR decomposition ``X = QR`` of the design; then, over blocks of units,
    ``beta = R^-1 Q' Y`` and the residual sum of squares from the residuals themselves
    (not from ``Y'Y - beta' X'Y``, which loses precision). A unit is degenerate when its
    residual sum of squares is below ``(1e4 * eps)^2`` times its sum of squares, or when
    it is constant.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = ["S"] * 20 + ["N"] * 20
    >>> Y = rng.standard_normal((40, 5)); Y[:20, 0] += 3.0
    >>> res = fit_glm(Y, design_matrix(labels)).contrast("S - N")
    >>> bool(res.p[0] < 1e-6), res.t.shape
    (True, (5,))
    """
    units = _as_units(Y)
    n_items = units.y.shape[0]
    frame = _as_design(design, n_items)
    columns = tuple(str(c) for c in frame.columns)
    x = frame.to_numpy(dtype=np.float64)
    n_reg = x.shape[1]
    rank = _check_rank(x, list(columns))
    df_resid = n_items - rank
    if df_resid < 1:
        raise ValueError(
            f"The design has {n_reg} columns for {n_items} items: no residual degrees of "
            f"freedom are left. Use more items or fewer regressors."
        )
    q, r = np.linalg.qr(x)
    qt = np.ascontiguousarray(q.T)
    r_inv = np.linalg.inv(r)
    cov_unscaled = r_inv @ r_inv.T
    # Is the intercept in the design's span? Then a constant unit has zero residuals.
    ones = np.ones(n_items)
    spans_intercept = np.allclose(q @ (qt @ ones), ones, rtol=0, atol=1e-10)

    n_total = units.y.shape[1]
    betas = np.empty((n_reg, n_total))
    rss = np.empty(n_total)
    degenerate = np.zeros(n_total, dtype=bool)
    bad_cols, n_bad = [], 0
    for sl in _blocks(n_items, n_total):
        yb = np.asarray(units.y[:, sl], dtype=np.float64)
        finite = np.isfinite(yb)
        if not finite.all():
            cols = np.flatnonzero(~finite.all(0))
            bad_cols.append(cols + sl.start)
            n_bad += int((~finite).sum())
            continue
        qty = qt @ yb
        resid = q @ qty
        np.subtract(yb, resid, out=resid)
        rss_b = np.einsum("ij,ij->j", resid, resid)
        rss[sl] = rss_b
        betas[:, sl] = r_inv @ qty
        ss = np.einsum("ij,ij->j", yb, yb)
        deg = rss_b <= _DEGENERATE_RTOL2 * ss
        if not spans_intercept:
            deg |= (yb == yb[0]).all(0)
        degenerate[sl] = deg
    if bad_cols:
        _raise_nonfinite(bad_cols, n_bad, units, "Y")
    sigma2 = rss / df_resid
    n_deg = int(degenerate.sum())
    if n_deg:
        _warn_degenerate(n_deg, n_total, "fit_glm")
    attrs_cond = frame.attrs.get("conditions") if isinstance(frame.attrs, dict) else None
    conditions = tuple(c for c in (attrs_cond or columns) if c in columns)
    shape = units.unit_shape
    return GLMResult(
        betas=betas.reshape((n_reg,) + shape), sigma2=sigma2.reshape(shape),
        df_resid=int(df_resid), columns=columns, conditions=conditions,
        design=frame.copy(), cov_unscaled=cov_unscaled,
        degenerate=degenerate.reshape(shape), n_degenerate=n_deg, layers=units.layers,
        params={"method": "ols", "n_items": n_items, "n_regressors": n_reg})


def _warn_degenerate(n_deg: int, n_total: int, who: str) -> None:
    warnings.warn(
        f"{who}: {n_deg} of {n_total} units have no variance left to test (constant "
        f"units); their t and p are NaN and multiple-comparison correction leaves them out.",
        UserWarning, stacklevel=3)


# --------------------------------------------------------------------------------------
# Two-sample t
# --------------------------------------------------------------------------------------

def welch_t(Y, conditions, contrast, *, equal_var: bool = False,
            alternative: Alternative = "two-sided") -> ContrastResult:
    """Two-sample t-test of the items of one side of a contrast against the other.

    The localizer test of Fedorenko et al. (2010) and TopoLM: for every unit, the
    mean response to the conditions with positive weight minus the mean response to
    the conditions with negative weight, with Welch's unequal-variance t (default) or
    Student's pooled-variance t (``equal_var=True``).

    Parameters
    ----------
    Y : ndarray of shape (n_items, n_units) or (n_items, n_layers, n_units), dict or
        xarray.DataArray
        Activations, as for :func:`fit_glm`. Never modified.
    conditions : sequence of str, DataFrame or StimulusSet
        The condition of each item (or stimuli with a ``condition`` column).
    contrast : str, Contrast or dict
        A two-sided contrast such as ``"S - N"``. With several conditions on a side
        (``"0.5*J + 0.5*W - N"``) the items of all of that side's conditions are pooled
        into one group: the test is the pooled positive items against the pooled
        negative items, and the weights' magnitudes are ignored (a warning says so when
        the weights on one side differ). Items of conditions the contrast does not name
        are left out. For weighted combinations use :func:`fit_glm`.
    equal_var : bool, default=False
        Student's t with pooled variance and ``n_pos + n_neg - 2`` degrees of freedom
        instead of Welch's t with Welch-Satterthwaite degrees of freedom.
    alternative : {"two-sided", "greater", "less"}, default="two-sided"
        ``"greater"`` tests positive side > negative side.

    Returns
    -------
    ContrastResult
        ``stat="t"``; ``effect`` = difference of means, ``se`` its standard error,
        ``cohen_d`` = difference over the pooled within-group standard deviation
        (whatever ``equal_var``), ``df`` an array for Welch and a float for Student.
        ``weights`` is ``(2, n_conditions)``: membership of the positive and negative
        sides over ``columns`` (the conditions). Equals ``scipy.stats.ttest_ind``
        (``equal_var`` and ``alternative`` alike).

    Raises
    ------
    ValueError
        When a side is empty or has fewer than 2 items, when the contrast names unknown
        conditions, or when ``Y`` holds NaN or infinite values (naming layers and units).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = ["S"] * 20 + ["N"] * 20
    >>> Y = rng.standard_normal((40, 3)); Y[:20, 1] += 2.0
    >>> res = welch_t(Y, labels, "S - N")
    >>> res.t.shape, bool(res.p[1] < 1e-4)
    ((3,), True)
    """
    check_option("alternative", alternative, ALTERNATIVES)
    if not isinstance(equal_var, (bool, np.bool_)):
        raise TypeError(f"equal_var must be True or False; got {equal_var!r}.")
    units = _as_units(Y)
    n_items = units.y.shape[0]
    _, (labels, order) = _stimulus_frame(conditions, "conditions")
    if len(labels) != n_items:
        raise ValueError(
            f"conditions has {len(labels)} labels but Y has {n_items} items (rows); give "
            f"one condition per item, in the order of Y's rows."
        )
    con = parse_contrast(contrast, order)
    pos, neg = con.positive, con.negative
    if not pos or not neg:
        raise ValueError(
            f"welch_t compares two groups of items, but contrast {con.expression!r} has "
            f"no {'negative' if pos else 'positive'} condition. For a one-sample test use "
            f"fit_glm(Y, design).contrast({con.expression!r})."
        )
    wp = {con.weights[c] for c in pos}
    wn = {con.weights[c] for c in neg}
    if len(wp) > 1 or len(wn) > 1:
        warnings.warn(
            f"welch_t pools the items of each side of {con.expression!r}; the unequal "
            f"weights are ignored. Use fit_glm for a weighted contrast.", UserWarning,
            stacklevel=2)
    lab = np.asarray(labels, dtype=object)
    masks = np.stack([np.isin(lab, pos), np.isin(lab, neg)])
    n_side = masks.sum(1)
    if (n_side < 2).any():
        raise ValueError(
            f"Each side of {con.expression!r} needs at least 2 items; got "
            f"{int(n_side[0])} positive ({pos}) and {int(n_side[1])} negative ({neg})."
        )
    used = masks.any(0)
    y_all = units.y
    if not used.all():
        masks = masks[:, used]
    n_total = y_all.shape[1]
    t = np.empty(n_total)
    dfs = np.empty(n_total)
    effect = np.empty(n_total)
    se = np.empty(n_total)
    sd_pooled = np.empty(n_total)
    degenerate = np.zeros(n_total, dtype=bool)
    n0, n1 = float(n_side[0]), float(n_side[1])
    bad_cols, n_bad = [], 0
    for sl in _blocks(n_items, n_total):
        yb = np.asarray(y_all[:, sl], dtype=np.float64)
        if not used.all():
            yb = yb[used]
        finite = np.isfinite(yb)
        if not finite.all():
            cols = np.flatnonzero(~finite.all(0))
            bad_cols.append(cols + sl.start)
            n_bad += int((~finite).sum())
            continue
        tb, dfb = two_sample_t(yb, masks, equal_var=bool(equal_var))
        _, mean, var = group_moments(yb, masks)
        diff = mean[0] - mean[1]
        v0, v1 = var[0], var[1]
        pooled = ((n0 - 1) * v0 + (n1 - 1) * v1) / (n0 + n1 - 2)
        if equal_var:
            se_b = np.sqrt(pooled * (1.0 / n0 + 1.0 / n1))
        else:
            se_b = np.sqrt(v0 / n0 + v1 / n1)
        deg = (v0 + v1) <= _DEGENERATE_RTOL2 * (mean[0] ** 2 + mean[1] ** 2)
        t[sl] = np.where(deg, np.nan, tb)
        dfs[sl] = np.broadcast_to(dfb, tb.shape)
        effect[sl] = diff
        se[sl] = se_b
        sd_pooled[sl] = np.sqrt(pooled)
        degenerate[sl] = deg
    if bad_cols:
        _raise_nonfinite(bad_cols, n_bad, units, "Y")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = effect / sd_pooled
    d[degenerate] = np.nan
    if equal_var:
        df_out = float(n0 + n1 - 2)
        df_arr = df_out
    else:
        dfs[degenerate] = np.nan
        df_arr = dfs
        df_out = dfs.reshape(units.unit_shape)
    p = _t_pvalue(t, df_arr, alternative)
    z = _t_to_z(t, df_arr)
    n_deg = int(degenerate.sum())
    if n_deg:
        _warn_degenerate(n_deg, n_total, "welch_t")
    shape = units.unit_shape
    weights = np.array([[1.0 if c in pos else 0.0 for c in order],
                        [1.0 if c in neg else 0.0 for c in order]])
    return ContrastResult(
        contrast=con.expression, weights=weights, columns=tuple(order), stat="t",
        t=t.reshape(shape), f=None, p=p.reshape(shape), z=z.reshape(shape),
        effect=effect.reshape(shape), se=se.reshape(shape), cohen_d=d.reshape(shape),
        df=df_out, df_num=None, alternative=alternative,
        degenerate=degenerate.reshape(shape), n_degenerate=n_deg, layers=units.layers,
        params={"method": "student" if equal_var else "welch", "alternative": alternative,
                "contrast": con.expression, "equal_var": bool(equal_var),
                "positive": list(pos), "negative": list(neg),
                "n_positive": int(n0), "n_negative": int(n1)})
