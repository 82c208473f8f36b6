"""
Contrasts per unit and FDR over all layers
==========================================

The localizer's statistics one step at a time: extract pooled responses, a Welch t per
unit, Benjamini-Hochberg FDR over all units of all layers, and the t-map of one layer.
"""

# %%
from topobrain.correction import correct_pvalues
from topobrain.extract import extract
from topobrain.glm import welch_t
from topobrain.models import load
from topobrain.plotting import plot_sheet_map
from topobrain.stimuli import load_stimuli

model = load("topolm-tiny")
stimuli = load_stimuli("langloc")
acts = extract(model, stimuli, verbose=0)
print(acts)

# %%
# One Welch t-test per unit of every layer, then FDR over all of them at once.
results = {layer: welch_t(acts[layer], acts.labels, "S - N") for layer in acts.layers}
corrected = correct_pvalues({layer: r.p for layer, r in results.items()}, method="bh",
                            alpha=0.05, over="all")
n_units = sum(r.p.size for r in results.values())
print(f"{corrected.n_rejected} of {n_units} units pass BH-FDR at q = 0.05 over all layers")

# %%
# The t-map of the last MLP layer on its sheet.
layer = acts.layers[-1]
t_map = acts.sheets[layer].to_map(results[layer].t)
plot_sheet_map(t_map, title=f"{layer}: S - N (t)", outline=acts.sheets[layer].to_map(
    corrected.mask[layer].astype(float)) > 0)
