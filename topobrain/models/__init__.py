"""Topographic language models: the TopoLM-style GPT, spatial losses, training, loaders."""

from .base import SheetModel
from .gpt import GPTConfig, TopoGPT
from .hf import load_hf, read_sheet_spec
from .loaders import available_models, load
from .losses import correlation_loss, topoloss
from .topolm_format import load_topolm_checkpoint, positions_dir_to_csv

__all__ = ["GPTConfig", "SheetModel", "TopoGPT", "available_models", "correlation_loss",
           "load", "load_hf", "load_topolm_checkpoint", "positions_dir_to_csv",
           "read_sheet_spec", "topoloss"]
