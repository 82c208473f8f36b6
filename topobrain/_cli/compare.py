"""``topobrain compare``: model maps against a brain map, side by side."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ._types import count, number, probability


def _sha256(path) -> str | None:
    from .._utils._hashing import hash_file

    return hash_file(path) if Path(path).is_file() else None


def run(args) -> int:
    from .. import __version__
    from .._utils._io import atomic_write_text
    from ..brain import load_map
    from ..compare import compare

    brain = load_map(args.brain, args.mesh, args.mask, hemi=args.hemi,
                     variable=args.variable, index=args.index)
    res = compare(
        args.model_results, brain, args.mesh,
        control_results=args.control_results, contrast=args.contrast, out=args.out,
        include_published=not args.no_published, df=args.df, alpha=args.alpha,
        tail=args.tail, n_permutations=args.n_permutations, seed=args.seed,
    )
    p = res.brain_summary.morans_i_p
    inputs = {"brain": args.brain,
              "model_layers": str(Path(args.model_results) / "layers.csv")}
    if args.control_results:
        inputs["control_layers"] = str(Path(args.control_results) / "layers.csv")
    provenance = {
        "command": "compare", "version": __version__,
        "parameters": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "inputs": {k: {"path": v, "sha256": _sha256(v)} for k, v in inputs.items()},
        "files": list(res.files),
        "brain_morans_i": res.brain_summary.morans_i,
        # the brain map's Moran's I permutation p-value, two-sided (None without permutations)
        "brain_morans_i_p": p,
    }
    prov = atomic_write_text(Path(args.out) / "provenance.json",
                             json.dumps(provenance, indent=2, default=str))
    print(res.summary().to_string(float_format=lambda v: f"{v:.4g}"))
    if p is not None and math.isfinite(p):
        print(f"brain Moran's I = {res.brain_summary.morans_i:.4g}, permutation p = {p:.4g} "
              f"(two-sided, {args.n_permutations} permutations)")
    for f in (*res.files, str(prov)):
        print(f"wrote {f}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare model maps with a brain map (Moran's I, clusters, ...)",
        description="Run the brain map through the statistics of the model maps and write "
        "a side-by-side table (comparison.csv) and figure (figures/comparison.png).")
    p.add_argument("--model-results", required=True, metavar="DIR",
                   help="folder written by `topobrain localize`")
    p.add_argument("--control-results", default=None, metavar="DIR",
                   help="the non-topographic control's localize folder")
    p.add_argument("--brain", required=True, metavar="FILE",
                   help="brain t/z map: NIfTI, GIfTI, CIFTI .dscalar.nii, .npy, .csv, .nc")
    p.add_argument("--mesh", default=None, metavar="MESH",
                   help="surface mesh: fsaverage5, fs_LR_32k or a surface file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--contrast", default=None, help="which contrast of the results")
    p.add_argument("--hemi", default=None, choices=("left", "right", "both"),
                   help="hemisphere(s) of a template mesh (inferred by default)")
    p.add_argument("--mask", default=None, metavar="FILE", help="volume or surface mask")
    p.add_argument("--variable", default=None,
                   help="variable/column holding the map (netCDF, HDF5, npz, CSV)")
    p.add_argument("--index", type=int, default=None,
                   help="which map of a file holding several (4D NIfTI volume, GIfTI data "
                   "array, CIFTI map, row of a 2D .npy), 0-based")
    p.add_argument("--df", type=number(low=0, low_open=True), default=None,
                   help="degrees of freedom of a brain t map, > 0 (default: z map)")
    p.add_argument("--alpha", type=probability(), default=0.05,
                   help="FDR level, in (0, 1) (default 0.05)")
    p.add_argument("--tail", type=int, default=1, choices=(1, 0, -1),
                   help="selective brain locations: 1 positive (as the localizer), "
                   "0 either sign, -1 negative")
    p.add_argument("--n-permutations", type=count(0), default=0, metavar="N",
                   help="permutations for the brain Moran's I p-value, >= 0 (default 0: none)")
    p.add_argument("--seed", type=count(0), default=None, help="random seed, >= 0")
    p.add_argument("--no-published", action="store_true",
                   help="leave out the published TopoLM reference rows")
    p.set_defaults(func=run)
