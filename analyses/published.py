"""Reproduce the TopoLM paper's analyses with the bundled models, writing to figures/.

1. Language localizer (sentences vs non-word lists, ``S - N``) on the Fedorenko et al.
   (2010) materials when ../shared has them (else the bundled ``langloc`` set): Welch t
   per unit, BH-FDR over all layers, t-maps of every layer, topographic vs control.
2. SWJN response profiles: the language-selective units of (1), their mean response to
   sentences, word lists, Jabberwocky and non-word lists (bundled ``swjn``).
3. Nouns vs verbs (``verb - noun``) on the bundled two-word phrase set, all items and
   concrete / abstract items separately.
4. Moran's I of every map, topographic vs control, with and without FWHM-2 readout
   smoothing, each beside its label-permutation null (mean, sd, z, p).

Usage: ``python analyses/published.py [--n-permutations 1000]``. Writes
``figures/main_figure.png``, ``figures/swjn_profiles.png``, ``figures/morans_i_table.csv``
and ``figures/morans_i_table.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from evaluate_bundled import evaluate_acts  # beside this script

from topobrain.extract import extract
from topobrain.models import load
from topobrain.plotting import plot_map_rows, plot_response_profiles, save_figure
from topobrain.readout import smooth
from topobrain.selectivity import condition_profile
from topobrain.stimuli import load_stimuli

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "figures"
FEDORENKO = REPO.parent / "shared" / "stimuli" / "fedorenko2010_langloc"
MODELS = {"topographic (topolm-tiny)": "topolm-tiny",
          "control (topolm-tiny-control)": "topolm-tiny-control"}
ROW = ("mean_morans_i", "null_mean", "null_sd", "z", "p")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-permutations", type=int, default=1000)
    args = parser.parse_args(argv)
    FIGURES.mkdir(exist_ok=True)
    langloc = load_stimuli(FEDORENKO) if FEDORENKO.is_dir() else load_stimuli("langloc")
    langloc_name = "Fedorenko 2010 langloc" if FEDORENKO.is_dir() else "bundled langloc"
    phrases = load_stimuli("noun-verb-phrases")
    analyses = [(langloc_name, langloc, "S - N"),
                ("noun-verb phrases, all", phrases, "verb - noun"),
                ("noun-verb phrases, concrete", phrases.where(category="concrete"), "verb - noun"),
                ("noun-verb phrases, abstract", phrases.where(category="abstract"), "verb - noun")]
    swjn = load_stimuli("swjn")
    rows, profiles, localizer = [], [], {}
    for label, name in MODELS.items():
        model = load(name)
        for set_name, stim, contrast in analyses:
            raw = extract(model, stim, verbose=0)
            for fwhm in (None, 2.0):
                acts = smooth(raw, fwhm) if fwhm else raw
                summary, analysis = evaluate_acts(acts, stim.labels, contrast,
                                                  n_permutations=args.n_permutations)
                rows.append({"model": label, "stimuli": set_name, "contrast": contrast,
                             "readout": f"FWHM {fwhm:g}" if fwhm else "none",
                             **{k: summary[k] for k in ROW}})
                print(rows[-1])
                if set_name == langloc_name and not fwhm:
                    localizer[label] = analysis  # the unsmoothed S - N localizer
        # the localizer's selective units on sentences, word lists, Jabberwocky, non-words
        a = localizer[label]
        sw = extract(model, swjn, verbose=0)
        for n in sw.layers:
            sel = a.units.loc[a.units["layer"] == n, "selective"].to_numpy()
            if sel.sum():
                prof = condition_profile(sw[n], swjn.labels, units=sel)
                prof["layer"] = n
                prof["model"] = label
                profiles.append(prof)
    table = pd.DataFrame(rows)
    table.to_csv(FIGURES / "morans_i_table.csv", index=False, float_format="%.4f")
    md = ["| model | stimuli | contrast | readout | mean Moran's I | label-null mean (sd) "
          "| z | p |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['stimuli']} | {r['contrast']} | {r['readout']} | "
                  f"{r['mean_morans_i']:.3f} | {r['null_mean']:.3f} ({r['null_sd']:.3f}) | "
                  f"{r['z']:.2f} | {r['p']:.4f} |")
    (FIGURES / "morans_i_table.md").write_text("\n".join(md) + "\n")

    # main figure: every layer's S - N t-map, topographic above control
    labels = {}
    for label in localizer:
        row = table[(table["model"] == label) & (table["stimuli"] == langloc_name)
                    & (table["readout"] == "none")].iloc[0]
        labels[label] = (f"{label.split(' ')[0]}\nI = {row['mean_morans_i']:.2f} "
                         f"(null {row['null_mean']:.2f})")
    fig = plot_map_rows({label: a.t_maps for label, a in localizer.items()}, row_labels=labels,
                        cbar_label="Welch t, sentences - non-words",
                        title=f"Language localizer ({langloc_name}, S - N): t-maps on the "
                              f"16 x 16 sheets of every layer")
    save_figure(fig, FIGURES / "main_figure", svg=False)

    prof = pd.concat(profiles)
    agg = prof.groupby(["model", "condition"], sort=False)[["mean", "ci_low", "ci_high"]].mean()
    fig = plot_response_profiles(agg.reset_index(), title="Language-selective units (S - N, "
                                 "FDR) on sentences, word lists, Jabberwocky, non-words")
    save_figure(fig, FIGURES / "swjn_profiles", svg=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
