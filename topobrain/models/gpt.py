"""A GPT-2-style causal transformer whose hidden width is a cortical sheet (TopoLM-style).

Each block has two spatial layers, the attention output and the MLP output before they
are added into the residual stream: ``layer.{i}.attn`` and ``layer.{i}.mlp``. Module
names follow the nanoGPT layout that the published TopoLM checkpoints use, so their
state dicts load unchanged.

References
----------
Rathi, N., Mehrer, J., AlKhamissi, B., Binhuraib, T., Blauch, N. M., & Schrimpf, M.
(2025). TopoLM: brain-like spatio-functional organization in a topographic language
model. ICLR 2025.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["GPTConfig", "TopoGPT"]


@dataclass
class GPTConfig:
    """Architecture of a :class:`TopoGPT`.

    Parameters
    ----------
    vocab_size : int
        Number of token ids.
    block_size : int
        Context length in tokens.
    n_layer, n_head : int
        Blocks and attention heads.
    sheet_shape : tuple of int
        ``(n_rows, n_cols)``; the hidden width is ``n_rows * n_cols``.
    mlp_ratio : int
        MLP hidden width over model width (4 in GPT-2 and TopoLM).
    bias : bool
        Biases in Linear and LayerNorm layers (False in TopoLM).
    dropout : float
        Dropout probability during training.
    attn_proj : bool
        An extra Linear after the attention's ``c_proj`` (a TopoLM variant), with a bias
        when ``bias``.
    with_resid : bool
        Report the residual stream after each add instead of the branch outputs.
    head_loss : bool
        The TopoLM ``head_loss`` variant: the attention has no ``c_proj``; its output is
        the heads' outputs rearranged so that each head fills a square patch of a square
        grid of heads (``n_head`` and the head width must be perfect squares).
    """

    vocab_size: int = 4096
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    sheet_shape: tuple[int, int] = (16, 16)
    mlp_ratio: int = 4
    bias: bool = False
    dropout: float = 0.0
    attn_proj: bool = False
    with_resid: bool = False
    head_loss: bool = False

    def __post_init__(self):
        self.sheet_shape = tuple(int(s) for s in self.sheet_shape)
        if self.n_embd % self.n_head:
            raise ValueError(
                f"The width {self.n_embd} (sheet {self.sheet_shape}) must be divisible by "
                f"n_head={self.n_head}."
            )
        if self.head_loss:
            head = self.n_embd // self.n_head
            if math.isqrt(self.n_head) ** 2 != self.n_head or math.isqrt(head) ** 2 != head:
                raise ValueError(
                    f"head_loss lays each head out as a square patch in a square grid of "
                    f"heads: n_head ({self.n_head}) and the head width ({head}) must both "
                    f"be perfect squares."
                )

    @property
    def n_embd(self) -> int:
        return self.sheet_shape[0] * self.sheet_shape[1]

    @property
    def layer_names(self) -> list[str]:
        return [f"layer.{i}.{k}" for i in range(self.n_layer) for k in ("attn", "mlp")]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sheet_shape"] = list(self.sheet_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"Unknown model config fields {unknown}. Known fields: {sorted(known)}."
            )
        return cls(**d)


class HeadGrid(nn.Module):
    """TopoLM's ``head_loss`` output: each head's outputs as a square patch of a head grid.

    Input ``(batch, time, n_head * head)``, heads side by side; output the same width with
    unit ``(head_row, row, head_col, col)`` in row-major order, where the head index is
    ``head_row * g + head_col`` (``g = sqrt(n_head)``) and the unit within a head is
    ``row * s + col`` (``s = sqrt(head)``). No parameters.
    """

    def __init__(self, n_head: int):
        super().__init__()
        self.n_head = n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        g, s = math.isqrt(self.n_head), math.isqrt(d // self.n_head)
        return x.view(b, t, g, g, s, s).permute(0, 1, 2, 4, 3, 5).reshape(b, t, d)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        d = cfg.n_embd
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(d, 3 * d, bias=cfg.bias)
        self.c_proj = HeadGrid(cfg.n_head) if cfg.head_loss else nn.Linear(d, d, bias=cfg.bias)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        drop = self.dropout if self.training else 0.0
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, d))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        d = cfg.n_embd
        self.c_fc = nn.Linear(d, cfg.mlp_ratio * d, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.mlp_ratio * d, d, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.attn_proj = (nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias) if cfg.attn_proj
                          else None)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.with_resid = cfg.with_resid

    def forward(self, x, attn_mask=None):
        a = self.attn(self.ln_1(x), attn_mask)
        if self.attn_proj is not None:
            a = self.attn_proj(a)
        x = x + self.drop(a)
        a_out = x if self.with_resid else a
        m = self.mlp(self.ln_2(x))
        x = x + self.drop(m)
        m_out = x if self.with_resid else m
        return x, a_out, m_out


class TopoGPT(nn.Module):
    """GPT-2-style language model with two sheet layers per block.

    ``forward(idx, return_activations=True)`` returns ``(logits, activations)`` where
    ``activations`` maps each layer name (``"layer.3.attn"``) to a tensor of shape
    ``(batch, time, n_units)``.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
                wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
                drop=nn.Dropout(cfg.dropout),
                h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
                ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
            )
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as GPT-2 and TopoLM
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def layer_names(self) -> list[str]:
        return self.config.layer_names

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        return_activations: bool = False,
        attention_mask: torch.Tensor | None = None,
    ):
        """Run the model.

        Parameters
        ----------
        idx : LongTensor of shape (batch, time)
        targets : LongTensor of shape (batch, time), optional
            Next-token targets; ``-1`` is ignored. When given, the cross-entropy loss is
            returned in place of the logits.
        return_activations : bool
            Also return the sheet activations of every layer.
        attention_mask : BoolTensor of shape (batch, time), optional
            True for real tokens; padding (False) is never attended to.
        """
        b, t = idx.shape
        if t > self.config.block_size:
            raise ValueError(
                f"Sequence of {t} tokens is longer than the context ({self.config.block_size})."
            )
        pos = torch.arange(t, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        mask = None
        if attention_mask is not None:
            causal = torch.ones(t, t, dtype=torch.bool, device=idx.device).tril()
            mask = causal[None, None] & attention_mask[:, None, None, :].bool()
            # a padded query row that sees nothing would give NaN: let it see itself
            mask = mask | torch.eye(t, dtype=torch.bool, device=idx.device)[None, None]
        acts = {} if return_activations else None
        for i, block in enumerate(self.transformer.h):
            x, a, m = block(x, mask)
            if acts is not None:
                acts[f"layer.{i}.attn"] = a
                acts[f"layer.{i}.mlp"] = m
        logits = self.lm_head(self.transformer.ln_f(x))
        out = logits
        if targets is not None:
            out = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
            )
        return (out, acts) if return_activations else out
