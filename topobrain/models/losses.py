"""Spatial losses that make a model's units topographic.

Two published forms:

- :func:`correlation_loss`, the TDANN / TopoLM loss on activations: in a neighbourhood of
  the sheet, the pairwise response correlations of the units should follow their
  inverse distance.
- :func:`topoloss`, the TopoNets loss on weights: the rows of a Linear weight, laid out on
  a sheet, should look like a blurred copy of themselves.

References
----------
Margalit, E., et al. (2024). A unifying framework for functional organization in early
and higher ventral visual cortex (TDANN). Neuron.
Rathi, N., et al. (2025). TopoLM. ICLR 2025.
Deb, M., Deb, M., & Murty, N. A. R. (2025). TopoNets: high performing vision and
language models with brain-like topography. ICLR 2025.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..sheet import toponets_shape

__all__ = ["TOPOLOSS_SHRINK", "correlation_loss", "neighbourhood_loss", "topoloss"]

#: How :func:`topoloss` shrinks the sheet; model cards record it.
TOPOLOSS_SHRINK = ("F.interpolate(scale_factor=1/phi): floor(h / phi) x floor(w / phi) "
                   "cells, as the topoloss package 0.0.2")


def _pearson_rows(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Correlation matrix between the columns of ``x`` (n_samples, k) -> (k, k)."""
    x = x - x.mean(0, keepdim=True)
    x = x / (x.norm(dim=0, keepdim=True) + eps)
    return x.T @ x


def neighbourhood_loss(
    acts: torch.Tensor, positions: torch.Tensor, distance: str = "inverse"
) -> torch.Tensor:
    """Loss of one neighbourhood: ``0.5 * (1 - corr(r, d))`` over its unit pairs.

    Parameters
    ----------
    acts : Tensor of shape (n_samples, k)
        Responses of the neighbourhood's ``k`` units over all tokens of the batch.
    positions : Tensor of shape (k, 2)
        Their sheet positions (sheet units).
    distance : {"inverse", "negative"}
        ``d = 1 / (euclidean + 1)`` (TopoLM, TDANN) or ``d = -euclidean``.
    """
    k = acts.shape[1]
    r = _pearson_rows(acts)
    pos = positions.to(acts.dtype)
    dist = torch.cdist(pos, pos)
    d = 1.0 / (dist + 1.0) if distance == "inverse" else -dist
    iu = torch.triu_indices(k, k, offset=1, device=acts.device)
    rv = r[iu[0], iu[1]]
    dv = d[iu[0], iu[1]]
    rv = rv - rv.mean()
    dv = dv - dv.mean()
    corr = (rv * dv).sum() / (rv.norm() * dv.norm() + 1e-8)
    return 0.5 * (1.0 - corr)


class _Gram(torch.autograd.Function):
    """``x @ x.mT`` with the one-product backward ``(g + g.mT) @ x``.

    Autograd would treat the two operands as different tensors and run two batched
    products in the backward pass; the Gram matrix needs one (a third less work for the
    spatial loss, the same values).
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x @ x.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (grad + grad.transpose(-1, -2)) @ x


def correlation_loss(
    acts: torch.Tensor,
    positions: torch.Tensor,
    sheet_shape: tuple[int, int],
    *,
    radius: int = 5,
    n_neighbourhoods: int = 5,
    inclusive: bool = True,
    distance: str = "inverse",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TDANN / TopoLM spatial correlation loss of one sheet layer.

    Parameters
    ----------
    acts : Tensor of shape (..., n_units)
        The layer's activations; all leading axes (batch, time) are samples.
    positions : LongTensor of shape (n_units, 2)
        ``(row, col)`` of each unit.
    sheet_shape : tuple of int
        ``(n_rows, n_cols)``.
    radius : int
        Neighbourhood half-width, l-infinity, in sheet units.
    n_neighbourhoods : int
        Neighbourhoods drawn per call (random centres); the loss is their mean.
    inclusive : bool
        ``distance <= radius`` (True) or ``distance < radius`` (False, TopoLM's 9 x 9
        for radius 5).
    distance : {"inverse", "negative"}
        See :func:`neighbourhood_loss`.
    generator : torch.Generator, optional
        Source of the random centres (CPU generator).

    Returns
    -------
    Tensor, scalar
        Mean loss over neighbourhoods, in [0, 1].
    """
    if distance not in ("inverse", "negative"):
        raise ValueError(f"distance must be 'inverse' or 'negative'; got {distance!r}.")
    n_units = acts.shape[-1]
    if tuple(positions.shape) != (n_units, 2):
        raise ValueError(
            f"positions must hold the (row, col) of each of the {n_units} units, shape "
            f"({n_units}, 2); got shape {tuple(positions.shape)}. Pass the sheet's "
            f"positions for this layer (torch.from_numpy(sheet.positions))."
        )
    x = acts.reshape(-1, n_units)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    n_rows, n_cols = sheet_shape
    # the same draws as one neighbourhood at a time: all rows, then all columns
    centres_r = torch.randint(0, n_rows, (n_neighbourhoods,), generator=generator)
    centres_c = torch.randint(0, n_cols, (n_neighbourhoods,), generator=generator)
    pos = positions.to(x.device)
    centres = torch.stack([centres_r, centres_c], dim=1).to(x.device)
    # l-infinity distance of every unit to every centre: (n_neighbourhoods, n_units)
    dmax = (pos[None, :, :] - centres[:, None, :]).abs().amax(-1)
    member = dmax <= radius if inclusive else dmax < radius
    counts = member.sum(1)
    keep = counts >= 3  # fewer than 3 units give fewer than 3 pairs: skipped
    if not bool(keep.any()):
        return x.new_zeros(())
    member, counts = member[keep], counts[keep]
    k = int(counts.max())
    # members first, in unit order (a stable sort), padded with non-members
    order = torch.sort((~member).to(torch.int8), dim=1, stable=True).indices[:, :k]
    valid = torch.arange(k, device=x.device)[None, :] < counts[:, None]
    n_b = order.shape[0]
    with torch.autocast(device_type=x.device.type, enabled=False):
        # every neighbourhood of the layer in one gather and one batched product
        # units as contiguous rows: the gather and its backward move whole rows
        xb = x.t().contiguous().index_select(0, order.reshape(-1)).view(n_b, k, -1)
        xb = xb - xb.mean(-1, keepdim=True)
        cov = _Gram.apply(xb)  # (n_b, k, k), unnormalised
        # normalise the small matrix, not the (n_b, k, n_samples) block: the same
        # value as dividing each centred column by its norm (+ 1e-8) first
        sd = cov.diagonal(dim1=1, dim2=2).clamp_min(1e-30).sqrt() + 1e-8
        r = cov / (sd[:, :, None] * sd[:, None, :])  # Pearson correlations
        pb = pos[order].to(r.dtype)
        dist = torch.cdist(pb, pb)
        d = 1.0 / (dist + 1.0) if distance == "inverse" else -dist
        pairs = (torch.ones(k, k, dtype=torch.bool, device=x.device).triu(1)[None]
                 & valid[:, :, None] & valid[:, None, :]).to(r.dtype)
        n_pairs = pairs.sum((1, 2))
        rc = (r - ((r * pairs).sum((1, 2)) / n_pairs)[:, None, None]) * pairs
        dc = (d - ((d * pairs).sum((1, 2)) / n_pairs)[:, None, None]) * pairs
        corr = (rc * dc).sum((1, 2)) / (
            rc.flatten(1).norm(dim=1) * dc.flatten(1).norm(dim=1) + 1e-8)
        return (0.5 * (1.0 - corr)).mean()


def _blur(w: torch.Tensor, phi: float) -> torch.Tensor:
    """Bilinear down-sampling by ``1/phi`` then up-sampling; w is (d, h, w).

    As the ``topoloss`` package: the small grid is ``floor(h / phi) x floor(w / phi)`` and
    its sample points are spaced by ``phi`` (``F.interpolate(scale_factor=1 / phi)``), then
    the grid is resized back to ``(h, w)``.
    """
    h, wd = w.shape[-2:]
    down = F.interpolate(w[None], scale_factor=(1.0 / phi, 1.0 / phi), mode="bilinear")
    return F.interpolate(down, size=(h, wd), mode="bilinear")[0]


def _weight_rows(weight) -> torch.Tensor:
    """A Linear-layout ``(n_out, n_in)`` weight from a tensor, a Linear or a Conv1D."""
    if isinstance(weight, torch.Tensor):
        return weight
    if isinstance(weight, torch.nn.Linear):
        return weight.weight
    if (type(weight).__name__ == "Conv1D" and hasattr(weight, "nf")
            and isinstance(getattr(weight, "weight", None), torch.Tensor)
            and weight.weight.ndim == 2 and weight.weight.shape[1] == weight.nf):
        # transformers' Conv1D (GPT-2's c_fc) stores the weight as (n_in, n_out)
        return weight.weight.T
    raise TypeError(
        f"topoloss takes a weight tensor of shape (n_out, n_in), a torch.nn.Linear or a "
        f"transformers Conv1D; got {type(weight).__name__}."
    )


def topoloss(
    weight, *, phi: float = 3.0, tau: float = 1.0,
    shape: tuple[int, int] | None = None,
) -> torch.Tensor:
    """TopoNets' TopoLoss of one Linear weight, equal to the ``topoloss`` package's.

    The ``n_out`` rows of ``weight`` (``(n_out, n_in)``, ``torch.nn.Linear`` layout) are
    laid out on an ``(h, w)`` sheet (the TopoNets shape rule by default) in row-major
    order, ``weight.reshape(h, w, n_in)``; the sheet is blurred by bilinear down-sampling
    by ``1/phi`` (to ``floor(h / phi) x floor(w / phi)``) and up-sampling back; the loss is
    ``tau * (1 - mean over units of cosine(row, blurred row))``. This is
    ``LaplacianPyramid(factor_h=phi, factor_w=phi, scale=tau)`` of the ``topoloss``
    package (0.0.2), to rounding.

    Parameters
    ----------
    weight : Tensor of shape (n_out, n_in), torch.nn.Linear or transformers Conv1D
        The layer's weight. A Conv1D (GPT-2's ``c_fc``) stores its weight transposed,
        ``(n_in, n_out)``: pass the module and it is transposed; a bare Conv1D weight
        tensor must be passed as ``weight.T``.
    phi : float, default=3.0
        Down-sampling factor (TopoNets' README uses 3), at most the sheet's shorter side.
    tau : float, default=1.0
        Scale of the loss.
    shape : tuple of int, optional
        ``(n_rows, n_cols)`` of the sheet, ``n_rows * n_cols == n_out``.

    Returns
    -------
    Tensor, scalar
        In ``[0, 2 * tau]``; 0 when the weights are already smooth on the sheet.

    References
    ----------
    Deb, M., Deb, M., & Murty, N. A. R. (2025). TopoNets: high performing vision and
    language models with brain-like topography. ICLR 2025.
    """
    weight = _weight_rows(weight)
    if weight.ndim != 2:
        raise ValueError(
            f"weight must be a Linear weight of shape (n_out, n_in); got shape "
            f"{tuple(weight.shape)}. Pass module.weight of a torch.nn.Linear."
        )
    if not phi > 0:
        raise ValueError(f"phi (the blur's down-sampling factor) must be positive; got {phi}.")
    n_out, n_in = weight.shape
    h, w = shape if shape is not None else toponets_shape(n_out)
    if h * w != n_out:
        raise ValueError(f"A ({h}, {w}) sheet does not hold the {n_out} rows of the weight.")
    if phi > min(h, w):
        raise ValueError(f"phi = {phi} shrinks the ({h}, {w}) sheet to nothing: it must be at "
                         f"most the shorter side, {min(h, w)}.")
    sheet = weight.reshape(h, w, n_in).permute(2, 0, 1)  # (n_in, h, w)
    blurred = _blur(sheet, phi)
    cos = F.cosine_similarity(sheet.reshape(n_in, -1), blurred.reshape(n_in, -1), dim=0)
    return tau * (1.0 - cos.mean())
