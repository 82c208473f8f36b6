"""Shared parameter documentation, written once and filled into docstrings.

A docstring writes ``%(seed)s`` on a line of its own, indented like the other parameter
entries; :func:`fill_doc` replaces it with the entry below, re-indented to match (the
idea of MNE-Python's ``docdict``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

__all__ = ["docdict", "fill_doc"]

F = TypeVar("F", bound=Callable)

docdict: dict[str, str] = {}

docdict["seed"] = """\
seed : int, numpy.random.Generator, numpy.random.SeedSequence or None, default=None
    Seeds the permutations. An int or a SeedSequence gives the same null on every run;
    a Generator gives one seed drawn from it; None draws fresh entropy, recorded in
    ``params["seed"]`` so that the run can be repeated. The null depends on nothing
    else: not on ``n_jobs``, chunking or the joblib backend."""

docdict["n_jobs"] = """\
n_jobs : int or None, default=None
    Parallel jobs over permutation blocks, through joblib. None follows the active
    ``joblib.parallel_config`` (one job unless configured), so that
    ``parallel_config(backend="dask")`` inside a ``dask.distributed.Client`` runs the
    permutations on a Dask cluster. Results never depend on it."""

docdict["verbose"] = """\
verbose : int, default=1
    0 silences the progress bar; messages go to ``logging.getLogger("topobrain")``."""

docdict["adjacency"] = """\
adjacency : {"queen", "rook"}, scipy.sparse matrix or libpysal W, default="queen"
    Which cells of the sheet are neighbours: ``"queen"`` (8 neighbours, the published
    choice for Moran's I), ``"rook"`` (4 neighbours), or an explicit ``(n, n)`` sparse
    adjacency or libpysal weights object."""

docdict["alternative"] = """\
alternative : {"greater", "less", "two-sided"}
    Which tail of the statistic counts as extreme; a two-sided p-value is twice the
    smaller one-sided value, capped at 1."""

docdict["n_permutations"] = """\
n_permutations : int, default=1000
    Number of permutations ``B``. When the design allows no more than ``B`` distinct
    permutations they are all used (an exact test, ``p = #{at least as extreme} / B``
    with the identity in the null); otherwise ``B`` distinct, non-identity
    permutations are drawn and ``p = (1 + #{at least as extreme}) / (1 + B)``. Ties
    within rounding count as at least as extreme."""


_ENTRY = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(func: F) -> F:
    """Fill the ``%(name)s`` lines of ``func``'s docstring from :data:`docdict`.

    Each ``%(name)s`` standing alone on a line becomes the entry, indented like that
    line; nothing else in the docstring changes (a stray ``%`` is safe).

    Raises
    ------
    KeyError
        Naming the unknown entry, when the docstring asks for one that is not defined.
    """
    doc = func.__doc__
    if not doc:
        return func

    def entry(match: re.Match) -> str:
        indent, key = match.group(1), match.group(2)
        if key not in docdict:
            raise KeyError(f"{func.__qualname__}: no shared doc entry {key!r} in "
                           "topobrain._utils._docs.docdict")
        return textwrap.indent(docdict[key], indent)

    func.__doc__ = _ENTRY.sub(entry, doc)
    return func
