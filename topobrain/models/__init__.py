"""Topographic language models: the TopoLM-style GPT, spatial losses, training, loaders."""

from .gpt import GPTConfig, TopoGPT
from .losses import correlation_loss, topoloss

__all__ = ["GPTConfig", "TopoGPT", "correlation_loss", "topoloss"]
