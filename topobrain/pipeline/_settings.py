"""The settings of a localizer run: one frozen record, validated once."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .._utils._hashing import hash_json
from .._utils._validation import check_option
from ..contrast import Contrast, parse_contrast

RUN_FILE = "run.yaml"
#: Names of the permutation streams of one run (see ``_utils._permutation.stream``).
STREAMS = ("morans_i", "clusters", "selectivity")
_POOLINGS = ("mean", "last", "first", "sum")
_CORRECTION_ALIASES = {"fdr_bh": "bh", "fdr_by": "by"}
# settings that change how a run runs, never what it finds: not part of its identity
_RUNTIME = ("out", "overwrite", "wait", "verbose", "n_jobs", "device", "cache", "batch_size")


def _name_of(obj) -> str:
    if isinstance(obj, (str, Path)):
        return str(obj)
    return str(getattr(obj, "name", type(obj).__name__))


def _number(name, value, *, low=None, high=None, low_open=True, high_open=True,
            integer=False, allow_none=False):
    """One checked number: the allowed range in the message."""
    if value is None and allow_none:
        return None
    kinds = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        what = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {what}; got {value!r} ({type(value).__name__}).")
    value = int(value) if integer else float(value)
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or (value < high if high_open else value <= high)
    if not (math.isfinite(value) and lo_ok and hi_ok):
        lo = "" if low is None else f"{'(' if low_open else '['}{low}"
        hi = "" if high is None else f"{high}{')' if high_open else ']'}"
        rng = (f"in {lo}, {hi}" if low is not None and high is not None
               else f"{'>' if low_open else '>='} {low}" if low is not None
               else f"{'<' if high_open else '<='} {high}")
        raise ValueError(f"{name} must be a finite number {rng}; got {value}.")
    return value


def _check_contrast_kind(contrast: Contrast) -> None:
    if contrast.is_two_sample:
        return
    if contrast.positive and not contrast.negative and len(contrast.positive) == 1:
        return
    raise ValueError(
        f"Contrast {contrast.expression!r} is neither two-sample (positive weights against "
        f"negative ones summing to zero, like 'S - N') nor one condition against zero (like "
        f"'S'). Write it as one of those, or use topobrain.glm.fit_glm for weighted contrasts."
    )


@dataclass(frozen=True)
class LocalizeSettings:
    """Everything that defines a localizer run, validated once.

    The CLI builds it from its flags, :func:`localize` from its keywords, and
    :meth:`from_yaml` from a run's ``run.yaml`` (which :meth:`to_record` writes). Every
    range, option and contrast's syntax is checked here, before anything is loaded;
    what needs the stimuli or the model (condition names, layer names, the FWHM against
    the sheet, the device) is checked by :func:`run_localizer` before the first forward
    pass. The parameters are those of :func:`localize`.

    ``seed`` is stored resolved: the entropy of the run's root ``SeedSequence`` (an int
    seed is its own entropy; None draws fresh entropy, recorded so the run can be
    repeated), with ``seed_spawn_key`` for a SeedSequence given with a spawn key.
    """

    model: object
    stimuli: object
    contrasts: tuple
    out: Path
    control: object = None
    smooth_fwhm: float | None = None
    pooling: str = "mean"
    correction: str = "bh"
    alpha: float = 0.05
    n_permutations: int = 1000
    cluster_p: float = 0.001
    selectivity: bool = False
    brain_reference: float | None = None
    layers: tuple | None = None
    batch_size: int = 32
    device: str = "auto"
    seed: object = 0
    seed_spawn_key: tuple = ()
    cache: bool = True
    overwrite: bool = False
    wait: bool | float = False
    n_jobs: int | None = None
    verbose: int = 1

    def __post_init__(self):
        from .._utils._permutation import as_seed_sequence, check_n_jobs

        def put(name, value):
            object.__setattr__(self, name, value)

        if self.model is None:
            raise TypeError("model is required: a bundled name, a model folder or a loaded "
                            "model.")
        if self.stimuli is None:
            raise TypeError("stimuli is required: a bundled set name, a TSV/CSV file or a "
                            "StimulusSet.")
        contrasts = self.contrasts
        if isinstance(contrasts, (str, Contrast)):
            contrasts = [contrasts]
        if contrasts is None or not isinstance(contrasts, (list, tuple)):
            raise TypeError(f"contrasts must be a string like 'S - N' or a list of them; got "
                            f"{type(contrasts).__name__}.")
        parsed = [parse_contrast(c) for c in contrasts]  # syntax, here and once
        if not parsed:
            raise ValueError("Give at least one contrast, e.g. 'S - N'.")
        for c in parsed:
            _check_contrast_kind(c)
        expressions = tuple(c.expression for c in parsed)
        seen = {}
        for c in parsed:  # the same weights written twice is one contrast
            key = tuple(sorted(c.weights.items()))
            if key in seen:
                raise ValueError(f"contrasts {seen[key]!r} and {c.expression!r} are the same "
                                 f"contrast; give each contrast once.")
            seen[key] = c.expression
        put("contrasts", expressions)
        if self.out is None:
            raise TypeError("out is required: the folder to write the results into.")
        put("out", Path(self.out))
        if self.smooth_fwhm is not None:  # 0 means no smoothing, as in readout.smooth
            fwhm = _number("smooth_fwhm", self.smooth_fwhm, low=0, low_open=False)
            put("smooth_fwhm", fwhm or None)
        check_option("pooling", self.pooling, _POOLINGS)
        correction = _CORRECTION_ALIASES.get(self.correction, self.correction)
        from ..correction import METHODS

        check_option("correction", correction, METHODS)
        put("correction", correction)
        put("alpha", _number("alpha", self.alpha, low=0, high=1))
        put("n_permutations", _number("n_permutations", self.n_permutations, low=0,
                                      low_open=False, integer=True))
        put("cluster_p", _number("cluster_p", self.cluster_p, low=0, high=1))
        put("brain_reference", _number("brain_reference", self.brain_reference,
                                       allow_none=True))
        put("batch_size", _number("batch_size", self.batch_size, low=1, low_open=False,
                                  integer=True))
        if self.layers is not None:
            layers = [self.layers] if isinstance(self.layers, str) else list(self.layers)
            if not layers or not all(isinstance(x, str) for x in layers):
                raise TypeError(f"layers must be None (all layers) or a non-empty list of "
                                f"layer names; got {self.layers!r}.")
            put("layers", tuple(layers))
        if not isinstance(self.device, str):
            put("device", str(self.device))
        for name in ("selectivity", "cache", "overwrite"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False; got {getattr(self, name)!r}.")
            put(name, bool(getattr(self, name)))
        if not isinstance(self.wait, (bool, np.bool_)):
            put("wait", _number("wait (seconds)", self.wait, low=0, low_open=False))
        put("verbose", _number("verbose", self.verbose, low=0, low_open=False, integer=True))
        put("n_jobs", check_n_jobs(self.n_jobs))
        # the seed, resolved once to what reproduces it
        if isinstance(self.seed, np.random.SeedSequence):
            ss = self.seed
        elif self.seed_spawn_key and isinstance(self.seed, (numbers.Integral, list, tuple)):
            ss = np.random.SeedSequence(self.seed, spawn_key=tuple(self.seed_spawn_key))
        elif isinstance(self.seed, (list, tuple)):  # a multi-word entropy read back
            ss = np.random.SeedSequence([int(x) for x in self.seed])
        else:
            ss = as_seed_sequence(self.seed)
        entropy = ss.entropy
        put("seed", int(entropy) if isinstance(entropy, numbers.Integral)
            else tuple(int(x) for x in entropy))
        put("seed_spawn_key", tuple(int(k) for k in ss.spawn_key))

    # ------------------------------------------------------------------ derived
    @property
    def parsed_contrasts(self) -> list[Contrast]:
        return [parse_contrast(c) for c in self.contrasts]

    @property
    def contrast_slugs(self) -> dict:
        """``{contrast: name}`` for files and netCDF variables, unique within the run."""
        out, used = {}, set()
        for c in self.parsed_contrasts:
            slug, k = c.slug, 2
            while slug in used:
                slug, k = f"{c.slug}_{k}", k + 1
            used.add(slug)
            out[c.expression] = slug
        return out

    @property
    def root_seed(self) -> np.random.SeedSequence:
        """The run's root ``SeedSequence``."""
        return np.random.SeedSequence(self.seed, spawn_key=self.seed_spawn_key)

    def stream(self, name: str) -> np.random.SeedSequence:
        """The named permutation stream of this run (one per test: :data:`STREAMS`)."""
        from .._utils._permutation import stream

        return stream(self.root_seed, name)

    # ------------------------------------------------------------------ records
    def to_record(self) -> dict:
        """The settings as plain YAML/JSON values (models and sets by name or path)."""
        rec = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("model", "stimuli", "control"):
                v = None if v is None else _name_of(v)
            elif isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple):
                v = list(v)
            rec[f.name] = v
        return rec

    @classmethod
    def from_record(cls, record: dict) -> LocalizeSettings:
        """Settings from a record (``run.yaml``); keys that are not settings are ignored."""
        if not isinstance(record, dict):
            raise TypeError(f"a settings record must be a mapping; got "
                            f"{type(record).__name__}.")
        names = {f.name for f in fields(cls)}
        missing = [k for k in ("model", "stimuli", "contrasts", "out") if k not in record]
        if missing:
            raise ValueError(f"the settings record lacks {missing}; it is not a localize "
                             f"run.yaml.")
        return cls(**{k: v for k, v in record.items() if k in names})

    @classmethod
    def from_yaml(cls, path) -> LocalizeSettings:
        """The settings of a finished run, read back from its ``run.yaml``."""
        import yaml

        with open(path, encoding="utf-8") as fh:
            return cls.from_record(yaml.safe_load(fh) or {})

    def identity(self, **extra) -> str:
        """A digest of everything that defines the results (not how they are computed:
        ``out``, ``overwrite``, ``wait``, ``verbose``, ``n_jobs``, ``device``, ``cache``
        and ``batch_size`` leave it unchanged), with ``extra`` entries (identities)."""
        rec = {k: v for k, v in self.to_record().items() if k not in _RUNTIME}
        return hash_json({**rec, **extra})[:16]
