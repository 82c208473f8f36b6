"""``topobrain sys-info``: versions of Python, topobrain and its dependencies."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

PACKAGES = ["numpy", "scipy", "pandas", "xarray", "torch", "matplotlib", "tokenizers",
            "safetensors", "nibabel", "nilearn", "transformers", "esda", "libpysal", "mne",
            "statsmodels"]


def versions() -> dict:
    """Versions of Python, topobrain and the packages it works with (None if absent)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ["topobrain", *PACKAGES]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run(args) -> int:
    for k, v in versions().items():
        print(f"{k:>14}: {v if v is not None else 'not installed'}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sys-info", help="print versions of topobrain and its dependencies")
    p.set_defaults(func=run)
