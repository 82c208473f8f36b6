"""Tests for the activation harness (topobrain.extract).

The reference for every pooled value is the model run on one item at a time, without
padding, pooled by hand in float64: the harness's batching, sorting, padding, masking,
truncation, caching and resuming must all reproduce it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topobrain.activations import Activations
from topobrain.extract import default_cache_dir, extract
from topobrain.sheet import CorticalSheet

WORDS = ("the cat sat on a mat while dogs ran over green hills and birds sang songs of "
         "summer rain under quiet grey skies near old stone walls").split()

HAS_STIMULI = importlib.util.find_spec("topobrain.stimuli") is not None


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """The folder of a 2-block, 2-head TopoGPT on a 4 x 4 sheet, trained 2 steps on a
    tiny corpus."""
    from topobrain.models.train import train

    root = tmp_path_factory.mktemp("tiny_model")
    corpus = root / "corpus"
    corpus.mkdir()
    rnd = random.Random(0)
    for i in range(4):
        (corpus / f"doc{i}.txt").write_text(
            " ".join(rnd.choice(WORDS) for _ in range(1500)), encoding="utf-8")
    cfg = dict(name="tiny", out=str(root / "run"), corpus=str(corpus),
               prepared=str(root / "prepared"), vocab_size=300,
               model=dict(n_layer=2, n_head=2, sheet_shape=[4, 4], block_size=32),
               batch_size=4, max_steps=2, warmup_steps=1, eval_interval=2, eval_batches=1,
               checkpoint_interval=2, verbose=0, device="cpu", save_dtype="float32")
    return train(cfg)


@pytest.fixture(scope="session")
def tiny_model(tiny_folder):
    from topobrain.models import load

    return load(tiny_folder)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never write to the user's ~/.cache: the default cache lives in tmp_path."""
    monkeypatch.setenv("TOPOBRAIN_CACHE", str(tmp_path / "cache"))


class StandInStimuli:
    """The duck type extract accepts: texts, item_ids, labels, identity, name."""

    def __init__(self, texts, labels, item_ids=None, name="stand-in"):
        self.texts = list(texts)
        self.labels = np.asarray(labels, dtype=object)
        self.conditions = list(dict.fromkeys(labels))
        self.item_ids = [f"i{k}" for k in range(len(texts))] if item_ids is None else item_ids
        self.name = name
        self.identity = str(hash((tuple(self.texts), tuple(self.labels), tuple(self.item_ids))))

    def __len__(self):
        return len(self.texts)


def make_texts(rng, n, lo=1, hi=8):
    lengths = rng.integers(lo, hi + 1, size=n)
    return [" ".join(rng.choice(WORDS, size=k)) for k in lengths]


def make_stimuli(rng, n=10):
    texts = make_texts(rng, n)
    labels = ["S" if k % 2 == 0 else "N" for k in range(n)]
    if HAS_STIMULI:
        from topobrain.stimuli import StimulusSet

        return StimulusSet({"item_id": [f"i{k}" for k in range(n)], "condition": labels,
                            "text": texts}, name="tiny-set")
    return StandInStimuli(texts, labels)


def counting(model, fail_after=None):
    """A copy of ``model`` whose forward calls are counted (and may fail)."""
    calls = {"n": 0}
    inner = model.run_layers

    def run_layers(input_ids, attention_mask=None):
        if fail_after is not None and calls["n"] >= fail_after:
            raise RuntimeError("simulated interruption")
        calls["n"] += 1
        return inner(input_ids, attention_mask)

    return dataclasses.replace(model, run_layers=run_layers), calls


def reference(model, texts, pooling="mean", layers=None, bos=False):
    """One item at a time, no padding, pooled by hand in float64."""
    layers = list(model.sheets) if layers is None else layers
    out = {k: [] for k in layers}
    room = model.context_length - int(bos)
    for ids in model.tokenize(texts):
        ids = ids[:room]
        full = ([model.bos_token_id] if bos else []) + ids
        acts = model.activations(torch.tensor([full]), None, layers)
        for k in layers:
            a = acts[k][0].double().numpy()[int(bos):]
            if pooling == "mean":
                v = a.mean(0)
            elif pooling == "sum":
                v = a.sum(0)
            elif pooling == "first":
                v = a[0]
            elif pooling == "last":
                v = a[-1]
            else:
                v = pooling(a)
            out[k].append(v)
    return {k: np.stack(v) for k, v in out.items()}


# --------------------------------------------------------------------------- reference
@pytest.mark.parametrize("pooling", ["mean", "last", "first", "sum", "median"])
@pytest.mark.parametrize("bos", [False, True])
def test_matches_one_item_at_a_time_reference(tiny_model, rng, pooling, bos):
    texts = make_texts(rng, 9)
    pool = (lambda a: np.median(a, axis=0)) if pooling == "median" else pooling
    acts = extract(tiny_model, texts, pooling=pool, bos=bos, batch_size=4, cache=False,
                   verbose=0)
    ref = reference(tiny_model, texts, pool, bos=bos)
    assert acts.layers == list(tiny_model.sheets)
    for layer in acts.layers:
        assert acts[layer].dtype == np.float64
        assert acts[layer].shape == (9, 16)
        np.testing.assert_allclose(acts[layer], ref[layer], rtol=1e-5, atol=1e-7)


def test_bos_changes_the_context_but_is_not_pooled(tiny_model, rng):
    texts = make_texts(rng, 4, lo=2)
    with_bos = extract(tiny_model, texts, bos=True, pooling="first", cache=False, verbose=0)
    without = extract(tiny_model, texts, bos=False, pooling="first", cache=False, verbose=0)
    layer = "layer.1.mlp"
    # the first pooled token is the item's own first token in both runs, seen with and
    # without a BOS before it: different values, and no row equals the BOS's own output
    assert not np.allclose(with_bos[layer], without[layer])
    bos_out = tiny_model.activations(torch.tensor([[tiny_model.bos_token_id]]))[layer][0, 0]
    assert not np.any(np.all(np.isclose(with_bos[layer], bos_out.double().numpy()), axis=1))


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch_size=st.integers(1, 12), seed=st.integers(0, 2**16),
       pooling=st.sampled_from(["mean", "last", "sum"]))
def test_any_batch_size_and_item_order_give_the_same_responses(tiny_model, batch_size, seed,
                                                               pooling):
    r = np.random.default_rng(seed)
    texts = make_texts(r, 11)
    one = extract(tiny_model, texts, pooling=pooling, batch_size=1, cache=False, verbose=0)
    many = extract(tiny_model, texts, pooling=pooling, batch_size=batch_size, cache=False,
                   verbose=0)
    perm = r.permutation(11)
    shuffled = extract(tiny_model, [texts[i] for i in perm], pooling=pooling,
                       batch_size=batch_size, cache=False, verbose=0)
    for layer in one.layers:
        np.testing.assert_allclose(many[layer], one[layer], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(shuffled[layer], one[layer][perm], rtol=1e-5, atol=1e-7)


def test_padding_never_enters_the_pooled_value(tiny_model, rng):
    """Poison every padded position with NaN and 1e30: the result must not change."""
    inner = tiny_model.run_layers

    def poisoned(input_ids, attention_mask=None):
        acts = inner(input_ids, attention_mask)
        if attention_mask is None:
            return acts
        pad = ~attention_mask.bool()
        out = {}
        for k, a in acts.items():
            a = a.clone()
            a[pad] = float("nan") if k.endswith("attn") else 1e30
            out[k] = a
        return out

    model = dataclasses.replace(tiny_model, run_layers=poisoned)
    texts = make_texts(rng, 10, lo=1, hi=8)
    for pooling in ("mean", "sum", "last", "first", lambda a: a.max(0)):
        got = extract(model, texts, pooling=pooling, batch_size=10, cache=False, verbose=0)
        ref = reference(tiny_model, texts, pooling)
        for layer in got.layers:
            np.testing.assert_allclose(got[layer], ref[layer], rtol=1e-5, atol=1e-7)


def test_a_constant_unit_passes_through_untouched(tiny_model, rng):
    inner = tiny_model.run_layers

    def with_dead_unit(input_ids, attention_mask=None):
        acts = dict(inner(input_ids, attention_mask))
        a = acts["layer.0.mlp"].clone()
        a[..., 5] = 0.25
        acts["layer.0.mlp"] = a
        return acts

    model = dataclasses.replace(tiny_model, run_layers=with_dead_unit)
    acts = extract(model, make_texts(rng, 8), batch_size=3, cache=False, verbose=0)
    assert np.all(acts["layer.0.mlp"][:, 5] == 0.25)
    assert np.all(np.isfinite(acts["layer.0.mlp"]))


# --------------------------------------------------------------------------- labels
def test_labels_positions_and_maps(tiny_model, rng):
    stim = make_stimuli(rng, 10)
    acts = extract(tiny_model, stim, layers=["layer.1.attn", "layer.0.mlp"], cache=False,
                   verbose=0)
    assert acts.layers == ["layer.1.attn", "layer.0.mlp"]
    assert list(acts.item_ids) == list(stim.item_ids)
    assert list(acts.labels) == ["S", "N"] * 5
    assert acts.conditions == ["S", "N"]
    assert acts.n_items == 10
    ds = acts.to_xarray()
    for layer in acts.layers:
        sheet = tiny_model.sheets[layer]
        assert acts.sheets[layer] is sheet
        np.testing.assert_array_equal(ds[f"{layer}.row"].values, sheet.positions[:, 0])
        np.testing.assert_array_equal(ds[f"{layer}.col"].values, sheet.positions[:, 1])
        assert ds[layer].dims == ("item", f"{layer}.unit")
        maps = acts.to_maps(layer)
        assert maps.shape == (10, 4, 4)
        np.testing.assert_array_equal(maps, sheet.to_map(acts[layer]))
    assert list(ds["condition"].values) == ["S", "N"] * 5
    frame = acts.to_frame()
    assert len(frame) == 10 * 16 * 2
    assert set(frame.columns) == {"item_id", "condition", "layer", "unit", "row", "col", "value"}
    row = frame[(frame.layer == "layer.0.mlp") & (frame.unit == 3)].iloc[4]
    assert row.value == acts["layer.0.mlp"][4, 3]
    assert (row.row, row.col) == tuple(tiny_model.sheets["layer.0.mlp"].positions[3])
    assert "10 items x 2 layers" in repr(acts) and "S: 5" in repr(acts)


def test_plain_lists_tables_and_model_paths(tiny_model, rng, tmp_path):
    texts = make_texts(rng, 6)
    labels = ["A", "B"] * 3
    plain = extract(tiny_model, texts, labels=labels, item_ids=list("abcdef"), cache=False,
                    verbose=0)
    assert list(plain.item_ids) == list("abcdef") and list(plain.labels) == labels
    table = pd.DataFrame({"item_id": list("abcdef"), "condition": labels, "text": texts})
    tab = extract(tiny_model, table, cache=False, verbose=0)
    for layer in plain.layers:
        np.testing.assert_array_equal(tab[layer], plain[layer])
    # a model by path goes through topobrain.models.load
    folder = tmp_path / "model"
    from topobrain.models.checkpoint import save_model

    save_model(folder, tiny_model.module, tiny_model.sheets, tiny_model.tokenizer, {})
    by_path = extract(str(folder), texts, cache=False, verbose=0)
    for layer in plain.layers:
        np.testing.assert_allclose(by_path[layer], plain[layer], rtol=1e-6, atol=1e-9)


@pytest.mark.skipif(not HAS_STIMULI, reason="topobrain.stimuli is not part of this build")
def test_stimulus_file_path_goes_through_load_stimuli(tiny_model, rng, tmp_path):
    stim = make_stimuli(rng, 6)
    path = tmp_path / "items.tsv"
    pd.DataFrame({"item_id": list(stim.item_ids), "condition": list(stim.labels),
                  "text": list(stim.texts)}).to_csv(path, sep="\t", index=False)
    by_path = extract(tiny_model, str(path), cache=False, verbose=0)
    direct = extract(tiny_model, stim, cache=False, verbose=0)
    assert list(by_path.item_ids) == list(stim.item_ids)
    assert list(by_path.labels) == list(stim.labels)
    for layer in direct.layers:
        np.testing.assert_array_equal(by_path[layer], direct[layer])


# --------------------------------------------------------------------------- truncation
def test_long_items_are_truncated_with_a_counting_warning(tiny_model, rng):
    long_text = " ".join(rng.choice(WORDS, size=80))
    texts = ["the cat sat", long_text, "a dog", long_text + " rain"]
    n_long = sum(len(t) > 32 for t in tiny_model.tokenize(texts))
    assert n_long == 2
    with pytest.warns(UserWarning, match=r"2 of 4 items are longer than the model's context "
                                         r"of 32 tokens .* truncated to their first 32"):
        acts = extract(tiny_model, texts, pooling="last", cache=False, verbose=0)
    ref = reference(tiny_model, texts, "last")
    for layer in acts.layers:
        np.testing.assert_allclose(acts[layer], ref[layer], rtol=1e-5, atol=1e-7)
    assert acts.params["n_truncated"] == 2
    with pytest.warns(UserWarning, match=r"\(with BOS\).*first 31 tokens"):
        extract(tiny_model, texts, bos=True, cache=False, verbose=0)


def test_short_items_do_not_warn(tiny_model, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extract(tiny_model, make_texts(rng, 3), cache=False, verbose=0)


# --------------------------------------------------------------------------- bad input
def test_empty_stimulus_set(tiny_model):
    with pytest.raises(ValueError, match="stimulus set is empty"):
        extract(tiny_model, [], cache=False, verbose=0)
    with pytest.raises(ValueError, match="stimulus set is empty"):
        extract(tiny_model, StandInStimuli([], []), cache=False, verbose=0)


def test_unknown_layer_lists_the_valid_ones(tiny_model):
    with pytest.raises(ValueError, match=r"Unknown layer name\(s\) \['layer.9.mlp'\].*"
                                         r"Valid layers: \['layer.0.attn', 'layer.0.mlp', "
                                         r"'layer.1.attn', 'layer.1.mlp'\].*Did you mean"):
        extract(tiny_model, ["a cat"], layers=["layer.9.mlp"], cache=False, verbose=0)
    with pytest.raises(ValueError, match="more than once"):
        extract(tiny_model, ["a cat"], layers=["layer.0.mlp", "layer.0.mlp"], cache=False)
    with pytest.raises(ValueError, match="layers is empty"):
        extract(tiny_model, ["a cat"], layers=[], cache=False)


def test_tokenizer_that_does_not_match_the_vocabulary(tiny_model):
    small = dataclasses.replace(tiny_model, vocab_size=40, pad_token_id=0, bos_token_id=0)
    with pytest.raises(ValueError, match=r"token id \d+ .* outside the model's vocabulary of "
                                         r"40 tokens: the tokenizer does not match"):
        extract(small, ["summer rain under quiet grey skies"], cache=False, verbose=0)


def test_other_bad_input(tiny_model):
    with pytest.raises(ValueError, match="Invalid value for the 'pooling' parameter.*'mean'"):
        extract(tiny_model, ["a cat"], pooling="max", cache=False)
    with pytest.raises(ValueError, match="pooling_name names a callable"):
        extract(tiny_model, ["a cat"], pooling="mean", pooling_name="x", cache=False)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        extract(tiny_model, ["a cat"], batch_size=0, cache=False)
    with pytest.raises(ValueError, match="have no tokens"):
        extract(tiny_model, ["a cat", ""], cache=False, verbose=0)
    with pytest.raises(ValueError, match="Item ids must be unique"):
        extract(tiny_model, ["a cat", "a dog"], item_ids=["x", "x"], cache=False)
    with pytest.raises(ValueError, match="labels has 1 entries for 2 texts"):
        extract(tiny_model, ["a cat", "a dog"], labels=["S"], cache=False)
    with pytest.raises(TypeError, match="Every item must be a text"):
        extract(tiny_model, ["a cat", 3], cache=False)
    with pytest.raises(TypeError, match="stimuli must be a StimulusSet"):
        extract(tiny_model, 42, cache=False)
    with pytest.raises(TypeError, match="model must be a SheetModel"):
        extract(object(), ["a cat"], cache=False)
    with pytest.raises(TypeError, match="item_ids= and labels= are for plain lists"):
        extract(tiny_model, StandInStimuli(["a", "b"], ["S", "S"]), labels=["S", "N"],
                cache=False)
    with pytest.raises(ValueError, match="Invalid device"):
        extract(tiny_model, ["a cat"], device="quantum", cache=False, verbose=0)
    no_bos = dataclasses.replace(tiny_model, bos_token_id=None)
    with pytest.raises(ValueError, match="bos=True but model .* has no BOS token"):
        extract(no_bos, ["a cat"], bos=True, cache=False)
    with pytest.raises(ValueError, match=r"pooling callable returned shape \(\)"):
        extract(tiny_model, ["a cat"], pooling=lambda a: a.mean(), cache=False, verbose=0)
    with pytest.raises(ValueError, match="A stimulus table needs a 'text' column"):
        extract(tiny_model, pd.DataFrame({"sentence": ["a"]}), cache=False)


def test_a_sheet_that_does_not_fit_the_layer(tiny_model):
    wrong = dict(tiny_model.sheets)
    wrong["layer.0.attn"] = CorticalSheet((3, 3), name="layer.0.attn")
    model = dataclasses.replace(tiny_model, sheets=wrong)
    with pytest.raises(ValueError, match=r"returned activations of shape \(1, \d+, 16\); "
                                         r"expected .* \(1, \d+, 9\)"):
        extract(model, ["a cat"], cache=False, verbose=0)


# --------------------------------------------------------------------------- cache
def test_second_identical_run_is_served_from_the_cache(tiny_model, rng, tmp_path):
    stim = make_stimuli(rng, 10)
    model, calls = counting(tiny_model)
    first = extract(model, stim, batch_size=3, cache_dir=tmp_path / "c", verbose=0)
    assert calls["n"] == 4
    files = list((tmp_path / "c" / "activations").glob("*.npz"))
    assert len(files) == 1
    # batch size and device are not part of the key: still a hit, no forward at all
    second = extract(model, stim, batch_size=5, device="cpu", cache_dir=tmp_path / "c",
                     verbose=0)
    assert calls["n"] == 4
    for layer in first.layers:
        np.testing.assert_array_equal(second[layer], first[layer])
    assert list(second.item_ids) == list(first.item_ids)
    assert list(second.labels) == list(first.labels)
    for layer, sheet in second.sheets.items():
        np.testing.assert_array_equal(sheet.positions, tiny_model.sheets[layer].positions)
    # the key changes with the pooling, the layers, bos and the model
    extract(model, stim, pooling="last", cache_dir=tmp_path / "c", verbose=0)
    assert calls["n"] == 5
    extract(model, stim, layers="layer.0.mlp", cache_dir=tmp_path / "c", verbose=0)
    assert calls["n"] == 6
    extract(model, stim, bos=True, cache_dir=tmp_path / "c", verbose=0)
    assert calls["n"] == 7
    other = dataclasses.replace(model, identity="another-model")
    extract(other, stim, cache_dir=tmp_path / "c", verbose=0)
    assert calls["n"] == 8
    # and with the stimuli
    extract(model, make_stimuli(np.random.default_rng(1), 10), cache_dir=tmp_path / "c",
            verbose=0)
    assert calls["n"] == 9


def test_an_edited_config_misses_the_cache(tiny_folder, rng, tmp_path):
    """Issue 19: n_head 2 -> 4 keeps every tensor shape, so the weights load, but the
    forward pass differs; the cached activations of the old config must not be served."""
    import json
    import shutil

    from topobrain.models import load

    edited = tmp_path / "edited"
    shutil.copytree(tiny_folder, edited)
    cfg = json.loads((edited / "config.json").read_text())
    assert cfg["model"]["n_head"] == 2
    cfg["model"]["n_head"] = 4
    (edited / "config.json").write_text(json.dumps(cfg, indent=1))
    texts = make_texts(rng, 6, lo=3)
    original, calls = counting(load(tiny_folder))
    first = extract(original, texts, cache_dir=tmp_path / "c", verbose=0)
    assert calls["n"] == 1
    changed, calls = counting(load(edited))
    assert changed.module.config.n_head == 4
    second = extract(changed, texts, cache_dir=tmp_path / "c", verbose=0)
    assert calls["n"] == 1, "the edited model was served the original's cached activations"
    assert first.params["cache_key"] != second.params["cache_key"]
    uncached = extract(changed, texts, cache=False, verbose=0)
    for layer in uncached.layers:
        np.testing.assert_array_equal(second[layer], uncached[layer])
    # the heads change what attention computes: responses move beyond float32 rounding
    # (little, in a model trained two steps, whose attention is still nearly uniform)
    for layer in first.layers:
        assert not np.allclose(second[layer], first[layer], rtol=1e-6, atol=0), layer


class _ReversedTokenizer:
    """Another tokenizer for the same model: the same ids in reverse order."""

    def __init__(self, inner):
        self.inner = inner

    def encode_batch(self, texts, add_special_tokens=False):
        return [types.SimpleNamespace(ids=list(reversed(e.ids)))
                for e in self.inner.encode_batch(texts, add_special_tokens=add_special_tokens)]


def test_every_setting_that_changes_the_numbers_changes_the_key(tiny_model, tiny_folder, rng,
                                                                tmp_path):
    """Same model identity, other numbers: dtype, tokenizer, context (truncation) and
    sheet positions each miss the cache, and what is then cached is the fresh result."""
    from topobrain.models import load

    def as_float64(model):
        model.module.double()  # in place: the forward closes over this module
        return model

    texts = make_texts(rng, 5, lo=4) + [" ".join(rng.choice(WORDS, size=40))]
    with pytest.warns(UserWarning, match="truncated"):
        base = extract(tiny_model, texts, cache_dir=tmp_path, verbose=0)
    permuted = {k: CorticalSheet(s.shape, layout="permuted", seed=3, name=k)
                for k, s in tiny_model.sheets.items()}
    variants = {
        "dtype": as_float64(load(tiny_folder)),
        "tokenizer": dataclasses.replace(tiny_model,
                                         tokenizer=_ReversedTokenizer(tiny_model.tokenizer)),
        "context": dataclasses.replace(tiny_model, context_length=8),
        "sheets": dataclasses.replace(tiny_model, sheets=permuted),
    }
    keys = {base.params["cache_key"]}
    for what, variant in variants.items():
        model, calls = counting(variant)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # truncation
            got = extract(model, texts, cache_dir=tmp_path, verbose=0)
            fresh = extract(variant, texts, cache=False, verbose=0)
        assert calls["n"] >= 1, f"{what}: served from the cache of another setting"
        keys.add(got.params["cache_key"])
        for layer in got.layers:
            np.testing.assert_array_equal(got[layer], fresh[layer])
        if what != "sheets":  # positions relabel units; the others change the numbers
            assert not np.array_equal(got["layer.1.mlp"], base["layer.1.mlp"]), what
    assert len(keys) == 1 + len(variants)
    # the identity alone still decides a hit: same settings, new object, no forward
    again, calls = counting(dataclasses.replace(tiny_model))
    with pytest.warns(UserWarning, match="truncated"):
        extract(again, texts, cache_dir=tmp_path, verbose=0)
    assert calls["n"] == 0


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "other-shapes",
                                    "other-items"])
def test_a_damaged_cache_file_is_dropped_with_a_warning_and_recomputed(tiny_model, rng,
                                                                      tmp_path, damage):
    stim = make_stimuli(rng, 6)
    first = extract(tiny_model, stim, cache_dir=tmp_path, verbose=0)
    (path,) = (tmp_path / "activations").glob("*.npz")
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip file" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a readable activations file that does not belong under this key
        n_items = 6 if damage == "other-shapes" else 4
        sheets = {k: CorticalSheet((2, 2), name=k) for k in first.layers}
        if damage == "other-items":
            sheets = first.sheets
        data = {k: rng.normal(size=(n_items, sheets[k].n_units)) for k in first.layers}
        Activations.from_arrays(data, sheets, params=first.params).save(path)
    model, calls = counting(tiny_model)
    with pytest.warns(UserWarning, match=rf"Dropping the damaged activation cache file "
                                         rf".*{path.name}"):
        again = extract(model, stim, cache_dir=tmp_path, verbose=0)
    assert calls["n"] == 1
    for layer in first.layers:
        np.testing.assert_allclose(again[layer], first[layer], rtol=1e-6, atol=1e-8)
    # rewritten whole: the next run is a clean hit
    model, calls = counting(tiny_model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extract(model, stim, cache_dir=tmp_path, verbose=0)
    assert calls["n"] == 0


def test_cache_off_callables_env_var_and_default_dir(tiny_model, rng, tmp_path, monkeypatch):
    texts = make_texts(rng, 4)
    model, calls = counting(tiny_model)
    extract(model, texts, cache=False, verbose=0)
    extract(model, texts, cache=False, verbose=0)
    assert calls["n"] == 2
    assert not (tmp_path / "cache").exists()
    # the env var sets the default folder
    assert default_cache_dir() == tmp_path / "cache"
    extract(model, texts, verbose=0)
    extract(model, texts, verbose=0)
    assert calls["n"] == 3
    assert len(list((tmp_path / "cache" / "activations").glob("*.npz"))) == 1
    # a callable without a name is never cached; with a name it is
    pool = lambda a: a.max(0)  # noqa: E731
    extract(model, texts, pooling=pool, verbose=0)
    extract(model, texts, pooling=pool, verbose=0)
    assert calls["n"] == 5
    named = extract(model, texts, pooling=pool, pooling_name="max", verbose=0)
    again = extract(model, texts, pooling=pool, pooling_name="max", verbose=0)
    assert calls["n"] == 6
    np.testing.assert_array_equal(named["layer.0.attn"], again["layer.0.attn"])
    monkeypatch.delenv("TOPOBRAIN_CACHE")
    assert str(default_cache_dir()).endswith(".cache/topobrain")


def test_an_interrupted_run_resumes_from_its_partial_files(tiny_model, rng, tmp_path):
    stim = make_stimuli(rng, 14)
    expected = extract(tiny_model, stim, cache=False, verbose=0)
    broken, calls = counting(tiny_model, fail_after=3)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        extract(broken, stim, batch_size=2, checkpoint_every=1, cache_dir=tmp_path, verbose=0)
    partial = list((tmp_path / "activations").glob("*.partial/chunk-*.npz"))
    assert len(partial) == 3
    assert not list((tmp_path / "activations").glob("*.npz"))
    # resume with another batch size: only the 8 items not yet done are run
    model, calls = counting(tiny_model)
    seen = []
    inner = model.run_layers

    def recording(input_ids, attention_mask=None):
        seen.append(input_ids.shape[0])
        return inner(input_ids, attention_mask)

    model = dataclasses.replace(model, run_layers=recording)
    resumed = extract(model, stim, batch_size=3, checkpoint_every=1, cache_dir=tmp_path,
                      verbose=0)
    assert sum(seen) == 14 - 3 * 2 and calls["n"] == 3
    for layer in expected.layers:
        np.testing.assert_allclose(resumed[layer], expected[layer], rtol=1e-5, atol=1e-7)
    assert not list((tmp_path / "activations").glob("*.partial"))
    # a damaged partial file is ignored, not trusted
    broken, _ = counting(tiny_model, fail_after=2)
    stim2 = make_stimuli(np.random.default_rng(7), 12)
    with pytest.raises(RuntimeError):
        extract(broken, stim2, batch_size=2, checkpoint_every=1, cache_dir=tmp_path / "d",
                verbose=0)
    chunk = sorted((tmp_path / "d" / "activations").glob("*.partial/chunk-*.npz"))[0]
    chunk.write_bytes(b"not a zip file")
    again = extract(tiny_model, stim2, batch_size=2, cache_dir=tmp_path / "d", verbose=0)
    ref = extract(tiny_model, stim2, cache=False, verbose=0)
    for layer in ref.layers:
        np.testing.assert_allclose(again[layer], ref[layer], rtol=1e-5, atol=1e-7)


def test_an_unwritable_cache_warns_but_returns(tiny_model, rng, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="Could not write the activation cache"):
        acts = extract(tiny_model, make_texts(rng, 3), cache_dir=blocker, verbose=0)
    assert acts.n_items == 3


# --------------------------------------------------------------------------- progress, device
def test_progress_bar_and_verbose_zero(tiny_model, rng, capsys):
    texts = make_texts(rng, 5)
    extract(tiny_model, texts, batch_size=2, cache=False, verbose=1)
    err = capsys.readouterr().err
    assert "3/3" in err
    extract(tiny_model, texts, batch_size=2, cache=False, verbose=0)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_device_auto_and_the_model_stays_where_it_was(tiny_model, rng):
    from topobrain._utils._validation import check_device

    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert check_device("auto").type == want and check_device(None).type == want
    assert check_device(torch.device("cpu")) == torch.device("cpu")
    before = tiny_model.device
    extract(tiny_model, make_texts(rng, 3), device="auto", cache=False, verbose=0)
    assert tiny_model.device == before
    assert not tiny_model.module.training


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows the refusal on a machine "
                                                     "without CUDA")
def test_a_device_this_machine_lacks_is_refused_before_any_work(tiny_model, rng):
    from topobrain._utils._validation import check_device

    model, calls = counting(tiny_model)
    for device in ("cuda", "cuda:1", torch.device("cuda:0")):
        with pytest.raises(ValueError, match=r"device='cuda(:\d)?': CUDA is not available "
                                             r"\(.*\); use device='cpu', or device='auto'"):
            extract(model, make_texts(rng, 3), device=device, verbose=0)
    assert calls["n"] == 0 and model.device.type == "cpu"
    # the same check speaks the CLI's language when asked to
    with pytest.raises(ValueError, match=r"^--device cuda: CUDA is not available .*; use "
                                         r"--device cpu, or --device auto to take a GPU"):
        check_device("cuda", parameter="--device")
    with pytest.raises(ValueError, match="Invalid --device 'quantum'"):
        check_device("quantum", parameter="--device")
    with pytest.raises(TypeError, match="device must be a string"):
        check_device(0.5)
    if not getattr(getattr(torch.backends, "mps", None), "is_available", lambda: False)():
        with pytest.raises(ValueError, match="MPS is not available"):
            check_device("mps")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu(tiny_model, rng):
    texts = make_texts(rng, 9)
    cpu = extract(tiny_model, texts, device="cpu", cache=False, verbose=0)
    gpu = extract(tiny_model, texts, device="cuda", batch_size=4, cache=False, verbose=0)
    assert tiny_model.device.type == "cpu"
    for layer in cpu.layers:
        np.testing.assert_allclose(gpu[layer], cpu[layer], rtol=1e-3, atol=1e-5)


# --------------------------------------------------------------------------- other models
def test_hugging_face_folder_through_the_loader(tiny_model, rng, tmp_path):
    """A tiny random GPT-2 saved as a Hugging Face folder, opened by topobrain.models.load
    with a sheet spec (forward hooks on the named modules), padded and masked in batches."""
    transformers = pytest.importorskip("transformers")
    from topobrain.models import load

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=tiny_model.vocab_size, n_positions=32, n_embd=12,
                                  n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2")
    (tmp_path / "gpt2" / "tokenizer.json").write_text(tiny_model.tokenizer.to_str())
    spec = {"layers": {"h.1.attn": {"module": "transformer.h.1.attn", "shape": [3, 4],
                                    "layout": "permuted", "seed": 1}},
            "patterns": [{"name": "h.{i}.mlp", "module": "transformer.h.{i}.mlp",
                          "shape": [4, 3], "layout": "permuted", "seed": 2}]}
    model = load(tmp_path / "gpt2", sheet_spec=spec)
    texts = make_texts(rng, 7)
    for pooling in ("mean", "last"):
        acts = extract(model, texts, pooling=pooling, batch_size=4, cache=False, verbose=0)
        ref = reference(model, texts, pooling)
        assert set(acts.layers) == {"h.1.attn", "h.0.mlp", "h.1.mlp"}
        for layer in acts.layers:
            assert acts[layer].shape == (7, 12)
            np.testing.assert_allclose(acts[layer], ref[layer], rtol=1e-5, atol=1e-6)
