"""The localizer end to end: ``localize`` runs a model (and its control) on a stimulus set
and writes the tables, maps, figures and report of a neuroimaging paper.

Flow, one direction: settings (validated once) -> stimuli and models (checked before any
forward pass) -> activations (cached) -> [readout smoothing] -> unit t per layer -> FDR
over all layers -> Moran's I with its label-permutation null -> cluster-level FWE test ->
distance profiles -> figures -> report.

The pieces are public, so that analyses reuse them rather than re-derive them:
:class:`LocalizeSettings` (one validated record shared by the CLI, this API and
``run.yaml``), :func:`unit_statistics`, :func:`distance_profiles`,
:func:`analyse_contrast` (a typed :class:`ContrastAnalysis`) and :func:`run_localizer`.

Output folder (it belongs to one run at a time: a lock file beside it names the holder;
everything is written into a hidden folder beside it and published by one rename)::

    units.csv, units.parquet   one row per model x contrast x layer x unit
    layers.csv                 per model x contrast x layer: Moran's I, its null, % selective
    clusters.csv               suprathreshold clusters with FWE-corrected p-values
    selectivity.csv            (with selectivity=True) per model x layer x unit
    maps.nc                    t, effect and p_fdr maps (xarray, netCDF)
    figures/*.png, *.svg
    report.html                one self-contained page
    run.yaml                   settings, identities, versions; ``complete: true``
"""

from ._analysis import (
    ContrastAnalysis,
    UnitStatistics,
    analyse_contrast,
    distance_profiles,
    unit_statistics,
)
from ._run import LocalizeResult, localize, run_localizer
from ._settings import RUN_FILE, STREAMS, LocalizeSettings

__all__ = ["RUN_FILE", "STREAMS", "ContrastAnalysis", "LocalizeResult", "LocalizeSettings",
           "UnitStatistics", "analyse_contrast", "distance_profiles", "localize",
           "run_localizer", "unit_statistics"]
