"""Input checkers: validate once at the public function, with errors that state the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def suggest(name: str, options: Iterable[str], n: int = 3) -> str:
    """Return a " Did you mean ...?" suffix for a misspelt ``name``, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=n, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def check_option(parameter: str, value: Any, allowed: Sequence[Any]) -> Any:
    """Raise a ValueError naming ``parameter`` when ``value`` is not one of ``allowed``."""
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        extra = suggest(value, [str(a) for a in allowed]) if isinstance(value, str) else ""
        raise ValueError(
            f"Invalid value for the {parameter!r} parameter. Allowed values are {listed}, "
            f"but got {value!r} instead.{extra}"
        )
    return value


def check_random_state(seed) -> np.random.Generator:
    """Turn ``seed`` (None, int, SeedSequence or Generator) into a numpy Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    raise TypeError(
        f"seed must be None, an int or a numpy.random.Generator; got {type(seed).__name__}."
    )


def check_finite(array: np.ndarray, name: str, *, allow_nan: bool = False) -> None:
    """Raise a ValueError that counts the non-finite entries of ``array``."""
    bad = ~np.isfinite(array)
    if allow_nan:
        bad &= ~np.isnan(array)
    if bad.any():
        idx = np.argwhere(bad)
        first = ", ".join(str(tuple(int(i) for i in row)) for row in idx[:5])
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite values (NaN or inf), first at index "
            f"{first}. Remove or impute them before the analysis."
        )
