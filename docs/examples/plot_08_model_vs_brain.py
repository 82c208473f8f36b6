"""
Model against brain
===================

Set a localizer result beside a brain map on the same statistics: Moran's I of the
model's maps (with its control and its label null) against the brain map's, cluster
counts, and the published TopoLM and human values for reference. The brain map here is a
synthetic ``verb - noun`` z map on fsaverage5 written to a GIfTI file.
"""

# %%
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.sparse as sp

from topobrain.brain import load_mesh, mesh_adjacency
from topobrain.compare import compare, plot_comparison
from topobrain.pipeline import localize

out = Path(tempfile.mkdtemp())
res = localize("topolm-tiny", "noun-verb", "verb - noun", control="topolm-tiny-control",
               out=out / "nv", n_permutations=100, seed=0, verbose=0)

mesh = load_mesh("fsaverage5", hemi="left")
adjacency = mesh_adjacency(mesh.faces, len(mesh.coordinates))
rng = np.random.default_rng(1)
z = rng.standard_normal(adjacency.shape[0])
step = sp.diags(1.0 / np.asarray(adjacency.sum(1)).ravel()) @ adjacency
for _ in range(15):
    z = 0.5 * z + 0.5 * (step @ z)
z = 4 * z / z.std()
gifti = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(z.astype(np.float32))])
nib.save(gifti, out / "verb_noun.func.gii")

# %%
cmp = compare(out / "nv", out / "verb_noun.func.gii", mesh="fsaverage5", hemi="left",
              n_permutations=99, seed=0)
cmp.to_frame().round(3)

# %%
plot_comparison(cmp)
