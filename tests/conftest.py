"""Shared fixtures: a seeded generator, a small sheet, the shared stimuli folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# Property tests: derandomized under CI (CI=true), so that CI never fails by chance; random
# locally ("dev"), so that local runs keep exploring. HYPOTHESIS_PROFILE overrides both.
settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", derandomize=False, deadline=None)
# "fresh": random like "dev" but without the example database, for repeated runs that
# must each start from nothing (HYPOTHESIS_PROFILE=fresh)
settings.register_profile("fresh", derandomize=False, database=None, deadline=None)
settings.load_profile(os.environ.get(
    "HYPOTHESIS_PROFILE",
    "ci" if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes") else "dev"))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
LANGLOC_DIR = SHARED / "stimuli" / "fedorenko2010_langloc"


@pytest.fixture
def rng():
    """A fresh seeded generator per test."""
    return np.random.default_rng(20261123)


@pytest.fixture
def langloc_dir():
    """The real Fedorenko et al. 2010 localizer in ../shared (skipped when absent)."""
    if not LANGLOC_DIR.is_dir():
        pytest.skip("../shared/stimuli/fedorenko2010_langloc is absent (a user's clone): "
                    "the real-stimulus tests need it beside the repository")
    return LANGLOC_DIR


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch intra-op thread for a module of tiny models: more gains nothing, and
    thread contention on a busy 2-core machine made such tests slow and erratic."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory):
    """A tiny byte-level BPE: tokenizer.json plus GPT-2-style vocab.json/merges.txt."""
    from _checkpoints import make_bpe

    return make_bpe(tmp_path_factory.mktemp("bpe"))
