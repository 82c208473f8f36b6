"""
Split-half reliability of a contrast map
========================================

A map worth interpreting is one that replicates: split the items in halves, compute
the contrast's t-map in each, and correlate the two maps per layer (with the
Spearman-Brown correction to the full set's length).
"""

# %%
from topobrain.extract import extract
from topobrain.inference import split_half_reliability
from topobrain.models import load
from topobrain.stimuli import load_stimuli

acts = extract(load("topolm-tiny"), load_stimuli("langloc"), verbose=0)
rel = split_half_reliability(acts, None, "S - N", method="random", n_splits=20, seed=0)
print(rel)

# %%
rel.to_frame().round(3).head(10)
