"""
Training a tiny topographic model for a few steps
=================================================

``topobrain train`` trains the project's own TopoLM-style models. A few steps of a very
small one on the bundled stimuli as a corpus show the two losses: next-token
cross-entropy and the spatial correlation loss that makes neighbouring units correlated.
"""

# %%
import tempfile
from importlib.resources import files
from pathlib import Path

import pandas as pd

from topobrain.models.train import train
from topobrain.stimuli import load_stimuli

root = Path(tempfile.mkdtemp())
corpus = root / "corpus"
corpus.mkdir()
texts = load_stimuli("langloc").texts
for k in range(8):  # eight small documents
    (corpus / f"doc{k}.txt").write_text(" ".join(texts[k::8]))
tokenizer = files("topobrain") / "data" / "models" / "topolm-tiny" / "tokenizer.json"
config = {
    "name": "gallery-tiny", "out": str(root / "run"), "corpus": str(corpus),
    "prepared": str(root / "prepared"), "tokenizer": str(tokenizer), "seed": 0,
    "model": {"n_layer": 2, "n_head": 2, "sheet_shape": [8, 8], "block_size": 32},
    "spatial": {"kind": "correlation", "alpha": 2.5, "radius": 3},
    "batch_size": 8, "max_steps": 30, "eval_interval": 10, "eval_batches": 2,
    "checkpoint_interval": 10, "threads": 1, "device": "cpu", "verbose": 0,
}
folder = train(config)
print(sorted(p.name for p in Path(folder).iterdir()))

# %%
# The model card records the run, its losses and where the corpus came from.
import json

card = json.loads((Path(folder) / "card.json").read_text())
pd.json_normalize(card, sep=".").T.head(25)
