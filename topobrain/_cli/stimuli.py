"""``topobrain stimuli list | show NAME | validate FILE | make KIND ...``."""

from __future__ import annotations

import json
import sys

from ._types import count


def _columns(pairs) -> dict | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        for item in pair.split(","):
            if "=" not in item:
                raise ValueError(f"--column takes OLD=NEW (e.g. --column sentence=text); got "
                                 f"{item!r}.")
            old, new = item.split("=", 1)
            out[old.strip()] = new.strip()
    return out


def _load(args):
    from ..stimuli import load_stimuli

    return load_stimuli(args.source, columns=_columns(getattr(args, "column", None)),
                        sep=getattr(args, "sep", None),
                        encoding=getattr(args, "encoding", "utf-8"),
                        clean=getattr(args, "clean", False))


def run_list(args) -> int:
    from ..stimuli import available_stimuli, bundled_path, load_stimuli

    for name in available_stimuli():
        stim = load_stimuli(name)
        readme = bundled_path(name) / "README.md"
        title = ""
        if readme.is_file():
            first = readme.read_text(encoding="utf-8").splitlines()[0]
            title = first.lstrip("# ").split(":", 1)[-1].strip()
        counts = ", ".join(f"{c} {n}" for c, n in stim.counts.items())
        print(f"{name:<20} {len(stim):>5} items ({counts})  {title}")
    return 0


def run_show(args) -> int:
    from ..stimuli import available_stimuli, bundled_path

    args.source = args.name
    stim = _load(args)
    if args.readme:
        if stim.name not in available_stimuli():
            raise ValueError(f"--readme is for bundled sets {available_stimuli()}; "
                             f"{args.name!r} is a file.")
        print((bundled_path(stim.name) / "README.md").read_text(encoding="utf-8"))
        return 0
    print(repr(stim))
    print(f"identity: {stim.identity}")
    frame = stim.to_frame()
    n = args.head
    if n > 0:
        import pandas as pd

        with pd.option_context("display.max_colwidth", 80, "display.width", 160):
            for cond in stim.conditions:
                print(f"\n{cond} ({stim.counts[cond]} items), first {min(n, stim.counts[cond])}:")
                print(frame[frame["condition"] == cond].head(n).to_string(index=False))
    return 0


def run_validate(args) -> int:
    stim = _load(args)
    counts = ", ".join(f"{c}: {n}" for c, n in stim.counts.items())
    print(f"OK {args.source}: {len(stim)} items, {len(stim.conditions)} conditions ({counts}); "
          f"columns {stim.columns}")
    for expr in args.contrast or []:
        con = stim.contrast(expr)
        print(f"contrast {con.expression!r}: weights {con.weights}")
    return 0


def run_make(args) -> int:
    from .. import __version__
    from ..stimuli import jabberwocky, nonword_lists, word_lists

    if args.kind == "pseudowords":
        from ..pseudowords import generate

        if args.n is None:
            raise ValueError("make pseudowords needs --n (how many), e.g. --n 20 --length 6.")
        words = generate(args.n, lengths=args.length, seed=args.seed)
        text = "\n".join(words) + "\n"
        if args.out:
            from .._utils._io import atomic_write_text

            atomic_write_text(args.out, text)
            print(f"{len(words)} pseudowords written to {args.out}")
        else:
            sys.stdout.write(text)
        return 0
    if args.source is None:
        raise ValueError(f"make {args.kind} needs a SOURCE: a bundled name, a .tsv/.csv file "
                         f"or a langloc folder.")
    stim = _load(args)
    maker = {"nonwords": nonword_lists, "jabberwocky": jabberwocky,
             "wordlists": word_lists}[args.kind]
    kwargs = {"condition": args.condition, "seed": args.seed}
    if args.label:
        kwargs.update(label=args.label, id_prefix=args.label)
    made = maker(stim, **kwargs)
    if args.out:
        made.to_tsv(args.out)
        prov = {"topobrain": __version__, "command": f"stimuli make {args.kind}",
                "source": str(args.source), "source_identity": stim.identity,
                "condition": args.condition, "seed": args.seed, "label": made.conditions[0],
                "n_items": len(made), "identity": made.identity}
        from .._utils._io import atomic_write_text

        atomic_write_text(f"{args.out}.provenance.json", json.dumps(prov, indent=2) + "\n")
        print(f"{len(made)} items ({args.kind}) written to {args.out}")
    else:
        sys.stdout.write(made.to_frame().to_csv(sep="\t", index=False, lineterminator="\n"))
    return 0


def _file_options(p) -> None:
    p.add_argument("--column", action="append", metavar="OLD=NEW",
                   help="rename a column, e.g. --column sentence=text --column cond=condition")
    p.add_argument("--sep", default=None, help="separator (default from the suffix)")
    p.add_argument("--encoding", default="utf-8", help="file encoding (default utf-8)")
    p.add_argument("--clean", action="store_true",
                   help="strip stray whitespace instead of refusing it")


def add_parser(sub) -> None:
    p = sub.add_parser("stimuli", help="list, show, validate and make stimulus sets",
                       description="Stimulus sets: the bundled ones (langloc, swjn, noun-verb, "
                       "noun-verb-phrases), your TSV/CSV files and the Fedorenko langloc "
                       "folder layout.")
    ss = p.add_subparsers(dest="stimuli_command", metavar="ACTION")
    ss.required = True

    q = ss.add_parser("list", help="the bundled stimulus sets")
    q.set_defaults(func=run_list)

    q = ss.add_parser("show", help="summary and first items of a set (name or file)")
    q.add_argument("name", help="bundled name, .tsv/.csv file or langloc folder")
    q.add_argument("--head", type=count(0), default=3,
                   help="items shown per condition, >= 0 (default 3)")
    q.add_argument("--readme", action="store_true", help="print a bundled set's README")
    _file_options(q)
    q.set_defaults(func=run_show)

    q = ss.add_parser("validate", help="check a stimulus file; errors name the row and fix")
    q.add_argument("source", metavar="FILE", help=".tsv/.csv file, langloc folder or name")
    q.add_argument("--contrast", action="append", metavar="EXPR",
                   help="also check a contrast, e.g. --contrast 'S - N'")
    _file_options(q)
    q.set_defaults(func=run_validate)

    q = ss.add_parser("make", help="derive non-word lists, Jabberwocky or word lists; draw "
                      "pseudowords")
    q.add_argument("kind", choices=["nonwords", "jabberwocky", "wordlists", "pseudowords"])
    q.add_argument("source", nargs="?", default=None,
                   help="source set (bundled name, file or folder); not for pseudowords")
    q.add_argument("--condition", default=None, help="use only this source condition")
    q.add_argument("--label", default=None, help="condition label of the new items")
    q.add_argument("--seed", type=count(0), default=0, help="random seed, >= 0 (default 0)")
    q.add_argument("--out", default=None, help="output .tsv (default: print to stdout)")
    q.add_argument("--n", type=count(1), default=None, help="pseudowords: how many, >= 1")
    q.add_argument("--length", type=count(1), default=None,
                   help="pseudowords: letters each, >= 1")
    _file_options(q)
    q.set_defaults(func=run_make)
