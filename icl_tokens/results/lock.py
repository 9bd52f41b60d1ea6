"""Single-writer locks: an exclusive ``flock`` on a lock file, held from open to close.

* :class:`ResultsLock` guards one results CSV (``F.csv.lock``);
* :class:`FolderLock` guards a whole output folder (``<folder>/.lock``), so a second command
  writing the same folder is refused at its start;
* :func:`terminate_as_interrupt` turns ``SIGTERM`` into ``KeyboardInterrupt`` so a terminated run
  unwinds (closing its files and removing its lock files) instead of dying in place.

A lock file holds the holder's pid (for the error message). A ``flock`` dies with its process, so
a lock file left by a killed process never blocks the next run: the next opener locks it, writes
its own pid and removes it on release. Releasing removes the file, then unlocks; an opener checks
that the file it locked is still the current one, so a holder removing it as the opener opens it
is retried rather than mistaken for a lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from .errors import ResultsLockedError

__all__ = ["FolderLock", "ResultsLock", "lock_path", "terminate_as_interrupt"]


def lock_path(path: Path) -> Path:
    """``results/F.csv`` → ``results/F.csv.lock``."""
    return path.with_name(path.name + ".lock")


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, OverflowError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _holder_text(holder: str) -> str:
    """``pid 12`` / ``pid 12 (this process)`` / ``pid 12, no longer running: ...``."""
    if not holder:
        return "pid unknown"
    if holder == str(os.getpid()):
        return f"pid {holder} (this process)"
    if not _alive(holder):
        return (f"pid {holder}, no longer running: a process it started still holds the lock; "
                "end that process")
    return f"pid {holder}"


class _Flock:
    """An exclusive, non-blocking ``flock`` on the file ``lock`` (created if missing)."""

    def __init__(self, lock: Path) -> None:
        self.lock = lock
        self._fd: int | None = None
        self._pid = os.getpid()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> str | None:
        """Lock and return None, or return the holder's pid text (``""`` if unknown).

        Raises ``OSError`` naming the lock file when it cannot be created or written.
        """
        for _ in range(20):
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                os.close(fd)
                return holder
            except OSError as e:
                os.close(fd)
                raise OSError(e.errno, e.strerror, str(self.lock)) from e
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock))
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the lock file as we opened it: retry
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            except OSError as e:
                self._unlink()
                os.close(fd)
                raise OSError(e.errno, e.strerror, str(self.lock)) from e
            self._fd, self._pid = fd, os.getpid()
            return None
        raise OSError(errno.EAGAIN, "the lock file keeps being replaced", str(self.lock))

    def _unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.lock.unlink()

    def release(self) -> None:
        """Remove the lock file, then unlock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if os.getpid() == self._pid:  # a forked child must not remove its parent's lock
                self._unlink()
        finally:
            os.close(fd)  # closing releases the flock (once no forked copy holds it)


def _acquire(flock: _Flock) -> str | None:
    """``flock.try_acquire()``, retried once each when this process holds it (an unreachable
    object may: collect it) and when the recorded holder is dead (a new holder may not have
    written its pid yet). Returns None when locked, else the holder's pid text."""
    tried: set[str] = set()
    while True:
        holder = flock.try_acquire()
        if holder is None:
            return None
        if holder == str(os.getpid()) and "gc" not in tried:
            tried.add("gc")
            gc.collect()
        elif holder != str(os.getpid()) and not _alive(holder) and "dead" not in tried:
            tried.add("dead")
            time.sleep(0.05)
        else:
            return holder


class ResultsLock:
    """The exclusive ``flock`` on :func:`lock_path` of the CSV ``path``, held by one object.

    Args:
        path: The CSV the lock guards (named in the messages).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._flock = _Flock(lock_path(path))

    @property
    def held(self) -> bool:
        return self._flock.held

    def acquire(self) -> None:
        """Lock, or raise :class:`ResultsLockedError` (``ValueError`` if the file can't be made)."""
        try:
            holder = _acquire(self._flock)
        except OSError as e:
            raise ValueError(f"cannot create the lock file {e.filename or self._flock.lock}: "
                             f"{e.strerror or e}; choose another --out.") from e
        if holder is not None:
            raise ResultsLockedError(
                f"another run ({_holder_text(holder)}) is writing {self.path}; wait for it to "
                "finish or choose another --out."
            )

    def release(self) -> None:
        """Remove the lock file, then unlock (idempotent)."""
        self._flock.release()


class FolderLock:
    """An exclusive ``flock`` on ``<folder>/.lock`` for the ``with`` block (or acquire/release).

    Creates ``folder`` (and missing parents) if needed; releasing removes the lock file and the
    folders this lock created if they are then empty.

    Raises:
        ResultsLockedError: another command (this or another process) holds the folder.
        ValueError: the folder or its lock file cannot be created.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._flock = _Flock(self.folder / ".lock")
        self._made: list[Path] = []

    @property
    def held(self) -> bool:
        return self._flock.held

    def acquire(self) -> None:
        """Lock the folder (a no-op if this object holds it already)."""
        from .records import make_parents, remove_empty

        if self.held:
            return
        try:
            self._made = make_parents(self._flock.lock)
            holder = _acquire(self._flock)
        except OSError as e:
            remove_empty(self._made)
            raise ValueError(f"cannot lock the folder {self.folder}: {e.strerror or e} "
                             f"({e.filename or self._flock.lock}); choose another output "
                             "folder.") from e
        if holder is not None:
            remove_empty(self._made)
            raise ResultsLockedError(
                f"another command ({_holder_text(holder)}) is writing the folder "
                f"{self.folder}; wait for it to finish or choose another output folder."
            )

    def release(self) -> None:
        from .records import remove_empty

        try:
            self._flock.release()
        finally:
            remove_empty(self._made)
            self._made = []

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"terminated (signal {signum})")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While active in the main thread, ``SIGTERM`` raises ``KeyboardInterrupt``.

    So a terminated run unwinds like Ctrl-C: ``with`` blocks close their results files and
    remove their lock files. The previous handler is restored on exit. Elsewhere than the main
    thread (where handlers cannot be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
