"""Tests for topobrain.activations: the Activations container, its files and its imports."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from topobrain.activations import Activations, load_activations
from topobrain.sheet import CorticalSheet


def test_one_class_under_every_import_path_and_no_torch():
    import topobrain
    import topobrain.extract
    import topobrain.readout

    assert topobrain.extract.Activations is Activations
    assert topobrain.extract.load_activations is load_activations
    assert topobrain.activations.Activations is Activations
    assert topobrain.readout.Activations is Activations
    code = ("import sys, numpy as np, topobrain.activations as a, topobrain.sheet as s\n"
            "acts = a.Activations.from_arrays({'x': np.zeros((2, 4))},"
            " {'x': s.CorticalSheet((2, 2), name='x')})\n"
            "acts.to_maps('x'); acts.to_frame()\n"
            "print(sorted(m for m in ('torch', 'matplotlib', 'topobrain.extract',"
            " 'topobrain.models') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- Activations
def _random_acts(rng, n_items=5):
    sheets = {"a": CorticalSheet((3, 4), layout="permuted", seed=1, name="a"),
              "b": CorticalSheet((2, 3), layout=np.array([[0, 0], [0, 0], [1, 2], [1, 1]]),
                                 name="b")}
    data = {"a": rng.normal(size=(n_items, 12)), "b": rng.normal(size=(n_items, 4))}
    return Activations.from_arrays(data, sheets, item_ids=[f"it{k}" for k in range(n_items)],
                                   labels=["S", "N", "S", "N", "S"][:n_items],
                                   params={"model": "m", "pooling": "mean"}), data


@pytest.mark.parametrize("suffix", [".nc", ".npz"])
def test_save_load_round_trip(rng, tmp_path, suffix):
    acts, data = _random_acts(rng)
    path = acts.save(tmp_path / f"acts{suffix}")
    back = load_activations(path)
    assert back.layers == ["a", "b"]
    for layer in back.layers:
        np.testing.assert_array_equal(back[layer], data[layer])
        np.testing.assert_array_equal(back.sheets[layer].positions,
                                      acts.sheets[layer].positions)
        assert back.sheets[layer].shape == acts.sheets[layer].shape
    assert list(back.item_ids) == [f"it{k}" for k in range(5)]
    assert list(back.labels) == ["S", "N", "S", "N", "S"]
    assert back.params == {"model": "m", "pooling": "mean"}
    np.testing.assert_array_equal(back.to_maps("b"), acts.to_maps("b"))


def test_integer_ids_and_no_labels_round_trip(rng, tmp_path):
    sheet = CorticalSheet((2, 2), name="x")
    acts = Activations.from_arrays({"x": rng.normal(size=(3, 4))}, {"x": sheet})
    assert acts.labels is None and acts.conditions is None
    for suffix in (".nc", ".npz"):
        back = Activations.load(acts.save(tmp_path / f"i{suffix}"))
        assert [int(i) for i in back.item_ids] == [0, 1, 2]
        assert back.labels is None


def test_activations_are_read_only_and_never_alias_the_caller(rng):
    acts, data = _random_acts(rng)
    original = data["a"].copy()
    data["a"][0, 0] = 99.0
    assert acts["a"][0, 0] == original[0, 0]
    with pytest.raises(ValueError, match="read-only"):
        acts["a"][0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        acts.sheets = {}
    ds = acts.to_xarray()
    rebuilt = Activations(ds)
    np.testing.assert_array_equal(rebuilt["b"], acts["b"])
    assert ds["a"].values.flags.writeable is False


def test_select_replace_and_errors(rng):
    acts, data = _random_acts(rng)
    sub = acts.select(layers="b", items=[4, 0])
    assert sub.layers == ["b"] and list(sub.item_ids) == ["it4", "it0"]
    np.testing.assert_array_equal(sub["b"], data["b"][[4, 0]])
    assert list(sub.labels) == ["S", "S"]
    masked = acts.select(items=np.array([True, False, True, False, False]))
    np.testing.assert_array_equal(masked["a"], data["a"][[0, 2]])
    new = acts.replace({"a": data["a"] * 2, "b": data["b"]}, smoothing_fwhm=2.0)
    assert new.params["smoothing_fwhm"] == 2.0 and new.params["model"] == "m"
    np.testing.assert_array_equal(new["a"], data["a"] * 2)
    with pytest.raises(KeyError, match=r"No layer 'c'.*Layers: \['a', 'b'\]"):
        acts["c"]
    with pytest.raises(ValueError, match="replace needs an array for every layer"):
        acts.replace({"a": data["a"]})
    with pytest.raises(ValueError, match="boolean item mask needs 5 entries"):
        acts.select(items=np.array([True, False]))
    with pytest.raises(ValueError, match="Layer 'a' has 11 units but its sheet has 12"):
        Activations.from_arrays({"a": data["a"][:, :11]}, acts.sheets)
    with pytest.raises(ValueError, match="same number of items"):
        Activations.from_arrays({"a": data["a"], "b": data["b"][:3]}, acts.sheets)
    with pytest.raises(ValueError, match=r"shape \(n_items, n_units\)"):
        Activations.from_arrays({"a": data["a"][0]}, acts.sheets)
    with pytest.raises(ValueError, match="No sheet for layer 'z'"):
        Activations.from_arrays({"z": data["a"]}, acts.sheets)
    with pytest.raises(TypeError, match="dataset must be an xarray.Dataset"):
        Activations({"a": data["a"]})
    with pytest.raises(ValueError, match="Unknown activations file type"):
        acts.save("acts.csv")
    with pytest.raises(FileNotFoundError, match="No activations file"):
        Activations.load("/nonexistent/acts.nc")


@pytest.mark.parametrize("suffix", [".npz", ".nc"])
@pytest.mark.parametrize("cut", [0, 10, 100, 0.5, -1])
def test_a_damaged_file_is_one_value_error(rng, tmp_path, cut, suffix):
    acts, _ = _random_acts(rng)
    path = acts.save(tmp_path / f"a{suffix}")
    good = path.read_bytes()
    size = int(len(good) * cut) if isinstance(cut, float) else cut
    path.write_bytes(good[:size])
    with pytest.raises(ValueError, match=rf"a\{suffix} is not a readable activations file "):
        load_activations(path)
