"""
Selectivity maps over four conditions
=====================================

With more than two conditions, each unit gets an omnibus F and a preferred condition.
On the bundled ``swjn`` set (sentences, word lists, Jabberwocky, non-word lists) the
language-selective units respond S > W > J > N, as in Fedorenko et al. (2010).
"""

# %%
from topobrain.extract import extract
from topobrain.models import load
from topobrain.plotting import plot_category_map
from topobrain.selectivity import condition_profile, selectivity
from topobrain.stimuli import load_stimuli

model = load("topolm-tiny")
acts = extract(model, load_stimuli("swjn"), verbose=0)
layer = acts.layers[-1]
sel = selectivity({layer: acts[layer]}, acts.labels)
print(sel)

# %%
# The preferred condition of every unit, on the sheet.
conditions = list(acts.conditions)
plot_category_map(acts.sheets[layer].to_map(sel.preferred[layer].astype(float)), conditions,
                  title=f"{layer}: preferred condition")

# %%
# The mean (z-scored) response of all units to each condition.
condition_profile(acts[layer], acts.labels).round(3)
