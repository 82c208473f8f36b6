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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from evaluate_bundled import evaluate_acts, welch_maps  # noqa: E402  (beside this script)

from topobrain.correction import fdr_correction  # noqa: E402
from topobrain.extract import extract  # noqa: E402
from topobrain.models import load  # noqa: E402
from topobrain.plotting import plot_response_profiles, save_figure  # noqa: E402
from topobrain.readout import smooth  # noqa: E402
from topobrain.selectivity import condition_profile  # noqa: E402
from topobrain.stimuli import load_stimuli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "figures"
FEDORENKO = REPO.parent / "shared" / "stimuli" / "fedorenko2010_langloc"
MODELS = {"topographic (topolm-tiny)": "topolm-tiny",
          "control (topolm-tiny-control)": "topolm-tiny-control"}


def morans_row(acts, labels, contrast, n_permutations, seed=0) -> dict:
    r = evaluate_acts(acts, labels, contrast, n_permutations=n_permutations, seed=seed)
    return {k: r[k] for k in ("mean_morans_i", "null_mean", "null_sd", "z", "p")}


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
    rows, profiles, main_maps = [], [], {}
    for label, name in MODELS.items():
        model = load(name)
        for set_name, stim, contrast in analyses:
            raw = extract(model, stim, verbose=0)
            for fwhm in (None, 2.0):
                acts = smooth(raw, fwhm) if fwhm else raw
                r = morans_row(acts, stim.labels, contrast, args.n_permutations)
                rows.append({"model": label, "stimuli": set_name, "contrast": contrast,
                             "readout": f"FWHM {fwhm:g}" if fwhm else "none", **r})
                print(rows[-1])
        # localizer maps and the selective units
        acts = extract(model, langloc, verbose=0)
        t, p = welch_maps(acts, langloc.labels, "S - N")
        fdr = fdr_correction(p, alpha=0.05, over="all")
        main_maps[label] = {n: acts.sheets[n].to_map(t[n]) for n in acts.layers}
        sw = extract(model, swjn, verbose=0)
        for n in acts.layers:
            sel = fdr.mask[n] & (t[n] > 0)
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
    layers = list(next(iter(main_maps.values())))
    vmax = max(np.nanpercentile(np.abs(m), 99) for mm in main_maps.values() for m in mm.values())
    fig, axes = plt.subplots(len(main_maps), len(layers), figsize=(1.9 * len(layers) + 1.2, 4.6),
                             squeeze=False)
    for i, (label, maps) in enumerate(main_maps.items()):
        row = table[(table["model"] == label) & (table["contrast"] == "S - N")
                    & (table["readout"] == "none")].iloc[0]
        for j, n in enumerate(layers):
            ax = axes[i, j]
            im = ax.imshow(maps[n], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(n, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{label.split(' ')[0]}\nI = {row['mean_morans_i']:.2f} "
                              f"(null {row['null_mean']:.2f})", fontsize=8)
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
    cb.set_label("Welch t, sentences - non-words")
    fig.suptitle(f"Language localizer ({langloc_name}, S - N): t-maps on the 16 x 16 sheets "
                 f"of every layer", fontsize=10)
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
