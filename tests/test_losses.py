"""Spatial losses: float64 references written here, behaviour, gradients, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from topobrain.models.gpt import GPTConfig, TopoGPT
from topobrain.models.losses import correlation_loss, neighbourhood_loss, topoloss
from topobrain.sheet import CorticalSheet, toponets_shape

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# --------------------------------------------------------------------------- references
def ref_neighbourhood(acts: np.ndarray, pos: np.ndarray, distance: str = "inverse",
                      eps: float = 1e-8) -> float:
    """0.5 * (1 - corr(r, d)) over unit pairs, in float64 with numpy only.

    ``eps`` is the implementation's stabiliser, added to each norm in the two Pearson
    correlations (0 gives the textbook formula; it matters only when a denominator is
    tiny, e.g. a 2 x 2 neighbourhood with two distinct distances).
    """
    k = acts.shape[1]
    xc = acts - acts.mean(0)
    xn = xc / (np.linalg.norm(xc, axis=0) + eps)
    r = xn.T @ xn
    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1).astype(np.float64))
    d = 1.0 / (dist + 1.0) if distance == "inverse" else -dist
    iu = np.triu_indices(k, 1)
    rv, dv = r[iu] - r[iu].mean(), d[iu] - d[iu].mean()
    corr = (rv * dv).sum() / (np.linalg.norm(rv) * np.linalg.norm(dv) + eps)
    return 0.5 * (1.0 - corr)


def ref_correlation(acts, pos, shape, radius, n_neighbourhoods, inclusive, distance, seed):
    """The loss with the same random centres (drawn as documented: rows, then columns)."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, shape[0], (n_neighbourhoods,), generator=g).numpy()
    cols = torch.randint(0, shape[1], (n_neighbourhoods,), generator=g).numpy()
    x = acts.reshape(-1, acts.shape[-1])
    losses = []
    for r, c in zip(rows, cols, strict=True):
        dl = np.maximum(np.abs(pos[:, 0] - r), np.abs(pos[:, 1] - c))
        sel = np.flatnonzero(dl <= radius if inclusive else dl < radius)
        if sel.size < 3:
            continue
        losses.append(ref_neighbourhood(x[:, sel], pos[sel], distance))
    return float(np.mean(losses)) if losses else 0.0


def ref_resize(a: np.ndarray, out_h: int, out_w: int, step: float | None = None) -> np.ndarray:
    """Bilinear resize of (..., h, w) with half-pixel centres (align_corners=False).

    Output sample ``j`` reads the input at ``(j + 0.5) * step - 0.5`` (clamped at 0), with
    ``step = n_in / n_out`` by default; ``step = phi`` is what a resize by a scale factor
    ``1 / phi`` does (the points are spaced by exactly ``phi``, whatever the output size).
    """

    def axis_weights(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * (step if step is not None else n_in / n_out) - 0.5
        src = np.maximum(src, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        lam = src - i0
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), i0), 1 - lam)
        np.add.at(m, (np.arange(n_out), i1), lam)
        return m

    mh = axis_weights(a.shape[-2], out_h)
    mw = axis_weights(a.shape[-1], out_w)
    return np.einsum("ij,...jk,lk->...il", mh, a, mw)


def ref_topoloss(weight: np.ndarray, phi: float, tau: float, shape) -> float:
    n_out, n_in = weight.shape
    h, w = shape
    sheet = weight.reshape(h, w, n_in).transpose(2, 0, 1)
    small = (math.floor(h / phi), math.floor(w / phi))  # the package's shrunk grid
    blurred = ref_resize(ref_resize(sheet, *small, step=phi), h, w)
    a = sheet.reshape(n_in, -1)
    b = blurred.reshape(n_in, -1)
    cos = (a * b).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    return tau * (1.0 - cos.mean())


def smooth_field(rng, n_samples, shape, sigma):
    """Random activations that are smooth on an identity-layout sheet."""
    noise = rng.standard_normal((n_samples, *shape))
    field = gaussian_filter(noise, sigma=(0, sigma, sigma), mode="wrap")
    return field.reshape(n_samples, -1)


# --------------------------------------------------------------------------- correlation
def test_neighbourhood_loss_matches_float64_reference(rng):
    acts = rng.standard_normal((60, 14))
    pos = rng.integers(0, 9, size=(14, 2))
    for distance in ("inverse", "negative"):
        ours = neighbourhood_loss(torch.from_numpy(acts), torch.from_numpy(pos), distance)
        assert ours.dtype == torch.float64
        np.testing.assert_allclose(float(ours), ref_neighbourhood(acts, pos, distance),
                                   rtol=1e-10)
        # and the textbook formula (np.corrcoef, no stabilisers) to 1e-7
        k = acts.shape[1]
        iu = np.triu_indices(k, 1)
        dist = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1))
        d = 1.0 / (dist + 1.0) if distance == "inverse" else -dist
        textbook = 0.5 * (1 - np.corrcoef(np.corrcoef(acts.T)[iu], d[iu])[0, 1])
        np.testing.assert_allclose(float(ours), textbook, rtol=1e-7)


@pytest.mark.parametrize(
    "shape, radius, n_nb, inclusive, distance",
    [((16, 16), 5, 5, True, "inverse"), ((16, 16), 5, 5, False, "inverse"),
     ((8, 8), 2, 7, True, "negative"), ((6, 10), 1, 4, True, "inverse"),
     ((28, 28), 5, 5, False, "inverse")],
)
def test_correlation_loss_matches_float64_reference(rng, shape, radius, n_nb, inclusive,
                                                    distance):
    sheet = CorticalSheet(shape, layout="permuted", seed=rng)
    acts = rng.standard_normal((3, 11, sheet.n_units))
    pos = np.array(sheet.positions)
    ours = correlation_loss(torch.from_numpy(acts), torch.from_numpy(pos), shape,
                            radius=radius, n_neighbourhoods=n_nb, inclusive=inclusive,
                            distance=distance, generator=torch.Generator().manual_seed(7))
    ref = ref_correlation(acts, pos, shape, radius, n_nb, inclusive, distance, 7)
    np.testing.assert_allclose(float(ours), ref, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(n_rows=st.integers(2, 9), n_cols=st.integers(2, 9), radius=st.integers(0, 4),
       n_nb=st.integers(1, 6), inclusive=st.booleans(), seed=st.integers(0, 2**16))
def test_correlation_loss_reference_property(n_rows, n_cols, radius, n_nb, inclusive, seed):
    rng = np.random.default_rng(seed)
    sheet = CorticalSheet((n_rows, n_cols), layout="permuted", seed=rng)
    acts = rng.standard_normal((40, sheet.n_units))
    pos = np.array(sheet.positions)
    ours = correlation_loss(torch.from_numpy(acts), torch.from_numpy(pos), (n_rows, n_cols),
                            radius=radius, n_neighbourhoods=n_nb, inclusive=inclusive,
                            generator=torch.Generator().manual_seed(seed))
    ref = ref_correlation(acts, pos, (n_rows, n_cols), radius, n_nb, inclusive, "inverse",
                          seed)
    np.testing.assert_allclose(float(ours), ref, rtol=1e-9, atol=1e-12)
    assert 0.0 <= float(ours) <= 1.0


def test_correlation_loss_whole_sheet_neighbourhood(rng):
    """A radius that spans the sheet makes the centres irrelevant: one neighbourhood."""
    sheet = CorticalSheet((5, 6), layout="permuted", seed=3)
    acts = torch.from_numpy(rng.standard_normal((2, 20, 30)))
    pos = torch.from_numpy(np.array(sheet.positions))
    whole = neighbourhood_loss(acts.reshape(-1, 30), pos)
    for seed in range(3):
        ours = correlation_loss(acts, pos, (5, 6), radius=6, n_neighbourhoods=3,
                                generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(ours, whole, rtol=1e-10, atol=0)


def test_correlation_loss_float32_and_bfloat16_close_to_float64(rng):
    sheet = CorticalSheet((12, 12), layout="permuted", seed=1)
    acts = rng.standard_normal((4, 16, 144))
    pos = torch.from_numpy(np.array(sheet.positions))
    vals = {}
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        vals[dtype] = float(correlation_loss(torch.from_numpy(acts).to(dtype), pos, (12, 12),
                                             generator=torch.Generator().manual_seed(0)))
    assert vals[torch.float32] == pytest.approx(vals[torch.float64], rel=1e-5)
    assert vals[torch.bfloat16] == pytest.approx(vals[torch.float64], abs=0.02)


def test_smooth_sheet_scores_lower_than_shuffled(rng):
    shape = (12, 12)
    acts = torch.from_numpy(smooth_field(rng, 300, shape, sigma=2.0))
    pos = torch.from_numpy(np.array(CorticalSheet(shape).positions))
    shuffled = acts[:, torch.from_numpy(rng.permutation(144))]
    smooth = correlation_loss(acts, pos, shape, radius=3, n_neighbourhoods=8,
                              generator=torch.Generator().manual_seed(0))
    rand = correlation_loss(shuffled, pos, shape, radius=3, n_neighbourhoods=8,
                            generator=torch.Generator().manual_seed(0))
    assert float(smooth) < 0.15
    assert float(rand) > 0.35
    assert float(smooth) < float(rand) - 0.2


def test_too_small_neighbourhoods_give_zero():
    acts = torch.randn(10, 2, requires_grad=True)
    loss = correlation_loss(acts, torch.tensor([[0, 0], [0, 1]]), (1, 2), radius=1)
    assert float(loss) == 0.0


def test_correlation_loss_gradcheck():
    """The batched Gram backward against finite differences (float64)."""
    sheet = CorticalSheet((4, 5), layout="permuted", seed=2)
    pos = torch.from_numpy(np.array(sheet.positions))
    acts = torch.randn(12, 20, dtype=torch.float64, requires_grad=True,
                      generator=torch.Generator().manual_seed(0))

    def f(a):
        return correlation_loss(a, pos, (4, 5), radius=1, n_neighbourhoods=3,
                                generator=torch.Generator().manual_seed(5))

    assert torch.autograd.gradcheck(f, (acts,), eps=1e-6, atol=1e-6)


def test_correlation_loss_gradients_reach_the_weights():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50, block_size=8, n_layer=2, n_head=2, sheet_shape=(4, 4))
    model = TopoGPT(cfg)
    idx = torch.randint(0, 50, (3, 8))
    _, acts = model(idx, return_activations=True)
    sheet = CorticalSheet((4, 4), layout="permuted", seed=0)
    pos = torch.from_numpy(np.array(sheet.positions))
    loss = sum(correlation_loss(a, pos, (4, 4), radius=1,
                                generator=torch.Generator().manual_seed(0))
               for a in acts.values())
    loss.backward()
    for name in ("transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_proj.weight",
                 "transformer.h.1.mlp.c_fc.weight", "transformer.wte.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_correlation_loss_errors():
    acts = torch.randn(10, 16)
    with pytest.raises(ValueError, match=r"shape \(16, 2\); got shape \(15, 2\)"):
        correlation_loss(acts, torch.zeros(15, 2, dtype=torch.long), (4, 4))
    with pytest.raises(ValueError, match="distance must be 'inverse' or 'negative'"):
        correlation_loss(acts, torch.zeros(16, 2, dtype=torch.long), (4, 4),
                         distance="euclid")


# --------------------------------------------------------------------------- topoloss
@pytest.mark.parametrize("n_out, n_in, phi, tau, shape",
                         [(64, 7, 3.0, 1.0, None), (30, 5, 2.0, 0.5, (5, 6)),
                          (48, 3, 1.5, 2.0, None), (36, 4, 4.0, 1.0, (4, 9))])
def test_topoloss_matches_float64_reference(rng, n_out, n_in, phi, tau, shape):
    w = rng.standard_normal((n_out, n_in))
    ours = topoloss(torch.from_numpy(w), phi=phi, tau=tau, shape=shape)
    ref = ref_topoloss(w, phi, tau, shape or toponets_shape(n_out))
    np.testing.assert_allclose(float(ours), ref, rtol=1e-10)


def _package_topoloss(weight: torch.Tensor, phi: float, tau: float) -> float:
    """The ``topoloss`` package (0.0.2) on an nn.Linear holding ``weight``."""
    topoloss_pkg = pytest.importorskip(
        "topoloss", reason="the TopoNets reference needs the peers extra: "
                           "pip install 'topobrain[peers]' (topoloss==0.0.2)")
    n_out, n_in = weight.shape
    lin = torch.nn.Linear(n_in, n_out, bias=False, dtype=weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
    loss = topoloss_pkg.TopoLoss(losses=[topoloss_pkg.LaplacianPyramid(
        layer_name="fc", factor_h=phi, factor_w=phi, scale=tau)])
    return float(loss.compute(torch.nn.ModuleDict({"fc": lin})).detach())


@pytest.mark.parametrize("n_out, phi", [
    (784, 2), (784, 3), (784, 4), (784, 5),     # TopoLM's 28 x 28 sheet: 3, 5 do not divide
    (3072, 3), (3072, 5),                       # GPT-Neo-125M c_fc, 48 x 64
    (196, 4), (150, 4), (150, 2.5), (35, 3)])   # 14 x 14, 10 x 15, 5 x 7
def test_topoloss_equals_the_topoloss_package(rng, n_out, phi):
    n_in = 6 if n_out > 1000 else 9
    w = torch.from_numpy(rng.standard_normal((n_out, n_in)))
    ours = float(topoloss(w, phi=phi, tau=0.7))
    ref = _package_topoloss(w, phi, 0.7)
    assert ours == pytest.approx(ref, rel=1e-12, abs=1e-14)
    # and the numpy reference of the rule (floor(h / phi), sample points phi apart)
    assert ours == pytest.approx(ref_topoloss(w.numpy(), phi, 0.7, toponets_shape(n_out)),
                                 rel=1e-10)


def test_topoloss_conv1d_is_transposed(rng):
    """GPT-2's c_fc is a Conv1D whose weight is stored (n_in, n_out)."""
    from transformers.pytorch_utils import Conv1D

    conv = Conv1D(36, 8).double()  # nf = 36 outputs, nx = 8 inputs
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(rng.standard_normal((8, 36))))
    assert tuple(conv.weight.shape) == (8, 36)
    x = torch.from_numpy(rng.standard_normal((3, 8)))
    torch.testing.assert_close(conv(x), x @ conv.weight + conv.bias)  # outputs are columns
    ours = float(topoloss(conv, phi=2.0).detach())
    assert ours == pytest.approx(_package_topoloss(conv.weight.T.detach(), 2.0, 1.0), rel=1e-12)
    assert ours == pytest.approx(float(topoloss(conv.weight.T.detach(), phi=2.0)), rel=1e-15)
    lin = torch.nn.Linear(8, 36, dtype=torch.float64)
    with torch.no_grad():
        assert float(topoloss(lin, phi=2.0)) == float(topoloss(lin.weight, phi=2.0))
    with pytest.raises(TypeError, match="a torch.nn.Linear or a transformers Conv1D; got "
                                        "Embedding"):
        topoloss(torch.nn.Embedding(4, 4))


def test_topoloss_phi_one_is_zero_and_tau_scales(rng):
    w = torch.from_numpy(rng.standard_normal((20, 6)))
    assert abs(float(topoloss(w, phi=1.0))) < 1e-12
    a, b = float(topoloss(w, tau=1.0)), float(topoloss(w, tau=3.0))
    assert b == pytest.approx(3 * a, rel=1e-12)


def test_topoloss_smooth_lower_than_shuffled(rng):
    shape = (12, 12)
    n_in = 16
    w = smooth_field(rng, n_in, shape, sigma=2.0).T  # (144, 16): rows smooth on the sheet
    smooth = float(topoloss(torch.from_numpy(w), phi=3.0, shape=shape))
    shuffled = float(topoloss(torch.from_numpy(w[rng.permutation(144)]), phi=3.0,
                              shape=shape))
    assert smooth < 0.1
    assert shuffled > 0.4


def test_topoloss_gradients(rng):
    lin = torch.nn.Linear(8, 36, bias=False, dtype=torch.float64)
    loss = topoloss(lin.weight, phi=2.0)
    loss.backward()
    assert torch.isfinite(lin.weight.grad).all() and lin.weight.grad.abs().sum() > 0
    w = torch.from_numpy(rng.standard_normal((12, 3))).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: topoloss(x, phi=2.0), (w,))


def test_topoloss_errors():
    with pytest.raises(ValueError, match=r"\(5, 5\) sheet does not hold the 24 rows"):
        topoloss(torch.randn(24, 3), shape=(5, 5))
    with pytest.raises(ValueError, match=r"shape \(n_out, n_in\); got shape \(24,\)"):
        topoloss(torch.randn(24))
    with pytest.raises(ValueError, match="phi .* must be positive"):
        topoloss(torch.randn(24, 3), phi=0)
    with pytest.raises(ValueError, match=r"phi = 5 shrinks the \(4, 6\) sheet to nothing.*"
                                         r"at most the shorter side, 4"):
        topoloss(torch.randn(24, 3), phi=5)


def test_topoloss_value_range(rng):
    w = torch.from_numpy(rng.standard_normal((49, 5)))
    val = float(topoloss(w, tau=1.0))
    assert 0.0 <= val <= 2.0
    assert not math.isnan(val)


@settings(max_examples=20, deadline=None)
@given(n_out=st.sampled_from([12, 20, 36, 49]), n_in=st.integers(1, 6),
       phi=st.floats(1.2, 3.0), scale=st.floats(0.01, 100.0), seed=st.integers(0, 2**16))
def test_topoloss_invariances(n_out, n_in, phi, scale, seed):
    """Cosines ignore a positive scale and the order of the input columns."""
    rng = np.random.default_rng(seed)
    w = torch.from_numpy(rng.standard_normal((n_out, n_in)))
    base = float(topoloss(w, phi=phi))
    assert float(topoloss(scale * w, phi=phi)) == pytest.approx(base, rel=1e-9, abs=1e-12)
    perm = torch.from_numpy(rng.permutation(n_in))
    assert float(topoloss(w[:, perm], phi=phi)) == pytest.approx(base, rel=1e-9, abs=1e-12)


def test_correlation_loss_invariances(rng):
    """Pearson correlations ignore a positive affine map per unit and the sample order."""
    sheet = CorticalSheet((6, 6), layout="permuted", seed=4)
    pos = torch.from_numpy(np.array(sheet.positions))
    acts = rng.standard_normal((50, 36))
    a = rng.uniform(0.1, 10, size=36)
    b = rng.normal(0, 5, size=36)

    def f(x):
        return float(correlation_loss(torch.from_numpy(x), pos, (6, 6), radius=2,
                                      generator=torch.Generator().manual_seed(1)))

    base = f(acts)
    assert f(acts * a + b) == pytest.approx(base, rel=1e-9)
    assert f(acts[rng.permutation(50)]) == pytest.approx(base, rel=1e-9)
