"""Spatial nulls: surrogate maps that keep a map's spatial autocorrelation.

Shuffling locations destroys autocorrelation, so a shuffled null makes any smooth map look
special and any two smooth maps look correlated. The nulls here keep it:

- :func:`spin_permutations` rotates the registration sphere at random (Alexander-Bloch
  et al., 2018): each vertex takes the value of the rotated vertex nearest to it; the
  right hemisphere gets the mirror image of the left's rotation.
- :func:`moran_surrogates` is Moran spectral randomisation (Wagner & Dray, 2015): the map
  is expanded on the eigenvectors of the doubly-centred spatial weights (Moran's
  eigenvector maps) and the coefficients' signs (``"singleton"``) or pairs of
  coefficients (``"pair"``) are randomised; the singleton procedure keeps the map's mean,
  variance and Moran's I exactly.
- :func:`variogram_surrogates` matches the map's variogram (Burt et al., 2020): smoothed
  permutations rescaled to the map's variogram, for any positions (volumes included).

:func:`spatial_null_test` turns either null into a p-value for a map statistic or a
map-to-map correlation (:func:`map_correlation`).

Randomness follows topobrain's permutation core: ``seed`` becomes a ``SeedSequence`` and
surrogates come in fixed blocks of ``BLOCK_SIZE``, block ``b`` drawn from its own
generator (``SeedSequence(entropy, spawn_key=(*spawn_key, b))``), so the surrogates are
identical for any ``n_jobs`` or joblib backend, and the first ``m`` surrogates of a run
are those of a run asking for ``m``. p-values follow the core's one rule.

References
----------
Alexander-Bloch, A. F. et al. (2018). On testing for spatial correspondence between maps
of human brain structure and function. NeuroImage 178, 540-551.
Wagner, H. H. & Dray, S. (2015). Generating spatially constrained null models for
irregularly spaced data using Moran spectral randomization methods. Methods in Ecology
and Evolution 6, 1169-1178.
Burt, J. B. et al. (2020). Generative modeling of brain maps with spatial autocorrelation.
NeuroImage 220, 117038.
Vos de Wael, R. et al. (2020). BrainSpace: a toolbox for the analysis of macroscale
gradients in neuroimaging and connectomics datasets. Communications Biology 3, 103.

This module never imports torch or matplotlib.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._utils._adjacency import check_adjacency, deprecated_alias
from ._utils._docs import fill_doc
from ._utils._permutation import (
    BLOCK_SIZE,
    as_seed_sequence,
    block_rng,
    n_blocks,
    permutation_pvalue,
    run_blocks,
    seed_record,
)
from ._utils._repr import FrameReprMixin
from ._utils._validation import check_option

__all__ = [
    "random_rotations",
    "spin_permutations",
    "spin_surrogates",
    "moran_eigenvectors",
    "moran_surrogates",
    "variogram_surrogates",
    "SpatialNullResult",
    "spatial_null_test",
    "map_correlation",
]

Alternative = Literal["two-sided", "greater", "less"]
Procedure = Literal["singleton", "pair"]
#: Largest number of locations for the dense eigendecomposition of Moran spectral
#: randomisation (memory ~ 8 * n^2 bytes twice; time ~ n^3).
MSR_MAX_LOCATIONS = 12_000


def _check_n(n, name="n_permutations") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer; got {n!r}.")
    return int(n)


def _block_sizes(n: int):
    """(block index, number of draws in it) for ``n`` draws in the core's blocks."""
    return [(b, min(BLOCK_SIZE, n - b * BLOCK_SIZE)) for b in range(n_blocks(n))]


def _rotations_of_block(ss, b: int, size: int) -> np.ndarray:
    q, r = np.linalg.qr(block_rng(ss, b).standard_normal((BLOCK_SIZE, 3, 3))[:size])
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    flip = np.linalg.det(q) < 0
    q[flip, :, 0] *= -1
    return q


@fill_doc
def random_rotations(n: int, seed=None) -> np.ndarray:
    """Uniformly distributed (Haar) random 3D rotations.

    QR decomposition of Gaussian matrices with the sign of R's diagonal moved into Q
    (Mezzadri, 2007), then a reflection fixed to make ``det = +1``. Rotation ``i`` comes
    from block ``i // BLOCK_SIZE`` of the seed (the permutation core's block rule).

    Parameters
    ----------
    n : int
        Number of rotations.
    %(seed)s

    Returns
    -------
    ndarray of shape (n, 3, 3)
        Orthogonal matrices with determinant +1.

    Examples
    --------
    >>> r = random_rotations(2, seed=0)
    >>> np.allclose(r @ r.transpose(0, 2, 1), np.eye(3)), np.allclose(np.linalg.det(r), 1)
    (True, True)
    """
    n = _check_n(n, "n")
    ss = as_seed_sequence(seed)
    return np.concatenate([_rotations_of_block(ss, b, size) for b, size in _block_sizes(n)])


def _sphere_and_hemi(sphere, hemisphere):
    from .brain import Mesh

    if isinstance(sphere, Mesh):
        if sphere.sphere is None:
            raise ValueError(
                f"{sphere!r} has no sphere; spin nulls need the registration sphere. Load "
                "the mesh with load_mesh(..., sphere='lh.sphere') or use a template mesh, "
                "or use moran_surrogates."
            )
        hemisphere = sphere.hemisphere if hemisphere is None else hemisphere
        sphere = sphere.sphere
    s = np.asarray(sphere, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 3:
        raise ValueError(f"sphere must have shape (n_vertices, 3); got shape {s.shape}.")
    if hemisphere is None:
        hemisphere = np.full(s.shape[0], "left")
    hemisphere = np.asarray(hemisphere).astype(str)
    if hemisphere.shape != (s.shape[0],) or not np.isin(hemisphere, ("left", "right")).all():
        raise ValueError(
            f"hemisphere must hold 'left' or 'right' for each of the {s.shape[0]} vertices."
        )
    return s, hemisphere


def _spin_chunk(trees, ss, n_vertices, blocks_and_sizes) -> np.ndarray:
    """Spin reassignments of the given blocks: (n_in_blocks, n_vertices)."""
    mirror = np.diag([-1.0, 1.0, 1.0])
    parts = []
    for b, size in blocks_and_sizes:
        rots = _rotations_of_block(ss, b, size)
        out = np.empty((size, n_vertices), dtype=np.int64)
        for h, idx, x, tree in trees:
            for k, r in enumerate(rots):
                if h == "right":
                    r = mirror @ r @ mirror
                # nearest rotated vertex R x_v to x_u  <=>  nearest x_v to R^T x_u
                _, nn = tree.query(x @ r, k=1)
                out[k, idx] = idx[nn]
        parts.append(out)
    return np.concatenate(parts, axis=0)


@fill_doc
def spin_permutations(
    sphere,
    n_permutations: int = 1000,
    *,
    hemisphere=None,
    seed=None,
    n_jobs: int | None = None,
    verbose: int = 1,
) -> np.ndarray:
    """Vertex reassignments from random rotations of the registration sphere.

    Parameters
    ----------
    sphere : Mesh or ndarray of shape (n_vertices, 3)
        A :class:`~topobrain.brain.Mesh` with a sphere, or sphere coordinates (any
        radius; each hemisphere is centred and projected to the unit sphere).
    n_permutations : int, default=1000
    hemisphere : ndarray of str, shape (n_vertices,), optional
        ``"left"``/``"right"`` per vertex (taken from the Mesh when not given; all left
        otherwise). Each hemisphere is spun within itself; the right hemisphere's
        rotation is the left's mirrored across the midsagittal plane (x -> -x).
    %(seed)s
    %(n_jobs)s
    %(verbose)s

    Returns
    -------
    ndarray of int, shape (n_permutations, n_vertices)
        ``values[idx[k]]`` is the k-th spun map: vertex ``v`` takes the value of the
        vertex whose rotated position lies nearest to ``v`` (several vertices may take
        the same one).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> xyz = rng.standard_normal((500, 3))
    >>> spin_permutations(xyz, 3, seed=1).shape
    (3, 500)
    """
    from scipy.spatial import cKDTree

    n_permutations = _check_n(n_permutations)
    s, hemi = _sphere_and_hemi(sphere, hemisphere)
    ss = as_seed_sequence(seed)
    trees = []
    for h in ("left", "right"):
        idx = np.flatnonzero(hemi == h)
        if idx.size == 0:
            continue
        x = s[idx] - s[idx].mean(0)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("sphere has a vertex at its centre; pass sphere coordinates.")
        x = x / norms
        trees.append((h, idx, x, cKDTree(x)))
    func = functools.partial(_spin_chunk, trees, ss, s.shape[0])
    parts = run_blocks(func, _block_sizes(n_permutations), n_jobs=n_jobs, threads=True,
                       verbose=verbose, desc="spins")
    return np.concatenate(parts, axis=0)


def spin_surrogates(values, sphere, n_permutations: int = 1000, *, hemisphere=None,
                    seed=None, n_jobs: int | None = None, verbose: int = 1) -> np.ndarray:
    """Spun copies of a surface map, shape (n_permutations, n_vertices).

    NaN values (e.g. the medial wall) travel with the rotation, so a surrogate has NaN
    where a rotated medial wall lands; statistics should drop them pairwise.
    See :func:`spin_permutations` for the parameters.
    """
    v = np.asarray(values, dtype=np.float64)
    idx = spin_permutations(sphere, n_permutations, hemisphere=hemisphere, seed=seed,
                            n_jobs=n_jobs, verbose=verbose)
    if v.shape != (idx.shape[1],):
        raise ValueError(
            f"values must have one entry per sphere vertex ({idx.shape[1]}); got shape "
            f"{v.shape}."
        )
    return v[idx]


@dataclass(frozen=True, eq=False)
class MoranEigenvectors:
    """Moran's eigenvector maps of a weights matrix (see :func:`moran_eigenvectors`).

    Attributes
    ----------
    eigenvalues : ndarray of shape (n - 1,)
        Ascending.
    eigenvectors : ndarray of shape (n, n - 1)
        Orthonormal, each orthogonal to the constant vector.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    @property
    def n_locations(self) -> int:
        return int(self.eigenvectors.shape[0])


@deprecated_alias(weights="adjacency")
def moran_eigenvectors(adjacency) -> MoranEigenvectors:
    """Eigenvectors of the doubly-centred, symmetrised weights ``H (W + W')/2 H``.

    ``H = I - 11'/n``. The constant direction is removed exactly (by a Householder
    reflection), so the ``n - 1`` eigenvectors span the centred maps and the Moran's I of
    a centred map ``x = V c`` is ``(n / S0) * sum(lambda * c**2) / sum(c**2)``.

    Parameters
    ----------
    adjacency : scipy.sparse matrix, libpysal W or ndarray of shape (n, n)
        Spatial weights (binary or row-standardised). Dense memory ~ ``16 n^2`` bytes.
        Formerly ``weights=`` (deprecated).

    Returns
    -------
    MoranEigenvectors
    """
    weights = adjacency
    if getattr(weights, "sparse", None) is not None and sp.issparse(weights.sparse):
        weights = weights.sparse  # a libpysal W
    if sp.issparse(weights):
        w = weights.toarray() if weights.shape[0] <= MSR_MAX_LOCATIONS else None
    else:
        w = np.asarray(weights, dtype=np.float64)
    n = weights.shape[0]
    if w is None or n > MSR_MAX_LOCATIONS:
        raise ValueError(
            f"Moran spectral randomisation needs a dense eigendecomposition; {n} locations "
            f"exceed the limit of {MSR_MAX_LOCATIONS}. Use spin nulls (surface with a "
            "sphere), or parcellate / downsample the map (e.g. fsaverage5)."
        )
    if w.ndim != 2 or w.shape != (n, n):
        raise ValueError(f"weights must be square; got shape {w.shape}.")
    if n < 3:
        raise ValueError(f"Moran spectral randomisation needs at least 3 locations; got {n}.")
    w = 0.5 * (w + w.T)
    # Householder reflection P with P e_0 = 1/sqrt(n): columns 1.. span the centred maps
    u = np.full(n, 1.0 / np.sqrt(n))
    u[0] -= 1.0
    u /= np.linalg.norm(u)
    wu = w @ u
    # P W P with P = I - 2uu'
    m = w - 2.0 * np.outer(u, wu) - 2.0 * np.outer(wu, u) + 4.0 * (u @ wu) * np.outer(u, u)
    lam, vec = np.linalg.eigh(m[1:, 1:])
    # V = P[:, 1:] @ vec, P[:, 1:] = I[:, 1:] - 2 u u[1:]'
    v = np.vstack([np.zeros((1, n - 1)), vec]) - 2.0 * np.outer(u, u[1:] @ vec)
    return MoranEigenvectors(lam, v)


def _msr_chunk(c, vectors, mean, procedure, ss, blocks_and_sizes) -> np.ndarray:
    """Moran spectral surrogates of the given blocks, (n_in_blocks, n)."""
    k = c.size
    parts = []
    for b, size in blocks_and_sizes:
        rng = block_rng(ss, b)
        if procedure == "singleton":
            coef = c[None, :] * rng.choice([-1.0, 1.0], size=(BLOCK_SIZE, k))[:size]
        else:
            coef = np.empty((size, k))
            n_pairs = k // 2
            a, bb = c[0:2 * n_pairs:2], c[1:2 * n_pairs:2]
            theta = rng.uniform(0.0, 2 * np.pi, size=(BLOCK_SIZE, n_pairs))[:size]
            coef[:, 0:2 * n_pairs:2] = a * np.cos(theta) - bb * np.sin(theta)
            coef[:, 1:2 * n_pairs:2] = a * np.sin(theta) + bb * np.cos(theta)
            if k % 2:
                coef[:, -1] = c[-1] * rng.choice([-1.0, 1.0], size=BLOCK_SIZE)[:size]
        parts.append(mean + coef @ vectors.T)
    return np.concatenate(parts, axis=0)


@deprecated_alias(weights="adjacency")
@fill_doc
def moran_surrogates(
    values,
    adjacency,
    n_surrogates: int = 1000,
    *,
    procedure: Procedure = "singleton",
    seed=None,
    eigenvectors: MoranEigenvectors | None = None,
    n_jobs: int | None = None,
    verbose: int = 1,
) -> np.ndarray:
    """Moran spectral randomisation surrogates of a map.

    Parameters
    ----------
    values : ndarray of shape (n,)
        A map without NaN (restrict it to the finite locations first).
    adjacency : scipy.sparse matrix of shape (n, n) or libpysal W
        Spatial weights over the same locations (e.g. a restricted mesh adjacency).
        Formerly ``weights=`` (deprecated).
    n_surrogates : int, default=1000
    procedure : {"singleton", "pair"}, default="singleton"
        ``"singleton"``: random signs for each eigenvector coefficient; keeps mean,
        variance and Moran's I (for these weights) exactly. ``"pair"``: random rotations
        of consecutive pairs of coefficients (ordered by eigenvalue); keeps mean and
        variance, Moran's I approximately.
    %(seed)s
    eigenvectors : MoranEigenvectors, optional
        Precomputed :func:`moran_eigenvectors` of ``adjacency``, to reuse across maps.
    %(n_jobs)s
    %(verbose)s

    Returns
    -------
    ndarray of shape (n_surrogates, n)

    Examples
    --------
    >>> from topobrain.brain import mesh_adjacency
    >>> w = mesh_adjacency([[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    >>> moran_surrogates(np.arange(5.0), w, 4, seed=0).shape
    (4, 5)
    """
    check_option("procedure", procedure, ("singleton", "pair"))
    n_surrogates = _check_n(n_surrogates, "n_surrogates")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be a vector; got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(
            f"values hold {int((~np.isfinite(x)).sum())} non-finite entries; restrict the map "
            "and the weights to the finite locations (brain_map.restricted())."
        )
    weights = check_adjacency(adjacency, allowed=())
    if weights.shape != (x.size, x.size):
        raise ValueError(
            f"adjacency must have shape ({x.size}, {x.size}) to match values; got "
            f"{weights.shape}."
        )
    ev = eigenvectors if eigenvectors is not None else moran_eigenvectors(weights)
    if ev.n_locations != x.size:
        raise ValueError("eigenvectors were computed for another number of locations.")
    ss = as_seed_sequence(seed)
    mean = x.mean()
    c = ev.eigenvectors.T @ (x - mean)
    func = functools.partial(_msr_chunk, c, ev.eigenvectors, mean, procedure, ss)
    return np.concatenate(run_blocks(func, _block_sizes(n_surrogates), n_jobs=n_jobs,
                                     verbose=verbose, desc="Moran surrogates"), axis=0)


def _positions(mesh) -> np.ndarray:
    from .brain import BrainMap, Mesh

    if isinstance(mesh, Mesh):
        return mesh.coordinates
    if isinstance(mesh, BrainMap):
        return mesh.coordinates()
    pos = np.asarray(mesh, dtype=np.float64)
    if pos.ndim != 2:
        raise ValueError(f"positions must have shape (n, n_dims); got shape {pos.shape}.")
    return pos


def _lag_kernel(nbr, dist, anchors, h, bandwidth, cutoff):
    """Pairs (anchor, neighbour) within ``cutoff`` and their normalised Gaussian weights
    over the lags ``h``: the smoothed semivariogram of maps ``x`` is
    ``0.5 * (x[:, a] - x[:, b])**2 @ w``."""
    d = dist[anchors]
    keep = d <= cutoff
    a = np.broadcast_to(anchors[:, None], d.shape)[keep]
    b = nbr[anchors][keep]
    w = np.exp(-0.5 * ((d[keep][:, None] - h[None, :]) / bandwidth) ** 2)  # (n_pairs, n_h)
    return a, b, w / w.sum(0, keepdims=True)


def _variogram_from(x, kernel):
    a, b, w = kernel
    return (0.5 * (x[:, a] - x[:, b]) ** 2) @ w


@dataclass(frozen=True, eq=False)
class _VariogramSetup:
    """Everything a variogram surrogate needs besides its random draws (trusting)."""

    x: np.ndarray  # (n,) finite values
    ok: np.ndarray  # (n_all,) finite mask
    nbr: np.ndarray
    dist: np.ndarray
    h: np.ndarray
    bandwidth: float
    cutoff: float
    ks: np.ndarray
    kernels: list
    n_samples: int
    resample: bool
    fixed: tuple | None
    fixed_target: np.ndarray | None


def _variogram_one(st: _VariogramSetup, rng: np.random.Generator) -> np.ndarray:
    x, n = st.x, st.x.size
    if st.fixed is None:
        kernel = _lag_kernel(st.nbr, st.dist, rng.choice(n, st.n_samples, replace=False),
                             st.h, st.bandwidth, st.cutoff)
        target = _variogram_from(x[None, :], kernel)[0]
    else:
        kernel, target = st.fixed, st.fixed_target
    xp = rng.permutation(x)
    xp = xp - xp.mean()
    smooth = np.empty((st.ks.size, n))
    for i, kk in enumerate(st.ks):
        smooth[i] = (st.kernels[i] * xp[st.nbr[:, :kk]]).sum(1)
    gam = _variogram_from(smooth, kernel)
    best, best_sse, best_ab = 0, np.inf, (1.0, 0.0)
    for i in range(st.ks.size):
        design = np.c_[gam[i], np.ones_like(gam[i])]
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        sse = float(np.sum((design @ coef - target) ** 2))
        if sse < best_sse:
            best, best_sse, best_ab = i, sse, (coef[0], coef[1])
    a, b = best_ab
    sur = np.sqrt(abs(a)) * smooth[best] + np.sqrt(abs(b)) * rng.standard_normal(n)
    if st.resample:
        sur_r = np.empty(n)
        sur_r[np.argsort(sur, kind="stable")] = np.sort(x)
        return sur_r
    return sur - sur.mean() + x.mean()


def _variogram_chunk(st: _VariogramSetup, ss, blocks_and_sizes) -> np.ndarray:
    """Surrogates of the given blocks (n_in_blocks, n_all): block ``b``'s generator
    serves its surrogates in order."""
    parts = []
    for b, size in blocks_and_sizes:
        rng = block_rng(ss, b)
        out = np.full((size, st.ok.size), np.nan)
        for s in range(size):
            out[s, st.ok] = _variogram_one(st, rng)
        parts.append(out)
    return np.concatenate(parts, axis=0)


@fill_doc
def variogram_surrogates(
    values,
    positions,
    n_surrogates: int = 1000,
    *,
    knn: int = 1000,
    deltas=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    n_samples: int = 500,
    n_lags: int = 25,
    percentile: float = 25.0,
    resample: bool = True,
    seed=None,
    n_jobs: int | None = None,
    verbose: int = 1,
) -> np.ndarray:
    """Surrogate maps whose variogram matches the map's (Burt et al., 2020).

    Each surrogate starts as a random permutation of the values, is smoothed by an
    exponential kernel over each location's ``k`` nearest neighbours (``k = delta * knn``
    for each ``delta``), rescaled so that its smoothed variogram best fits the map's by
    least squares (``gamma_map ~ a * gamma_surrogate + b``: the surrogate becomes
    ``sqrt(|a|) * smoothed + sqrt(|b|) * noise``), the ``delta`` with the smallest misfit
    kept, and (with ``resample``) its ranks given the map's own values. The method of the
    brainsmash package (its ``Sampled`` variant: nearest-neighbour tables and sampled
    variograms), written here from the paper.

    Parameters
    ----------
    values : ndarray of shape (n,)
        The map; NaN locations are left out and stay NaN in the surrogates.
    positions : Mesh, BrainMap or ndarray of shape (n, n_dims)
        Location coordinates (mm for brain maps; distances are euclidean).
    n_surrogates : int, default=1000
    knn : int, default=1000
        Neighbours per location in the distance table (capped at ``n - 1``).
    deltas : sequence of float in (0, 1], default=0.1, ..., 0.9
        Kernel neighbourhood sizes to try, as fractions of ``knn``.
    n_samples : int, default=500
        Anchor locations (resampled for each surrogate) for the variograms.
    n_lags : int, default=25
        Lags at which the smoothed variograms are compared.
    percentile : float, default=25
        Variograms run up to this percentile of the neighbour distances.
    resample : bool, default=True
        Give the surrogates the map's exact value distribution (rank matching).
    %(seed)s
    %(n_jobs)s
    %(verbose)s

    Returns
    -------
    ndarray of shape (n_surrogates, n)

    References
    ----------
    Burt, J. B., Helmer, M., Shinn, M., Anticevic, A. & Murray, J. D. (2020). Generative
    modeling of brain maps with spatial autocorrelation. NeuroImage 220, 117038.
    """
    from scipy.spatial import cKDTree

    n_surrogates = _check_n(n_surrogates, "n_surrogates")
    x_all = np.asarray(values, dtype=np.float64)
    pos_all = _positions(positions)
    if x_all.ndim != 1 or pos_all.shape[0] != x_all.size:
        raise ValueError(
            f"values must be a vector with one entry per position ({pos_all.shape[0]}); got "
            f"shape {x_all.shape}."
        )
    ok = np.isfinite(x_all)
    x, pos = x_all[ok], pos_all[ok]
    n = x.size
    if n < 10:
        raise ValueError(f"variogram surrogates need at least 10 finite locations; got {n}.")
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 1 or deltas.size == 0 or np.any((deltas <= 0) | (deltas > 1)):
        raise ValueError(f"deltas must be fractions in (0, 1]; got {deltas.tolist()}.")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100]; got {percentile}.")
    ss = as_seed_sequence(seed)
    k = int(min(max(int(knn), 2), n - 1))
    dist, nbr = cKDTree(pos).query(pos, k=k + 1)
    dist, nbr = dist[:, 1:], nbr[:, 1:]  # drop the location itself
    cutoff = float(np.percentile(dist, percentile))
    h = np.linspace(dist[dist > 0].min() if np.any(dist > 0) else 0.0, cutoff, int(n_lags))
    bandwidth = 3.0 * (h[1] - h[0]) if n_lags > 1 else cutoff
    ks = np.unique(np.clip((deltas * k).astype(int), 2, k))
    n_samples = int(min(n_samples, n))
    kernels = []
    for kk in ks:  # exponential kernel over the kk nearest neighbours, rows sum to 1
        d = dist[:, :kk]
        w = np.exp(-d / np.maximum(d[:, -1:], 1e-12))
        kernels.append(w / w.sum(1, keepdims=True))
    fixed = fixed_target = None
    if n_samples >= n:  # every location is an anchor: one kernel and target for all
        fixed = _lag_kernel(nbr, dist, np.arange(n), h, bandwidth, cutoff)
        fixed_target = _variogram_from(x[None, :], fixed)[0]
    setup = _VariogramSetup(x, ok, nbr, dist, h, bandwidth, cutoff, ks, kernels, n_samples,
                            bool(resample), fixed, fixed_target)
    func = functools.partial(_variogram_chunk, setup, ss)
    return np.concatenate(run_blocks(func, _block_sizes(n_surrogates), n_jobs=n_jobs,
                                     verbose=verbose, desc="variogram surrogates"), axis=0)


@dataclass(frozen=True, eq=False)
class SpatialNullResult(FrameReprMixin):
    """A statistic against a spatial null.

    Attributes
    ----------
    statistic : float
        The observed statistic.
    p_value : float
        ``(1 + #{null as or more extreme}) / (n_permutations + 1)``; sidedness in
        ``params["alternative"]`` (two-sided: extreme in either tail, i.e.
        ``|null - null_mean| >= |statistic - null_mean|``).
    null_distribution : ndarray of shape (n_permutations,)
        The statistic on each surrogate (NaN surrogates dropped from the p-value).
    null_mean, null_sd, z : float
        Mean and sd of the null, and ``(statistic - null_mean) / null_sd``.
    params : dict
        ``null``, ``n_permutations``, ``alternative``, ``seed``, and the procedure.
    """

    statistic: float
    p_value: float
    null_distribution: np.ndarray
    null_mean: float
    null_sd: float
    z: float
    params: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        row = {"statistic": self.statistic, "p_value": self.p_value,
               "null_mean": self.null_mean, "null_sd": self.null_sd, "z": self.z}
        row.update({k: v for k, v in self.params.items() if np.isscalar(v) or v is None})
        return pd.DataFrame([row])

    def __repr__(self) -> str:
        return (f"SpatialNullResult(statistic={self.statistic:.4g}, p={self.p_value:.4g} "
                f"({self.params.get('alternative')}), null {self.params.get('null')}: "
                f"mean={self.null_mean:.4g}, sd={self.null_sd:.4g}, z={self.z:.3g}, "
                f"n={self.null_distribution.size})")


def _p_value(stat: float, null: np.ndarray, alternative: str) -> tuple[float, float, float, float]:
    """p (the core's rule), null mean, sd and z. Two-sided here is centred: extreme in
    either tail, ``|null - mean| >= |stat - mean|`` (the core's rule on those distances)."""
    ok = null[np.isfinite(null)]
    b = ok.size
    if b == 0 or not np.isfinite(stat):
        return np.nan, np.nan, np.nan, np.nan
    mean, sd = float(ok.mean()), float(ok.std(ddof=1)) if b > 1 else np.nan
    if alternative == "two-sided":
        p = permutation_pvalue(abs(stat - mean), np.abs(ok - mean), "greater")
    else:
        p = permutation_pvalue(stat, ok, alternative)
    z = (stat - mean) / sd if sd and sd > 0 else np.nan
    return float(p), mean, sd, float(z)


def _surrogates(values, null, n_permutations, ss, mesh, adjacency, procedure, options=None,
                n_jobs=None, verbose=1):
    v = np.asarray(values, dtype=np.float64)
    options = dict(options or {})
    run = {"seed": ss, "n_jobs": n_jobs, "verbose": verbose}
    if null == "variogram":
        if mesh is None:
            raise ValueError("null='variogram' needs mesh= (a Mesh, a BrainMap or the "
                             "positions of the locations, shape (n, n_dims)).")
        return variogram_surrogates(v, mesh, n_permutations, **run, **options)
    if options:
        raise TypeError(f"null_options are for null='variogram' only; got {sorted(options)}.")
    if null == "spin":
        if mesh is None:
            raise ValueError("null='spin' needs mesh= (a Mesh with a sphere, or sphere "
                             "coordinates of shape (n, 3)).")
        return spin_surrogates(v, mesh, n_permutations, **run)
    if adjacency is None:
        raise ValueError("null='moran' needs adjacency= (the spatial weights of the map's "
                         "locations, e.g. brain_map.restricted().adjacency).")
    return moran_surrogates(v, adjacency, n_permutations, procedure=procedure, **run)


@deprecated_alias(weights="adjacency")
@fill_doc
def spatial_null_test(
    values,
    statistic: Callable[[np.ndarray], float],
    *,
    null: Literal["spin", "moran", "variogram"] = "spin",
    mesh=None,
    adjacency=None,
    n_permutations: int = 1000,
    alternative: Alternative = "two-sided",
    procedure: Procedure = "singleton",
    seed=None,
    null_options: dict | None = None,
    n_jobs: int | None = None,
    verbose: int = 1,
) -> SpatialNullResult:
    """Test a map statistic against surrogates that keep spatial autocorrelation.

    Parameters
    ----------
    values : ndarray of shape (n,)
        The map (NaN allowed with ``null="spin"``; the statistic must handle it).
    statistic : callable
        ``statistic(map) -> float``, applied to the map and to each surrogate.
    null : {"spin", "moran", "variogram"}, default="spin"
        Spin permutations (needs ``mesh`` with a sphere), Moran spectral randomisation
        (needs ``adjacency``; ``values`` must be finite) or variogram-matched surrogates
        (needs ``mesh``: a Mesh, BrainMap or positions; :func:`variogram_surrogates`).
    mesh : Mesh or ndarray of shape (n, 3), optional
        Spin: a Mesh with a sphere, or sphere coordinates. Variogram: a Mesh (its
        coordinates, mm), a BrainMap, or positions of shape (n, n_dims).
    adjacency : scipy.sparse matrix of shape (n, n) or libpysal W, optional
        Spatial weights for ``null="moran"`` (formerly ``weights=``, deprecated).
    n_permutations : int, default=1000
        Number of surrogates ``B``; ``p = (1 + #{at least as extreme}) / (1 + B)`` over
        the finite surrogate statistics, ties within rounding counted.
    alternative : {"two-sided", "greater", "less"}, default="two-sided"
        Two-sided counts surrogates at least as far from the null mean as the statistic.
    procedure : {"singleton", "pair"}, default="singleton"
        For ``null="moran"``.
    %(seed)s
    null_options : dict, optional
        Keyword arguments of :func:`variogram_surrogates` (``knn``, ``deltas``, ...).
    %(n_jobs)s
    %(verbose)s

    Returns
    -------
    SpatialNullResult
    """
    check_option("null", null, ("spin", "moran", "variogram"))
    check_option("alternative", alternative, ("two-sided", "greater", "less"))
    if not callable(statistic):
        raise TypeError(f"statistic must be callable; got {type(statistic).__name__}.")
    n_permutations = _check_n(n_permutations)
    ss = as_seed_sequence(seed)
    sur = _surrogates(values, null, n_permutations, ss, mesh, adjacency, procedure,
                      null_options, n_jobs, verbose)
    stat = float(statistic(np.asarray(values, dtype=np.float64)))
    dist = np.array([float(statistic(s)) for s in sur])
    p, mean, sd, z = _p_value(stat, dist, alternative)
    return SpatialNullResult(stat, p, dist, mean, sd, z, params={
        "null": null, "n_permutations": n_permutations, "alternative": alternative,
        "procedure": procedure if null == "moran" else None, **seed_record(ss),
    })


def _rank(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) along the last axis; ties share their mean rank."""
    a = np.asarray(a, dtype=np.float64)
    flat = a.reshape(-1, a.shape[-1])
    out = np.empty_like(flat)
    for k, row in enumerate(flat):
        order = np.argsort(row, kind="stable")
        srt = row[order]
        first = np.r_[True, srt[1:] != srt[:-1]]
        grp = np.cumsum(first) - 1
        starts = np.flatnonzero(first)
        ends = np.r_[starts[1:], srt.size]
        mean_rank = (starts + ends + 1) / 2.0
        out[k, order] = mean_rank[grp]
    return out.reshape(a.shape)


@deprecated_alias(weights="adjacency")
def map_correlation(
    x,
    y,
    *,
    null: Literal["spin", "moran", "variogram"] = "spin",
    mesh=None,
    adjacency=None,
    method: Literal["pearson", "spearman"] = "pearson",
    n_permutations: int = 1000,
    alternative: Alternative = "two-sided",
    procedure: Procedure = "singleton",
    seed=None,
    null_options: dict | None = None,
    n_jobs: int | None = None,
    verbose: int = 1,
) -> SpatialNullResult:
    """Correlation between two maps with a p-value that respects autocorrelation.

    ``x`` is replaced by its surrogates (spun or Moran-randomised), ``y`` stays; the
    correlation uses the locations where both are finite (pairwise).

    Parameters
    ----------
    x, y : ndarray of shape (n,)
    null, mesh, adjacency, n_permutations, alternative, procedure, seed, null_options
    n_jobs, verbose
        As in :func:`spatial_null_test`.
    method : {"pearson", "spearman"}, default="pearson"

    Returns
    -------
    SpatialNullResult
        ``statistic`` is the correlation; ``two-sided`` counts ``|r_null| >= |r|``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sphere = rng.standard_normal((300, 3))
    >>> x = sphere[:, 0] + 0.1 * rng.standard_normal(300)
    >>> res = map_correlation(x, x, mesh=sphere, n_permutations=99, seed=0)
    >>> round(res.statistic, 3), res.p_value < 0.05
    (1.0, True)
    """
    check_option("null", null, ("spin", "moran", "variogram"))
    check_option("method", method, ("pearson", "spearman"))
    check_option("alternative", alternative, ("two-sided", "greater", "less"))
    n_permutations = _check_n(n_permutations)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"x and y must be vectors of the same length; got shapes {x.shape} and {y.shape}."
        )
    if null == "moran" and not (np.isfinite(x).all()):
        keep = np.isfinite(x)
        raise ValueError(
            f"x holds {int((~keep).sum())} NaN; with null='moran' restrict x, y and adjacency "
            "to the finite locations first."
        )
    ss = as_seed_sequence(seed)
    sur = _surrogates(x, null, n_permutations, ss, mesh, adjacency, procedure, null_options,
                      n_jobs, verbose)
    stack = np.vstack([x[None, :], sur])
    ok = np.isfinite(stack) & np.isfinite(y)[None, :]
    r = np.full(stack.shape[0], np.nan)
    if method == "spearman" and ok.all():
        stack, yy = _rank(stack), _rank(y)
    else:
        yy = y
    for start in range(0, stack.shape[0], 256):
        blk = slice(start, start + 256)
        s, m = stack[blk], ok[blk]
        if method == "spearman" and not ok.all():
            s = np.where(m, s, np.nan)
            s = np.array([_masked_rank(row) for row in s])
            yb = np.array([_masked_rank(np.where(mm, y, np.nan)) for mm in m])
        else:
            yb = np.broadcast_to(yy, s.shape)
        cnt = m.sum(1)
        sx = np.where(m, s, 0.0)
        sy = np.where(m, yb, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mx, my = sx.sum(1) / cnt, sy.sum(1) / cnt
            dx = np.where(m, s - mx[:, None], 0.0)
            dy = np.where(m, yb - my[:, None], 0.0)
            r[blk] = (dx * dy).sum(1) / np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))
    stat, dist = float(r[0]), r[1:]
    if alternative == "two-sided":  # |r_null| >= |r|: the core's rule on |r|
        ok_d = dist[np.isfinite(dist)]
        p = float(permutation_pvalue(abs(stat), np.abs(ok_d), "greater")) if ok_d.size \
            and np.isfinite(stat) else np.nan
        _, mean, sd, z = _p_value(stat, dist, "greater")
    else:
        p, mean, sd, z = _p_value(stat, dist, alternative)
    return SpatialNullResult(stat, p, dist, mean, sd, z, params={
        "null": null, "n_permutations": n_permutations, "alternative": alternative,
        "method": method, "procedure": procedure if null == "moran" else None,
        **seed_record(ss),
    })


def _masked_rank(row: np.ndarray) -> np.ndarray:
    out = np.full(row.shape, np.nan)
    ok = np.isfinite(row)
    out[ok] = _rank(row[ok])
    return out
