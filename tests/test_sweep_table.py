"""The sweep's table (analyses/sweep.py): which run is set beside which control.

The scores themselves come from ``topobrain.pipeline.analyse_contrast``, tested against its
peers elsewhere; what this script adds is the pairing of each run with the alpha = 0
control trained on the same corpus and tokens, and the validation-loss excess over it.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("sweep_analysis", REPO / "analyses" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(run, *, alpha, seed=0, corpus="100+10", side=28, steps=300, val=6.0, z=0.0,
         loss="correlation", stimuli="langloc"):
    return {"run": run, "corpus": corpus, "side": side, "n_layer": 4, "mlp_ratio": 2,
            "batch_size": 8, "block_size": 64, "max_steps": steps, "seed": seed,
            "loss": loss, "alpha": alpha, "radius": 5.0, "tokens": steps * 512,
            "train_minutes": 1.0, "val_loss": val, "unigram_val_loss": 6.6,
            "stimuli": stimuli, "contrast": "S - N", "n_items": 10, "n_units": 100,
            "n_fdr_significant": 5, "mean_morans_i": 0.5, "null_mean": 0.4, "null_sd": 0.1,
            "z": z, "p": 0.1, "n_permutations": 200, "layer_z_median": z / 2,
            "n_layers_p05": 1, "n_layers": 8}


def test_each_run_sits_beside_the_control_of_its_corpus_geometry_and_seed(sweep):
    rows = [_row("ctrl", alpha=0, val=6.0, z=0.3),
            _row("ctrl-seed1", alpha=0, seed=1, val=5.0, z=-0.2),
            _row("topo", alpha=2.5, val=6.3, z=2.0),
            _row("topo-seed1", alpha=2.5, seed=1, val=5.5, z=1.0, loss="topoloss"),
            # another corpus with the same geometry: no control
            _row("other-corpus", alpha=2.5, corpus="200+20", val=6.1),
            # more steps: the 300-step control is not at equal tokens
            _row("longer", alpha=2.5, steps=1500, val=5.0),
            _row("bundled topolm-tiny-control", alpha=0, side=16, corpus="999+9", val=4.6,
                 z=0.5),
            _row("topolm-tiny-topoloss", alpha=2.5, side=16, corpus="999+9", val=4.7,
                 loss="topoloss", z=3.0)]
    df = sweep.build_table(rows).set_index("run")
    assert df.at["topo", "control"] == "ctrl"
    assert df.at["topo-seed1", "control"] == "ctrl-seed1"
    assert df.at["topolm-tiny-topoloss", "control"] == "bundled topolm-tiny-control"
    for run in ("ctrl", "ctrl-seed1", "other-corpus", "longer", "bundled topolm-tiny-control"):
        assert df.at[run, "control"] is None and np.isnan(df.at[run, "val_loss_excess"])
    assert df.at["topo", "val_loss_excess"] == pytest.approx(6.3 / 6.0 - 1)
    assert df.at["topo-seed1", "val_loss_excess"] == pytest.approx(5.5 / 5.0 - 1)
    assert df.at["topo", "control_z"] == 0.3
    assert df.at["topolm-tiny-topoloss", "control_z"] == 0.5


def test_control_z_is_taken_from_the_same_stimulus_set(sweep):
    rows = [_row("ctrl", alpha=0, z=0.3), _row("ctrl", alpha=0, z=-1.0, stimuli="fedorenko"),
            _row("topo", alpha=2.5, z=2.0), _row("topo", alpha=2.5, z=1.5, stimuli="fedorenko")]
    df = sweep.build_table(rows)
    got = df[df["run"] == "topo"].set_index("stimuli")["control_z"]
    assert got["langloc"] == 0.3 and got["fedorenko"] == -1.0
    text = sweep.markdown(df, "reading")
    assert "| topo | 28x28 | 4 | correlation | 2.5 | 5 | 0 |" in text
    assert "2.00 (0.30)" in text and "1.50 (-1.00)" in text and "+0.0%" in text


def test_compact_table_puts_each_z_beside_its_controls(sweep):
    rows = [_row("ctrl", alpha=0, z=0.3, val=6.0), _row("topo", alpha=2.5, z=2.0, val=6.3),
            _row("topo", alpha=2.5, z=1.5, stimuli="fedorenko", val=6.3)]
    text = sweep.compact(sweep.build_table(rows))
    assert ("| topo | 28x28 | 4 | correlation | 2.5 | 5 | 0 | 0.15 M | 6.300 (+5.0%) "
            "| 2.00 (0.30) | 1.50 | 1.00 (1 / 8) |") in text
    assert ("| ctrl | 28x28 | 4 | correlation | 0 | 5 | 0 | 0.15 M | 6.000 | 0.30 |  "
            "| 0.15 (1 / 8) |") in text
