"""Scientific acceptance of the bundled models, written into their model cards.

For ``topolm-tiny`` and ``topolm-tiny-control`` on the real Fedorenko et al. (2010)
localizer (../shared/stimuli/fedorenko2010_langloc, S - N), the bundled ``langloc`` set
(S - N) and the bundled ``noun-verb`` set (verb - noun): mean over tokens, Welch t per
unit, BH-FDR over all layers; mean Moran's I (queen) of the unthresholded t-maps over
layers, with and without FWHM-2 readout smoothing; and the label-permutation null of the
mean Moran's I (its mean, sd, z and p). Every number comes from the localizer's own pieces
(``topobrain.pipeline.analyse_contrast``), the null drawn from the run seed's
``"morans_i"`` stream as ``topobrain localize`` draws it.

Usage: ``python analyses/evaluate_bundled.py [--models DIR ...] [--n-permutations 1000]``.
Writes ``evaluation`` into each model's ``card.json`` and rewrites its ``README.md``;
prints the table. Folders default to the bundled models inside the package.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from topobrain.extract import extract
from topobrain.models import load
from topobrain.models.checkpoint import _card_markdown
from topobrain.models.loaders import bundled_model_dir
from topobrain.pipeline import analyse_contrast
from topobrain.readout import smooth
from topobrain.stimuli import load_stimuli

REPO = Path(__file__).resolve().parents[1]
FEDORENKO = REPO.parent / "shared" / "stimuli" / "fedorenko2010_langloc"


def evaluate_acts(acts, labels, contrast, *, n_permutations, seed=0):
    """The localizer's numbers for one set of activations, from the pipeline's own
    :func:`topobrain.pipeline.analyse_contrast` (no cluster test): FDR-significant and
    selective units, mean Moran's I of the t-maps and its label-permutation null.

    Returns the summary dict and the :class:`~topobrain.pipeline.ContrastAnalysis`."""
    a = analyse_contrast(acts, labels, contrast, n_permutations=n_permutations, seed=seed,
                         clusters=False, verbose=0)
    out = {
        "contrast": contrast,
        "n_units": int(len(a.units)),
        "n_fdr_significant": int(a.units["significant"].sum()),
        "n_selective_positive": int(a.units["selective"].sum()),
        "mean_morans_i": a.mean_morans_i,
        "morans_i_by_layer": [float(v) for v in a.layers["morans_i"]],
    }
    null = a.morans_null
    if null is not None:
        nm = null.null_mean_over_layers
        out.update(null_mean=float(nm.mean()), null_sd=float(nm.std(ddof=1)),
                   z=float(null.z_mean), p=float(null.p_mean), n_permutations=n_permutations)
    return out, a


def evaluate(model, stim, contrast, *, n_permutations, seed=0, fwhm=None) -> dict:
    acts = extract(model, stim, verbose=0)
    if fwhm:
        acts = smooth(acts, fwhm)
    summary, _ = evaluate_acts(acts, stim.labels, contrast, n_permutations=n_permutations,
                               seed=seed)
    return {"n_items": len(stim), "readout_fwhm": fwhm, **summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--n-permutations", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    folders = [Path(m) for m in args.models] if args.models else [
        bundled_model_dir("topolm-tiny"), bundled_model_dir("topolm-tiny-control")]
    sets = [("langloc (bundled)", load_stimuli("langloc"), "S - N")]
    if FEDORENKO.is_dir():
        sets.insert(0, ("fedorenko2010 langloc", load_stimuli(FEDORENKO), "S - N"))
    sets.append(("noun-verb (bundled)", load_stimuli("noun-verb"), "verb - noun"))
    rows = []
    for folder in folders:
        model = load(folder)
        evaluation = {}
        for set_name, stim, contrast in sets:
            for fwhm in (None, 2.0):
                key = f"{set_name}, {contrast}, {'FWHM-2 readout' if fwhm else 'unsmoothed'}"
                res = evaluate(model, stim, contrast, n_permutations=args.n_permutations,
                               fwhm=fwhm)
                evaluation[key] = res
                rows.append({"model": folder.name, "stimuli": set_name, "contrast": contrast,
                             "readout": "FWHM 2" if fwhm else "none",
                             **{k: res.get(k) for k in ("n_fdr_significant", "n_units",
                                                        "mean_morans_i", "null_mean",
                                                        "null_sd", "z", "p")}})
        if not args.no_write:
            card_path = folder / "card.json"
            card = json.loads(card_path.read_text())
            card["evaluation"] = evaluation
            card_path.write_text(json.dumps(card, indent=1, default=str))
            (folder / "README.md").write_text(_card_markdown(card))
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = REPO / "figures" / "acceptance.csv"
    out.parent.mkdir(exist_ok=True)
    table.to_csv(out, index=False, float_format="%.4f")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
