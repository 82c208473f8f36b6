"""``make demo``: the localizer on the bundled models and stimulus sets.

Runs ``localize`` with ``topolm-tiny`` beside ``topolm-tiny-control`` on the bundled
``langloc`` set (``S - N``) and ``noun-verb`` set (``verb - noun``), and prints where the
reports are. When a part it needs is missing it says which and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import time


def _missing_parts() -> list[str]:
    missing = []
    for module in ("topobrain.pipeline", "topobrain.extract", "topobrain.stimuli",
                   "topobrain.spatial", "topobrain.clusters", "topobrain.inference"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"module {module}")
    if not missing:
        from topobrain.models import available_models
        from topobrain.stimuli import available_stimuli

        for name in ("topolm-tiny", "topolm-tiny-control"):
            if name not in available_models():
                missing.append(f"bundled model {name!r}")
        for name in ("langloc", "noun-verb"):
            if name not in available_stimuli():
                missing.append(f"bundled stimulus set {name!r}")
    return missing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/demo")
    parser.add_argument("--n-permutations", type=int, default=1000)
    args = parser.parse_args(argv)
    missing = _missing_parts()
    if missing:
        print("topobrain demo cannot run yet; missing: " + "; ".join(missing), file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING)
    from topobrain.pipeline import localize

    t0 = time.perf_counter()
    reports = []
    for stimuli, contrast in (("langloc", "S - N"), ("noun-verb", "verb - noun")):
        res = localize("topolm-tiny", stimuli, [contrast], control="topolm-tiny-control",
                       out=f"{args.out}/{stimuli}", n_permutations=args.n_permutations,
                       selectivity=stimuli == "noun-verb", overwrite=True, verbose=0)
        for line in res.summary:
            print(line)
        reports.append(res.report)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    for r in reports:
        print(f"report: {r.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
