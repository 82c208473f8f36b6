"""``topobrain train --config FILE.yaml``: train (or resume) a topographic GPT."""

from __future__ import annotations

from ._types import check_device, count, device


def run(args) -> int:
    from ..models.train import load_config, train

    cfg = load_config(args.config)
    if args.max_steps is not None:
        cfg.max_steps = args.max_steps
    if args.out is not None:
        cfg.out = args.out
    if args.device is not None:
        cfg.device = args.device
    check_device(cfg.device)  # the config's device too: --device overrides it
    cfg.verbose = args.verbose
    folder = train(cfg, allow_config_change=args.allow_config_change or ())
    print(f"model written to {folder}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a topographic GPT from a YAML config",
                       description="Train a TopoLM-style GPT; an interrupted run resumes "
                       "from its last checkpoint, with the same config (see "
                       "--allow-config-change).")
    p.add_argument("--config", required=True, help="YAML training config (see configs/)")
    p.add_argument("--max-steps", type=count(1), default=None, metavar="N",
                   help="override max_steps, >= 1")
    p.add_argument("--out", default=None, help="override the output folder")
    p.add_argument("--device", type=device, default=None,
                   help="override the config's device: auto, cpu, cuda or cuda:N")
    p.add_argument("--allow-config-change", action="append", metavar="KEYS",
                   dest="allow_config_change",
                   help="on resume, let these config keys differ from the checkpoint's "
                   "(comma-separated; only keys that do not change what was learned: when "
                   "to stop, evaluate, checkpoint, where to run, e.g. "
                   "max_steps,eval_interval); the model card records the change")
    p.set_defaults(func=run)
