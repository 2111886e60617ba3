"""One sender per database: an exclusive ``flock`` held by whoever delivers alerts from it.

The daemon holds it for its whole life; ``monitor once`` and ``monitor alerts
--retry`` hold it only while they deliver, and leave delivery to a daemon that
holds it. So no two processes ever send from the same outbox: a row left
``sending`` when the holder took the lock was left by a process that died
mid-send (the kernel releases a ``flock`` when its holder ends, even by
SIGKILL), however long a live sender pauses between sending and marking sent.

The lock file is ``<real path of the database>.lock``: a symlink, a ``..``
path or a relative path to the same file finds the same lock. (SQLite itself
does not support hard links to a database: its ``-wal`` file goes by the
name.) The file holds the holder's pid, its role and the database's inode,
for the messages.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import IO

from .errors import StorageError

DAEMON = "daemon"


class SenderLock:
    """The right to deliver alerts from the database at ``db_path``; re-entrant within a process."""

    def __init__(self, db_path: str | Path):
        real = Path(os.path.realpath(db_path))
        self.db_path = real
        self.path = real.with_name(real.name + ".lock")
        self.role: str | None = None
        self._fh: IO[str] | None = None
        self._depth = 0
        self._mutex = threading.Lock()

    def try_acquire(self, role: str) -> bool:
        """Take the lock if no other process holds it; ``False`` if one does.

        :raises StorageError: the lock file cannot be created or opened.
        """
        with self._mutex:
            if self._fh is not None:
                self._depth += 1
                return True
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fh = open(self.path, "a+")
            except OSError as exc:
                raise StorageError(f"{self.path}: cannot open the sender lock file: {exc.strerror}; "
                                   "news-monitor needs to write beside its database") from exc
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                return False
            fh.seek(0)
            fh.truncate()
            inode = self.db_path.stat().st_ino if self.db_path.exists() else 0
            fh.write(f"{os.getpid()} {role} {inode}\n")
            fh.flush()
            self._fh, self.role, self._depth = fh, role, 1
            return True

    def release(self) -> None:
        """Give back one :meth:`try_acquire`; the lock goes when the last one is given back."""
        with self._mutex:
            if self._fh is None:
                return
            self._depth -= 1
            if self._depth:
                return
            # Emptied first: a reader must not take a stale pid for the holder.
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh, self.role = None, None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self._fh is not None

    def holder(self) -> tuple[int | None, str]:
        """``(pid, role)`` written by the process holding the lock (``(None, "")`` if unknown)."""
        try:
            fields = self.path.read_text(encoding="utf-8").split()
        except OSError:
            return None, ""
        if not fields or not fields[0].isdigit():
            return None, ""
        # A lone pid: written by a daemon of an earlier release.
        return int(fields[0]), fields[1] if len(fields) > 1 else DAEMON

    def describe_holder(self) -> str:
        """``"a monitor daemon (pid 123)"`` or ``"a monitor command (pid 123)"``, for messages."""
        pid, role = self.holder()
        who = "a monitor daemon" if role == DAEMON else "another monitor command"
        return f"{who} (pid {pid})" if pid else who
