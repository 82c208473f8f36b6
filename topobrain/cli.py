"""The ``topobrain`` command: one dispatcher, one module per subcommand.

Each subcommand module under ``topobrain/_cli/`` defines ``add_parser(subparsers)``
(which sets ``func``) and keeps statistics out of the CLI: it parses, calls one public
function, and writes files. Errors print the library's message on one line; ``--debug``
shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__

__all__ = ["main", "build_parser"]

# subcommand name -> module under topobrain._cli; modules are imported lazily
SUBCOMMANDS = {
    "train": "train",
    "localize": "localize",
    "compare": "compare",
    "stimuli": "stimuli",
    "sys-info": "sys_info",
}


class CLIError(Exception):
    """An error to report on one line (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="topobrain",
        description="Neuroimaging-style analysis of topographic language models: localizers, "
        "GLM contrasts, Moran's I, cluster statistics and brain comparison.",
    )
    parser.add_argument("--version", action="version", version=f"topobrain {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="count", default=1,
                        help="more logging (repeat for debug output)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        importlib.import_module(f"topobrain._cli.{module}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    verbose = 0 if args.quiet else args.verbose
    logging.basicConfig(level=logging.WARNING if verbose == 0 else
                        (logging.INFO if verbose == 1 else logging.DEBUG),
                        format="%(message)s")
    args.verbose = verbose
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, FileNotFoundError, FileExistsError,
            KeyError, LookupError, OSError) as exc:
        if args.debug:
            raise
        msg = str(exc).strip().splitlines()
        print(f"topobrain {args.command}: error: {' '.join(m.strip() for m in msg)}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
