"""Topographic language models: the TopoLM-style GPT, spatial losses, training, loaders."""

from ._assemble import MissingModelPart
from .base import SheetModel
from .describe import ModelDescription, describe_model
from .gpt import GPTConfig, TopoGPT
from .hf import PRESETS, load_hf, read_sheet_spec
from .loaders import available_models, load, model_kind
from .losses import correlation_loss, topoloss
from .topolm_format import load_topolm_checkpoint, positions_dir_to_csv

__all__ = ["GPTConfig", "MissingModelPart", "ModelDescription", "PRESETS", "SheetModel",
           "TopoGPT", "available_models", "correlation_loss", "describe_model", "load",
           "load_hf",
           "load_topolm_checkpoint", "model_kind", "positions_dir_to_csv",
           "read_sheet_spec", "topoloss"]
