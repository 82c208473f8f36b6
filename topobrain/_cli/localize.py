"""``topobrain localize``: the localizer end to end (see :func:`topobrain.pipeline.localize`)."""

from __future__ import annotations


def run(args) -> int:
    from ..pipeline import localize

    result = localize(
        args.model, args.stimuli, args.contrast, out=args.out, control=args.control,
        smooth_fwhm=args.smooth_fwhm, pooling=args.pooling, correction=args.correction,
        alpha=args.alpha, n_permutations=args.n_permutations, cluster_p=args.cluster_p,
        selectivity=args.selectivity, brain_reference=args.brain_reference,
        layers=args.layers, batch_size=args.batch_size, device=args.device, seed=args.seed,
        cache=not args.no_cache, overwrite=args.overwrite, n_jobs=args.n_jobs,
        verbose=args.verbose)
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
    p.add_argument("--contrast", required=True, action="append",
                   help='contrast over conditions, e.g. "S - N" (repeatable)')
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--smooth-fwhm", type=float, default=None,
                   help="readout smoothing FWHM in sheet units (published: 2)")
    p.add_argument("--pooling", default="mean", choices=["mean", "last", "first", "sum"])
    p.add_argument("--correction", default="bh", choices=["bh", "by", "bonferroni", "holm"])
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--n-permutations", type=int, default=1000,
                   help="label permutations for the Moran's I null and cluster FWE (0 skips)")
    p.add_argument("--cluster-p", type=float, default=0.001,
                   help="two-sided cluster-forming p")
    p.add_argument("--selectivity", action="store_true",
                   help="also map preferred conditions (omnibus F) over all conditions")
    p.add_argument("--brain-reference", type=float, default=None,
                   help="Moran's I of a brain map to draw beside the model's")
    p.add_argument("--layers", nargs="+", default=None, help="layers to analyse (default all)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder that holds another run")
    p.set_defaults(func=run)
