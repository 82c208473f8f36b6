"""The topobrain model folder: safetensors weights, JSON config, tokenizer, positions, card.

Layout of a folder written by :func:`save_model`::

    config.json        {"format": "topobrain-topogpt", "version": 1, "model": GPTConfig}
    model.safetensors  the state dict (tied head stored once, as wte)
    tokenizer.json     Hugging Face tokenizers file
    positions.csv      layer,unit,x,y (x = column, y = row), one row per unit and layer
    card.json          data, tokens seen, losses, training curve, evaluation numbers
    README.md          the model card in prose
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .._utils._io import atomic_save, atomic_write_text, make_temp_dir
from ..sheet import CorticalSheet

__all__ = ["save_model", "read_positions_csv", "write_positions_csv", "FORMAT"]

FORMAT = "topobrain-topogpt"


def write_positions_csv(path, sheets: dict[str, CorticalSheet]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["layer", "unit", "x", "y"], lineterminator="\n")
    writer.writeheader()
    for sheet in sheets.values():
        writer.writerows(sheet.to_csv_rows())
    atomic_write_text(path, buf.getvalue())


def read_positions_csv(path, shape: tuple[int, int]) -> dict[str, CorticalSheet]:
    """Read every layer of a ``layer,unit,x,y`` CSV into sheets of ``shape``."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"layer", "unit", "x", "y"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: needs columns layer,unit,x,y; missing {sorted(missing)}.")
        by_layer: dict[str, list] = {}
        for row in reader:
            by_layer.setdefault(row["layer"], []).append(
                (int(row["unit"]), float(row["y"]), float(row["x"])))
    sheets = {}
    for layer, rows in by_layer.items():
        rows.sort()
        if [r[0] for r in rows] != list(range(len(rows))):
            raise ValueError(f"{path}: layer {layer!r} must list units 0..n-1 exactly once.")
        sheets[layer] = CorticalSheet(shape, layout=np.array([[r[1], r[2]] for r in rows]),
                                      name=layer)
    return sheets


def _topoloss_line(sp: dict) -> str:
    """The card's line on TopoLoss: which shrink rule the weights were trained with."""
    if sp.get("kind") is None:
        return "- TopoLoss: the card does not record the spatial loss"
    if sp.get("kind") != "topoloss":
        return (f"- TopoLoss: not used ({sp.get('kind')} loss), so the TopoLoss blur rule "
                f"(fixed in topobrain 0.1.0 to the topoloss package's floor(h / phi)) does "
                f"not apply")
    rule = sp.get("shrink") or ("not recorded: a card without it comes from a training "
                                "that resized to round(h / phi), before the blur followed "
                                "the topoloss package's floor(h / phi)")
    return (f"- TopoLoss (phi = {sp.get('phi')}, tau = {sp.get('tau')}, on "
            f"{sp.get('modules')}): blur rule {rule}")


def _card_markdown(card: dict) -> str:
    t = card.get("training", {})
    sp = card.get("spatial_loss", {})
    data = card.get("data", {})
    lines = [f"# {card.get('name', 'model')}", "",
             "A small TopoLM-style GPT trained on this project's 2-core CPU machine by "
             "`topobrain train` (config in `configs/`).", "",
             "## Model", "",
             f"- architecture: {t.get('model')}; vocabulary "
             f"{data.get('vocab_size', t.get('vocab_size'))} "
             "byte-level BPE tokens trained on the corpus; tied input/output embeddings; no biases",
             f"- spatial loss: {sp.get('kind')} with alpha = {sp.get('alpha')} (l-infinity radius "
             f"{sp.get('radius')}, {'inclusive' if sp.get('inclusive') else 'exclusive'}, "
             f"{sp.get('n_neighbourhoods')} neighbourhoods per layer and step); alpha = 0 is the "
             "non-topographic control",
             _topoloss_line(sp),
             f"- unit positions: a seeded random permutation of the sheet per layer "
             f"(layout seed {t.get('layout_seed')}), in `positions.csv`", "",
             "## Data and training", "",
             f"- corpus: {data.get('sources')}",
             f"- tokens: {data.get('n_tokens')}; documents: {data.get('n_documents')}",
             f"- steps: {card.get('steps')}; tokens seen: {card.get('tokens_seen')}; "
             f"batch {t.get('batch_size')} x context {t.get('model', {}).get('block_size')}; "
             f"AdamW lr {t.get('lr')} with warm-up and cosine decay; seed {t.get('seed')}",
             f"- wall time: {card.get('train_seconds', 0) / 60:.1f} min on one CPU thread",
             f"- final validation loss: {card.get('final_val_loss')} nats/token; a unigram model "
             f"on the same split: {card.get('unigram_val_loss')}", ""]
    hist = card.get("history", {})
    if hist.get("val_step"):
        lines += ["Training curve (validation loss, nats/token):", "",
                  "| step | " + " | ".join(str(s) for s in hist["val_step"]) + " |",
                  "|---|" + "---|" * len(hist["val_step"]),
                  "| val loss | " + " | ".join(f"{v:.3f}" for v in hist["val_loss"]) + " |", ""]
    ev = card.get("evaluation")
    if ev:
        lines += ["## Evaluation", "",
                  "Mean over tokens, Welch t per unit, BH-FDR over all layers (p < .05); Moran's "
                  "I (queen, row-standardised) of the unthresholded t-maps averaged over layers; "
                  "the label-permutation null shuffles condition labels and recomputes every "
                  "map (`topobrain.inference.map_permutation_test`).", "",
                  "| stimuli / contrast / readout | FDR-significant units | mean Moran's I | "
                  "null mean (sd) | z | p |", "|---|---|---|---|---|---|"]
        for key, r in ev.items():
            null = (f"{r['null_mean']:.3f} ({r['null_sd']:.3f})" if r.get("null_mean") is not None
                    else "-")
            z = f"{r['z']:.2f}" if r.get("z") is not None else "-"
            p = f"{r['p']:.4f}" if r.get("p") is not None else "-"
            lines.append(f"| {key} | {r['n_fdr_significant']} / {r['n_units']} | "
                         f"{r['mean_morans_i']:.3f} | {null} | {z} | {p} |")
        lines.append("")
    return "\n".join(lines)


def save_model(folder, model, sheets: dict[str, CorticalSheet], tokenizer, card: dict,
               *, dtype: str = "float32") -> Path:
    """Write a model folder atomically (a temp folder, then a rename)."""
    from safetensors.torch import save_file

    from .losses import TOPOLOSS_SHRINK

    folder = Path(folder)
    sp = card.get("spatial_loss")
    if isinstance(sp, dict) and sp.get("kind") == "topoloss" and "shrink" not in sp:
        # the rule the weights were trained with (the caller's card is not changed)
        card = {**card, "spatial_loss": {**sp, "shrink": TOPOLOSS_SHRINK}}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(folder.parent, folder.name)  # 0o777 & ~umask, not 0o700
    try:
        state = {}
        torch_dtype = getattr(torch, dtype)
        for k, v in model.state_dict().items():
            if k == "lm_head.weight":
                continue  # tied with transformer.wte.weight
            state[k] = v.detach().to("cpu", torch_dtype).contiguous()
        atomic_save(tmp / "model.safetensors",  # its own file is 0o600: umask mode
                    lambda path: save_file(state, path, metadata={"format": FORMAT}))
        (tmp / "config.json").write_text(json.dumps(
            {"format": FORMAT, "version": 1, "model": model.config.to_dict(),
             "layers": list(sheets)}, indent=1))
        if tokenizer is not None:
            (tmp / "tokenizer.json").write_text(tokenizer.to_str())
        write_positions_csv(tmp / "positions.csv", sheets)
        (tmp / "card.json").write_text(json.dumps(card, indent=1, default=str))
        (tmp / "README.md").write_text(_card_markdown(card))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
