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


def check_device(device, *, parameter: str = "device"):
    """The ``torch.device`` that ``device`` names, refused when this machine lacks it.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None: a CUDA GPU when there is one, else the CPU), ``"cpu"``,
        ``"cuda"``, ``"cuda:N"``, ``"mps"``, or a ``torch.device``.
    parameter : str, default="device"
        How the caller names the setting in messages: a keyword (``"device"`` gives
        ``device='cpu'``) or a command-line flag (``"--device"`` gives ``--device cpu``).

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        One line naming the device, what this machine has, and the value that fixes it:
        for a name torch does not know, CUDA without CUDA (a CPU-only torch or no
        visible GPU), a GPU index beyond the visible ones, MPS off Apple hardware.
    TypeError
        When ``device`` is neither a string nor a ``torch.device``.
    """
    import torch

    flag = parameter.startswith("-")

    def setting(value) -> str:
        return f"{parameter} {value}" if flag else f"{parameter}={str(value)!r}"

    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"Invalid {parameter} {device!r}; use 'auto', 'cpu', 'cuda', "
                             f"'cuda:N' or 'mps'.") from None
    else:
        raise TypeError(f"{parameter} must be a string such as 'cpu', 'cuda' or 'auto', or a "
                        f"torch.device; got {type(device).__name__}.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch was built without CUDA" if torch.version.cuda is None
                   else "no CUDA device is visible")
            raise ValueError(f"{setting(device)}: CUDA is not available ({why}); use "
                             f"{setting('cpu')}, or {setting('auto')} to take a GPU when "
                             f"there is one.")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{setting(device)}: this machine has {n} CUDA device(s), "
                             f"cuda:0 to cuda:{n - 1}; use one of them or "
                             f"{setting('cuda')}.")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{setting(device)}: Apple's MPS is not available on this "
                             f"machine; use {setting('cpu')} or {setting('auto')}.")
    return dev
