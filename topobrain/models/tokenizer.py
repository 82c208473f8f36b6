"""Byte-level BPE tokenizers (Hugging Face ``tokenizers``), trained here or loaded from files."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["load_tokenizer", "train_tokenizer", "EOT"]

EOT = "<|endoftext|>"


def train_tokenizer(files, vocab_size: int = 4096, min_frequency: int = 2):
    """Train a GPT-2-style byte-level BPE tokenizer on text files.

    Returns a ``tokenizers.Tokenizer`` whose id 0 is ``<|endoftext|>``.
    """
    from tokenizers import ByteLevelBPETokenizer

    files = [os.fspath(f) for f in files]
    if not files:
        raise ValueError("No corpus files to train the tokenizer on.")
    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train(files, vocab_size=vocab_size, min_frequency=min_frequency,
              special_tokens=[EOT], show_progress=False)
    return tok._tokenizer


def load_tokenizer(path):
    """Load a tokenizer from ``tokenizer.json``, a folder holding one, or GPT-2 files.

    A folder with ``vocab.json`` and ``merges.txt`` (GPT-2's byte-level BPE, as shipped
    with the published TopoLM checkpoints) is read as such.
    """
    from tokenizers import ByteLevelBPETokenizer, Tokenizer

    path = Path(path)
    if path.is_dir():
        if (path / "tokenizer.json").exists():
            path = path / "tokenizer.json"
        elif (path / "vocab.json").exists() and (path / "merges.txt").exists():
            tok = ByteLevelBPETokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
            return tok._tokenizer
        else:
            raise FileNotFoundError(
                f"{path} holds no tokenizer: expected tokenizer.json, or vocab.json and "
                f"merges.txt (GPT-2 byte-level BPE)."
            )
    if not path.exists():
        raise FileNotFoundError(f"Tokenizer file {path} does not exist.")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise ValueError(f"{path} is not a valid tokenizers JSON file: {exc}") from exc
