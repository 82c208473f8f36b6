"""THE hashing helper: digests equal hashlib's over the same bytes, framing prevents
collisions, files stream in chunks."""

import hashlib
import json

import numpy as np
import pytest

from topobrain._utils import _hashing
from topobrain._utils._hashing import hash_arrays, hash_bytes, hash_file, hash_files, hash_json


def test_hash_file_equals_hashlib_over_chunk_boundaries(tmp_path, monkeypatch, rng):
    monkeypatch.setattr(_hashing, "CHUNK_BYTES", 7)  # many chunks, a partial last one
    data = rng.integers(0, 256, size=1000, dtype=np.uint8).tobytes()
    f = tmp_path / "a.bin"
    f.write_bytes(data)
    assert hash_file(f) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert hash_file(empty) == hashlib.sha256(b"").hexdigest()


def test_hash_file_refuses_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        hash_file(tmp_path)


def test_hash_files_framing_order_names_prefix(tmp_path):
    a, b, c, d = (tmp_path / n for n in ("a", "b", "c", "d"))
    a.write_bytes(b"ab")
    b.write_bytes(b"c")
    c.write_bytes(b"a")
    d.write_bytes(b"bc")
    # same concatenation, different split: different digests
    assert hash_files([a, b]) != hash_files([c, d])
    assert hash_files([a, b]) != hash_files([b, a])
    # reference: length-framed contents, computed independently
    ref = hashlib.sha256((2).to_bytes(8, "little") + b"ab" + (1).to_bytes(8, "little") + b"c")
    assert hash_files([a, b]) == ref.hexdigest()
    # names count only when asked
    e = tmp_path / "e"
    e.write_bytes(b"ab")
    assert hash_files([a]) == hash_files([e])
    assert hash_files([a], names=True) != hash_files([e], names=True)
    assert hash_files([a], prefix="x") != hash_files([a])
    assert hash_files([a], prefix="x") == hash_files([a], prefix=b"x")


def test_hash_bytes_and_json(rng):
    raw = rng.integers(0, 256, size=100, dtype=np.uint8).tobytes()
    assert hash_bytes(raw) == hashlib.sha256(raw).hexdigest()
    assert hash_bytes(iter([raw[:10], raw[10:]])) == hashlib.sha256(raw).hexdigest()
    assert hash_bytes("é") == hashlib.sha256("é".encode()).hexdigest()
    assert hash_json({"b": 1, "a": [1, 2]}) == hash_json({"a": [1, 2], "b": 1})
    ref = hashlib.sha256(json.dumps({"a": [1, 2], "b": 1}, sort_keys=True).encode())
    assert hash_json({"b": 1, "a": [1, 2]}) == ref.hexdigest()
    with pytest.raises(TypeError, match="bytes or str"):
        hash_bytes([1, 2])


def test_hash_arrays_sees_dtype_shape_order_and_values(rng):
    x = rng.standard_normal((3, 4))
    assert hash_arrays(x) == hash_arrays(x.copy())
    assert hash_arrays(np.asfortranarray(x)) == hash_arrays(x)  # values, not memory layout
    assert hash_arrays(x) != hash_arrays(x.astype(np.float32))
    assert hash_arrays(x) != hash_arrays(x.reshape(4, 3))
    y = x.copy()
    y[2, 3] = np.nextafter(y[2, 3], np.inf)
    assert hash_arrays(x) != hash_arrays(y)
    assert hash_arrays(x, y) != hash_arrays(y, x)
    assert hash_arrays(np.float64(1.5)) == hash_arrays(np.array(1.5))
    assert hash_arrays(np.array([], float)) != hash_arrays(np.array([], np.int64))
    with pytest.raises(TypeError, match="object array"):
        hash_arrays(np.array([{}, 1], dtype=object))
