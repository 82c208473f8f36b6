"""Atomic writes: a temporary file or folder beside the target, then one rename.

Every file and folder the package writes goes through here, so that

- a crash never leaves a half-written file under the final name (the temporary
  sits beside the target, on the same file system, and ``os.replace`` is atomic);
- the result gets the modes any other program would give it: files
  ``0o666 & ~umask`` and folders ``0o777 & ~umask`` (``0o644``/``0o755`` under the
  usual umask 022, group-writable under 002). :func:`tempfile.mkstemp` and
  :func:`tempfile.mkdtemp` create ``0o600`` and ``0o700`` instead, which a rename
  would carry over and which colleagues on a shared server cannot read; here the
  kernel applies the umask itself at creation (``os.open(..., 0o666)``,
  ``os.mkdir(..., 0o777)``), so the umask is never read or changed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_save", "make_temp_dir"]

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) \
    | getattr(os, "O_CLOEXEC", 0)


def _temp_path(folder: Path, name: str, suffix: str) -> Path:
    # a hidden name that globs such as ``*.npz`` or ``chunk-*`` never match
    return folder / f".{name}.{secrets.token_hex(6)}{suffix}"


def _create_temp_file(path: Path, suffix: str) -> tuple[int, Path]:
    """An open descriptor on a new empty file beside ``path``, created ``0o666 & ~umask``."""
    for _ in range(100):
        tmp = _temp_path(path.parent, path.name, suffix)
        try:
            return os.open(tmp, _FILE_FLAGS, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits collide
            continue
    raise FileExistsError(f"Could not create a temporary file beside {path}.")  # pragma: no cover


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, with the mode ``0o666 & ~umask``.

    Parameters
    ----------
    path : str or path-like
        The file to write; missing parent folders are created (``0o777 & ~umask``).
    data : bytes

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp_file(path, ".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (as :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path, writer: Callable[[str], object]) -> Path:
    """Call ``writer(tmp_path)``, then move the file it wrote to ``path`` atomically.

    ``tmp_path`` (a str) names an existing empty file beside ``path`` with the same
    suffix (so that writers choosing a format by suffix choose the right one), created
    ``0o666 & ~umask``; whatever file the writer leaves there gets that mode (some
    writers, such as safetensors', replace it with a ``0o600`` file of their own).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp_file(path, path.suffix or ".tmp")
    want = stat.S_IMODE(os.fstat(fd).st_mode)  # 0o666 & ~umask, as the kernel made it
    os.close(fd)
    try:
        writer(str(tmp))
        if stat.S_IMODE(os.stat(tmp).st_mode) != want:
            os.chmod(tmp, want)  # the writer made its own file (safetensors: 0o600)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return path


def make_temp_dir(parent, prefix: str = "") -> Path:
    """A new empty folder in ``parent`` (a hidden, random name), mode ``0o777 & ~umask``.

    The replacement for :func:`tempfile.mkdtemp` (``0o700``) where the folder is
    published by a rename later (run folders: :class:`topobrain._utils._outdir.RunFolder`,
    which adds a lock). ``parent`` is created when missing.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = _temp_path(parent, prefix or "tmp", ".tmpdir")
        try:
            os.mkdir(tmp, 0o777)
        except FileExistsError:  # pragma: no cover
            continue
        return tmp
    raise FileExistsError(f"Could not create a temporary folder in {parent}.")  # pragma: no cover
