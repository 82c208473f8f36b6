"""Argument types of the command line: numbers checked against their allowed range.

Each factory returns a callable for argparse's ``type=``; a value outside the range is an
``argparse.ArgumentTypeError`` whose message states the range, so that the error reads
``argument --cluster-p: must be in (0, 1), got 0``. The library checks the same
parameters again (the CLI only says it sooner, in the flag's words).
"""

from __future__ import annotations

import argparse
import math

__all__ = ["number", "probability", "count", "n_jobs", "device", "check_device"]


def _parse(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        name = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {name}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def number(*, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, kind: type = float):
    """A finite number (``kind`` float or int) in ``[low, high]`` (ends open on request)."""
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    if low is not None and high is not None:
        allowed = f"in {lo}{low:g}, {high:g}{hi}"
    elif low is not None:
        allowed = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        allowed = f"{'<' if high_open else '<='} {high:g}"
    else:
        allowed = "finite"

    def convert(text: str):
        value = _parse(text, kind)
        bad = ((low is not None and (value < low or (low_open and value == low)))
               or (high is not None and (value > high or (high_open and value == high))))
        if bad:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    convert.__name__ = "integer" if kind is int else "number"  # argparse's fallback text
    return convert


def probability():
    """A probability strictly between 0 and 1 (levels, cluster-forming p)."""
    return number(low=0, high=1, low_open=True, high_open=True)


def count(low: int = 0):
    """An integer ``>= low`` (permutations, batch sizes, steps)."""
    return number(low=low, kind=int)


def n_jobs(text: str) -> int:
    """joblib's ``n_jobs``: a non-zero integer (-1: all CPUs, -2: all but one, ...)."""
    value = _parse(text, int)
    if value == 0:
        raise argparse.ArgumentTypeError(
            "must be a non-zero integer (1: one job, -1: all CPUs, -2: all but one), got 0")
    return value


def device(text: str) -> str:
    """A torch device name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    name = text.strip().lower()
    kind, _, index = name.partition(":")
    if kind not in ("auto", "cpu", "cuda", "mps") or (index and not
                                                       (kind == "cuda" and index.isdigit())):
        raise argparse.ArgumentTypeError(
            f"must be auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return name


def check_device(name: str, flag: str = "--device") -> None:
    """Refuse a device this machine does not have, before any model is loaded.

    The library's one device check (:func:`topobrain._utils._validation.check_device`),
    with messages that name the flag.

    Raises
    ------
    ValueError
        One line naming the device, what the machine has, and the flag that fixes it.
    """
    if name in ("auto", "cpu"):
        return  # no torch import for the common case
    from .._utils._validation import check_device as _check

    _check(name, parameter=flag)
