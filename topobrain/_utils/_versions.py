"""Versions of Python, topobrain and the packages it works with: the provenance record of
every run (``run.yaml``) and of ``topobrain sys-info``."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

__all__ = ["PACKAGES", "versions"]

PACKAGES = ("numpy", "scipy", "pandas", "xarray", "torch", "matplotlib", "tokenizers",
            "safetensors", "nibabel", "nilearn", "transformers", "esda", "libpysal", "mne",
            "statsmodels")


def versions() -> dict:
    """Versions of Python, the platform, topobrain and :data:`PACKAGES` (None if absent).

    Read from the installed distributions' metadata: nothing is imported.
    """
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("topobrain", *PACKAGES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
