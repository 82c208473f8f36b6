"""``topobrain train --config FILE.yaml``: train (or resume) a topographic GPT."""

from __future__ import annotations


def run(args) -> int:
    from ..models.train import load_config, train

    cfg = load_config(args.config)
    if args.max_steps is not None:
        cfg.max_steps = args.max_steps
    if args.out is not None:
        cfg.out = args.out
    cfg.verbose = args.verbose
    folder = train(cfg)
    print(f"model written to {folder}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a topographic GPT from a YAML config",
                       description="Train a TopoLM-style GPT; an interrupted run resumes "
                       "from its last checkpoint.")
    p.add_argument("--config", required=True, help="YAML training config (see configs/)")
    p.add_argument("--max-steps", type=int, default=None, help="override max_steps")
    p.add_argument("--out", default=None, help="override the output folder")
    p.set_defaults(func=run)
