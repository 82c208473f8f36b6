"""pyproject and environment.yml install the same runtime dependencies."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!\[ ]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_covers_the_runtime_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda, pip = set(), set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip |= {_name(r) for r in dep["pip"] if not r.startswith("-e")}
            assert any(r.startswith("-e .[") and "dev" in r and "peers" in r for r in dep["pip"])
        else:
            conda.add(_name(dep))
    assert runtime <= conda | pip, sorted(runtime - conda - pip)
    assert "torch==2.13.0" in next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]


def test_extras_hold_the_reference_implementations():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    peers = {_name(r) for r in extras["peers"]}
    assert {"esda", "libpysal", "mne", "nilearn", "statsmodels"} <= peers
    assert {"pytest", "hypothesis", "ruff"} <= {_name(r) for r in extras["dev"]}
