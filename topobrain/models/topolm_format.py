"""The TopoLM authors' checkpoint layout: a ``.pt`` dict beside a folder of unit positions.

The published TopoLM models come from a nanoGPT-derived training script: ``torch.save``
of a dict with the state dict under ``"model"`` and the architecture under
``"model_args"`` (``n_embed`` spelled so), and a folder of pickled ``LayerPositions``
objects, ``layer.{i}.attn.pkl`` and ``layer.{i}.mlp.pkl``, whose ``coordinates`` give
each unit's ``(x, y) = (column, row)`` on the sheet. :func:`load_topolm_checkpoint`
opens such a pair as a :class:`~topobrain.models.SheetModel`.

Both files are untrusted input. The checkpoint is read with
``torch.load(..., weights_only=True)``; a file that needs more is refused. Position
pickles go through a restricted unpickler that maps the authors' ``LayerPositions``
class (from whatever module it was pickled) to a plain record, admits torch's tensor
reconstruction and plain containers, and refuses every other global.

References
----------
Rathi, N., Mehrer, J., AlKhamissi, B., Binhuraib, T., Blauch, N. M., & Schrimpf, M.
(2025). TopoLM: brain-like spatio-functional organization in a topographic language
model. ICLR 2025.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..sheet import CorticalSheet, toponets_shape
from ._assemble import (
    MissingModelPart,
    load_state_strict,
    model_identity,
    sheet_model_from_topogpt,
)
from .base import SheetModel
from .checkpoint import read_positions_csv, write_positions_csv
from .gpt import GPTConfig, TopoGPT
from .tokenizer import load_tokenizer

__all__ = ["LayerPositions", "read_layer_positions", "read_positions_dir",
           "positions_dir_to_csv", "load_topolm_checkpoint", "CHECKPOINT_SUFFIXES"]

logger = logging.getLogger("topobrain")

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
_LAYER_FILE = re.compile(r"^layer\.(\d+)\.(attn|mlp)\.pkl$")


@dataclass(frozen=True, eq=False)
class LayerPositions:
    """One layer's unit positions as the TopoLM authors pickle them (a plain record).

    Attributes
    ----------
    name : str
        Layer name, e.g. ``"layer.3.mlp"``.
    coordinates : ndarray of float, shape (n_units, 2)
        ``(x, y)`` of each unit: column 0 is the column (x), column 1 the row (y), in
        sheet units on the integer grid.
    neighborhood_indices : ndarray of bool, shape (n_neighbourhoods, n_units), or None
        The precomputed neighbourhoods of the authors' training (not used here).
    neighborhoods_per_batch : int or None
        Neighbourhoods the authors' training drew per step.
    """

    name: str
    coordinates: np.ndarray
    neighborhood_indices: np.ndarray | None = None
    neighborhoods_per_batch: int | None = None

    @property
    def rows_cols(self) -> np.ndarray:
        """``(row, col)`` of each unit (integer), shape (n_units, 2)."""
        return np.round(self.coordinates[:, ::-1]).astype(np.int64)


# --------------------------------------------------------------------------- unpickler
class _Record:
    """What a pickled ``LayerPositions`` becomes: its attributes and nothing else."""

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"LayerPositions state must be a dict of attributes; got {type(state).__name__}."
            )
        self.__dict__.update(state)


def _storage_from_bytes(b):
    """``torch.storage._load_from_bytes`` without its ``weights_only=False``."""
    return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` (protocols 0 and 1), restricted to the record class."""
    if cls is not _Record or base is not object:
        raise _Refused("copyreg._reconstructor is only admitted for "
                                     "LayerPositions records.")
    return _Record()


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("builtins", "object"): object,
    ("__builtin__", "object"): object,  # protocols 0 and 1 spell it the Python 2 way
    ("_codecs", "encode"): __import__("codecs").encode,  # bytes under protocol 2
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
}


class _Refused(pickle.UnpicklingError):
    """A global outside the admitted set (never a corrupt-file error)."""


class _PositionsUnpickler(pickle.Unpickler):
    def __init__(self, fh, source):
        super().__init__(fh)
        self._source = source

    def find_class(self, module, name):
        if name == "LayerPositions":
            return _Record
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(
                f"{self._source}: refused to unpickle the global {module}.{name}. A position "
                f"file may hold only a LayerPositions object with torch tensors and plain "
                f"containers; this file could run code when opened. Convert trusted "
                f"positions to a layer,unit,x,y CSV and pass that instead."
            ) from None

    def persistent_load(self, pid):
        raise _Refused(
            f"{self._source}: persistent ids are not admitted in a position file."
        )


def _to_numpy(x, what, source):
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise ValueError(f"{source}: {what} must be a tensor; got {type(x).__name__}.")


def read_layer_positions(path) -> LayerPositions:
    """Read one TopoLM position pickle with the restricted unpickler.

    Parameters
    ----------
    path : str or path-like
        A ``layer.{i}.{attn,mlp}.pkl`` file.

    Returns
    -------
    LayerPositions

    Raises
    ------
    ValueError
        When the file is truncated or corrupt, is not a ``LayerPositions`` pickle, or
        names any global beyond tensors and plain containers.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} was written by torch.save, not pickle; the authors' position files are "
            f"plain pickles. Convert trusted positions to a layer,unit,x,y CSV."
        )
    with open(path, "rb") as fh:
        try:
            obj = _PositionsUnpickler(fh, path).load()
        except _Refused as exc:
            raise ValueError(str(exc)) from exc
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, RuntimeError, OverflowError) as exc:
            raise ValueError(f"{path} is truncated or corrupt ({type(exc).__name__}: "
                             f"{exc}).") from exc
    if not isinstance(obj, _Record):
        raise ValueError(f"{path} does not hold a LayerPositions object; got "
                         f"{type(obj).__name__}.")
    attrs = obj.__dict__
    if "coordinates" not in attrs:
        raise ValueError(f"{path}: the LayerPositions object has no 'coordinates'; "
                         f"attributes: {sorted(attrs)}.")
    coords = np.asarray(_to_numpy(attrs["coordinates"], "coordinates", path), dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"{path}: coordinates must have shape (n_units, 2); got "
                         f"{coords.shape}.")
    if not np.all(np.isfinite(coords)) or not np.allclose(coords, np.round(coords)):
        raise ValueError(f"{path}: coordinates must be integer grid positions.")
    nbh = _to_numpy(attrs.get("neighborhood_indices"), "neighborhood_indices", path)
    npb = attrs.get("neighborhoods_per_batch")
    name = attrs.get("name")
    return LayerPositions(name=str(name) if name is not None else path.stem,
                          coordinates=coords, neighborhood_indices=nbh,
                          neighborhoods_per_batch=None if npb is None else int(npb))


def read_positions_dir(folder, n_units: int | None = None,
                       shape: tuple[int, int] | None = None) -> dict[str, CorticalSheet]:
    """Read every ``layer.{i}.{attn,mlp}.pkl`` of a TopoLM positions folder as sheets.

    Parameters
    ----------
    folder : str or path-like
    n_units : int, optional
        The layers' width; each file must hold this many units.
    shape : tuple of int, optional
        ``(n_rows, n_cols)`` of the sheets. By default the smallest grid that holds every
        position when it has ``n_units`` cells, else the TopoNets shape of ``n_units``
        when every position fits in it (a grid whose edge cells are empty because units
        share cells), else the smallest grid that holds them all.

    Returns
    -------
    dict of str to CorticalSheet
        In model order (block, then attn before mlp). Units that share a cell are kept
        (``sheet.n_shared`` counts them; maps average them).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Positions folder {folder} does not exist.")
    files = {}
    for p in folder.iterdir():
        m = _LAYER_FILE.match(p.name)
        if m:
            files[(int(m.group(1)), 0 if m.group(2) == "attn" else 1)] = p
    if not files:
        raise ValueError(f"{folder} holds no layer.{{i}}.{{attn,mlp}}.pkl position files.")
    records = {}
    for key in sorted(files):
        p = files[key]
        rec = read_layer_positions(p)
        layer = p.name[: -len(".pkl")]
        if rec.name != layer:
            raise ValueError(f"{p} holds the positions of {rec.name!r}, not {layer!r}: the "
                             f"files were renamed or mixed up.")
        if n_units is not None and rec.coordinates.shape[0] != n_units:
            raise ValueError(f"{p} has {rec.coordinates.shape[0]} unit positions but the "
                             f"model's width is {n_units}: the positions do not belong to "
                             f"this model.")
        if (rec.coordinates < 0).any():
            raise ValueError(f"{p}: coordinates must be non-negative grid positions.")
        records[layer] = rec
    extent = np.max([r.rows_cols.max(0) for r in records.values()], axis=0) + 1
    if shape is None:
        base = toponets_shape(n_units) if n_units is not None else None
        if n_units is not None and extent[0] * extent[1] == n_units:
            shape = (int(extent[0]), int(extent[1]))  # the grid the positions fill
        elif base is not None and extent[0] <= base[0] and extent[1] <= base[1]:
            shape = base
        else:
            shape = (int(extent[0]), int(extent[1]))
    sheets = {}
    for layer, rec in records.items():
        sheets[layer] = CorticalSheet(shape, layout=rec.rows_cols, name=layer)
        if sheets[layer].n_shared:
            logger.info("%s: %d of %d units share a cell with another unit (%d distinct "
                        "cells); maps average them", layer, sheets[layer].n_shared,
                        sheets[layer].n_units, sheets[layer].n_units - sheets[layer].n_shared)
    return sheets


def positions_dir_to_csv(folder, path, n_units: int | None = None) -> Path:
    """Convert a TopoLM positions folder to the ``layer,unit,x,y`` interchange CSV.

    Parameters
    ----------
    folder : str or path-like
        The ``layer.{i}.{attn,mlp}.pkl`` folder (read with the restricted unpickler).
    path : str or path-like
        The CSV to write (atomically).
    n_units : int, optional
        Expected units per layer.

    Returns
    -------
    pathlib.Path
    """
    write_positions_csv(path, read_positions_dir(folder, n_units=n_units))
    return Path(path)


# --------------------------------------------------------------------------- checkpoint
def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _read_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():  # e.g. a truncated legacy-format file
            raise ValueError(f"{path} is truncated or corrupt ({_first_line(exc)})."
                             ) from exc
        raise ValueError(
            f"{path} was refused: it needs more than torch.load(weights_only=True) admits "
            f"(objects beyond tensors and plain containers), and a checkpoint is untrusted "
            f"input. If you trust the file, re-save just its 'model' state dict and "
            f"'model_args' dict with torch.save. Detail: {_first_line(exc)}"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ValueError(
            f"{path} is truncated or corrupt ({_first_line(exc)}). Re-download or "
            f"re-copy the checkpoint."
        ) from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(
            f"{path} is not a TopoLM checkpoint: expected a dict with 'model' (the state "
            f"dict) and 'model_args'; got {keys}."
        )
    return ckpt


def _clean_state(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        if k.startswith("_orig_mod."):
            k = k[len("_orig_mod."):]
        if k.startswith("module."):  # saved from DistributedDataParallel
            k = k[len("module."):]
        # nanoGPT's causal-mask buffer (no flash attention): not a weight
        if re.fullmatch(r"transformer\.h\.\d+\.attn\.(bias|masked_bias)", k) and v.dim() == 4:
            continue
        out[k] = v
    return out


def _gpt_config(args: dict, state: dict, sheet_shape, source,
                with_resid: bool | None = None) -> GPTConfig:
    args = dict(args)
    if "n_embed" not in args and "n_embd" in args:
        args["n_embed"] = args["n_embd"]
    missing = [k for k in ("n_layer", "n_head", "n_embed", "block_size", "vocab_size")
               if k not in args]
    if missing:
        raise ValueError(f"{source}: model_args lacks {missing}; present: {sorted(args)}.")
    n_embed = int(args["n_embed"])
    if sheet_shape[0] * sheet_shape[1] != n_embed:
        raise ValueError(
            f"{source}: a {sheet_shape[0]} x {sheet_shape[1]} sheet does not match the width "
            f"n_embed = {n_embed}. Pass sheet_shape with n_rows * n_cols == {n_embed} "
            f"(e.g. {toponets_shape(n_embed)})."
        )
    fc = state.get("transformer.h.0.mlp.c_fc.weight")
    mlp_ratio = int(fc.shape[0] // n_embed) if fc is not None else 4
    return GPTConfig(
        vocab_size=int(args["vocab_size"]), block_size=int(args["block_size"]),
        n_layer=int(args["n_layer"]), n_head=int(args["n_head"]),
        sheet_shape=tuple(sheet_shape), mlp_ratio=mlp_ratio,
        bias=bool(args.get("bias", False)), dropout=0.0,
        attn_proj=bool(args.get("attn_proj", False)),
        with_resid=bool(args.get("with_resid", False)) if with_resid is None else with_resid,
        head_loss=bool(args.get("head_loss", False)),
    )


def _find_tokenizer(ckpt_path: Path, tokenizer):
    if tokenizer is not None:
        if not isinstance(tokenizer, (str, os.PathLike)):
            return tokenizer, []  # a tokenizers.Tokenizer object
        p = Path(tokenizer)
        files = ([p] if p.is_file() else
                 [f for f in (p / "tokenizer.json", p / "vocab.json", p / "merges.txt")
                  if f.exists()])
        return load_tokenizer(p), files
    here = ckpt_path.parent
    for cand in (here / "tokenizer.json", here / "tokenizer"):
        if cand.exists():
            return _find_tokenizer(ckpt_path, cand)
    if (here / "vocab.json").exists() and (here / "merges.txt").exists():
        return _find_tokenizer(ckpt_path, here)
    raise MissingModelPart(
        f"No tokenizer for {ckpt_path} (looked for tokenizer.json, tokenizer/, vocab.json + "
        f"merges.txt beside it): pass tokenizer= (--tokenizer) a tokenizer.json, or a folder "
        f"with GPT-2's vocab.json and merges.txt (the published TopoLM models use GPT-2's "
        f"byte-level BPE). Nothing is downloaded.", part="tokenizer", parameter="tokenizer")


def _position_candidates(ckpt_path: Path, position_dir) -> list[Path]:
    """Where ``model_args['position_dir']`` may be: as written when absolute; a relative
    one beside the checkpoint, then in the working directory; then its last part beside
    the checkpoint (a folder copied along with it)."""
    if not position_dir:
        return []
    pdir = Path(str(position_dir))
    if pdir.is_absolute():
        cands = [pdir]
    else:
        cands = [ckpt_path.parent / pdir, Path.cwd() / pdir]
    if pdir.name:
        cands.append(ckpt_path.parent / pdir.name)
    return list(dict.fromkeys(cands))


def find_positions(ckpt_path, position_dir) -> Path:
    """The positions folder a checkpoint's ``model_args['position_dir']`` points to.

    Raises
    ------
    MissingModelPart
        Listing every path tried and the option that supplies the positions.
    """
    ckpt_path = Path(ckpt_path)
    cands = _position_candidates(ckpt_path, position_dir)
    found = next((c for c in cands if c.is_dir()), None)
    if found is None:
        tried = ", ".join(str(c) for c in cands) or "nothing (model_args has no position_dir)"
        raise MissingModelPart(
            f"No unit positions for {ckpt_path}: model_args['position_dir'] is "
            f"{position_dir!r}; tried {tried}. Pass positions= (--positions) the folder of "
            f"layer.{{i}}.{{attn,mlp}}.pkl files or a layer,unit,x,y CSV.",
            part="unit positions", parameter="positions")
    return found


def load_topolm_checkpoint(path, *, positions=None, tokenizer=None,
                           sheet_shape: tuple[int, int] | None = None,
                           with_resid: bool | None = None,
                           name: str | None = None) -> SheetModel:
    """Open a TopoLM authors' checkpoint as a :class:`SheetModel`.

    Parameters
    ----------
    path : str or path-like
        The ``.pt`` file (``torch.save`` of ``{"model": state_dict, "model_args": ...}``).
        Read with ``weights_only=True``; torch.compile's ``_orig_mod.`` and
        DistributedDataParallel's ``module.`` prefixes are stripped.
    positions : str or path-like, optional
        The positions folder (``layer.{i}.{attn,mlp}.pkl``) or a ``layer,unit,x,y`` CSV.
        Default: ``model_args["position_dir"]``, as written when absolute; a relative one
        beside the checkpoint, then in the working directory; then its last part beside
        the checkpoint.
    tokenizer : str, path-like or tokenizers.Tokenizer, optional
        ``tokenizer.json``, or a folder with it or with GPT-2's ``vocab.json`` and
        ``merges.txt``. Default: one of those beside the checkpoint.
    sheet_shape : tuple of int, optional
        ``(n_rows, n_cols)`` of the model's width. Default: the grid the positions fill
        when it has ``n_embed`` cells, else the TopoNets rule (``(28, 28)`` for the
        published width 784, whose position files leave some cells empty).
    with_resid : bool, optional
        Report the residual stream after each add (True) or the attention and MLP outputs
        before it (False). Default ``model_args["with_resid"]``, False when absent. The
        authors' evaluation configs set it per run; so can you.
    name : str, optional
        Display name (default the checkpoint's file name).

    Returns
    -------
    SheetModel
        Two sheets per block, ``layer.{i}.attn`` and ``layer.{i}.mlp``: the attention and
        MLP outputs before the residual add (after it when ``with_resid``), after
        ``attn_proj`` when the checkpoint has one. Variants read from ``model_args``:
        ``bias``, ``attn_proj`` (a Linear with a bias when ``bias``), ``with_resid`` and
        ``head_loss`` (no attention ``c_proj``; each head fills a square patch).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    if with_resid is not None and not isinstance(with_resid, bool):
        raise TypeError(f"with_resid must be True, False or None; got {with_resid!r}.")
    ckpt = _read_checkpoint(path)
    args = ckpt["model_args"]
    if not isinstance(args, dict):
        raise ValueError(f"{path}: model_args must be a dict; got {type(args).__name__}.")
    state = ckpt["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: 'model' must be a state dict; got {type(state).__name__}.")
    state = _clean_state(state)
    n_embed = int(args.get("n_embed", args.get("n_embd", 0)) or 0)
    if n_embed < 1:
        raise ValueError(f"{path}: model_args has no positive n_embed; present: "
                         f"{sorted(args)}.")
    if sheet_shape is not None:
        _gpt_config(args, state, sheet_shape, path)  # check it against the width first

    if positions is None:
        positions = find_positions(path, args.get("position_dir"))
    positions = Path(positions)
    if positions.is_file() and positions.suffix.lower() == ".csv":
        sheets = read_positions_csv(positions, sheet_shape or toponets_shape(n_embed))
    elif positions.is_dir() or not positions.exists():
        sheets = read_positions_dir(positions, n_units=n_embed, shape=sheet_shape)
    else:
        raise ValueError(f"positions must be a folder of layer.{{i}}.{{attn,mlp}}.pkl files "
                         f"or a layer,unit,x,y .csv file; got {positions}.")
    if sheet_shape is None:
        # the positions' grid when it has n_embed cells, else the TopoNets rule
        grid = next(iter(sheets.values())).shape
        sheet_shape = grid if grid[0] * grid[1] == n_embed else toponets_shape(n_embed)
    gcfg = _gpt_config(args, state, sheet_shape, path, with_resid)
    missing = [n for n in gcfg.layer_names if n not in sheets]
    if missing:
        raise ValueError(f"{positions} lacks the positions of layers {missing}.")

    model = TopoGPT(gcfg)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    if "lm_head.weight" not in state and "transformer.wte.weight" in state:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    load_state_strict(model, state, str(path))
    tok, tok_files = _find_tokenizer(path, tokenizer)
    if tok.get_vocab_size() > gcfg.vocab_size:
        raise ValueError(
            f"The tokenizer has {tok.get_vocab_size()} tokens but the checkpoint's vocabulary "
            f"has {gcfg.vocab_size}: they do not belong together."
        )
    settings = {"with_resid": gcfg.with_resid, "sheet_shape": list(gcfg.sheet_shape)}
    identity = model_identity("topolm-checkpoint", [path], tokenizer=tok, sheets=sheets,
                              settings=settings)
    card = {
        "source": "topolm-checkpoint", "checkpoint": str(path), "positions": str(positions),
        "model_args": {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
                       for k, v in args.items()},
        "with_resid": gcfg.with_resid,
        "with_resid_from": ("override" if with_resid is not None else
                            "model_args" if "with_resid" in args else "default (False)"),
        "iter_num": ckpt.get("iter_num") if isinstance(ckpt.get("iter_num"), int) else None,
        "n_shared": {k: s.n_shared for k, s in sheets.items()},
    }
    sources = {"weights": str(path), "positions": str(positions),
               "tokenizer": (str(tok_files[0]) if len(tok_files) == 1 else
                             str(tok_files[0].parent) if tok_files else "a Tokenizer object")}
    return sheet_model_from_topogpt(name or path.name, model, sheets, tok, identity, card,
                                    sources)
