"""Output folders that belong to one run at a time, published whole or not at all.

A run that writes into ``out``:

1. takes the folder's lock, ``<parent>/.<name>.lock``, a file naming its holder (pid,
   host, start time, command). On POSIX the lock is an ``flock`` on that file, which the
   kernel releases when the process dies, however it dies (SIGKILL included): a lock is
   never left stale. A second run is refused with the holder's name, or waits
   (``wait=True``, or a number of seconds);
2. writes everything into a work folder beside the target,
   ``<parent>/.<name>.partial-<pid>-<token>``;
3. publishes it by renaming the work folder to ``out`` (a previous ``out`` is first moved
   aside to ``.<name>.old-<pid>`` and deleted after the rename).

So ``out`` only ever holds a finished run: a run killed at any moment leaves at most a
``.partial`` folder, which the next run of the same folder deletes. Folders are created
with the process's umask (``os.mkdir``), not the private modes of ``tempfile``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LockHolder", "OutputFolderBusy", "OutputLock", "RunFolder", "lock_path"]


class OutputFolderBusy(FileExistsError):
    """Another run holds the output folder's lock."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds an output folder: process id, host, start time (UTC, ISO 8601), command."""

    pid: int
    host: str
    started: str
    command: str

    @classmethod
    def this_process(cls) -> LockHolder:
        return cls(pid=os.getpid(), host=socket.gethostname(),
                   started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   command=" ".join(sys.argv) or sys.executable)

    def describe(self) -> str:
        return (f"pid {self.pid} on {self.host}, started {self.started} "
                f"({self.command})")


def lock_path(out) -> Path:
    """The lock file of output folder ``out``: ``<parent>/.<name>.lock``."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


def _read_holder(path: Path) -> LockHolder | None:
    for _ in range(20):  # the holder writes its record right after taking the lock
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return LockHolder(**{k: record[k] for k in ("pid", "host", "started", "command")})
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover
        return True
    return True


class OutputLock:
    """The lock of one output folder, held by one process at a time.

    Parameters
    ----------
    out : path-like
        The output folder (it need not exist; its parent is created).
    wait : bool or float, default=False
        When another run holds the lock: False refuses at once, True waits until it is
        released, a number waits at most that many seconds.
    poll : float, default=0.5
        Seconds between two attempts while waiting.
    """

    def __init__(self, out, *, wait: bool | float = False, poll: float = 0.5):
        self.out = Path(out)
        self.path = lock_path(self.out)
        self.wait = wait
        self.poll = poll
        self._fd: int | None = None
        self._flock = fcntl is not None
        self.holder: LockHolder | None = None

    # ------------------------------------------------------------------ acquire / release
    def acquire(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = None
        if self.wait is not True and self.wait:
            deadline = time.monotonic() + float(self.wait)
        while True:
            holder = self._try_acquire()
            if holder is None:
                return self
            if self.wait is False or self.wait == 0 or (
                    deadline is not None and time.monotonic() >= deadline):
                who = holder.describe() if holder else "another process"
                hint = ("wait for it, pass wait=True (--wait) to queue behind it, or pick "
                        "another output folder")
                raise OutputFolderBusy(
                    f"The output folder {self.out} is in use by another run: {who}. "
                    f"{hint.capitalize()}.")
            time.sleep(self.poll)

    def _try_acquire(self) -> LockHolder | None | bool:
        """None when acquired; else the holder (or False when it cannot be read)."""
        me = LockHolder.this_process()
        if fcntl is None:  # pragma: no cover - Windows
            return self._try_exclusive_create(me)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return _read_holder(self.path) or False
        except OSError as exc:  # pragma: no cover - a file system without flock
            os.close(fd)
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            return self._try_exclusive_create(me)
        # the previous holder unlinks the file before unlocking: make sure ours is the
        # file that the path names now, else start again
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return self._try_acquire()
        self._write(fd, me)
        return None

    def _try_exclusive_create(self, me: LockHolder) -> LockHolder | None | bool:
        """Without flock: the lock is the file's existence; a holder on this host whose
        process is gone left it stale, and it is taken over."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            holder = _read_holder(self.path)
            if holder and holder.host == me.host and not _pid_alive(holder.pid):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                return self._try_exclusive_create(me)
            return holder or False
        self._flock = False
        self._write(fd, me)
        return None

    def _write(self, fd: int, me: LockHolder) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(asdict(me)).encode("utf-8"))
        os.fsync(fd)
        self._fd = fd
        self.holder = me

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if self._flock:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        self.holder = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class RunFolder:
    """A run's output folder: locked, written aside, published by rename.

    Use as a context manager; write into :attr:`work`; call :meth:`publish` when every
    file is written. Leaving the block without publishing (an exception) deletes the work
    folder and leaves ``out`` as it was.

    Parameters
    ----------
    out : path-like
        The target folder.
    accept : callable, optional
        ``accept(out)`` is called, under the lock, when ``out`` exists and is not empty;
        it raises to refuse the folder (another run's results) and returns to let the new
        run replace it on publishing.
    wait : bool or float, default=False
        See :class:`OutputLock`.
    """

    def __init__(self, out, *, accept=None, wait: bool | float = False):
        self.out = Path(out)
        self.lock = OutputLock(self.out, wait=wait)
        self.accept = accept
        self.work: Path | None = None

    def _leftovers(self, kind: str) -> list[Path]:
        return sorted(self.out.parent.glob(f".{self.out.name}.{kind}-*"))

    def __enter__(self) -> RunFolder:
        self.lock.acquire()
        try:
            # a run killed between its two renames left the previous results aside
            old = self._leftovers("old")
            if old and not self.out.exists():
                os.rename(old[-1], self.out)
            for p in self._leftovers("old") + self._leftovers("partial"):
                shutil.rmtree(p, ignore_errors=True)
            if self.out.exists() and not self.out.is_dir():
                raise NotADirectoryError(
                    f"The output folder {self.out} is a file. Pick another output folder.")
            if self.out.is_dir() and any(self.out.iterdir()) and self.accept is not None:
                self.accept(self.out)
            self.work = self.out.parent / (f".{self.out.name}.partial-{os.getpid()}-"
                                           f"{secrets.token_hex(4)}")
            os.mkdir(self.work)  # the umask's mode
        except BaseException:
            self.lock.release()
            raise
        return self

    def publish(self) -> Path:
        """Move the finished work folder to ``out``; returns ``out``."""
        if self.work is None:
            raise RuntimeError("RunFolder.publish called outside its with-block.")
        aside = None
        if self.out.exists():
            aside = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.rename(self.out, aside)
        os.rename(self.work, self.out)
        self.work = None
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return self.out

    def __exit__(self, *exc) -> None:
        try:
            if self.work is not None:
                shutil.rmtree(self.work, ignore_errors=True)
                self.work = None
        finally:
            self.lock.release()
