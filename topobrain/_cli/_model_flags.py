"""The one set of model flags shared by every command that opens a model.

``add_model_flags(parser)`` adds ``--positions``, ``--tokenizer``, ``--sheet-spec``,
``--sheet-shape`` and ``--with-resid/--no-with-resid``; ``load_model_from_args(args)``
opens ``args.model`` with them through :func:`topobrain.models.load` (the same keywords
in Python). A flag that does not apply to the kind of model given is refused by name.
"""

from __future__ import annotations

import argparse
import re

__all__ = ["MODEL_FLAGS", "add_model_flags", "flag_of", "load_model_from_args",
           "model_options", "parse_sheet_shape"]

#: keyword of :func:`topobrain.models.load` -> attribute on the parsed arguments
MODEL_FLAGS = ("positions", "tokenizer", "sheet_spec", "sheet_shape", "with_resid")


def flag_of(parameter: str) -> str:
    """The command-line flag of a :func:`topobrain.models.load` keyword."""
    return "--" + parameter.replace("_", "-")


def parse_sheet_shape(text: str) -> tuple[int, int]:
    """``"28x28"`` (or ``"28,28"``) -> ``(28, 28)``; an argparse type."""
    m = re.fullmatch(r"\s*(\d+)\s*[x,X\s]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(
            f"a sheet shape is ROWSxCOLS with two positive integers, e.g. 28x28; got "
            f"{text!r}")
    return int(m.group(1)), int(m.group(2))


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """Add the model flags to a subcommand's parser (as one argument group)."""
    g = parser.add_argument_group(
        "model options", "what a checkpoint or Hugging Face folder needs besides its weights "
        "(the same keywords as topobrain.models.load)")
    g.add_argument("--positions", default=None, metavar="DIR|CSV",
                   help="TopoLM checkpoints: the folder of layer.{i}.{attn,mlp}.pkl position "
                   "files or a layer,unit,x,y CSV (default model_args['position_dir'], "
                   "looked up beside the checkpoint, then in the working directory)")
    g.add_argument("--tokenizer", default=None, metavar="DIR|FILE",
                   help="TopoLM checkpoints and Hugging Face folders: tokenizer.json, or a "
                   "folder with it or with GPT-2's vocab.json and merges.txt (default: "
                   "beside the model)")
    g.add_argument("--sheet-spec", default=None, metavar="FILE|PRESET",
                   help="Hugging Face folders: which modules' outputs are sheets; a YAML or "
                   "JSON spec file, or a preset: toponets (each MLP c_fc output, identity "
                   "layout, as TopoLoss), mlp, attn+mlp (identity layout; add ':permuted' "
                   "or ':permuted:SEED' for a seeded permutation per layer)")
    g.add_argument("--sheet-shape", default=None, type=parse_sheet_shape, metavar="ROWSxCOLS",
                   help="TopoLM checkpoints: the sheet shape of the width (default: the grid "
                   "the positions fill, else the TopoNets rule)")
    g.add_argument("--with-resid", default=None, action=argparse.BooleanOptionalAction,
                   help="TopoLM checkpoints: sheets are the residual stream after each add "
                   "(--with-resid) or the attention/MLP outputs before it (--no-with-resid); "
                   "default model_args['with_resid']")


def model_options(args, *, kind: str | None = None, positions: bool = True) -> dict:
    """The model keywords given on the command line.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments of a parser that went through :func:`add_model_flags`.
    kind : str, optional
        Keep only the keywords that apply to this kind of model (see
        :data:`topobrain.models.loaders.KIND_PARAMETERS`); by default all that were given,
        so that :func:`topobrain.models.load` refuses one that does not apply.
    positions : bool, default=True
        False leaves out ``--positions`` (a control model has its own positions).
    """
    opts = {k: getattr(args, k, None) for k in MODEL_FLAGS}
    opts = {k: v for k, v in opts.items() if v is not None}
    if not positions:
        opts.pop("positions", None)
    if kind is not None:
        from ..models.loaders import KIND_PARAMETERS

        opts = {k: v for k, v in opts.items() if k in KIND_PARAMETERS[kind]}
    return opts


def load_model_from_args(args, *, attr: str = "model", device: str = "cpu"):
    """Open ``getattr(args, attr)`` with the model flags; returns a SheetModel.

    For ``attr="model"`` every given flag is passed (one that does not apply is refused
    by name). For another model of the same command (``attr="control"``) the flags that
    apply to its kind are passed, never ``--positions``.
    """
    from ..models import load, model_kind
    from ..models.loaders import KIND_PARAMETERS

    target = getattr(args, attr)
    kind = model_kind(target)
    if attr != "model":
        return load(target, device=device, **model_options(args, kind=kind, positions=False))
    opts = model_options(args)
    bad = [flag_of(k) for k in opts if k not in KIND_PARAMETERS[kind]]
    if bad:
        raise TypeError(f"{', '.join(bad)} {'does' if len(bad) == 1 else 'do'} not apply to "
                        f"{args.model} (a {kind} model); drop "
                        f"{'it' if len(bad) == 1 else 'them'}.")
    return load(target, device=device, **opts)
