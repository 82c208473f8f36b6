"""``topobrain models inspect``: what the loader sees (:func:`~topobrain.models.describe_model`)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from ._model_flags import add_model_flags, model_options


def run_inspect(args) -> int:
    from ..models.describe import describe_model

    desc = describe_model(args.path, **model_options(args))
    if args.json:
        print(json.dumps({**asdict(desc), "flag": desc.flag}, indent=1, default=str))
    else:
        print(desc)
    if not desc.loaded:
        print(f"topobrain models inspect: cannot load {args.path}"
              + (f": pass {desc.flag}" if desc.flag else ""), file=sys.stderr)
        return 1
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="inspect models as the loader sees them",
                       description="Model utilities.")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    q = msub.add_parser(
        "inspect", help="kind, sheet layers, tokenizer, context, positions, identity",
        description="Open a model as `localize` would and list what the loader sees: its "
        "kind, each sheet layer with its shape and module, the tokenizer, the context "
        "length, where the unit positions come from and the identity (the activation "
        "cache key). For a model it cannot open, say which part is missing and which flag "
        "supplies it (exit status 1).")
    q.add_argument("path", metavar="PATH", help="bundled model name, model folder, TopoLM "
                   "checkpoint or Hugging Face folder")
    q.add_argument("--json", action="store_true", help="print the description as JSON")
    add_model_flags(q)
    q.set_defaults(func=run_inspect)
