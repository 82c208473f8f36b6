"""fMRI-like readout: Gaussian smoothing of each item's map on the cortical sheet.

A voxel's BOLD signal pools many neurons; TopoLM imitates it by smoothing each item's
unit map with a Gaussian of FWHM 2 sheet units before the statistics. Smoothing is its
own step, so every analysis can run with it and without it::

    acts = extract(model, stimuli)
    smoothed = smooth(acts, fwhm=2.0)

Smoothing is NaN-aware normalised convolution: the values (zero where no unit sits or
the value is NaN) and the mask of valid cells are smoothed separately and divided, so
an empty cell never pulls its neighbours towards zero and edges are not darkened.
Cells without a valid value stay NaN. Units that share a cell are averaged into the
cell first (:meth:`CorticalSheet.to_map`) and all receive the cell's smoothed value
(:meth:`CorticalSheet.from_map`).

This module never imports torch.

References
----------
Rathi, N., Mehrer, J., AlKhamissi, B., Binhuraib, T., Blauch, N. M., & Schrimpf, M.
(2025). TopoLM: brain-like spatio-functional organization in a topographic language
model. ICLR 2025.
Knutsson, H., & Westin, C.-F. (1993). Normalized and differential convolution. CVPR.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._utils._validation import check_finite
from .activations import Activations
from .sheet import CorticalSheet

__all__ = ["fwhm_to_sigma", "max_fwhm", "check_fwhm", "smooth", "smooth_maps",
           "smooth_units"]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def fwhm_to_sigma(fwhm: float) -> float:
    """Standard deviation of a Gaussian of full width at half maximum ``fwhm``.

    ``sigma = fwhm / (2 * sqrt(2 * ln 2))``, both in sheet units.

    Examples
    --------
    >>> round(fwhm_to_sigma(2.0), 6)
    0.849322
    """
    return _check_fwhm(fwhm) / _FWHM_PER_SIGMA


def _check_fwhm(fwhm) -> float:
    if isinstance(fwhm, bool) or not isinstance(fwhm, (int, float, np.integer, np.floating)):
        raise TypeError(f"fwhm must be a number (sheet units); got {type(fwhm).__name__}.")
    fwhm = float(fwhm)
    if not math.isfinite(fwhm) or fwhm < 0:
        raise ValueError(
            f"fwhm must be a finite number >= 0 (sheet units; 0 means no smoothing); got "
            f"{fwhm}."
        )
    return fwhm


def max_fwhm(shape) -> float:
    """The widest readout Gaussian a sheet takes: its diagonal, in sheet units.

    At that FWHM the Gaussian still weighs the sheet's farthest cells 1/16 of the
    nearest ones; far beyond it every smoothed map is one value up to rounding (and
    statistics on it would be reading rounding noise), so wider kernels are refused.

    Parameters
    ----------
    shape : CorticalSheet or tuple of int
        A sheet, or a grid shape ``(n_rows, n_cols)``.

    Returns
    -------
    float
        ``hypot(n_rows, n_cols)``.

    Examples
    --------
    >>> round(max_fwhm((28, 28)), 2)
    39.6
    """
    if isinstance(shape, CorticalSheet):
        shape = shape.shape
    n_rows, n_cols = (int(s) for s in shape)
    return math.hypot(n_rows, n_cols)


def check_fwhm(fwhm, sheets) -> float:
    """Validate a readout FWHM against the sheets it will smooth, before any work.

    Parameters
    ----------
    fwhm : float
        FWHM in sheet units; 0 means no smoothing.
    sheets : CorticalSheet, tuple of int, or dict of str to CorticalSheet
        One sheet (or grid shape), or a model's ``sheets``; the smallest one bounds
        ``fwhm``.

    Returns
    -------
    float
        ``fwhm`` as a float.

    Raises
    ------
    TypeError
        When ``fwhm`` is not a number.
    ValueError
        When ``fwhm`` is negative, not finite, or wider than a sheet's diagonal
        (:func:`max_fwhm`); the message gives the allowed range.

    Examples
    --------
    >>> check_fwhm(2, CorticalSheet((28, 28)))
    2.0
    """
    fwhm = _check_fwhm(fwhm)
    if isinstance(sheets, dict):
        if not sheets:
            return fwhm
        layer = min(sheets, key=lambda k: max_fwhm(sheets[k]))
        limit, where = max_fwhm(sheets[layer]), f"layer {layer!r}"
        shape = sheets[layer].shape if isinstance(sheets[layer], CorticalSheet) \
            else tuple(sheets[layer])
    else:
        limit, where = max_fwhm(sheets), "the sheet"
        shape = sheets.shape if isinstance(sheets, CorticalSheet) else tuple(sheets)
    if fwhm > limit:
        raise ValueError(
            f"fwhm must be between 0 and {limit:.4g} sheet units (the diagonal of the "
            f"{shape[0]} x {shape[1]} grid of {where}); got {fwhm:g}, which would smooth "
            f"every map into one value. TopoLM's readout uses 2."
        )
    return fwhm


def _check_truncate(truncate) -> float:
    truncate = float(truncate)
    if not math.isfinite(truncate) or truncate <= 0:
        raise ValueError(f"truncate must be a positive number of sigmas; got {truncate}.")
    return truncate


def _kernel_matrix(n: int, sigma: float, truncate: float) -> np.ndarray:
    """Banded ``(n, n)`` matrix of Gaussian weights, zero beyond the truncation radius.

    The radius is ``int(truncate * sigma + 0.5)`` cells, as in
    :func:`scipy.ndimage.gaussian_filter`; the weights need no normalisation because
    normalised convolution divides it out.
    """
    radius = int(truncate * sigma + 0.5)
    d = np.subtract.outer(np.arange(n), np.arange(n)).astype(np.float64)
    k = np.exp(-0.5 * (d / sigma) ** 2)
    k[np.abs(d) > radius] = 0.0
    return k


def smooth_maps(maps, fwhm: float = 2.0, *, truncate: float = 4.0) -> np.ndarray:
    """NaN-aware Gaussian smoothing of 2D maps.

    Parameters
    ----------
    maps : array-like of shape (..., n_rows, n_cols)
        One or more maps; NaN marks cells without a value.
    fwhm : float, default=2.0
        Full width at half maximum of the Gaussian, in sheet units (cells), from 0 (a
        float64 copy) to the grid's diagonal (:func:`max_fwhm`).
    truncate : float, default=4.0
        The kernel stops at ``int(truncate * sigma + 0.5)`` cells along each axis.

    Returns
    -------
    ndarray of float64, shape (..., n_rows, n_cols)
        ``G * (x m) / G * m`` where ``m`` is 1 on finite cells and ``G *`` the Gaussian
        convolution with zeros beyond the edges. NaN where ``maps`` is NaN.

    Examples
    --------
    >>> m = np.array([[1.0, np.nan], [3.0, 5.0]])
    >>> out = smooth_maps(m, fwhm=2.0)
    >>> bool(np.isnan(out[0, 1])), bool(np.all(out[~np.isnan(m)] > 1.0))
    (True, True)
    """
    fwhm = _check_fwhm(fwhm)
    truncate = _check_truncate(truncate)
    x = np.array(maps, dtype=np.float64, copy=True)
    if x.ndim < 2:
        raise ValueError(
            f"maps must have shape (..., n_rows, n_cols); got shape {x.shape}. Turn unit "
            f"values into maps with sheet.to_map(values) or use smooth_units."
        )
    check_finite(x, "maps", allow_nan=True)
    n_rows, n_cols = x.shape[-2:]
    check_fwhm(fwhm, (n_rows, n_cols))
    if fwhm == 0:
        return x
    sigma = fwhm / _FWHM_PER_SIGMA
    k_rows = _kernel_matrix(n_rows, sigma, truncate)
    k_cols = _kernel_matrix(n_cols, sigma, truncate)
    valid = ~np.isnan(x)
    m = valid.astype(np.float64)
    x[~valid] = 0.0
    num = k_rows @ x @ k_cols.T
    # the mask is usually the same map for every item: smooth it once then
    flat_valid = valid.reshape(-1, n_rows, n_cols)
    if flat_valid.shape[0] > 1 and np.all(flat_valid == flat_valid[:1]):
        den = k_rows @ m.reshape(-1, n_rows, n_cols)[0] @ k_cols.T
    else:
        den = k_rows @ m @ k_cols.T
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out


def smooth_units(values, sheet: CorticalSheet, fwhm: float = 2.0, *,
                 truncate: float = 4.0) -> np.ndarray:
    """Smooth unit values on their sheet: ``from_map(smooth_maps(to_map(values)))``.

    Parameters
    ----------
    values : array-like of shape (..., n_units)
    sheet : CorticalSheet
    fwhm : float, default=2.0
        FWHM in sheet units, at most the sheet's diagonal (:func:`max_fwhm`).
    truncate : float, default=4.0

    Returns
    -------
    ndarray of float64, shape (..., n_units)
        Units that share a cell all get the cell's smoothed value; a unit whose value is
        NaN stays NaN and does not enter its neighbours.
    """
    if not isinstance(sheet, CorticalSheet):
        raise TypeError(f"sheet must be a CorticalSheet; got {type(sheet).__name__}.")
    check_fwhm(fwhm, sheet)
    return sheet.from_map(smooth_maps(sheet.to_map(values), fwhm, truncate=truncate))


def smooth(acts: Activations, fwhm: float = 2.0, *, truncate: float = 4.0) -> Activations:
    """The fMRI-like readout: smooth every item's map of every layer on its sheet.

    Parameters
    ----------
    acts : Activations
        Responses from :func:`topobrain.extract.extract`.
    fwhm : float, default=2.0
        FWHM of the Gaussian in sheet units (TopoLM: 2), at most the smallest sheet's
        diagonal (:func:`max_fwhm`). 0 returns ``acts`` unchanged.
    truncate : float, default=4.0
        Kernel radius in sigmas.

    Returns
    -------
    Activations
        Same items, layers and sheets; ``params["smoothing_fwhm"]`` records ``fwhm``.
        Nothing is standardised or dropped: a unit that is constant across items stays
        in the result (the GLM deals with it).

    Warns
    -----
    UserWarning
        When ``acts`` were smoothed already (smoothing twice compounds the width).
    """
    if not isinstance(acts, Activations):
        raise TypeError(
            f"acts must be Activations (from topobrain.extract.extract); got "
            f"{type(acts).__name__}. For plain arrays use smooth_units or smooth_maps."
        )
    fwhm = check_fwhm(fwhm, acts.sheets)
    truncate = _check_truncate(truncate)
    if fwhm == 0:
        return acts
    before = acts.params.get("smoothing_fwhm")
    if before:
        warnings.warn(
            f"These activations were already smoothed (FWHM {before} sheet units); smoothing "
            f"again widens the effective kernel to about "
            f"{math.hypot(float(before), fwhm):.3g} units.", UserWarning, stacklevel=2)
    data = {layer: smooth_units(acts[layer], acts.sheets[layer], fwhm, truncate=truncate)
            for layer in acts.layers}
    total = fwhm if not before else math.hypot(float(before), fwhm)
    return acts.replace(data, smoothing_fwhm=total, smoothing_truncate=truncate)
