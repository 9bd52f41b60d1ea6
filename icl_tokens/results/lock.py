"""The single-writer lock: an exclusive ``flock`` on ``F.csv.lock``, held from open to close.

The lock file holds the holder's pid (for the error message). Releasing removes the file, then
unlocks; an opener checks that the file it locked is still the current one, so a holder removing
it as the opener opens it is retried rather than mistaken for a lock.
"""

from __future__ import annotations

import fcntl
import gc
import os
from pathlib import Path

from .errors import ResultsLockedError

__all__ = ["ResultsLock", "lock_path"]


def lock_path(path: Path) -> Path:
    """``results/F.csv`` → ``results/F.csv.lock``."""
    return path.with_name(path.name + ".lock")


class ResultsLock:
    """The exclusive ``flock`` on :func:`lock_path` of the CSV ``path``, held by one object.

    Args:
        path: The CSV the lock guards (named in the messages).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = os.getpid()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Lock, or raise :class:`ResultsLockedError` (``ValueError`` if the file can't be made)."""
        lock = lock_path(self.path)
        for attempt in range(20):
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise ValueError(f"cannot create the lock file {lock}: {e.strerror or e}; "
                                 "choose another --out.") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                os.close(fd)
                if holder == str(os.getpid()) and attempt == 0:
                    gc.collect()  # an unreachable ResultsFile of this process may hold it
                    continue
                who = f"pid {holder}" if holder else "pid unknown"
                mine = " (this process)" if holder == str(os.getpid()) else ""
                raise ResultsLockedError(
                    f"another run ({who}{mine}) is writing {self.path}; wait for it to finish "
                    "or choose another --out."
                ) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the lock file as we opened it: retry
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            self._fd, self._pid = fd, os.getpid()
            return
        raise ResultsLockedError(f"could not lock {lock} (it keeps being replaced); "
                                 "choose another --out.")

    def release(self) -> None:
        """Remove the lock file, then unlock (idempotent; an opener checks it locked the current
        file)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if os.getpid() == self._pid:  # a forked child must not remove its parent's lock
                lock_path(self.path).unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing releases the flock (once no forked copy holds it)
