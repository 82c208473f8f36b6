"""
Lesions against matched controls
================================

A map says where selectivity is; a lesion says whether that place matters. Silence the
largest ``S - N`` cluster of the bundled topographic model and compare what the model
loses with what it loses when random units, or random patches of the same size and
shape elsewhere on the sheet, are silenced instead.
"""

# %%
import tempfile

from topobrain.lesion import run_lesions
from topobrain.stimuli import StimulusSet, load_stimuli

stimuli = load_stimuli("langloc")
# surprisal is scored on 20 items per condition, which keeps 17 lesions cheap
subset = StimulusSet(stimuli.to_frame().groupby("condition").head(20), name="langloc-40")
res = run_lesions("topolm-tiny", stimuli, "S - N", targets=["cluster:largest"],
                  controls=["random-units", "random-patch"], n_controls=8,
                  minimal_pairs=["agreement"], surprisal_stimuli=subset, seed=0,
                  out=tempfile.mkdtemp(), verbose=0)
print(res)

# %%
# One row per measure and control kind: the change the target lesion causes, the
# controls' mean and sd, z and the Monte Carlo p (with the +1 correction: 8 controls
# cannot give p below 1/9).
res.summary().round(4)

# %%
# The target against each control distribution.
import matplotlib.image as mpimg
import matplotlib.pyplot as plt

for path in sorted(res.out.rglob("*.png"))[:2]:
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.imshow(mpimg.imread(path))
    ax.set_axis_off()
