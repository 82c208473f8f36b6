"""topobrain: neuroimaging-style analysis of topographic language models.

Run localizer stimuli through a model whose units sit on a 2D cortical sheet, turn
unit responses into maps, and analyse them as an fMRI pipeline would: GLM contrasts,
multiple-comparison correction, Moran's I, cluster statistics and brain comparison.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
