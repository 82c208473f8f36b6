"""Lesions: interventions against hand-written forwards and weight surgery, targets,
controls (counts, shapes, overlap, seeding), measures, loaders, the CLI, and a tiny model
trained here whose one patch carries the signal."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from topobrain.lesion import (  # noqa: E402
    CONTROL_KINDS,
    Lesion,
    ablate,
    cluster_units,
    disc,
    draw_controls,
    largest_cluster,
    localizer_maps,
    parse_target,
    read_localizer,
    score_sequences,
    square,
    top_units,
    z_and_p,
)
from topobrain.models.base import SheetModel  # noqa: E402
from topobrain.models.gpt import GPTConfig, TopoGPT  # noqa: E402
from topobrain.sheet import CorticalSheet  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny_sheet_model(seed=0, **cfg) -> SheetModel:
    torch.manual_seed(seed)
    kw = dict(vocab_size=40, block_size=16, n_layer=2, n_head=2, sheet_shape=(4, 4))
    kw.update(cfg)
    gpt = TopoGPT(GPTConfig(**kw)).eval()
    sheets = {n: CorticalSheet(gpt.config.sheet_shape, layout="permuted", seed=k, name=n)
              for k, n in enumerate(gpt.layer_names)}

    def run_layers(ids, mask=None):
        return gpt(ids, return_activations=True, attention_mask=mask)[1]

    return SheetModel(name="tiny", module=gpt, tokenizer=None, sheets=sheets,
                      context_length=kw["block_size"], vocab_size=kw["vocab_size"],
                      identity="tiny", run_layers=run_layers)


# ------------------------------------------------------------------ a hand-written forward
def _ln(x, mod):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + mod.eps) * mod.weight
    return y + mod.bias if mod.bias is not None else y


def _lin(x, mod):
    y = x @ mod.weight.T
    return y + mod.bias if mod.bias is not None else y


@torch.no_grad()
def hand_forward(gpt: TopoGPT, ids, edits=None):
    """TopoGPT's forward written out (explicit softmax attention), with ``edits[layer] =
    (units, values)`` setting those units of that sheet layer; returns float64 logits."""
    edits = edits or {}
    cfg = gpt.config
    gpt = gpt.double()
    try:
        b, t = ids.shape
        x = gpt.transformer.wte.weight[ids] + gpt.transformer.wpe.weight[:t][None]
        causal = torch.ones(t, t, dtype=torch.bool).tril()

        def edit(name, a, stream=None):
            if name not in edits:
                return a
            units, vals = edits[name]
            units = torch.as_tensor(np.array(units))
            a = a.clone()
            v = torch.as_tensor(np.array(vals, float))
            a[..., units] = v if stream is None else v - stream[..., units]
            return a

        for i, blk in enumerate(gpt.transformer.h):
            h = _ln(x, blk.ln_1)
            q, k, v = _lin(h, blk.attn.c_attn).split(cfg.n_embd, dim=2)
            nh, hd = cfg.n_head, cfg.n_embd // cfg.n_head
            q, k, v = (z.view(b, t, nh, hd).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            att = att.masked_fill(~causal, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(b, t, cfg.n_embd)
            a = _lin(y, blk.attn.c_proj)
            if blk.attn_proj is not None:
                a = _lin(a, blk.attn_proj)
            a = edit(f"layer.{i}.attn", a, x if cfg.with_resid else None)
            x = x + a
            m = _lin(F.gelu(_lin(_ln(x, blk.ln_2), blk.mlp.c_fc)), blk.mlp.c_proj)
            if cfg.with_resid:
                x = edit(f"layer.{i}.mlp", x + m)
            else:
                x = x + edit(f"layer.{i}.mlp", m)
        return _lin(_ln(x, gpt.transformer.ln_f), gpt.lm_head)
    finally:
        gpt.float()


def _seqs(rng, n, vocab=40, lo=3, hi=16):
    return [rng.integers(0, vocab, int(rng.integers(lo, hi + 1))).tolist() for _ in range(n)]


def _nats(logits, seq):
    lp = torch.log_softmax(logits.double(), -1)
    return float(-lp[0, torch.arange(len(seq) - 1), torch.tensor(seq[1:])].sum())


# ------------------------------------------------------------------ interventions
def test_empty_lesion_is_bitwise_identical(rng):
    m = tiny_sheet_model()
    ids = torch.from_numpy(rng.integers(0, 40, (3, 12)))
    with torch.no_grad():
        before = m.module(ids)
        with ablate(m, Lesion({})) as same:
            assert same is m
            during = m.module(ids)
    assert torch.equal(before, during)


@pytest.mark.parametrize("cfg", [{}, {"attn_proj": True, "bias": True}, {"with_resid": True}])
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_lesion_equals_hand_written_forward(rng, cfg, mode):
    m = tiny_sheet_model(seed=1, **cfg)
    units = {"layer.0.attn": rng.choice(16, 5, replace=False),
             "layer.1.mlp": rng.choice(16, 4, replace=False)}
    means = {k: rng.normal(size=16) for k in m.layer_names}
    vals = {k: (means[k][u] if mode == "mean" else np.zeros(u.size)) for k, u in units.items()}
    ids = torch.from_numpy(rng.integers(0, 40, (2, 11)))
    with torch.no_grad(), ablate(m, Lesion(units), mode=mode, means=means):
        got = m.module(ids).double()
    ref = hand_forward(m.module, ids, {k: (u, vals[k]) for k, u in units.items()})
    unlesioned = hand_forward(m.module, ids)
    np.testing.assert_allclose(got.numpy(), ref.detach().numpy(), atol=2e-5)
    assert float((ref - unlesioned).abs().max()) > 1e-3  # the lesion did something
    with torch.no_grad():  # hooks gone on exit
        np.testing.assert_allclose(m.module(ids).double().numpy(), unlesioned.detach().numpy(),
                                   atol=2e-5)


def test_lesion_equals_weight_surgery_on_a_hugging_face_model(rng):
    """Zeroing the MLP outputs of a GPT-2 equals zeroing those output columns of its
    c_proj (weights and bias): an independent reference for the hooks."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2)).eval()
    sheets = {f"layer.{i}.mlp": CorticalSheet((4, 4), name=f"layer.{i}.mlp") for i in range(2)}
    m = SheetModel(name="gpt2", module=gpt2, tokenizer=None, sheets=sheets,
                   context_length=16, vocab_size=50, identity="x", run_layers=None,
                   layer_modules={f"layer.{i}.mlp": f"transformer.h.{i}.mlp" for i in range(2)})
    units = rng.choice(16, 6, replace=False)
    ids = torch.from_numpy(rng.integers(0, 50, (2, 9)))
    with torch.no_grad(), ablate(m, Lesion({"layer.1.mlp": units})):
        hooked = gpt2(input_ids=ids).logits
    cut = transformers.GPT2LMHeadModel(gpt2.config).eval()
    cut.load_state_dict(gpt2.state_dict())
    with torch.no_grad():
        cut.transformer.h[1].mlp.c_proj.weight[:, units] = 0  # Conv1D: (in, out)
        cut.transformer.h[1].mlp.c_proj.bias[units] = 0
        ref = cut(input_ids=ids).logits
        plain = gpt2(input_ids=ids).logits
    np.testing.assert_allclose(hooked.numpy(), ref.numpy(), atol=1e-5)
    assert (hooked - plain).abs().max() > 1e-4
    s = score_sequences(m, [ids[0].tolist()], [Lesion({"layer.1.mlp": units})], verbose=0)
    assert s.nats[0, 0] == pytest.approx(_nats(ref[:1], ids[0].tolist()), abs=1e-4)


def test_ablate_bad_input():
    m = tiny_sheet_model()
    with pytest.raises(ValueError, match="does not have"), ablate(m, Lesion({"layer.9.mlp": [1]})):
        pass
    with pytest.raises(ValueError, match="needs means="), ablate(m, Lesion({"layer.0.mlp": [1]}),
                                                                 mode="mean"):
        pass
    with pytest.raises(ValueError, match="Invalid value for the 'mode'"), \
            ablate(m, Lesion({"layer.0.mlp": [1]}), mode="half"):
        pass
    with pytest.raises(ValueError, match="has 16 units"):
        score_sequences(m, [[1, 2, 3]], [Lesion({"layer.0.mlp": [16]})], verbose=0)
    with pytest.raises(TypeError, match="boolean mask"):
        Lesion({"layer.0.mlp": np.ones(16, bool)})
    with pytest.raises(ValueError, match="negative"):
        Lesion({"layer.0.mlp": [-1]})
    with pytest.raises(TypeError, match="must be a Lesion"), ablate(m, {"layer.0.mlp": [1]}):
        pass


# ------------------------------------------------------------------ measures engine
def test_scores_match_per_lesion_forwards_with_and_without_prefix_sharing(rng):
    m = tiny_sheet_model(seed=2, n_layer=3)
    seqs = _seqs(rng, 7)
    lesions = [Lesion({}, name="none", kind="none")] + [
        Lesion({"layer.2.attn": rng.choice(16, 3, replace=False),
                "layer.2.mlp": rng.choice(16, 5, replace=False)}, name=f"c{i}")
        for i in range(5)]
    shared = score_sequences(m, seqs, lesions, verbose=0, max_tokens=200)
    plain = score_sequences(m, seqs, lesions, verbose=0, share_prefix=False,
                            lesions_per_pass=1)
    assert shared.params["shared_blocks"] == 2 and plain.params["shared_blocks"] == 0
    np.testing.assert_allclose(shared.nats, plain.nats, atol=1e-5)
    for i, les in enumerate(lesions):
        edits = {k: (u, np.zeros(u.size)) for k, u in les.units.items()}
        for j, s in enumerate(seqs):
            ref = hand_forward(m.module, torch.tensor([s]), edits)
            assert shared.nats[i, j] == pytest.approx(_nats(ref, s), abs=1e-4)
    np.testing.assert_array_equal(shared.n_tokens, [len(s) - 1 for s in seqs])


def test_captured_responses_are_the_item_means(rng):
    m = tiny_sheet_model(seed=3)
    seqs = _seqs(rng, 5)
    les = [Lesion({}), Lesion({"layer.0.mlp": [0, 1, 2]}, name="a")]
    s = score_sequences(m, seqs, les, capture=["layer.1.mlp"], offset=1, verbose=0)
    for j, seq in enumerate(seqs):
        with torch.no_grad(), ablate(m, les[1]):
            acts = m.run_layers(torch.tensor([seq]))["layer.1.mlp"][0, 1:]
        np.testing.assert_allclose(s.pooled["layer.1.mlp"][1, j], acts.mean(0).numpy(),
                                   atol=1e-5)


def test_item_surprisal_tokens_truncation_and_bos():
    from topobrain.lesion import item_surprisal
    from topobrain.models import load

    m = load("topolm-tiny")
    texts = ["the cat sat on the mat", "a dog"]
    s = item_surprisal(m, texts, verbose=0)
    ids = m.tokenize(texts)
    for j, seq in enumerate(ids):
        with torch.no_grad():
            logits = m.module(torch.tensor([seq]))
        assert s.nats[0, j] == pytest.approx(_nats(logits, seq), rel=1e-6)
        assert s.n_tokens[j] == len(seq) - 1
    b = item_surprisal(m, texts, bos=True, verbose=0)
    np.testing.assert_array_equal(b.n_tokens, [len(x) for x in ids])
    long = " ".join(["word"] * 400)
    t = item_surprisal(m, [long], verbose=0)
    assert t.params["truncated"] == 1 and t.n_tokens[0] == m.context_length - 1


def test_mean_ablation_uses_the_reference_means(rng):
    """reference_means is the mean over items of each item's token-mean response, and a
    mean lesion puts exactly those values in."""
    from topobrain.lesion import reference_means
    from topobrain.models import load

    m = load("topolm-tiny")
    texts = ["the cat sat on the mat", "a dog ran far away", "green ideas sleep"]
    means = reference_means(m, texts, layers=["layer.1.mlp"], cache=False, verbose=0)
    by_hand = []
    for seq in m.tokenize(texts):
        with torch.no_grad():
            a = m.run_layers(torch.tensor([seq]))["layer.1.mlp"][0].double()
        by_hand.append(a.mean(0).numpy())
    np.testing.assert_allclose(means["layer.1.mlp"], np.mean(by_hand, 0), rtol=1e-5,
                               atol=1e-6)
    units = np.array([3, 50, 200])
    seq = m.tokenize(texts[:1])[0]
    with torch.no_grad(), ablate(m, Lesion({"layer.1.mlp": units}), mode="mean", means=means):
        got = m.run_layers(torch.tensor([seq]))["layer.1.mlp"][0]
    np.testing.assert_allclose(got[:, units].numpy(),
                               np.broadcast_to(means["layer.1.mlp"][units], (len(seq), 3)),
                               rtol=1e-6)


# ------------------------------------------------------------------ targets
def _t_maps(rng, sheets):
    return {k: rng.normal(size=s.n_units) for k, s in sheets.items()}


def test_top_units_against_numpy(rng):
    m = tiny_sheet_model()
    t = _t_maps(rng, m.sheets)
    les = top_units(t, 10)
    flat = np.concatenate([t[k] for k in m.layer_names])
    n = round(flat.size * 0.10)
    thresh = np.sort(flat)[-n]
    assert les.n_units == n
    for k in m.layer_names:
        np.testing.assert_array_equal(les.units.get(k, np.array([], int)),
                                      np.flatnonzero(t[k] >= thresh))
    per = top_units(t, 25, per_layer=True)
    for k in m.layer_names:
        np.testing.assert_array_equal(per.units[k], np.sort(np.argsort(-t[k])[:4]))
    with pytest.raises(ValueError, match=r"percent must be in \(0, 100\]"):
        top_units(t, 0)


def test_disc_square_and_parse(rng):
    m = tiny_sheet_model()
    s = m.sheets["layer.0.mlp"]
    d = disc(s, "layer.0.mlp", (1, 1), 1.0)
    pos = s.positions[d.units["layer.0.mlp"]]
    assert sorted(map(tuple, pos.tolist())) == [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1)]
    q = square(s, "layer.0.mlp", (0, 0), 1)
    assert sorted(map(tuple, s.positions[q.units["layer.0.mlp"]].tolist())) == [
        (0, 0), (0, 1), (1, 0), (1, 1)]
    assert parse_target("square:layer.0.mlp:0,0:1", None, m.sheets).n_units == 4
    with pytest.raises(ValueError, match="Unknown target"):
        parse_target("biggest", None, m.sheets)
    with pytest.raises(ValueError, match="needs localizer maps"):
        parse_target("top5%", None, m.sheets)
    with pytest.raises(ValueError, match="no layer 'layer.7.mlp'"):
        parse_target("disc:layer.7.mlp:1,1:2", None, m.sheets)


def _synthetic_acts(rng, sheets, n_items=24):
    from topobrain.activations import Activations

    labels = np.array(["S", "N"] * (n_items // 2))
    data = {}
    for k, s in sheets.items():
        y = rng.normal(size=(n_items, s.n_units))
        blob = np.flatnonzero(np.abs(s.positions - 1).max(1) <= 1)  # a 3 x 3 patch
        y[labels == "S"][:, blob] += 0  # (no-op; the effect is added below)
        y[np.ix_(labels == "S", blob)] += 3.0
        data[k] = y
    return Activations.from_arrays(data, sheets, labels=labels), labels


def test_localizer_maps_clusters_and_folder_round_trip(rng, tmp_path):
    from topobrain.clusters import find_clusters

    m = tiny_sheet_model()
    acts, labels = _synthetic_acts(rng, m.sheets)
    maps = localizer_maps(acts, labels, "S - N", cluster_p=0.01)
    # the clusters are those of find_clusters on the same t maps
    tab = find_clusters({k: m.sheets[k].to_map(maps.t[k]) for k in m.layer_names},
                        maps.params["threshold"], adjacency="queen", tail=0)
    for i, k in enumerate(m.layer_names):
        np.testing.assert_array_equal(maps.cluster_labels[k] > 0,
                                      m.sheets[k].from_map(tab.labels[i]) > 0)
    big = largest_cluster(maps)
    assert big.n_units >= 9 and len(big.layers) == 1
    cid = int(maps.clusters["cluster_id"].iloc[0])
    assert cluster_units(maps, cid).n_units == int(maps.clusters["size"].iloc[0])
    with pytest.raises(ValueError, match="No cluster with id"):
        cluster_units(maps, 999)
    # write the folder layout of topobrain localize and read it back
    rows = []
    for k in m.layer_names:
        s = m.sheets[k]
        rows.append(pd.DataFrame({"model": "tiny", "contrast": "S - N", "layer": k,
                                  "unit": np.arange(16), "row": s.positions[:, 0],
                                  "col": s.positions[:, 1], "t": maps.t[k],
                                  "p_fdr": maps.p_fdr[k]}))
    pd.concat(rows).to_csv(tmp_path / "units.csv", index=False, float_format="%.6g")
    maps.clusters.assign(model="tiny", contrast="S - N").to_csv(
        tmp_path / "clusters.csv", index=False, float_format="%.6g")
    back = read_localizer(tmp_path)
    for k in m.layer_names:
        np.testing.assert_array_equal(back.cluster_labels[k], maps.cluster_labels[k])
        np.testing.assert_allclose(back.t[k], maps.t[k], rtol=1e-5)
    with pytest.raises(ValueError, match="no contrast 'V - N'"):
        read_localizer(tmp_path, contrast="V - N")
    with pytest.raises(FileNotFoundError, match="units.csv does not exist"):
        read_localizer(tmp_path / "nowhere")


# ------------------------------------------------------------------ controls
def _canonical(cells):
    from topobrain.lesion.controls import _DIHEDRAL

    out = []
    for mat in _DIHEDRAL:
        c = np.asarray(cells) @ mat.T
        c = c - c.min(0)
        out.append(tuple(sorted(map(tuple, c.tolist()))))
    return min(out)


@pytest.mark.parametrize("kind", CONTROL_KINDS)
def test_controls_match_counts_and_avoid_the_target(rng, kind):
    m = tiny_sheet_model(sheet_shape=(6, 6))
    target = Lesion({"layer.0.mlp": [0, 5, 9], "layer.1.attn": np.arange(7)}, name="t")
    mag = {k: np.abs(rng.normal(size=36)) for k in m.layer_names}
    ctl = draw_controls(target, m.sheets, kind, 40, seed=3, magnitude=mag)
    assert len(ctl) == 40 and all(c.kind == kind for c in ctl)
    for c in ctl:
        assert c.counts() == target.counts()
        for k, u in c.units.items():
            assert not set(u) & set(target.units[k])
    assert len({tuple(c.units["layer.0.mlp"]) for c in ctl}) > 10  # not one draw repeated


def test_random_patches_keep_the_shape_of_a_connected_target():
    m = tiny_sheet_model(sheet_shape=(8, 8))
    s = m.sheets["layer.1.mlp"]
    target = disc(s, "layer.1.mlp", (2, 3), 1.5)  # a 3 x 3 block
    ell = Lesion({"layer.1.mlp": [int(np.flatnonzero((s.positions == p).all(1))[0])
                                  for p in ([0, 0], [1, 0], [2, 0], [2, 1])]}, name="L")
    for tgt in (target, ell):
        cells = s.positions[tgt.units["layer.1.mlp"]]
        for c in draw_controls(tgt, m.sheets, "random-patch", 30, seed=1):
            got = s.positions[c.units["layer.1.mlp"]]
            assert _canonical(got) == _canonical(cells)
            assert not set(c.units["layer.1.mlp"]) & set(tgt.units["layer.1.mlp"])
            assert c.params["patch"]["layer.1.mlp"] == "moved"


def test_random_patches_of_scattered_targets_are_compact(rng):
    m = tiny_sheet_model(sheet_shape=(8, 8))
    s = m.sheets["layer.0.attn"]
    corners = [int(np.flatnonzero((s.positions == p).all(1))[0])
               for p in ([0, 0], [7, 7], [0, 7], [7, 0], [3, 4])]
    tgt = Lesion({"layer.0.attn": corners})
    for c in draw_controls(tgt, m.sheets, "random-patch", 20, seed=2):
        pos = s.positions[c.units["layer.0.attn"]].astype(float)
        assert c.params["patch"]["layer.0.attn"] == "compact"
        assert np.sqrt(((pos - pos.mean(0)) ** 2).sum(1)).max() <= 2.0


def test_controls_do_not_depend_on_n_jobs_and_extend_by_blocks():
    m = tiny_sheet_model(sheet_shape=(6, 6))
    target = Lesion({"layer.0.mlp": [1, 2, 3, 8]}, name="t")
    for kind in ("random-units", "random-patch"):
        a = draw_controls(target, m.sheets, kind, 150, seed=7, n_jobs=1)
        b = draw_controls(target, m.sheets, kind, 150, seed=7, n_jobs=2)
        c = draw_controls(target, m.sheets, kind, 70, seed=7)
        d = draw_controls(target, m.sheets, kind, 150, seed=8)
        ua = [tuple(x.units["layer.0.mlp"]) for x in a]
        assert ua == [tuple(x.units["layer.0.mlp"]) for x in b]
        assert ua[:70] == [tuple(x.units["layer.0.mlp"]) for x in c]
        assert ua != [tuple(x.units["layer.0.mlp"]) for x in d]


def test_controls_bad_input():
    m = tiny_sheet_model()
    t = Lesion({"layer.0.mlp": np.arange(10)})
    with pytest.raises(ValueError, match="only 6 others"):
        draw_controls(t, m.sheets, "random-units", 5, seed=0)
    assert draw_controls(t, m.sheets, "random-units", 5, seed=0, avoid_target=False)
    with pytest.raises(ValueError, match="needs magnitude="):
        draw_controls(t, m.sheets, "magnitude", 5, seed=0, avoid_target=False)
    with pytest.raises(ValueError, match="Invalid value for the 'kind'"):
        draw_controls(t, m.sheets, "random", 5, seed=0)
    with pytest.raises(ValueError, match="n_controls must be a positive integer"):
        draw_controls(t, m.sheets, "random-units", 0, seed=0)


def test_magnitude_controls_are_close_in_magnitude(rng):
    m = tiny_sheet_model(sheet_shape=(10, 10))
    mag = {k: rng.gamma(2.0, size=100) for k in m.layer_names}
    target = Lesion({"layer.1.mlp": np.argsort(mag["layer.1.mlp"])[-5:]})  # the largest
    ctl = draw_controls(target, m.sheets, "magnitude", 30, seed=0, magnitude=mag)
    ctl_mean = np.mean([mag["layer.1.mlp"][c.units["layer.1.mlp"]].mean() for c in ctl])
    rand = draw_controls(target, m.sheets, "random-units", 30, seed=0)
    rand_mean = np.mean([mag["layer.1.mlp"][c.units["layer.1.mlp"]].mean() for c in rand])
    assert ctl_mean > rand_mean + 1.0


def test_z_and_p_follow_the_core():
    from topobrain._utils._permutation import permutation_pvalue

    c = np.array([1.0, 2.0, 3.0, 4.0])
    mean, sd, z, p = z_and_p(5.0, c)
    assert (mean, sd) == (2.5, pytest.approx(np.std(c, ddof=1)))
    assert z == pytest.approx((5 - 2.5) / np.std(c, ddof=1))
    assert p == pytest.approx(1 / 5) == float(permutation_pvalue(5.0, c, "greater"))
    assert z_and_p(0.0, c, alternative="less")[3] == pytest.approx(1 / 5)
    assert np.isnan(z_and_p(1.0, np.array([2.0]))[2])


# ------------------------------------------------------------------ minimal pairs
def test_minimal_pair_loaders(tmp_path):
    from topobrain.stimuli import load_minimal_pairs, read_blimp, read_syntaxgym

    pairs = load_minimal_pairs("agreement")
    assert len(pairs) == 150 and pairs["phenomenon"].nunique() == 5
    assert (pairs["good"] != pairs["bad"]).all() and pairs["pair_id"].is_unique
    lines = [{"sentence_good": "Dogs bark.", "sentence_bad": "Dogs barks.", "UID": "sva",
              "pairID": "0", "field": "morphology", "linguistics_term": "agreement"},
             {"sentence_good": "A cat sleeps.", "sentence_bad": "A cat sleep.", "UID": "sva",
              "pairID": "1"}]
    (tmp_path / "sva.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    b = read_blimp(tmp_path / "sva.jsonl")
    assert list(b["pair_id"]) == ["sva:0", "sva:1"] and list(b["bad"]) == ["Dogs barks.",
                                                                          "A cat sleep."]
    assert len(load_minimal_pairs(tmp_path)) == 2  # a folder of jsonl files
    suite = {"meta": {"name": "agr", "metric": "sum"}, "region_meta": {"1": "np", "2": "v"},
             "predictions": [{"type": "formula", "formula":
                              "((2;%mismatch%) > (2;%match%)) & ((2;%bad2%) > (2;%match%))"}],
             "items": [{"item_number": 1, "conditions": [
                 {"condition_name": c, "regions": [
                     {"region_number": 2, "content": v}, {"region_number": 1,
                                                          "content": "The dogs"}]}
                 for c, v in (("match", "run ."), ("mismatch", "runs ."), ("bad2", "ran ran ."))]}]}
    (tmp_path / "agr.json").write_text(json.dumps(suite))
    g = read_syntaxgym(tmp_path / "agr.json")
    assert list(g["good"]) == ["The dogs run .", "The dogs run ."]
    assert list(g["bad"]) == ["The dogs runs .", "The dogs ran ran ."]
    (tmp_path / "bad.jsonl").write_text('{"sentence_good": "a"}\n')
    with pytest.raises(ValueError, match="needs 'sentence_good' and 'sentence_bad'"):
        read_blimp(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError, match="Bundled sets"):
        load_minimal_pairs("blimp-full")
    suite["predictions"] = ["((1;%a%) - (1;%b%)) > ((2;%c%) - (2;%d%))"]
    (tmp_path / "diff.json").write_text(json.dumps(suite))
    with pytest.raises(ValueError, match="cannot be read as minimal pairs"):
        read_syntaxgym(tmp_path / "diff.json")


# ------------------------------------------------------------------ a patch that matters
def test_a_trained_patch_beats_its_controls():
    """A one-block model learns next = (token + 1) mod V, a map that its tied embeddings
    cannot make alone, with its sheet outputs confined to one 3 x 3 patch during training.
    Lesioning that patch must hurt far more than random patches or units; a random patch
    taken as a target must not stand out from its controls."""
    vocab, n = 16, 10
    m = tiny_sheet_model(seed=5, vocab_size=vocab, block_size=n, n_layer=1, n_head=1,
                         sheet_shape=(6, 6))
    gpt = m.module
    patch = disc(m.sheets["layer.0.mlp"], "layer.0.mlp", (3, 3), 1.5)
    patch_attn = disc(m.sheets["layer.0.attn"], "layer.0.attn", (3, 3), 1.5)
    keep = {k: torch.zeros(36) for k in m.layer_names}
    keep["layer.0.mlp"][np.array(patch.units["layer.0.mlp"])] = 1
    keep["layer.0.attn"][np.array(patch_attn.units["layer.0.attn"])] = 1
    hooks = [gpt.transformer.h[0].attn.register_forward_hook(
                 lambda _m, _i, o: o * keep["layer.0.attn"]),
             gpt.transformer.h[0].mlp.register_forward_hook(
                 lambda _m, _i, o: o * keep["layer.0.mlp"])]
    g = torch.Generator().manual_seed(0)
    gpt.train()
    opt = torch.optim.Adam(gpt.parameters(), lr=2e-2)
    for _ in range(250):
        start = torch.randint(0, vocab, (64, 1), generator=g)
        x = (start + torch.arange(n)) % vocab
        loss = gpt(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    gpt.eval()
    for h in hooks:
        h.remove()
    assert loss.item() < 0.5
    seqs = [((s + np.arange(n)) % vocab).tolist() for s in range(vocab)]
    target = Lesion({**patch.units, **patch_attn.units}, name="patch")
    patches = draw_controls(target, m.sheets, "random-patch", 30, seed=0)
    units = draw_controls(target, m.sheets, "random-units", 30, seed=0)
    s = score_sequences(m, seqs, [Lesion({}), target, *patches, *units], verbose=0)
    loss_per = s.nats.sum(1) / s.n_tokens.sum()
    base, tgt = loss_per[0], loss_per[1]
    ctl_p, ctl_u = loss_per[2:32], loss_per[32:]
    assert tgt - base > 1.0
    for ctl in (ctl_p, ctl_u):
        mean, sd, z, p = z_and_p(tgt, ctl)
        assert z > 10 and p == pytest.approx(1 / 31)
        assert np.abs(ctl - base).max() < 0.1 * (tgt - base)
    # a random patch as the "target": nothing special
    _, _, z0, p0 = z_and_p(ctl_p[0], ctl_u)
    assert p0 > 0.05 and abs(ctl_p[0] - base) < 0.1 * (tgt - base)


# ------------------------------------------------------------------ end to end
def test_run_lesions_and_cli(tmp_path, capsys):
    from topobrain.cli import main
    from topobrain.stimuli import load_stimuli

    stim = load_stimuli("langloc")
    small = stim.to_frame().groupby("condition").head(10)
    small.to_csv(tmp_path / "items.tsv", sep="\t", index=False)
    text = tmp_path / "heldout.txt"
    text.write_text(" ".join(stim.texts[:60]))
    from topobrain.stimuli import _minimal_pairs_root

    few = (_minimal_pairs_root() / "agreement.jsonl").read_text().splitlines()[::15]
    (tmp_path / "agr10.jsonl").write_text("\n".join(few) + "\n")
    out = tmp_path / "out"
    rc = main(["lesion", "--model", "topolm-tiny", "--stimuli", str(tmp_path / "items.tsv"),
               "--contrast", "S - N", "--target", "top5%", "--target",
               "square:layer.3.mlp:4,4:1", "--controls", "random-units,random-patch",
               "--n-controls", "3", "--eval-text", str(text), "--max-eval-windows", "2",
               "--minimal-pairs", str(tmp_path / "agr10.jsonl"), "--seed", "1", "--out",
               str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    les = pd.read_csv(out / "lesions.csv")
    units = pd.read_csv(out / "lesion_units.csv")
    items = pd.read_csv(out / "items.csv")
    n_lesions = 1 + 2 * (1 + 2 * 3)
    assert les["lesion_id"].nunique() == n_lesions
    assert set(les["measure"]) >= {"surprisal[S]", "surprisal[N]", "loss[eval]",
                                   "accuracy[agr10]"}
    tgt = les[les["kind"] == "target"]
    assert set(tgt["against"]) == {"random-units", "random-patch"}
    assert tgt[["control_mean", "control_sd", "z", "p"]].notna().all().all()
    assert (tgt["p"] >= 1 / 4).all()
    none = les[les["kind"] == "none"]
    assert (none["change"] == 0).all()
    sq = units[units["lesion_id"] == "square:layer.3.mlp:4,4:1"]
    assert len(sq) == 9 and set(sq["layer"]) == {"layer.3.mlp"}
    assert set(items["set"]) == {"items", "agr10"}
    assert len(items) == n_lesions * (20 + 20)
    html = (out / "report.html").read_text()
    assert "top5%" in html and "http" not in html.split("<body>")[0]
    assert html.count("data:image/png;base64") >= 2  # self-contained
    assert (out / "figures" / "lesion_controls.png").is_file()
    import hashlib

    import yaml

    run = yaml.safe_load((out / "run.yaml").read_text())
    assert run["input_hashes"]["eval_text"] == hashlib.sha256(text.read_bytes()).hexdigest()
    assert set(run["input_hashes"]) == {"eval_text", "minimal_pairs[0]"}
    assert run["n_controls"] == 3 and run["seed"] == 1 and run["model_identity"]
    # the same call again reproduces the tables exactly (seeded controls)
    rc = main(["lesion", "--model", "topolm-tiny", "--stimuli", str(tmp_path / "items.tsv"),
               "--contrast", "S - N", "--target", "top5%", "--n-controls", "3",
               "--controls", "random-units", "--seed", "1", "--out", str(tmp_path / "o2"),
               "-q"])
    assert rc == 0
    u2 = pd.read_csv(tmp_path / "o2" / "lesion_units.csv")
    a = units[units["lesion_id"].str.startswith("top5%|random-units")]
    pd.testing.assert_frame_equal(a.reset_index(drop=True), u2[u2["lesion_id"].str.startswith(
        "top5%|random-units")].reset_index(drop=True))
    # bad input: one line naming the fix
    rc = main(["lesion", "--model", "topolm-tiny", "--stimuli", str(tmp_path / "items.tsv"),
               "--contrast", "S - N", "--target", "biggest", "--out", str(tmp_path / "o3"),
               "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "Unknown target 'biggest'" in err and len(err.strip().splitlines()) == 1
    rc = main(["lesion", "--model", "topolm-tiny", "--stimuli", "langloc", "--contrast",
               "S - N", "--controls", "random,random-units", "--out", str(tmp_path / "o4")])
    assert rc == 2 and "unknown control kind 'random'" in capsys.readouterr().err


def test_text_loss_and_minimal_pair_accuracy_by_hand():
    from topobrain.lesion import minimal_pair_accuracy, text_loss, text_windows
    from topobrain.models import load

    m = load("topolm-tiny")
    text = "the farmer feeds the chickens before the sun comes up. " * 30
    les = Lesion({"layer.2.mlp": np.arange(0, 256, 3)}, name="x")
    got = text_loss(m, text, [Lesion({}), les], verbose=0)
    wins = text_windows(m, text)
    assert [len(w) for w in wins[:-1]] == [m.context_length] * (len(wins) - 1)
    for i, lesion in enumerate([Lesion({}), les]):
        total = n = 0
        for w in wins:
            with torch.no_grad(), ablate(m, lesion):
                total += _nats(m.module(torch.tensor([w])), w)
            n += len(w) - 1
        assert got[i] == pytest.approx(total / n, rel=1e-6)
    pairs = pd.DataFrame({"pair_id": ["a", "b", "c"], "phenomenon": "x",
                          "good": ["The dogs run.", "The girl sings.", "This dog runs."],
                          "bad": ["The dogs runs.", "The girl sing.", "These dog runs."]})
    acc, good, bad = minimal_pair_accuracy(m, pairs, [Lesion({}), les], verbose=0)
    np.testing.assert_array_equal(acc, (good.nats < bad.nats).mean(1))
    for j, txt in enumerate(pairs["good"]):
        seq = m.tokenize([txt])[0]
        with torch.no_grad():
            assert good.nats[0, j] == pytest.approx(_nats(m.module(torch.tensor([seq])), seq),
                                                    rel=1e-6)


def test_run_lesions_mean_mode_magnitude_controls_and_a_measure_subset(tmp_path):
    from topobrain.lesion import run_lesions
    from topobrain.stimuli import StimulusSet, load_stimuli

    stim = load_stimuli("langloc")
    small = StimulusSet(stim.to_frame().groupby("condition").head(8), name="small")
    sub = StimulusSet(stim.to_frame().groupby("condition").head(3), name="sub")
    r = run_lesions("topolm-tiny", small, "S - N", targets=["disc:layer.1.mlp:5,5:1.5"],
                    controls=["magnitude"], n_controls=3, mode="mean",
                    surprisal_stimuli=sub, seed=4, verbose=0)
    assert r.out is None and r.settings["mode"] == "mean"
    assert set(r.items["set"]) == {"sub"} and len(r.items) == 5 * 6
    assert set(r.lesions["kind"]) == {"none", "target", "magnitude"}
    later = r.lesions[r.lesions["measure"] == "contrast_t[later]"]
    assert len(later) and later["value"].notna().all()
    with pytest.raises(ValueError, match="n_controls must be an integer >= 2"):
        run_lesions("topolm-tiny", small, "S - N", n_controls=1, verbose=0)
    with pytest.raises(ValueError, match="Invalid value for the 'controls'"):
        run_lesions("topolm-tiny", small, "S - N", controls=["patch"], verbose=0)


def test_read_localizer_matches_a_localize_run(tmp_path):
    """The targets read from a `topobrain localize` folder are those computed here: the
    same t and FDR p per unit, the same clusters rebuilt unit for unit."""
    from topobrain.extract import extract
    from topobrain.models import load
    from topobrain.pipeline import localize
    from topobrain.stimuli import StimulusSet, load_stimuli

    stim = load_stimuli("langloc")
    small = StimulusSet(stim.to_frame().groupby("condition").head(20), name="small20")
    localize("topolm-tiny", small, "S - N", out=tmp_path / "loc", n_permutations=0,
             cache=False, verbose=0)
    back = read_localizer(tmp_path / "loc")
    m = load("topolm-tiny")
    here = localizer_maps(extract(m, small, cache=False, verbose=0), small.labels, "S - N")
    assert len(back.clusters) == len(here.clusters) > 0
    for k in m.layer_names:
        np.testing.assert_allclose(back.t[k], here.t[k], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(back.p_fdr[k], here.p_fdr[k], rtol=1e-4, atol=1e-8)
        np.testing.assert_array_equal(back.cluster_labels[k] > 0, here.cluster_labels[k] > 0)
    assert largest_cluster(back).counts() == largest_cluster(here).counts()
