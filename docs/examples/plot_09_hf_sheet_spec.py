"""
A Hugging Face model with a sheet spec
======================================

Any Hugging Face causal LM becomes a sheet model once a *sheet spec* says which module
outputs are sheets and how their units are laid out. The ``toponets`` preset takes each
block's MLP ``c_fc`` output with TopoNets' sheet shape. The model here is a tiny random
GPT-2 built and saved with transformers, with the bundled model's tokenizer.
"""

# %%
import tempfile
from importlib.resources import files
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from topobrain.extract import extract
from topobrain.models import load
from topobrain.stimuli import load_stimuli

torch.manual_seed(0)
folder = Path(tempfile.mkdtemp()) / "tiny-gpt2"
config = GPT2Config(vocab_size=4096, n_positions=128, n_embd=32, n_layer=2, n_head=2,
                    bos_token_id=0, eos_token_id=0, pad_token_id=0)
GPT2LMHeadModel(config).save_pretrained(folder)

# the bundled model's byte-level BPE (4,096 tokens) stands in for GPT-2's own
tokenizer = files("topobrain") / "data" / "models" / "topolm-tiny" / "tokenizer.json"
model = load(folder, sheet_spec="toponets", tokenizer=tokenizer)
print(model)

# %%
# The sheets the spec made: one per block, 128 c_fc units on an 8 x 16 sheet.
for layer, sheet in model.sheets.items():
    print(layer, sheet.shape)

# %%
acts = extract(model, load_stimuli("langloc"), cache=False, verbose=0)
print(acts)

# %%
# The ``S - N`` t-map of each sheet (a random model: no language, no topography).
import matplotlib.pyplot as plt

from topobrain.glm import welch_t
from topobrain.plotting import plot_sheet_map

fig, axes = plt.subplots(1, len(acts.layers), figsize=(8, 3))
for ax, layer in zip(axes, acts.layers):
    t = welch_t(acts[layer], acts.labels, "S - N").t
    plot_sheet_map(acts.sheets[layer].to_map(t), ax=ax, title=layer)
