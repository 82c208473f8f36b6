"""``topobrain localize``: the localizer end to end (see :func:`topobrain.pipeline.localize`)."""

from __future__ import annotations

from ._model_flags import add_model_flags, load_model_from_args, model_options
from ._types import check_device, count, device, n_jobs, number, probability


def run(args) -> int:
    from ..pipeline import localize

    check_device(args.device)
    stimuli = args.stimuli
    if args.encoding is not None:
        from ..stimuli import load_stimuli

        stimuli = load_stimuli(args.stimuli, encoding=args.encoding)
    model, control = args.model, args.control
    if model_options(args):  # checkpoint or Hugging Face options: open the models here
        model = load_model_from_args(args)
        control = control and load_model_from_args(args, attr="control")
    result = localize(
        model, stimuli, args.contrast, out=args.out, control=control,
        smooth_fwhm=args.smooth_fwhm or None, pooling=args.pooling,
        correction=args.correction, alpha=args.alpha, n_permutations=args.n_permutations,
        cluster_p=args.cluster_p, selectivity=args.selectivity,
        brain_reference=args.brain_reference, layers=args.layers,
        batch_size=args.batch_size, device=args.device, seed=args.seed,
        cache=not args.no_cache, overwrite=args.overwrite, n_jobs=args.n_jobs,
        wait=args.wait, verbose=args.verbose)
    for line in result.summary:
        print(line)
    print(f"report: {result.report}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "localize", help="run a localizer on a model and write maps, statistics and a report",
        description="Run fMRI-style localizer stimuli through a topographic model; Welch t per "
        "unit, FDR over all layers, Moran's I with a label-permutation null, cluster FWE "
        "tests, figures and an HTML report.")
    p.add_argument("--model", required=True, help="bundled model name or model path")
    p.add_argument("--control", default=None, help="control model (alpha = 0) to show beside")
    p.add_argument("--stimuli", required=True,
                   help="bundled stimulus set name, TSV/CSV file or langloc folder")
    p.add_argument("--encoding", default=None,
                   help="text encoding of a stimulus file (default utf-8; utf-8-sig for a "
                   "file with a byte-order mark, latin-1, cp1252, ...)")
    p.add_argument("--contrast", required=True, action="append",
                   help='contrast over conditions, e.g. "S - N" (repeatable)')
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--smooth-fwhm", type=number(low=0), default=None, metavar="FWHM",
                   help="readout smoothing FWHM in sheet units, >= 0 (0: none; published: 2)")
    p.add_argument("--pooling", default="mean", choices=["mean", "last", "first", "sum"])
    p.add_argument("--correction", default="bh", choices=["bh", "by", "bonferroni", "holm"])
    p.add_argument("--alpha", type=probability(), default=0.05,
                   help="level of the correction, in (0, 1) (default 0.05)")
    p.add_argument("--n-permutations", type=count(0), default=1000, metavar="N",
                   help="label permutations for the Moran's I null and cluster FWE, >= 0 "
                   "(0 skips them; default 1000)")
    p.add_argument("--cluster-p", type=probability(), default=0.001, metavar="P",
                   help="two-sided cluster-forming p, in (0, 1) (default 0.001)")
    p.add_argument("--selectivity", action="store_true",
                   help="also map preferred conditions (omnibus F) over all conditions")
    p.add_argument("--brain-reference", type=number(low=-1, high=1), default=None,
                   metavar="I", help="Moran's I of a brain map to draw beside the model's, "
                   "in [-1, 1]")
    p.add_argument("--layers", nargs="+", default=None, help="layers to analyse (default all)")
    p.add_argument("--batch-size", type=count(1), default=32, metavar="N",
                   help="items per forward pass, >= 1 (default 32)")
    p.add_argument("--device", type=device, default="auto",
                   help="auto (default: a GPU when there is one), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=count(0), default=0, help="random seed, >= 0 (default 0)")
    p.add_argument("--n-jobs", type=n_jobs, default=None, metavar="N",
                   help="parallel jobs for permutations, non-zero (-1: all CPUs; default: "
                   "joblib's, one unless joblib.parallel_config says otherwise)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder that holds another run")
    p.add_argument("--wait", type=number(low=0), nargs="?", const=True, default=False,
                   metavar="SECONDS",
                   help="when another run holds --out, wait until it finishes (at most "
                   "SECONDS when given) instead of stopping with the holder's name")
    add_model_flags(p)
    p.set_defaults(func=run)
