"""Tests for topobrain._utils._io: atomic writes that respect the umask."""

from __future__ import annotations

import os
import stat
import sys

import numpy as np
import pytest

from topobrain._utils._io import (
    atomic_save,
    atomic_write_bytes,
    atomic_write_text,
    make_temp_dir,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and umask")


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def no_leftovers(folder):
    return [p.name for p in os.scandir(folder) if p.name.startswith(".")] == []


def test_files_and_folders_get_the_umask_modes(umask, tmp_path):
    want_file, want_dir = 0o666 & ~umask, 0o777 & ~umask
    out = atomic_write_bytes(tmp_path / "new" / "a.bin", b"\x00\x01")
    assert out.read_bytes() == b"\x00\x01"
    assert mode(out) == want_file and mode(tmp_path / "new") == want_dir
    txt = atomic_write_text(tmp_path / "b.txt", "häh\n")
    assert txt.read_text(encoding="utf-8") == "häh\n" and mode(txt) == want_file

    # a writer that writes into the file it is given, one that replaces it, one that
    # chooses its format by the suffix
    def rewrite(tmp):
        os.unlink(tmp)
        with open(tmp, "w") as fh:
            fh.write("x")

    def private(tmp):  # as safetensors' save_file does
        os.unlink(tmp)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))

    for name, writer in [("c.txt", lambda tmp: open(tmp, "w").write("x")),
                         ("d.txt", rewrite), ("f.bin", private),
                         ("e.npy", lambda tmp: np.save(tmp, np.arange(3)))]:
        out = atomic_save(tmp_path / name, writer)
        assert mode(out) == want_file, name
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), np.arange(3))
    # an existing file keeps its content until the rename, and gets the new mode
    os.chmod(txt, 0o600)
    atomic_write_text(txt, "new")
    assert txt.read_text() == "new" and mode(txt) == want_file

    tmp = make_temp_dir(tmp_path / "p" / "q", "run")
    assert tmp.is_dir() and mode(tmp) == want_dir and mode(tmp_path / "p") == want_dir
    os.rmdir(tmp)
    for folder in (tmp_path, tmp_path / "p" / "q"):
        assert no_leftovers(folder)


def test_the_package_writers_respect_the_umask(umask, tmp_path):
    """The files topobrain writes for users: activations, stimulus tables."""
    from topobrain.activations import Activations
    from topobrain.sheet import CorticalSheet
    from topobrain.stimuli import StimulusSet

    acts = Activations.from_arrays({"x": np.zeros((2, 4))},
                                   {"x": CorticalSheet((2, 2), name="x")})
    stim = StimulusSet({"condition": ["S", "S"], "text": ["a b", "c d"]})
    written = [acts.save(tmp_path / "a.npz"), acts.save(tmp_path / "a.nc"),
               stim.to_tsv(tmp_path / "s.tsv"), stim.to_csv(tmp_path / "s.csv")]
    for path in written:
        assert mode(path) == 0o666 & ~umask, path.name
    assert no_leftovers(tmp_path)


def test_failures_leave_nothing_behind(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")

    def failing(tmp):
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic_save(target, failing)
    assert target.read_text() == "old" and no_leftovers(tmp_path)
    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # fails inside, after the temp file exists
    assert target.read_text() == "old" and no_leftovers(tmp_path)


def test_a_saved_model_folder_respects_the_umask(umask, tmp_path):
    torch = pytest.importorskip("torch")
    from topobrain.models.checkpoint import save_model
    from topobrain.models.gpt import GPTConfig, TopoGPT

    torch.manual_seed(0)
    model = TopoGPT(GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=1,
                              sheet_shape=(2, 2)))
    folder = save_model(tmp_path / "models" / "tiny", model, {}, None, {"name": "tiny"})
    assert mode(folder) == 0o777 & ~umask and mode(folder.parent) == 0o777 & ~umask
    files = sorted(p.name for p in folder.iterdir())
    assert "model.safetensors" in files and "config.json" in files
    for name in files:
        assert mode(folder / name) == 0o666 & ~umask, name
    assert no_leftovers(folder.parent)
