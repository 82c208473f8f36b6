"""Topographic language models: the TopoLM-style GPT, spatial losses, training, loaders."""

from .base import SheetModel
from .gpt import GPTConfig, TopoGPT
from .loaders import available_models, load
from .losses import correlation_loss, topoloss

__all__ = ["GPTConfig", "SheetModel", "TopoGPT", "available_models", "correlation_loss",
           "load", "topoloss"]
