"""Selectivity beyond two-condition contrasts: F maps, preferred conditions, indices,
and the topography of categorical maps.

Pure functions over responses ``(n_items, n_units)`` (or a dict of layers of them) and
one condition label per item, all units at once.

References
----------
Cliff, A. D., & Ord, J. K. (1981). Spatial processes: models and applications (join
counts). Pion.
Op de Beeck, H. P., Haushofer, J., & Kanwisher, N. G. (2008). Interpreting fMRI data:
maps, modules and dimensions. Nature Reviews Neuroscience, 9, 123-135.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import ndimage
from scipy import stats as sps

from ._utils._adjacency import (
    DEFAULT_ADJACENCY,
    UNSET,
    adjacency_name,
    check_adjacency,
    deprecated_alias,
    user_stacklevel,
)
from ._utils._docs import fill_doc
from ._utils._permutation import (
    as_seed_sequence,
    identity_permutation,
    label_permutations,
    permutation_pvalue,
    run_blocks,
    seed_record,
)
from ._utils._repr import FrameReprMixin
from ._utils._stats import group_moments, one_way_f, two_sample_t
from .correction import fdr_correction

__all__ = [
    "SelectivityResult", "JoinCountResult", "CategoryTopographyResult", "selectivity",
    "condition_profile", "join_counts", "category_joins", "category_patches",
    "category_permutation_test",
]


# --------------------------------------------------------------------------- validation
def _as_layers(responses) -> dict[str, np.ndarray]:
    if isinstance(responses, dict):
        layers = {str(k): np.asarray(v, dtype=np.float64) for k, v in responses.items()}
    else:
        arr = np.asarray(responses, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(
                f"responses must have shape (n_items, n_units) or be a dict of such arrays "
                f"per layer; got shape {arr.shape}."
            )
        layers = {"layer": arr}
    n_items = {v.shape[0] for v in layers.values()}
    if len(n_items) != 1 or any(v.ndim != 2 for v in layers.values()):
        raise ValueError("Every layer's responses must be (n_items, n_units) with the same "
                         "number of items.")
    for name, v in layers.items():
        bad = ~np.isfinite(v)
        if bad.any():
            units = np.unique(np.nonzero(bad)[1])
            raise ValueError(
                f"Layer {name!r} has non-finite responses in {units.size} units (first: "
                f"{units[:5].tolist()}). Remove or impute them first."
            )
    return layers


def _check_labels(labels, n_items: int):
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n_items:
        raise ValueError(
            f"labels must give one condition per item ({n_items}); got shape {labels.shape}."
        )
    conditions = list(dict.fromkeys(labels.tolist()))
    if len(conditions) < 2:
        raise ValueError(
            f"Selectivity needs at least two conditions; the labels hold only {conditions}."
        )
    counts = {c: int((labels == c).sum()) for c in conditions}
    few = [c for c, n in counts.items() if n < 2]
    if few:
        raise ValueError(
            f"Condition(s) {few} have fewer than 2 items; every condition needs at least 2 "
            f"to estimate its variance. Drop them or add items."
        )
    masks = np.stack([labels == c for c in conditions]).astype(np.float64)
    return labels, conditions, masks


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SelectivityResult(FrameReprMixin):
    """Omnibus F, preferred condition and selectivity indices of every unit.

    Each attribute below is a dict of layer name -> array.

    Attributes
    ----------
    f, p, eta_squared : ndarray of shape (n_units,)
        One-way ANOVA F over conditions, its p (upper tail) and eta squared. NaN for
        units that are constant within every condition.
    p_fdr : ndarray of shape (n_units,)
        Benjamini-Hochberg adjusted p over all layers together.
    preferred : ndarray of int, shape (n_units,)
        Index into ``conditions`` of the largest mean response.
    margin : ndarray of shape (n_units,)
        Preferred mean minus runner-up mean (response units).
    means : ndarray of shape (n_conditions, n_units)
    t_vs_rest, dprime : ndarray of shape (n_conditions, n_units)
        Welch t and d' = (mean_c - mean_rest) / sqrt((var_c + var_rest) / 2) of each
        condition against all others.
    conditions : list of str
    df_between, df_within : int
    params : dict
    """

    f: dict
    p: dict
    p_fdr: dict
    eta_squared: dict
    preferred: dict
    margin: dict
    means: dict
    t_vs_rest: dict
    dprime: dict
    conditions: list
    df_between: int
    df_within: int
    params: dict = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        return list(self.f)

    def significant(self, layer: str, alpha: float | None = None) -> np.ndarray:
        """Units whose omnibus F survives FDR at ``alpha`` (NaN p never does)."""
        alpha = self.params.get("alpha", 0.05) if alpha is None else alpha
        return np.nan_to_num(self.p_fdr[layer], nan=1.0) < alpha

    def to_frame(self) -> pd.DataFrame:
        """One row per layer x unit: preferred condition, margin, F, p, p_fdr, indices."""
        frames = []
        for layer in self.layers:
            d = {
                "layer": layer,
                "unit": np.arange(self.f[layer].size),
                "preferred": np.asarray(self.conditions, dtype=object)[self.preferred[layer]],
                "margin": self.margin[layer],
                "f": self.f[layer],
                "p": self.p[layer],
                "p_fdr": self.p_fdr[layer],
                "eta_squared": self.eta_squared[layer],
                "significant": self.significant(layer),
            }
            for k, c in enumerate(self.conditions):
                d[f"t_vs_rest_{c}"] = self.t_vs_rest[layer][k]
                d[f"dprime_{c}"] = self.dprime[layer][k]
            frames.append(pd.DataFrame(d))
        return pd.concat(frames, ignore_index=True)

    def __repr__(self) -> str:
        n_sig = sum(int(self.significant(layer).sum()) for layer in self.layers)
        n = sum(v.size for v in self.f.values())
        return (f"SelectivityResult({len(self.layers)} layers, {n} units, conditions="
                f"{self.conditions}, {n_sig} units with FDR-significant F)")


def selectivity(responses, labels, *, alpha: float = 0.05) -> SelectivityResult:
    """Omnibus F, preferred condition and selectivity indices for every unit.

    Parameters
    ----------
    responses : ndarray of shape (n_items, n_units) or dict of str to such arrays
        Unit responses (one array per layer).
    labels : array-like of shape (n_items,)
        Condition of each item; at least two conditions with at least two items each.
    alpha : float, default=0.05
        FDR level (Benjamini-Hochberg over all layers together) for ``significant``.

    Returns
    -------
    SelectivityResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(40, 6)); y[:20, 0] += 3
    >>> res = selectivity(y, ["a"] * 20 + ["b"] * 20)
    >>> int(res.preferred["layer"][0]), bool(res.significant("layer")[0])
    (0, True)
    """
    layers = _as_layers(responses)
    n_items = next(iter(layers.values())).shape[0]
    labels, conditions, masks = _check_labels(labels, n_items)
    k = len(conditions)
    f_all, p_all, eta, pref, margin, means, t_rest, dprime = ({} for _ in range(8))
    dfb = dfw = None
    for name, y in layers.items():
        f, dfb, dfw = one_way_f(y, masks)
        f_all[name] = f
        p_all[name] = np.where(np.isfinite(f), sps.f.sf(f, dfb, dfw), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            eta[name] = f * dfb / (f * dfb + dfw)
        _, m, _ = group_moments(y, masks)
        means[name] = m
        order = np.argsort(-m, axis=0, kind="stable")
        pref[name] = order[0]
        cols = np.arange(y.shape[1])
        margin[name] = m[order[0], cols] - m[order[1], cols]
        # condition c against the rest, all conditions at once: masks (k, 2, n_items)
        pair = np.stack([masks, 1.0 - masks], axis=1)
        t, _ = two_sample_t(y, pair, equal_var=False)
        t_rest[name] = t
        n, mm, vv = group_moments(y, pair.reshape(2 * k, n_items))
        mm, vv = mm.reshape(k, 2, -1), vv.reshape(k, 2, -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = (mm[:, 0] - mm[:, 1]) / np.sqrt((vv[:, 0] + vv[:, 1]) / 2)
        dprime[name] = np.where(np.isfinite(d), d, np.nan)
    p_fdr = fdr_correction(p_all, method="bh", alpha=alpha, over="all").p_adjusted
    return SelectivityResult(
        f=f_all, p=p_all, p_fdr=p_fdr, eta_squared=eta, preferred=pref, margin=margin,
        means=means, t_vs_rest=t_rest, dprime=dprime, conditions=conditions,
        df_between=int(dfb), df_within=int(dfw), params={"alpha": alpha, "correction": "fdr_bh",
                                                          "over": "all layers"},
    )


def condition_profile(responses, labels, units=None, *, confidence: float = 0.95,
                      zscore: bool = True) -> pd.DataFrame:
    """Mean response of a set of units by condition, with confidence intervals.

    Each item's response is averaged over ``units`` (after z-scoring each unit over items
    when ``zscore=True``, so units on different scales weigh alike); the table gives, per
    condition, the mean over items and a t-based interval.

    Parameters
    ----------
    responses : ndarray of shape (n_items, n_units)
    labels : array-like of shape (n_items,)
    units : ndarray of bool or int, optional
        Units to average (default all).

    Returns
    -------
    DataFrame with columns ``condition, n_items, n_units, mean, sd, ci_low, ci_high``.
    """
    y = np.asarray(responses, dtype=np.float64)
    labels = np.asarray(labels)
    if y.ndim != 2 or labels.shape != (y.shape[0],):
        raise ValueError(
            f"responses must be (n_items, n_units) with one label per item; got "
            f"{y.shape} and {labels.shape}."
        )
    if units is not None:
        y = y[:, units]
    if y.shape[1] == 0:
        raise ValueError("No units selected: the profile needs at least one unit.")
    if zscore:
        sd = y.std(0, ddof=1)
        sd = np.where(sd > 0, sd, 1.0)
        y = (y - y.mean(0)) / sd
    item_mean = y.mean(1)
    rows = []
    for c in dict.fromkeys(labels.tolist()):
        v = item_mean[labels == c]
        n = v.size
        m = float(v.mean())
        s = float(v.std(ddof=1)) if n > 1 else float("nan")
        half = sps.t.ppf(0.5 + confidence / 2, n - 1) * s / np.sqrt(n) if n > 1 else np.nan
        rows.append({"condition": c, "n_items": n, "n_units": y.shape[1], "mean": m,
                     "sd": s, "ci_low": m - half, "ci_high": m + half})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- join counts
def _edges(weights) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges (i < j) of a symmetric adjacency."""
    w = sp.triu(sp.csr_matrix(weights), k=1).tocoo()
    keep = w.data != 0
    return w.row[keep], w.col[keep]


@dataclass(frozen=True)
class JoinCountResult(FrameReprMixin):
    """Join counts of a binary map (1 = black, 0 = white) over binary weights.

    Attributes
    ----------
    bb, ww, bw : int
        Black-black, white-white and black-white joins (each neighbour pair once).
    J : int
        All joins.
    expected_bb, expected_bw : float
        Expectations under random (non-free) assignment of the same counts.
    """

    bb: int
    ww: int
    bw: int
    J: int
    expected_bb: float
    expected_bw: float

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.__dict__])


@deprecated_alias(weights="adjacency")
def join_counts(values, adjacency) -> JoinCountResult:
    """Binary join counts (as ``esda.Join_Counts``'s ``bb``, ``ww``, ``bw``, ``J``).

    Parameters
    ----------
    values : array-like of shape (n,)
        0/1 (or boolean) per location.
    adjacency : scipy.sparse matrix of shape (n, n) or libpysal W
        Symmetric adjacency; non-zero entries are joins (binary weights). For a sheet:
        ``sheet.weights(DEFAULT_ADJACENCY, transform="b")`` or :func:`unit_adjacency`.
        (Formerly ``weights=``, deprecated.)
    """
    y = np.asarray(values)
    if not np.isin(y, [0, 1]).all():
        raise ValueError("join_counts needs a binary map (0/1 or boolean values).")
    y = y.astype(np.int64).ravel()
    adjacency = check_adjacency(adjacency, n=y.size, allowed=())
    i, j = _edges(adjacency)
    a, b = y[i], y[j]
    bb = int((a & b).sum())
    ww = int(((1 - a) & (1 - b)).sum())
    J = int(i.size)
    n = y.size
    n1 = int(y.sum())
    e_bb = J * n1 * (n1 - 1) / (n * (n - 1))
    e_bw = 2 * J * n1 * (n - n1) / (n * (n - 1))
    return JoinCountResult(bb=bb, ww=ww, bw=J - bb - ww, J=J, expected_bb=e_bb, expected_bw=e_bw)


@deprecated_alias(weights="adjacency")
def category_joins(categories, adjacency) -> tuple[int, float]:
    """Same-category neighbour pairs and their expectation under random assignment.

    Parameters
    ----------
    categories : array-like of int, shape (n,)
        Category code per location; negative codes are blank and excluded with their
        joins.
    adjacency : scipy.sparse matrix of shape (n, n) or libpysal W
        Symmetric adjacency (formerly ``weights=``, deprecated).

    Returns
    -------
    same : int
        Number of joins whose two ends share a category.
    expected : float
        ``J * sum_k n_k (n_k - 1) / (n (n - 1))`` over the non-blank locations.
    """
    cat = np.asarray(categories).astype(np.int64).ravel()
    i, j = _edges(check_adjacency(adjacency, n=cat.size, allowed=()))
    keep = (cat[i] >= 0) & (cat[j] >= 0)
    i, j = i[keep], j[keep]
    same = int((cat[i] == cat[j]).sum())
    valid = cat[cat >= 0]
    n = valid.size
    counts = np.bincount(valid) if n else np.zeros(0)
    expected = i.size * float((counts * (counts - 1)).sum()) / (n * (n - 1)) if n > 1 else np.nan
    return same, expected


@deprecated_alias(connectivity="adjacency")
@fill_doc
def category_patches(category_map, labels=None, *,
                     adjacency: str = DEFAULT_ADJACENCY) -> pd.DataFrame:
    """Connected patches of same-category cells of a categorical sheet map.

    Parameters
    ----------
    category_map : ndarray of int, shape (n_rows, n_cols)
        Category codes; negative values (or NaN) are blank.
    labels : list of str, optional
        Names of the codes.
    adjacency : {"queen", "rook"}, default="queen"
        Which neighbouring cells join a patch (formerly ``connectivity=``, deprecated;
        its default was ``"rook"``).

    Returns
    -------
    DataFrame with columns ``patch, category, size, centroid_row, centroid_col``, largest
    first.
    """
    m = np.asarray(category_map, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"category_map must be 2D (n_rows, n_cols); got shape {m.shape}.")
    adjacency = check_adjacency(adjacency, allowed=("rook", "queen"))
    if not isinstance(adjacency, str):
        raise TypeError("category_patches takes adjacency 'rook' or 'queen' (a grid map); "
                        "got a matrix.")
    structure = ndimage.generate_binary_structure(2, 1 if adjacency == "rook" else 2)
    rows = []
    codes = np.unique(m[np.isfinite(m) & (m >= 0)]).astype(int)
    for code in codes:
        lab, n = ndimage.label(m == code, structure=structure)
        for k in range(1, n + 1):
            rr, cc = np.nonzero(lab == k)
            rows.append({"category": labels[code] if labels is not None else int(code),
                         "size": rr.size, "centroid_row": rr.mean(), "centroid_col": cc.mean()})
    df = pd.DataFrame(rows, columns=["category", "size", "centroid_row", "centroid_col"])
    df = df.sort_values("size", ascending=False, kind="stable").reset_index(drop=True)
    df.insert(0, "patch", np.arange(1, len(df) + 1))
    return df


@dataclass(frozen=True)
class CategoryTopographyResult(FrameReprMixin):
    """Do units that prefer the same condition sit together? (label-permutation test)

    Attributes
    ----------
    observed : ndarray of shape (n_layers,)
        Same-category joins over their expectation, minus 1 (0 = random arrangement).
    null : ndarray of shape (n_permutations, n_layers)
        The same statistic with item labels permuted (unit correlations kept).
    p : ndarray of shape (n_layers,)
        ``(1 + #{null >= observed}) / (1 + n_permutations)``, one-sided (clustering).
    z : ndarray of shape (n_layers,)
        ``(observed - null mean) / null sd``.
    layers : list of str
    params : dict
    """

    observed: np.ndarray
    null: np.ndarray
    p: np.ndarray
    z: np.ndarray
    layers: list
    params: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        has_null = self.null.shape[0] >= 2
        nan = np.full(len(self.layers), np.nan)
        return pd.DataFrame({"layer": self.layers, "same_category_excess": self.observed,
                             "null_mean": self.null.mean(0) if has_null else nan,
                             "null_sd": self.null.std(0, ddof=1) if has_null else nan,
                             "z": self.z, "p": self.p})


def _excess_joins(pref: np.ndarray, i: np.ndarray, j: np.ndarray, n_cat: int) -> np.ndarray:
    """Same-category joins over expectation minus 1, for preference maps (n_maps, n)."""
    same = (pref[:, i] == pref[:, j]).sum(1).astype(np.float64)
    n = pref.shape[1]
    counts = np.stack([(pref == c).sum(1) for c in range(n_cat)], axis=1).astype(np.float64)
    expected = i.size * (counts * (counts - 1)).sum(1) / (n * (n - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return same / expected - 1.0


def _category_null_chunk(layers, codes, perms, edges, k, blocks) -> np.ndarray:
    """Excess same-category joins of every layer for the given blocks of ``perms``."""
    return np.concatenate([_category_statistics(layers, codes, perms.block(int(b)), edges, k)
                           for b in blocks], axis=0)


def _category_statistics(layers: dict, codes: np.ndarray, idx: np.ndarray, edges: dict,
                         k: int) -> np.ndarray:
    """Excess same-category joins (k_perm, n_layers) for index rows ``idx`` (the identity
    row gives the observed statistic by the same arithmetic)."""
    pc = codes[idx]
    pm = (pc[:, None, :] == np.arange(k)[None, :, None]).astype(np.float64)
    out = np.empty((idx.shape[0], len(layers)))
    for col, (name, y) in enumerate(layers.items()):
        i, j = edges[name]
        _, mm, _ = group_moments(y, pm)
        out[:, col] = _excess_joins(np.argmax(mm, 1), i, j, k)
    return out


@deprecated_alias(weights="adjacency")
@fill_doc
def category_permutation_test(responses, labels, adjacency, *, n_permutations: int = 1000,
                              seed=None, n_jobs: int | None = None, verbose: int = 1,
                              block_size=UNSET) -> CategoryTopographyResult:
    """Label-permutation test of the clustering of preferred conditions on the sheet.

    The statistic is the excess of same-preference neighbour pairs over what a random
    arrangement of the same preference counts gives. Its null permutes the item labels,
    so the units' correlations (which a spatial loss makes smooth) are kept: only the
    link between conditions and responses is broken.

    Parameters
    ----------
    responses : ndarray (n_items, n_units) or dict of str to such arrays
    labels : array-like of shape (n_items,)
    adjacency : scipy.sparse matrix (n_units, n_units), libpysal W, or dict of str to such
        Adjacency between units (:func:`unit_adjacency` of a sheet, which uses the sheet
        default ``"queen"``). Formerly ``weights=`` (deprecated). Recorded in
        ``params["adjacency"]``.
    n_permutations : int, default=1000
        Number of label permutations ``B`` (0: the observed statistic only, no p). When
        the labels allow no more than ``B`` distinct arrangements they are all used (an
        exact test); otherwise ``B`` distinct, non-identity ones are drawn.
    %(seed)s
    %(n_jobs)s
    %(verbose)s
    block_size : int, optional
        Deprecated and ignored: permutations come in the permutation core's fixed
        blocks, so the null never depends on a block size.

    Returns
    -------
    CategoryTopographyResult
        ``p`` one-sided (clustering): ``(1 + #{null >= observed}) / (1 + B)``, or
        ``#{null >= observed} / B`` when exact; ties within rounding count.
    """
    if block_size is not UNSET:
        warnings.warn("block_size is deprecated and ignored: the null is drawn in the "
                      "permutation core's fixed blocks and never depends on it.",
                      DeprecationWarning, stacklevel=user_stacklevel())
    layers = _as_layers(responses)
    n_items = next(iter(layers.values())).shape[0]
    labels, conditions, masks = _check_labels(labels, n_items)
    k = len(conditions)
    if isinstance(n_permutations, (bool, np.bool_)) or not isinstance(
            n_permutations, (int, np.integer)) or n_permutations < 0:
        raise ValueError(f"n_permutations must be a non-negative int; got {n_permutations!r}.")
    ws = adjacency if isinstance(adjacency, dict) else {name: adjacency for name in layers}
    missing = [name for name in layers if name not in ws]
    if missing:
        raise ValueError(f"No adjacency for layers {missing}: give adjacency one (n_units, "
                         "n_units) matrix or a dict with every layer's.")
    edges = {name: _edges(check_adjacency(ws[name], n=y.shape[1], allowed=()))
             for name, y in layers.items()}
    ss = as_seed_sequence(seed)
    codes = np.array([conditions.index(c) for c in labels.tolist()])
    observed = _category_statistics(layers, codes, identity_permutation(n_items), edges, k)[0]
    exact, n_distinct = False, None
    if n_permutations:
        perms = label_permutations(ss, int(n_permutations), codes)
        exact, n_distinct = perms.exact, perms.n_distinct
        func = functools.partial(_category_null_chunk, layers, codes, perms, edges, k)
        null = np.concatenate(run_blocks(func, range(perms.n_blocks), n_jobs=n_jobs,
                                         verbose=verbose, desc="category permutations"),
                              axis=0)
    else:
        null = np.zeros((0, len(layers)))
    if null.shape[0] < 2:  # no null: no p or z
        p = z = np.full(observed.shape, np.nan)
    else:
        p = permutation_pvalue(observed, null, "greater", exact=exact)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (observed - null.mean(0)) / null.std(0, ddof=1)
    params = {"n_permutations": int(null.shape[0]),
              "n_permutations_requested": int(n_permutations), "exact": exact,
              "n_distinct_permutations": n_distinct, **seed_record(ss),
              "conditions": conditions, "alternative": "greater",
              "adjacency": {name: adjacency_name(w) for name, w in ws.items()}
              if isinstance(adjacency, dict) else adjacency_name(adjacency)}
    return CategoryTopographyResult(observed=observed, null=null, p=p, z=z, layers=list(layers),
                                    params=params)


@deprecated_alias(kind="adjacency")
def unit_adjacency(sheet, adjacency: str = DEFAULT_ADJACENCY) -> sp.csr_matrix:
    """Binary adjacency between the units of a sheet (units sharing a cell are joined).

    Parameters
    ----------
    sheet : CorticalSheet
    adjacency : {"queen", "rook"}, default="queen"
        Neighbouring cells (formerly ``kind=``, deprecated; its default was ``"rook"``).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_units, n_units)
    """
    from .sheet import grid_weights

    adjacency = check_adjacency(adjacency, allowed=("rook", "queen"))
    if not isinstance(adjacency, str):
        raise TypeError("unit_adjacency takes adjacency 'rook' or 'queen'; got a matrix.")
    cell_w = grid_weights(sheet.shape, adjacency, transform="b")
    cells = sheet.cell_index
    onehot = sp.csr_matrix((np.ones(cells.size), (np.arange(cells.size), cells)),
                           shape=(cells.size, sheet.n_cells))
    adj = onehot @ cell_w @ onehot.T
    same = onehot @ onehot.T
    adj = adj + same - sp.identity(cells.size)
    adj = sp.csr_matrix(adj)
    adj.eliminate_zeros()
    adj.data[:] = 1.0
    return adj


__all__.append("unit_adjacency")
