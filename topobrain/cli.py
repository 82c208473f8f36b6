"""The ``topobrain`` command: one dispatcher, one module per subcommand.

Each subcommand module under ``topobrain/_cli/`` defines ``add_parser(subparsers)``
(which sets ``func``) and keeps statistics out of the CLI: it parses, calls one public
function, and writes files.

Errors are one line on stderr, ``topobrain COMMAND: error: ...``, naming the flag that
fixes them (a library message that names a keyword, ``index=``, is shown with the
command's flag, ``--index``). Exit status 2 for bad input (flags, files, values), 1 for
anything else (with a pointer to ``--debug``), 130 when interrupted. ``--debug`` shows the
traceback instead. Warnings are one line each too, ``topobrain COMMAND: warning: ...``.
``-q``, ``-v`` and ``--debug`` are accepted before or after the subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import warnings

from . import __version__

__all__ = ["main", "build_parser"]

# subcommand name -> module under topobrain._cli; modules are imported lazily
SUBCOMMANDS = {
    "train": "train",
    "localize": "localize",
    "compare": "compare",
    "stimuli": "stimuli",
    "sys-info": "sys_info",
    "models": "models",
    "lesion": "lesion",
}

# exceptions that mean "the input was wrong" (exit status 2); anything else is exit 1
INPUT_ERRORS = (ValueError, TypeError, LookupError, OSError)


class CLIError(Exception):
    """An error to report on one line (exit status 2)."""


class UsageError(SystemExit):
    """Raised by the parser for bad flags; carries the one-line message (exit status 2)."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line: ``PROG: error: MESSAGE``.

    The usage text is left out of errors (``PROG --help`` shows it); ``main`` prints the
    line, so that in-process callers see it on stderr like any other error.
    """

    def error(self, message):  # noqa: D102 - argparse API
        message = " ".join(str(message).split())
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def _add_global_options(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    """``--debug``, ``-v`` and ``-q``; on subcommands they store under ``sub_*`` names
    (absent unless given), so that ``main`` can combine both positions."""
    prefix = "sub_" if sub else ""
    extra = {"default": argparse.SUPPRESS} if sub else {}
    parser.add_argument("--debug", action="store_true", dest=f"{prefix}debug",
                        help="show tracebacks on errors", **extra)
    parser.add_argument("-v", "--verbose", action="count", dest=f"{prefix}verbose",
                        help="more logging (repeat for debug output)",
                        **(extra or {"default": 0}))
    parser.add_argument("-q", "--quiet", action="store_true", dest=f"{prefix}quiet",
                        help="no progress bars or logs", **extra)


def _subparser_actions(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _subparsers(parser: argparse.ArgumentParser):
    for action in _subparser_actions(parser):
        yield from action.choices.values()


def _leaf_parsers(parser: argparse.ArgumentParser):
    """The parsers of every (sub)subcommand below ``parser``."""
    for p in _subparsers(parser):
        yield p
        yield from _leaf_parsers(p)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="topobrain",
        description="Neuroimaging-style analysis of topographic language models: localizers, "
        "GLM contrasts, Moran's I, cluster statistics and brain comparison.",
    )
    parser.add_argument("--version", action="version", version=f"topobrain {__version__}")
    _add_global_options(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in SUBCOMMANDS.values():
        importlib.import_module(f"topobrain._cli.{module}").add_parser(sub)
    for p in _leaf_parsers(parser):
        _add_global_options(p, sub=True)
    return parser


def _command_parser(parser, args) -> argparse.ArgumentParser:
    """The parser of the subcommand (and its action, ``stimuli validate``) that ran."""
    p = parser
    while True:
        chosen = [a.choices.get(getattr(args, a.dest, None)) for a in _subparser_actions(p)]
        chosen = [c for c in chosen if c is not None]
        if not chosen:
            return p
        p = chosen[0]


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Keyword (``dest``) -> its long flag, for every option of ``parser``."""
    out = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest not in out:
            out[action.dest] = longs[0]
    return out


def with_flags(message: str, flags: dict[str, str]) -> str:
    """A library message in the words of the command line.

    ``pass index= (0-based)`` becomes ``pass --index (0-based)`` and ``pass
    encoding='utf-8-sig'`` becomes ``pass --encoding 'utf-8-sig'`` when the command has
    those flags. A keyword followed by a bare value (``got alpha=2``) is left alone, and a
    keyword already followed by its flag (``contrast= (--contrast)``, ``wait=True
    (--wait)``, ``device='cpu' (--device cpu)``) becomes that flag.
    """
    if not flags:
        return message
    names = "|".join(sorted(map(re.escape, flags), key=len, reverse=True))
    # name=VALUE (--flag ...) -> the flag; name= (--flag) -> the flag; name='v' -> --flag 'v';
    # name= -> --flag
    pattern = (rf"(?<![\w.\-])({names})=(?:\S*?\s*\((--[\w-]+[^()]*)\)"
               rf"|('[^']*'|\"[^\"]*\")|(?=[\s,;:.)]|$))")

    def repl(m):
        if m.group(2):
            return m.group(2)
        return flags[m.group(1)] + (f" {m.group(3)}" if m.group(3) else "")

    return re.sub(pattern, repl, message)


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def _error(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)


def main(argv=None) -> int:
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 2 for bad flags or input (one line on stderr naming the fix); 1 for
        any other error (one line and a pointer to ``--debug``); 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    debug = args.debug or getattr(args, "sub_debug", False)
    quiet = args.quiet or getattr(args, "sub_quiet", False)
    if args.command is None:
        parser.print_help()
        return 0
    verbose = 0 if quiet else 1 + args.verbose + getattr(args, "sub_verbose", 0)
    for name in ("sub_debug", "sub_quiet", "sub_verbose"):
        if hasattr(args, name):
            delattr(args, name)
    args.debug, args.quiet, args.verbose = debug, quiet, verbose
    logging.basicConfig(level=logging.WARNING if verbose == 0 else
                        (logging.INFO if verbose == 1 else logging.DEBUG),
                        format="%(message)s")
    command = _command_parser(parser, args)
    prog = command.prog
    flags = flag_names(command)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {with_flags(_one_line(message), flags)}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning  # one line each, restored on exit
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:  # a subcommand calling parser.error-style checks
        if debug:
            raise
        print(exc.message, file=sys.stderr)
        return 2
    except (CLIError, *INPUT_ERRORS) as exc:
        if debug:
            raise
        text = str(exc) if not isinstance(exc, KeyError) else _key_error_text(exc)
        _error(prog, with_flags(_one_line(text), flags))
        return 2
    except Exception as exc:  # the last resort: still one line
        if debug:
            raise
        text = _one_line(exc) or "(no message)"
        _error(prog, f"{type(exc).__name__}: {text} (an unexpected error: rerun with "
                     f"--debug for the traceback, and report it)")
        return 1


def _key_error_text(exc: KeyError) -> str:
    """A KeyError's ``str`` is the repr of its key; say what it means."""
    if len(exc.args) == 1 and not isinstance(exc.args[0], str):
        return f"missing key {exc.args[0]!r}"
    arg = exc.args[0] if exc.args else ""
    if isinstance(arg, str) and " " not in arg.strip():
        return f"missing key {arg!r} (rerun with --debug for the traceback)"
    return str(arg)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
