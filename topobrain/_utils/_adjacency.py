"""THE neighbourhood parameter: one name (``adjacency``), one default, one checker.

Every statistic that needs neighbours (Moran's I, Geary's C, local Moran, join counts,
cluster tables, TFCE, selectivity patches, brain maps) takes ``adjacency``:

* ``"rook"`` (4 edge neighbours) or ``"queen"`` (8 edge and corner neighbours) on a 2D
  grid of sheet cells, row-major;
* ``6``, ``18`` or ``26`` neighbours on a 3D voxel lattice (faces; plus edges; plus
  corners);
* a ``scipy.sparse`` matrix of shape ``(n_locations, n_locations)`` (a mesh, a masked
  grid, any graph; a nonzero entry ``[i, j]`` makes ``j`` a neighbour of ``i``);
* a libpysal ``W`` (or ``Graph``): its ``.sparse`` matrix, read without importing
  libpysal.

The one default for sheets is :data:`DEFAULT_ADJACENCY` (``"queen"``): TopoLM's published
Moran's I uses queen contiguity, and cluster tables and join counts of the same map use
the same neighbours unless told otherwise.

Parameters that named the same thing before (``weights=``, ``connectivity=``, ``kind=``)
keep working for one release through :func:`deprecated_alias` (or
:func:`renamed_parameter`), with a ``DeprecationWarning`` naming ``adjacency``.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

__all__ = [
    "DEFAULT_ADJACENCY",
    "GRID_ADJACENCIES",
    "LATTICE_ADJACENCIES",
    "UNSET",
    "adjacency_name",
    "check_adjacency",
    "deprecated_alias",
    "renamed_parameter",
    "user_stacklevel",
]

#: The one default neighbourhood of a sheet (TopoLM's published Moran's I uses queen).
DEFAULT_ADJACENCY = "queen"
#: Named neighbourhoods of a 2D grid.
GRID_ADJACENCIES = ("rook", "queen")
#: Named neighbourhoods of a 3D voxel lattice (neighbours per voxel).
LATTICE_ADJACENCIES = (6, 18, 26)

GridAdjacency = Literal["rook", "queen"]
LatticeAdjacency = Literal[6, 18, 26]
#: What an ``adjacency`` parameter accepts (a libpysal W/Graph is accepted too).
Adjacency = GridAdjacency | LatticeAdjacency | sp.spmatrix | sp.sparray | Any | None

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Unset:
    """Marker of a parameter that was not passed."""

    def __repr__(self) -> str:
        return "<unset>"

    def __bool__(self) -> bool:
        return False


#: Default of a deprecated parameter: tells "not passed" from any value, None included.
UNSET = _Unset()


def user_stacklevel() -> int:
    """Stack level of the first frame outside topobrain, for ``warnings.warn``.

    Warnings then point at the user's line, however deep inside the package they are
    raised (as pandas' and nilearn's ``find_stack_level``).
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG):
        frame, level = frame.f_back, level + 1
    return level


def _describe(value) -> str:
    if isinstance(value, (str, int, np.integer)) and not isinstance(value, bool):
        return repr(value)
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _allowed_text(allowed: Sequence) -> str:
    names = [repr(a) for a in allowed]
    return ", ".join(names) + ", a scipy.sparse (n, n) matrix or a libpysal W"


def _is_name(value) -> bool:
    return isinstance(value, str) or (
        isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    )


def _sparse_of(value):
    """The sparse matrix inside a libpysal W / Graph (its ``.sparse``), or None."""
    inner = getattr(value, "sparse", None)
    return inner if sp.issparse(inner) else None


def check_adjacency(
    adjacency,
    *,
    n: int | None = None,
    allowed: Sequence = GRID_ADJACENCIES,
    name: str = "adjacency",
) -> str | int | sp.csr_array:
    """Validate an ``adjacency`` argument and return its canonical form.

    Parameters
    ----------
    adjacency : {"rook", "queen"}, {6, 18, 26}, scipy.sparse matrix, ndarray, libpysal W or None
        ``None`` means :data:`DEFAULT_ADJACENCY` (when it is among ``allowed``).
    n : int, optional
        Number of locations the adjacency must cover (checked for matrices).
    allowed : sequence of str or int, default=("rook", "queen")
        The named neighbourhoods this caller supports, e.g. ``(6, 18, 26)`` for volumes.
        Matrices (sparse, dense square arrays, libpysal W) are always accepted.
    name : str, default="adjacency"
        The parameter's name in error messages.

    Returns
    -------
    str or int or scipy.sparse.csr_array
        The name (``"queen"``, ``6``, ...; ``"6"`` is read as ``6``), or a new float64
        CSR array of shape ``(n, n)`` with explicit zeros removed and sorted indices (the
        caller's matrix is never modified or returned).

    Raises
    ------
    TypeError
        For a value of the wrong type.
    ValueError
        For an unknown name, a non-square or wrongly sized matrix, or NaN, infinite or
        negative weights.

    Examples
    --------
    >>> check_adjacency(None)
    'queen'
    >>> check_adjacency("18", allowed=(6, 18, 26))
    18
    >>> check_adjacency(np.eye(3)[::-1]).shape
    (3, 3)
    """
    if adjacency is None:
        if DEFAULT_ADJACENCY in allowed:
            return DEFAULT_ADJACENCY
        raise ValueError(
            f"{name} is required here: pass one of {_allowed_text(allowed)}."
        )
    if _is_name(adjacency):
        value = adjacency
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, np.integer):
            value = int(value)
        if value in allowed:
            return value
        from ._validation import suggest

        hint = suggest(str(adjacency), [str(a) for a in allowed]) if isinstance(
            adjacency, str) else ""
        raise ValueError(
            f"Invalid {name} {adjacency!r}: allowed are {_allowed_text(allowed)}.{hint}"
        )
    inner = _sparse_of(adjacency)
    if inner is not None:
        matrix = inner
    elif sp.issparse(adjacency):
        matrix = adjacency
    elif isinstance(adjacency, np.ndarray):
        if adjacency.ndim != 2:
            raise ValueError(
                f"{name} must be a square (n, n) matrix; got an array of shape "
                f"{adjacency.shape}. Pass one of {_allowed_text(allowed)}."
            )
        try:
            matrix = sp.csr_array(np.asarray(adjacency, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be numeric; got an array of dtype {adjacency.dtype}."
            ) from None
    else:
        raise TypeError(
            f"{name} must be one of {_allowed_text(allowed)}; got {_describe(adjacency)}."
        )
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be square (n, n); got shape {tuple(matrix.shape)}.")
    if n is not None and matrix.shape[0] != int(n):
        raise ValueError(
            f"{name} covers {matrix.shape[0]} locations but the data have {int(n)}: pass an "
            f"adjacency of shape ({int(n)}, {int(n)})."
        )
    try:
        out = sp.csr_array(matrix, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold numbers; got dtype {matrix.dtype}.") from None
    if not np.all(np.isfinite(out.data)):
        raise ValueError(
            f"{name} holds {int((~np.isfinite(out.data)).sum())} NaN or infinite entries; "
            "neighbour weights must be finite."
        )
    if np.any(out.data < 0):
        raise ValueError(
            f"{name} holds {int((out.data < 0).sum())} negative entries; neighbour weights "
            "must be non-negative."
        )
    out.eliminate_zeros()
    out.sort_indices()
    return out


def adjacency_name(adjacency) -> str:
    """What a result records in ``params["adjacency"]``.

    Parameters
    ----------
    adjacency : str, int, scipy.sparse matrix, ndarray, libpysal W or None
        As passed by the user (or as returned by :func:`check_adjacency`).

    Returns
    -------
    str
        ``"queen"``, ``"rook"``, ``"6"``, ``"18"``, ``"26"``, ``"custom sparse (n x n,
        nnz nonzero)"``, ``"dense (n x n, nnz nonzero)"`` or ``"libpysal W (n x n, nnz
        nonzero)"``; ``None`` records :data:`DEFAULT_ADJACENCY`.

    Examples
    --------
    >>> adjacency_name(None), adjacency_name(26)
    ('queen', '26')
    >>> adjacency_name(sp.eye_array(4))
    'custom sparse (4 x 4, 4 nonzero)'
    """
    if adjacency is None:
        return DEFAULT_ADJACENCY
    if _is_name(adjacency):
        return str(int(adjacency)) if not isinstance(adjacency, str) else adjacency
    inner = _sparse_of(adjacency)
    if inner is not None:
        label, matrix = f"libpysal {type(adjacency).__name__}", inner
    elif sp.issparse(adjacency):
        label, matrix = "custom sparse", adjacency
    elif isinstance(adjacency, np.ndarray) and adjacency.ndim == 2:
        label, matrix = "dense", adjacency
    else:
        return type(adjacency).__name__
    nnz = matrix.count_nonzero() if sp.issparse(matrix) else int(np.count_nonzero(matrix))
    r, c = matrix.shape
    return f"{label} ({r} x {c}, {int(nnz)} nonzero)"


def renamed_parameter(old: str, new: str, value, current=UNSET):
    """Resolve a parameter renamed to ``new``, warning when the ``old`` name was used.

    Parameters
    ----------
    old, new : str
        The deprecated and the current parameter name.
    value : object
        What came in under the old name (:data:`UNSET` when it was not passed).
    current : object, default=UNSET
        What came in under the new name (:data:`UNSET` or ``None`` when not passed).

    Returns
    -------
    object
        ``value`` when the old name was used (with a ``DeprecationWarning`` at the user's
        line), otherwise ``current``.

    Raises
    ------
    TypeError
        When both names were passed.
    """
    if value is UNSET:
        return None if current is UNSET else current
    if current is not UNSET and current is not None:
        raise TypeError(f"Got both {old}= and {new}=; pass only {new}= ({old} is deprecated).")
    warnings.warn(
        f"The {old!r} parameter is deprecated and will be removed in the next release; "
        f"use {new}= instead (same values).",
        DeprecationWarning,
        stacklevel=user_stacklevel(),
    )
    return value


def deprecated_alias(**aliases: str):
    """Decorator: accept deprecated keyword names for renamed parameters for one release.

    ``@deprecated_alias(weights="adjacency")`` lets ``f(x, weights=w)`` run as
    ``f(x, adjacency=w)`` with a ``DeprecationWarning`` at the caller's line; passing both
    names is a ``TypeError``. The wrapped signature (``inspect.signature``) shows only the
    new names.
    """

    def wrap(func):
        @functools.wraps(func)
        def inner(*args, **kwargs):
            for old, new in aliases.items():
                if old in kwargs:
                    kwargs[new] = renamed_parameter(old, new, kwargs.pop(old),
                                                    kwargs.get(new, UNSET))
            return func(*args, **kwargs)

        return inner

    return wrap
