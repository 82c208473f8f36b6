"""Multiple-comparison correction over units: FDR (BH, BY), Bonferroni, Holm.

The published localizers correct over all layers together (Benjamini-Hochberg FDR over
every unit of every layer, q < .05, as TopoLM does); ``over="layer"`` corrects each
layer on its own. p-values come as one array (any shape), a 2D ``(n_layers, n_units)``
array or a dict ``layer -> p array``. NaN p-values (degenerate units) are left out of
the correction: they do not count towards the number of tests, their adjusted p is NaN
and they are never significant; the result reports how many were left out.

The public names: :func:`correct_pvalues` (any method), :func:`fdr_correction` (BH or
BY), and the frozen result :class:`CorrectionResult` with ``p_adjusted``, ``mask``,
``mask_at(alpha)`` and ``to_frame()``.

References
----------
Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate: a practical
and powerful approach to multiple testing. Journal of the Royal Statistical Society B,
57, 289-300.

Benjamini, Y. & Yekutieli, D. (2001). The control of the false discovery rate in
multiple testing under dependency. Annals of Statistics, 29, 1165-1188.

Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian
Journal of Statistics, 6, 65-70.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ._utils._repr import FrameReprMixin
from ._utils._validation import check_option

__all__ = ["CorrectionResult", "correct_pvalues", "fdr_correction"]

Method = Literal["bh", "by", "bonferroni", "holm"]
Over = Literal["all", "layer"]
METHODS: tuple[str, ...] = ("bh", "by", "bonferroni", "holm")
OVERS: tuple[str, ...] = ("all", "layer")
# statsmodels' names, accepted as aliases.
_ALIASES = {"fdr_bh": "bh", "fdr_by": "by", "benjamini-hochberg": "bh",
            "benjamini-yekutieli": "by"}


@dataclass(frozen=True, repr=False)
class CorrectionResult(FrameReprMixin):
    """Adjusted p-values and significance masks.

    ``p_adjusted`` and ``mask`` have the structure of the input: an ndarray of the same
    shape, or a dict with the same keys and shapes.

    Attributes
    ----------
    p : ndarray or dict of ndarray
        The p-values as given (a copy).
    p_adjusted : ndarray or dict of ndarray
        Adjusted p-values (BH/BY: q-values), in [0, 1]; NaN where ``p`` is NaN.
    mask : ndarray of bool or dict of ndarray of bool
        ``p_adjusted <= alpha``: the tests declared significant at ``alpha``.
    alpha : float
        The family-wise error rate (Bonferroni, Holm) or false discovery rate (BH, BY).
    method : {"bh", "by", "bonferroni", "holm"}
    over : {"all", "layer"}
        Corrected over all entries together, or over each layer (first axis, or dict
        key) separately.
    groups : tuple
        The groups corrected separately: ``("all",)``, or the layer keys/indices.
    n_tests : ndarray of int, shape (n_groups,)
        Number of p-values that entered each group's correction (non-NaN).
    threshold : ndarray of float, shape (n_groups,)
        Largest raw p declared significant in each group (NaN where none is).
    n_rejected : int
        Significant tests in all.
    n_excluded : int
        NaN p-values left out of the correction (degenerate units).
    layers : tuple or None
        Keys of a dict input (None for arrays).
    params : dict
        ``method``, ``alpha``, ``over``.
    """

    p: object
    p_adjusted: object
    mask: object
    alpha: float
    method: str
    over: str
    groups: tuple
    n_tests: np.ndarray
    threshold: np.ndarray
    n_rejected: int
    n_excluded: int
    layers: tuple | None = None
    params: dict = field(default_factory=dict)

    def mask_at(self, alpha: float):
        """Significance mask at another level, ``p_adjusted <= alpha``.

        Parameters
        ----------
        alpha : float in (0, 1)

        Returns
        -------
        ndarray of bool or dict of ndarray of bool
            Same structure as ``mask``.
        """
        alpha = _check_alpha(alpha)
        if isinstance(self.p_adjusted, dict):
            return {k: _le(v, alpha) for k, v in self.p_adjusted.items()}
        return _le(self.p_adjusted, alpha)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table, one row per test: ``(layer,) unit, p, p_adjusted, significant``.

        For arrays of two or more dimensions the first axis is ``layer`` (its index) and
        ``unit`` the flat index within it.
        """
        if isinstance(self.p, dict):
            parts = []
            for k in self.p:
                p = np.ravel(self.p[k])
                parts.append(pd.DataFrame({
                    "layer": [k] * p.size, "unit": np.arange(p.size), "p": p,
                    "p_adjusted": np.ravel(self.p_adjusted[k]),
                    "significant": np.ravel(self.mask[k])}))
            frame = pd.concat(parts, ignore_index=True)
        else:
            p = np.asarray(self.p)
            cols = {}
            if p.ndim >= 2:
                per = p[0].size
                cols["layer"] = np.repeat(np.arange(p.shape[0]), per)
                cols["unit"] = np.tile(np.arange(per), p.shape[0])
            else:
                cols["unit"] = np.arange(p.size)
            cols.update(p=p.ravel(), p_adjusted=np.ravel(self.p_adjusted),
                        significant=np.ravel(self.mask))
            frame = pd.DataFrame(cols)
        frame.insert(0, "method", self.method)
        return frame

    def __repr__(self) -> str:
        return (f"CorrectionResult(method={self.method!r}, alpha={self.alpha:g}, "
                f"over={self.over!r}, n_tests={int(self.n_tests.sum())}, "
                f"n_rejected={self.n_rejected}, n_excluded={self.n_excluded})")


def _le(a: np.ndarray, alpha: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray(a) <= alpha


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating,
                                                         np.integer)):
        raise TypeError(f"alpha must be a number in (0, 1); got {type(alpha).__name__}.")
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha}.")
    return alpha


def _check_p(p, where: str) -> np.ndarray:
    try:
        arr = np.array(p, dtype=np.float64)  # a copy: the caller's array is never touched
    except (TypeError, ValueError):
        raise TypeError(
            f"p-values must be numbers; {where} holds {type(p).__name__} that cannot be "
            f"converted to float."
        ) from None
    if arr.size == 0:
        raise ValueError(f"{where} holds no p-value.")
    with np.errstate(invalid="ignore"):
        bad = np.isinf(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        idx = np.argwhere(bad) if arr.ndim else np.zeros((1, 0), dtype=int)
        first = tuple(int(i) for i in idx[0])
        raise ValueError(
            f"p-values must lie in [0, 1] (NaN marks an untested unit); {where} holds "
            f"{int(bad.sum())} value(s) outside, first {float(arr[bad][0])!r} at index {first}."
        )
    return arr


def _adjust(p: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values of a 1-D array of finite p-values."""
    m = p.size
    if m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ps = p[order]
    rank = np.arange(1, m + 1, dtype=np.float64)
    if method in ("bh", "by"):
        adj = ps * (m / rank)
        if method == "by":
            adj *= np.sum(1.0 / rank)
        adj = np.minimum.accumulate(adj[::-1])[::-1]
    else:  # holm: step-down
        adj = np.maximum.accumulate(ps * (m - rank + 1.0))
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _correct_flat(p: np.ndarray, method: str) -> tuple[np.ndarray, int]:
    """Adjust the finite entries of a flat array; NaN stays NaN. Returns (adj, n_tests)."""
    finite = ~np.isnan(p)
    out = np.full(p.shape, np.nan)
    out[finite] = _adjust(p[finite], method)
    return out, int(finite.sum())


def _threshold(p: np.ndarray, mask: np.ndarray) -> float:
    return float(p[mask].max()) if mask.any() else float("nan")


def correct_pvalues(p, *, method: Method = "bh", alpha: float = 0.05,
                    over: Over = "all") -> CorrectionResult:
    """Correct p-values for multiple comparisons over units (and layers).

    Parameters
    ----------
    p : array-like or dict of array-like
        p-values in [0, 1] (any sidedness, as long as it is the one you mean): one array
        of any shape, a 2D array ``(n_layers, n_units)``, or a dict ``layer -> p array``.
        NaN marks untested (degenerate) units, which are left out. Never modified.
    method : {"bh", "by", "bonferroni", "holm"}, default="bh"
        Benjamini-Hochberg FDR (independent or positively dependent tests),
        Benjamini-Yekutieli FDR (any dependence), Bonferroni or Holm family-wise error
        control. statsmodels' names ``"fdr_bh"`` and ``"fdr_by"`` are accepted.
    alpha : float, default=0.05
        The false discovery rate (BH, BY) or family-wise error rate (Bonferroni, Holm).
    over : {"all", "layer"}, default="all"
        ``"all"``: one family of every p-value together (the published choice, all
        layers at once). ``"layer"``: each layer its own family (the first axis of an
        array of two or more dimensions, or each dict key).

    Returns
    -------
    CorrectionResult
        ``p_adjusted`` (the adjusted p-values of ``scipy.stats.false_discovery_control``
        and ``statsmodels.stats.multitest.multipletests``), ``mask`` (significant at
        ``alpha``), counts and per-group thresholds.

    Examples
    --------
    >>> res = correct_pvalues([0.01, 0.04, 0.03, 0.2], method="bh")
    >>> res.p_adjusted.round(3).tolist(), res.mask.tolist()
    ([0.04, 0.053, 0.053, 0.2], [True, False, False, False])
    >>> correct_pvalues({"l0": [0.001, 0.5], "l1": [0.02, 0.9]}, over="layer").n_rejected
    2
    """
    if isinstance(method, str):
        method = _ALIASES.get(method.lower(), method)
    check_option("method", method, METHODS)
    check_option("over", over, OVERS)
    alpha = _check_alpha(alpha)

    if isinstance(p, Mapping):
        if not p:
            raise ValueError("p is an empty dict; pass at least one layer of p-values.")
        keys = tuple(p.keys())
        arrays = {k: _check_p(v, f"p[{k!r}]") for k, v in p.items()}
        if over == "all":
            flat = np.concatenate([a.ravel() for a in arrays.values()])
            adj_flat, n = _correct_flat(flat, method)
            adjusted, start = {}, 0
            for k, a in arrays.items():
                adjusted[k] = adj_flat[start:start + a.size].reshape(a.shape)
                start += a.size
            groups, n_tests = ("all",), [n]
            masks = {k: _le(v, alpha) for k, v in adjusted.items()}
            thresholds = [_threshold(flat, _le(adj_flat, alpha))]
        else:
            adjusted, n_tests, thresholds, masks = {}, [], [], {}
            for k, a in arrays.items():
                adj, n = _correct_flat(a.ravel(), method)
                adjusted[k] = adj.reshape(a.shape)
                masks[k] = _le(adjusted[k], alpha)
                n_tests.append(n)
                thresholds.append(_threshold(a.ravel(), masks[k].ravel()))
            groups = keys
        n_excluded = int(sum(np.isnan(a).sum() for a in arrays.values()))
        n_rejected = int(sum(m.sum() for m in masks.values()))
        p_out = arrays
        layers = keys
    else:
        arr = _check_p(p, "p")
        if over == "all" or arr.ndim < 2:
            adj, n = _correct_flat(arr.ravel(), method)
            adjusted = adj.reshape(arr.shape)
            groups, n_tests = ("all",) if over == "all" else (0,), [n]
            masks = _le(adjusted, alpha)
            thresholds = [_threshold(arr.ravel(), masks.ravel())]
        else:
            adjusted = np.empty(arr.shape)
            n_tests, thresholds = [], []
            for i in range(arr.shape[0]):
                adj, n = _correct_flat(arr[i].ravel(), method)
                adjusted[i] = adj.reshape(arr.shape[1:])
                n_tests.append(n)
                thresholds.append(_threshold(arr[i].ravel(), _le(adj, alpha)))
            groups = tuple(range(arr.shape[0]))
            masks = _le(adjusted, alpha)
        n_excluded = int(np.isnan(arr).sum())
        n_rejected = int(masks.sum())
        p_out = arr
        layers = None
    return CorrectionResult(
        p=p_out, p_adjusted=adjusted, mask=masks, alpha=alpha, method=method, over=over,
        groups=tuple(groups), n_tests=np.asarray(n_tests, dtype=np.int64),
        threshold=np.asarray(thresholds, dtype=np.float64), n_rejected=n_rejected,
        n_excluded=n_excluded, layers=layers,
        params={"method": method, "alpha": alpha, "over": over})


def fdr_correction(p, *, method: Literal["bh", "by"] = "bh", alpha: float = 0.05,
                   over: Over = "all") -> CorrectionResult:
    """False discovery rate correction (Benjamini-Hochberg or Benjamini-Yekutieli).

    :func:`correct_pvalues` restricted to ``method="bh"`` or ``"by"``; see it for the
    parameters. TopoLM's localizer: ``fdr_correction(p_all_layers, alpha=0.05,
    over="all")``.

    Examples
    --------
    >>> fdr_correction([0.001, 0.01, 0.02, 0.5]).mask.tolist()
    [True, True, True, False]
    """
    if isinstance(method, str):
        method = _ALIASES.get(method.lower(), method)
    check_option("method", method, ("bh", "by"))
    return correct_pvalues(p, method=method, alpha=alpha, over=over)
