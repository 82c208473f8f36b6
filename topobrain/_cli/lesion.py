"""``topobrain lesion``: lesion localized units against matched controls (see
:func:`topobrain.lesion.run_lesions`)."""

from __future__ import annotations

from ._model_flags import add_model_flags, load_model_from_args, model_options
from ._types import check_device, count, device, n_jobs, probability


def _kinds(text: str) -> list[str]:
    import argparse

    from ..lesion import CONTROL_KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in CONTROL_KINDS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown control kind {bad[0]!r}; choose from {', '.join(CONTROL_KINDS)} "
            f"(comma-separated)")
    return kinds


def run(args) -> int:
    from ..lesion import run_lesions

    check_device(args.device)
    model = load_model_from_args(args) if model_options(args) else args.model
    result = run_lesions(
        model, args.stimuli, args.contrast, targets=args.target or ["top5%"],
        controls=args.controls, n_controls=args.n_controls, mode=args.mode,
        localizer=args.localizer, eval_text=args.eval_text,
        minimal_pairs=args.minimal_pairs or [], bos=args.bos,
        avoid_target=not args.allow_overlap, alpha=args.alpha, cluster_p=args.cluster_p,
        seed=args.seed, n_jobs=args.n_jobs, device=args.device, out=args.out,
        overwrite=args.overwrite, max_eval_windows=args.max_eval_windows,
        verbose=args.verbose)
    summ = result.summary()
    for _, r in summ.iterrows():
        print(f"{r['lesion_id']} vs {r['against']}: {r['measure']} change {r['change']:+.4g}"
              f", z {r['z']:.2f}, p {r['p']:.3g}")
    print(f"report: {result.out / 'report.html'}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "lesion", help="lesion localized units, clusters or patches against matched controls",
        description="Localize units with a contrast, silence a target (top k% by t, FDR "
        "units, a cluster, a disc or square, a mask) and matched random controls, and "
        "measure surprisal per condition, held-out loss, minimal-pair accuracy and the "
        "contrast in later layers; writes lesions.csv, lesion_units.csv, items.csv, "
        "figures and report.html.")
    p.add_argument("--model", required=True, help="bundled model name or model path")
    p.add_argument("--stimuli", required=True,
                   help="localizer stimuli: bundled set name, TSV/CSV file or langloc folder")
    p.add_argument("--contrast", required=True, help='localizer contrast, e.g. "S - N"')
    p.add_argument("--target", action="append", default=None, metavar="SPEC",
                   help="what to lesion (repeatable; default top5%%): top5%%, top1%%/layer, "
                   "fdr, cluster:ID, cluster:largest, disc:LAYER:ROW,COL:RADIUS, "
                   "square:LAYER:ROW,COL:HALF, mask:FILE.npz")
    p.add_argument("--controls", type=_kinds, default=["random-units", "random-patch"],
                   metavar="KINDS", help="control kinds, comma-separated: random-units, "
                   "random-patch, magnitude (default random-units,random-patch)")
    p.add_argument("--n-controls", type=count(2), default=100, metavar="N",
                   help="controls per target and kind, >= 2 (default 100)")
    p.add_argument("--allow-overlap", action="store_true",
                   help="let controls share units with their target")
    p.add_argument("--mode", choices=["zero", "mean"], default="zero",
                   help="set units to 0 or to their mean response over the stimuli")
    p.add_argument("--localizer", default=None, metavar="DIR",
                   help="take unit statistics and clusters from a topobrain localize folder")
    p.add_argument("--eval-text", default=None, metavar="FILE",
                   help="held-out text: mean loss per token")
    p.add_argument("--max-eval-windows", type=count(1), default=None, metavar="N",
                   help="use only the first N context windows of --eval-text")
    p.add_argument("--minimal-pairs", nargs="+", action="extend", default=None,
                   metavar="FILE", help="minimal pairs: bundled name (agreement), BLiMP "
                   ".jsonl file or folder, SyntaxGym suite .json (repeatable)")
    p.add_argument("--bos", action="store_true",
                   help="prepend the BOS token (then every item token is scored)")
    p.add_argument("--alpha", type=probability(), default=0.05,
                   help="FDR level of the localizer, in (0, 1) (default 0.05)")
    p.add_argument("--cluster-p", type=probability(), default=0.001, metavar="P",
                   help="two-sided cluster-forming p, in (0, 1) (default 0.001)")
    p.add_argument("--seed", type=count(0), default=0, help="random seed, >= 0 (default 0)")
    p.add_argument("--n-jobs", type=n_jobs, default=None, metavar="N",
                   help="parallel jobs for drawing controls (results never depend on it)")
    p.add_argument("--device", type=device, default="auto",
                   help="auto (default: a GPU when there is one), cpu, cuda, cuda:N or mps")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder that holds other files")
    add_model_flags(p)
    p.set_defaults(func=run)
