"""``topobrain sys-info``: versions of Python, topobrain and its dependencies."""

from __future__ import annotations

from .._utils._versions import versions


def run(args) -> int:
    for k, v in versions().items():
        print(f"{k:>14}: {v if v is not None else 'not installed'}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sys-info", help="print versions of topobrain and its dependencies")
    p.set_defaults(func=run)
