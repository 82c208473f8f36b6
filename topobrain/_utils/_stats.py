"""Vectorised statistic kernels shared by glm, clusters, inference and selectivity.

Private and trusting: inputs are validated by the public functions that call these.
All kernels work on every unit at once and on a leading batch of permutations.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "NEAR_CONSTANT_RTOL",
    "group_moments",
    "moran_i_raw",
    "near_constant",
    "one_sample_t",
    "one_way_f",
    "two_sample_t",
]

#: A map whose standard deviation is at most this fraction of its largest absolute value
#: is constant up to rounding (float64 carries ~16 digits: a "map" whose spread sits
#: 10 digits below its magnitude is a constant plus arithmetic noise).
NEAR_CONSTANT_RTOL = 1e-10


def near_constant(values, axis=-1) -> np.ndarray:
    """True where a map's variation is at rounding level relative to its magnitude.

    Parameters
    ----------
    values : array-like
        Maps along ``axis`` (NaN entries, e.g. cells where no unit sits, are ignored).
    axis : int or tuple of int, default=-1
        The axis (or axes) holding one map's values.

    Returns
    -------
    ndarray of bool
        ``values`` reduced over ``axis``: True where ``std <= NEAR_CONSTANT_RTOL *
        max|value|`` over the finite entries (exact constancy included), or where fewer
        than two entries are finite. Statistics of such maps (Moran's I, t, clusters)
        would be ratios of rounding errors: callers return NaN with a warning.

    Examples
    --------
    >>> near_constant(np.array([[1.0, 1.0 + 1e-15, 1.0], [0.0, 1.0, 2.0]]))
    array([ True, False])
    """
    x = np.asarray(values, dtype=np.float64)
    axes = tuple(np.atleast_1d(axis) % max(x.ndim, 1))
    n = int(np.prod([x.shape[a] for a in axes])) if x.ndim else 1
    if x.size and n:
        # cheap screen: sd >= (max - min) / sqrt(2 n), so a wide range rules a map out
        # (NaN ranges stay candidates and get the full check)
        with np.errstate(invalid="ignore"):
            top, bottom = x.max(axis), x.min(axis)
            wide = (top - bottom) > np.sqrt(2.0 * n) * NEAR_CONSTANT_RTOL * np.maximum(
                np.abs(top), np.abs(bottom))
        if wide.all():
            return np.zeros(wide.shape, dtype=bool)
    finite = np.isfinite(x)
    xz = np.where(finite, x, 0.0)
    count = finite.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xz.sum(axis, keepdims=True) / np.maximum(finite.sum(axis, keepdims=True), 1)
        dev = np.where(finite, x - mean, 0.0)
        sd = np.sqrt((dev * dev).sum(axis) / np.maximum(count, 1))
    scale = np.abs(xz).max(axis, initial=0.0)
    return (count < 2) | (sd <= NEAR_CONSTANT_RTOL * scale)


def group_moments(y: np.ndarray, masks: np.ndarray):
    """Counts, means and unbiased variances of groups of rows.

    Parameters
    ----------
    y : ndarray of shape (n_items, n_units)
    masks : ndarray of float or bool, shape (..., n_groups, n_items)
        Membership of each item in each group (a leading batch axis for permutations).

    Returns
    -------
    n : ndarray of shape (..., n_groups, 1)
    mean, var : ndarray of shape (..., n_groups, n_units)
    """
    m = np.asarray(masks, dtype=np.float64)
    n = m.sum(-1, keepdims=True)
    centre = y.mean(0)
    yc = y - centre  # centring first keeps the one-pass variance accurate
    lead = m.shape[:-1]
    flat = m.reshape(-1, m.shape[-1])  # one 2D product: far faster than a stacked matmul
    s1 = (flat @ yc).reshape(*lead, -1)
    s2 = (flat @ (yc * yc)).reshape(*lead, -1)
    mean_c = s1 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (s2 - n * mean_c * mean_c) / (n - 1)
    return n, mean_c + centre, np.maximum(var, 0.0)


def two_sample_t(y: np.ndarray, masks: np.ndarray, equal_var: bool = False):
    """Two-sample t of group 0 minus group 1 for every unit.

    Parameters
    ----------
    y : ndarray of shape (n_items, n_units)
    masks : ndarray of shape (..., 2, n_items)
        Rows: membership of group 0 and group 1.
    equal_var : bool
        Pooled-variance Student t (True) or Welch t (False).

    Returns
    -------
    t : ndarray of shape (..., n_units)
        NaN where both variances are zero.
    df : ndarray of shape (..., n_units) (Welch) or (..., 1) (pooled)
    """
    n, mean, var = group_moments(y, masks)
    n0, n1 = n[..., 0, :], n[..., 1, :]
    v0, v1 = var[..., 0, :], var[..., 1, :]
    diff = mean[..., 0, :] - mean[..., 1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        if equal_var:
            df = n0 + n1 - 2
            sp2 = ((n0 - 1) * v0 + (n1 - 1) * v1) / df
            se = np.sqrt(sp2 * (1.0 / n0 + 1.0 / n1))
        else:
            a, b = v0 / n0, v1 / n1
            se = np.sqrt(a + b)
            df = (a + b) ** 2 / (a * a / (n0 - 1) + b * b / (n1 - 1))
        t = diff / se
    t = np.where(se > 0, t, np.nan)
    return t, df


def one_sample_t(y: np.ndarray) -> np.ndarray:
    """One-sample t of the mean against 0 for every unit (two-pass standard deviation).

    Sign-flipped t statistics come from the permutation core's
    ``permuted_one_sample_t``, which also gives the observed statistic of a
    permutation test (the identity flip) by the same arithmetic as the flipped ones.

    Parameters
    ----------
    y : ndarray of shape (n_items, n_units)

    Returns
    -------
    t : ndarray of shape (n_units,)
        NaN where the standard deviation is 0.
    """
    n = y.shape[0]
    mean = y.mean(0)
    sd = y.std(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / np.sqrt(n))
    return np.where(sd > 0, t, np.nan)


def one_way_f(y: np.ndarray, masks: np.ndarray):
    """One-way ANOVA F for every unit.

    Parameters
    ----------
    y : ndarray of shape (n_items, n_units)
    masks : ndarray of shape (..., n_groups, n_items)

    Returns
    -------
    f : ndarray of shape (..., n_units)
    df_between, df_within : int
    """
    n, mean, var = group_moments(y, masks)
    n_total = n.sum(-2)
    k = n.shape[-2]
    grand = (n * mean).sum(-2) / n_total
    ss_between = (n * (mean - grand[..., None, :]) ** 2).sum(-2)
    ss_within = ((n - 1) * var).sum(-2)
    dfb, dfw = k - 1, n_total - k
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ss_between / dfb) / (ss_within / dfw)
    return np.where(ss_within > 0, f, np.nan), int(dfb), int(np.ravel(dfw)[0])


def moran_i_raw(z: np.ndarray, weights: sp.csr_matrix) -> np.ndarray:
    """Moran's I of many maps over the same weights, no inference.

    Parameters
    ----------
    z : ndarray of shape (n_maps, n_cells)
        Values (need not be centred; they are centred here). No NaN.
    weights : scipy.sparse matrix of shape (n_cells, n_cells)

    Returns
    -------
    ndarray of shape (n_maps,)
        ``I = (n / S0) * (z' W z) / (z' z)`` with centred ``z``.
    """
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    z = z - z.mean(-1, keepdims=True)
    n = z.shape[-1]
    s0 = weights.sum()
    wz = (weights @ z.T).T
    num = (z * wz).sum(-1)
    den = (z * z).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (n / s0) * num / den
