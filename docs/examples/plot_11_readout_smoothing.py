"""
Readout smoothing raises Moran's I of the control too
=====================================================

TopoLM reports Moran's I with and without a Gaussian readout smoothing (FWHM 2). The
smoothing mixes neighbouring units' responses, so it makes *any* model's maps smoother:
the non-topographic control's included. Only the comparison with the control and the
label null says what is topography.
"""

# %%
import numpy as np
import pandas as pd

from topobrain.extract import extract
from topobrain.glm import welch_t
from topobrain.models import load
from topobrain.readout import smooth
from topobrain.spatial import morans_i
from topobrain.stimuli import load_stimuli

stimuli = load_stimuli("langloc")
rows = []
for name in ("topolm-tiny", "topolm-tiny-control"):
    acts = extract(load(name), stimuli, verbose=0)
    for fwhm in (None, 1.0, 2.0, 3.0):
        a = acts if fwhm is None else smooth(acts, fwhm)
        values = [morans_i(a.sheets[layer].to_map(welch_t(a[layer], a.labels, "S - N").t),
                           adjacency="queen").I for layer in a.layers]
        rows.append({"model": name, "fwhm": fwhm or 0.0, "mean_morans_i": np.mean(values)})
table = pd.DataFrame(rows)
table.pivot(index="fwhm", columns="model", values="mean_morans_i").round(3)
