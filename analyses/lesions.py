"""Lesions of the bundled models: does the S - N network (and its largest cluster) matter?

For ``topolm-tiny`` and ``topolm-tiny-control``: localize with the bundled ``langloc``
set (S - N: Welch t per unit, BH-FDR over all layers, clusters of |t| above the
two-sided p < 0.001 threshold, queen adjacency), then zero

- the top 5% of units by the S - N t over all layers, and
- the largest positive S - N cluster,

each against random units (same count per layer) and random patches (the same shape
moved elsewhere on its sheet; compact patches of the same size for scattered units), never
overlapping the target, drawn from the run seed's ``lesion_controls`` stream. Measures:
mean surprisal per item (nats, the sum over tokens after the first) of sentences (S) and
non-word lists (N) on the first ``--n-items`` items of each condition, mean loss per token
on a held-out text, accuracy on the project's 150 agreement minimal pairs, and (for a
target with later layers) the mean S - N t of the later layers' selective units. Each
target is set against each control distribution: z = (target - control mean) / control sd,
and the Monte Carlo p (+1 rule), one-sided in the direction of harm (more surprisal or
loss, less accuracy or contrast).

Usage: ``python analyses/lesions.py [--n-controls 40] [--n-items 60] [--eval-text FILE]``
(about 10 minutes on two busy cores).
Writes ``figures/lesions.csv`` (every target row) and ``figures/lesions.md`` (the table
for the README).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from topobrain.lesion import run_lesions
from topobrain.stimuli import StimulusSet, load_stimuli

REPO = Path(__file__).resolve().parents[1]
# any English running text the models never saw; the GPL-3 text ships with Debian/Ubuntu
DEFAULT_TEXT = Path("/usr/share/common-licenses/GPL-3")
MODELS = ("topolm-tiny", "topolm-tiny-control")
MEASURES = {"surprisal[S]": "surprisal S (nats/item)", "surprisal[N]": "surprisal N (nats/item)",
            "loss[eval]": "held-out loss (nats/token)",
            "accuracy[agreement]": "minimal pairs (accuracy)",
            "contrast_t[later]": "S - N t, later layers"}


def _table(rows: pd.DataFrame) -> str:
    """One line per model x target x measure: change and the two z (p)."""
    lines = ["| model | target (units) | measure | unlesioned | change | vs random units z (p) "
             "| vs random patches z (p) |", "|---|---|---|---|---|---|---|"]
    for (model, target, measure), g in rows.groupby(["model", "lesion_id", "measure"],
                                                    sort=False):
        first = g.iloc[0]
        zs = {r["against"]: f"{r['z']:+.2f} ({r['p']:.3g})" for _, r in g.iterrows()}
        base = first["value"] - first["change"]
        where = f", {first['layers']}" if ";" not in str(first["layers"]) else ""
        lines.append(f"| {model} | {target} ({int(first['n_units'])}{where}) | "
                     f"{MEASURES.get(measure, measure)} | {base:.4g} | "
                     f"{first['change']:+.3g} | {zs.get('random-units', '-')} | "
                     f"{zs.get('random-patch', '-')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-controls", type=int, default=40)
    parser.add_argument("--n-items", type=int, default=60)
    parser.add_argument("--eval-text", default=str(DEFAULT_TEXT))
    parser.add_argument("--eval-windows", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "figures"))
    args = parser.parse_args(argv)
    stim = load_stimuli("langloc")
    subset = StimulusSet(stim.to_frame().groupby("condition", sort=False).head(args.n_items),
                         name=f"langloc-first{args.n_items}")
    eval_text = args.eval_text if Path(args.eval_text).is_file() else None
    frames = []
    for name in MODELS:
        t0 = time.perf_counter()
        r = run_lesions(name, stim, "S - N", targets=["top5%", "cluster:largest"],
                        controls=["random-units", "random-patch"], n_controls=args.n_controls,
                        eval_text=eval_text, max_eval_windows=args.eval_windows,
                        minimal_pairs=["agreement"], surprisal_stimuli=subset,
                        seed=args.seed, device="cpu", verbose=0)
        s = r.summary()
        s.insert(0, "model", name)
        layers = r.lesions.drop_duplicates("lesion_id").set_index("lesion_id")["layers"]
        s.insert(2, "layers", s["lesion_id"].map(layers))
        frames.append(s)
        print(f"{name}: {time.perf_counter() - t0:.0f} s")
    rows = pd.concat(frames, ignore_index=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / "lesions.csv", index=False, float_format="%.6g")
    note = (f"Zero-ablation of the bundled models' S - N units (bundled langloc, 380 items), "
            f"each target against {args.n_controls} random-unit and {args.n_controls} "
            f"random-patch controls (seed {args.seed}; smallest possible p "
            f"{1 / (args.n_controls + 1):.3g}). Surprisal on the first {args.n_items} S and "
            f"{args.n_items} N items; held-out loss on the first {args.eval_windows} windows "
            f"of 128 tokens of {Path(args.eval_text).name if eval_text else '(none)'}; "
            f"150 agreement minimal pairs. z = (target - control mean) / control sd; p is "
            f"one-sided in the direction of harm (more surprisal or loss, less accuracy or "
            f"contrast), so a positive z on accuracy or contrast comes with a large p.")
    text = f"# Lesions of the bundled models\n\n{note}\n\n{_table(rows)}\n"
    (out / "lesions.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
