"""THE content hashing of topobrain: files, bytes, JSON records and arrays (SHA-256, hex).

Every identity and cache key in the package (model identity, stimulus identity, activation
cache keys, run settings, adjacency caches, input hashes in provenance records) is built from
these few functions, so that one input always gives one digest.

Rules
-----
- SHA-256, returned as a lowercase hex string of 64 characters. Callers that keep a prefix
  (a short cache-key) slice it themselves: ``hash_file(p)[:20]``.
- Files are read in 1 MiB chunks: a checkpoint of many gigabytes never sits in memory.
- ``hash_files`` frames every file by its byte length (and, with ``names=True``, its base
  name), so ``["ab", "c"]`` and ``["a", "bc"]`` never collide; the order of ``paths`` counts.
- ``hash_bytes`` hashes the concatenation of its chunks, unframed: the caller's own
  serialisation decides what separates fields.
- ``hash_json`` hashes ``json.dumps(record, sort_keys=True, default=str)``: key order does not
  count, non-JSON values count by their ``str``.
- ``hash_arrays`` frames every array by its dtype and shape, then hashes its C-ordered bytes:
  equal values in a different dtype or shape give a different digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["CHUNK_BYTES", "hash_arrays", "hash_bytes", "hash_file", "hash_files", "hash_json"]

CHUNK_BYTES = 1 << 20  # read size of the streaming file hash (1 MiB)


def _as_bytes(chunk) -> bytes:
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"hash input must be bytes or str; got {type(chunk).__name__}. "
                    f"Encode it first, or use hash_json for records.")


def _framed(h, chunk) -> None:
    """Hash ``chunk`` preceded by its length (8 bytes, little-endian)."""
    data = _as_bytes(chunk)
    h.update(len(data).to_bytes(8, "little") + data)


def _start(prefix):
    h = hashlib.sha256()
    if prefix is not None:
        _framed(h, prefix)
    return h


def _update_from_file(h, path) -> None:
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
                h.update(chunk)
    except IsADirectoryError:
        raise IsADirectoryError(f"Cannot hash {path}: it is a folder. Pass the files in it "
                                f"(hash_files(sorted(folder.iterdir()))).") from None


def hash_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of one file's bytes, read in chunks.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    str
        64 hex characters; equal to ``hashlib.sha256(Path(path).read_bytes()).hexdigest()``.
    """
    h = hashlib.sha256()
    _update_from_file(h, path)
    return h.hexdigest()


def hash_files(paths: Iterable[str | os.PathLike], *, names: bool = False,
               prefix: str | bytes | None = None) -> str:
    """SHA-256 hex digest of several files' contents, in the given order.

    Parameters
    ----------
    paths : iterable of path-like
        The files, in the order that counts (sort them first if order must not count).
    names : bool, default=False
        Also hash each file's base name (for sets of documents whose names carry meaning);
        by default moving or renaming files keeps the digest.
    prefix : str or bytes, optional
        Bytes hashed first (a format tag or a record of settings), so that two kinds of
        digest over the same files never coincide.

    Returns
    -------
    str
        64 hex characters.
    """
    h = _start(prefix)
    for path in paths:
        path = Path(path)
        if names:
            _framed(h, path.name)
        size = path.stat().st_size
        h.update(size.to_bytes(8, "little"))
        _update_from_file(h, path)
    return h.hexdigest()


def hash_bytes(data: bytes | str | Iterable[bytes | str]) -> str:
    """SHA-256 hex digest of bytes, of a UTF-8 string or of the concatenation of chunks.

    Parameters
    ----------
    data : bytes, str or iterable of bytes/str
        The content; an iterable (a generator, say) is consumed chunk by chunk and hashed as
        the concatenation of its chunks.

    Returns
    -------
    str
        64 hex characters.
    """
    h = hashlib.sha256()
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        h.update(_as_bytes(data))
    else:
        for chunk in data:
            h.update(_as_bytes(chunk))
    return h.hexdigest()


def hash_json(record) -> str:
    """SHA-256 hex digest of a JSON-serialisable record, independent of key order.

    Parameters
    ----------
    record : dict, list or scalar
        Serialised with ``json.dumps(record, sort_keys=True, default=str)``.

    Returns
    -------
    str
        64 hex characters.
    """
    return hash_bytes(json.dumps(record, sort_keys=True, default=str))


def hash_arrays(*arrays, prefix: str | bytes | None = None) -> str:
    """SHA-256 hex digest of arrays' dtypes, shapes and values (C order).

    Parameters
    ----------
    *arrays : array_like
        Any number of arrays; each is framed by its dtype and shape.
    prefix : str or bytes, optional
        Bytes hashed first (a format tag).

    Returns
    -------
    str
        64 hex characters.
    """
    h = _start(prefix)
    for a in arrays:
        a = np.ascontiguousarray(a)
        if a.dtype.hasobject:
            raise TypeError("hash_arrays takes numeric or string arrays; got an object array. "
                            "Convert it (np.asarray(values, dtype=str)) or use hash_json.")
        _framed(h, f"{a.dtype.str}|{a.shape}")
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()
