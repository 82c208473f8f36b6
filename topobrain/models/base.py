"""One interface for every model the harness runs: :class:`SheetModel`.

A ``SheetModel`` bundles a torch module, its tokenizer, and one
:class:`~topobrain.sheet.CorticalSheet` per spatial layer. Extraction only ever calls
:meth:`SheetModel.activations`, so our TopoGPT, the TopoLM authors' checkpoints and
Hugging Face models with a sheet spec all look the same downstream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..sheet import CorticalSheet

__all__ = ["SheetModel"]


@dataclass(eq=False)
class SheetModel:
    """A language model whose named layers sit on cortical sheets.

    Parameters
    ----------
    name : str
        Display name (``"topolm-tiny"``, a folder name).
    module : torch.nn.Module
        The model, in eval mode.
    tokenizer : tokenizers.Tokenizer
        Text to token ids.
    sheets : dict of str to CorticalSheet
        One sheet per spatial layer, in model order.
    context_length : int
        Longest input in tokens.
    vocab_size : int
        Size of the model's embedding table.
    identity : str
        A content hash of weights, positions and tokenizer (cache key).
    bos_token_id : int, optional
        Token that may be prepended to every item.
    pad_token_id : int
        Token used to pad batches (never pooled: padding is masked).
    card : dict
        The model card (training data, tokens seen, losses, evaluation).
    layer_modules : dict of str to str
        The submodule whose output each sheet layer is (``"transformer.h.0.mlp"``).
    sources : dict of str to str
        Where the loader found each part (``"weights"``, ``"tokenizer"``,
        ``"positions"``), for ``topobrain models inspect`` and provenance.
    run_layers : callable
        ``run_layers(input_ids, attention_mask) -> dict[str, Tensor (batch, time, units)]``.
    """

    name: str
    module: torch.nn.Module
    tokenizer: object
    sheets: dict[str, CorticalSheet]
    context_length: int
    vocab_size: int
    identity: str
    run_layers: Callable
    bos_token_id: int | None = None
    pad_token_id: int = 0
    card: dict = field(default_factory=dict)
    layer_modules: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)

    @property
    def layer_names(self) -> list[str]:
        return list(self.sheets)

    @property
    def device(self) -> torch.device:
        try:
            return next(self.module.parameters()).device
        except StopIteration:  # pragma: no cover
            return torch.device("cpu")

    def to(self, device) -> SheetModel:
        self.module.to(device)
        return self

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens added)."""
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts),
                                                               add_special_tokens=False)]

    @torch.no_grad()
    def activations(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    layers: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Sheet activations of a batch.

        Parameters
        ----------
        input_ids : LongTensor of shape (batch, time)
        attention_mask : BoolTensor of shape (batch, time), optional
            True for real tokens. Padding sits at the end of each row.
        layers : list of str, optional
            Layers to return (default all).

        Returns
        -------
        dict of str to Tensor of shape (batch, time, n_units)
        """
        acts = self.run_layers(input_ids, attention_mask)
        names = self.layer_names if layers is None else layers
        return {k: acts[k] for k in names}

    def __repr__(self) -> str:
        n = len(self.sheets)
        shape = next(iter(self.sheets.values())).shape if n else None
        return (f"SheetModel({self.name!r}, {n} sheet layers of {shape}, "
                f"context={self.context_length}, vocab={self.vocab_size})")
