"""``monitor run``: the long-running process.

Signal handlers only set a flag; the main thread waits on it and then stops
in a fixed order: the scheduler (waiting for in-flight polls, each bounded by
fetch timeouts and written in one transaction), a last outbox run, the
``shutdown`` hook, the database. A lock file keeps a second daemon off the
same database.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

from .errors import ConfigError, StorageError
from .outbox import recover_interrupted
from .scheduler import build_scheduler

if TYPE_CHECKING:
    from .app import Monitor
    from .metrics_server import MetricsServer

log = logging.getLogger("monitor.daemon")


class DaemonLock:
    """An exclusive ``flock`` on ``<db>.lock``, released when the process ends, even by SIGKILL."""

    def __init__(self, db_path: Path):
        self.path = Path(f"{db_path}.lock")
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StorageError(
                f"{self.path}: another monitor daemon (pid {holder}) is already running on this database; "
                "stop it first, or give this one its own --db"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def run_daemon(monitor) -> int:
    """Run until SIGINT or SIGTERM; returns the process exit code."""
    lock = DaemonLock(monitor.config.db_path)
    lock.acquire()
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # A second signal: leave now. Every write is one transaction, so
            # abandoning in-flight polls loses nothing that was committed.
            os.write(2, b"second signal: exiting at once\n")
            os._exit(130)
        received.append(signal.Signals(signum).name)
        stop.set()

    try:
        metrics = start_metrics(monitor)
    except BaseException:
        lock.release()
        raise
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Under the lock no other daemon runs on this database, so every row still
    # 'sending' was left by a run that died mid-send: queue it again.
    recover_interrupted(monitor)
    scheduler = build_scheduler(monitor)
    try:
        sources = [s.name for s in monitor.config.sources.values() if s.enabled]
        log.info(
            "news-monitor started (pid %d): %d sources (%s), %d watchlists, channels: %s; database %s",
            os.getpid(), len(sources), ", ".join(sources) or "none", len(monitor.watchlists),
            ", ".join(monitor.channels) or "none", monitor.config.db_path,
        )
        scheduler.start()
        while not stop.wait(timeout=1.0):
            pass
        log.info("received %s: stopping (waiting for polls in progress)", received[0] if received else "stop")
        scheduler.shutdown(wait=True)
        monitor.dispatch()
        log.info("news-monitor stopped")
        return 0
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics is not None:
            metrics.stop()
        lock.release()


def start_metrics(monitor: Monitor) -> MetricsServer | None:
    """Start the ``[metrics]`` server and count this process's events into it; ``None`` when no port is set."""
    settings = monitor.config.metrics
    if not settings.get("port"):
        return None
    from .metrics import make_registry
    from .metrics_server import MetricsServer

    registry, events = make_registry(monitor.config.db_path)
    try:
        server = MetricsServer(monitor.config, registry, settings["host"], settings["port"])
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings['host']}:{settings['port']}: {exc.strerror or exc}",
                          file=monitor.config.where, key="metrics.port") from None
    monitor.pm.register(events, name="metrics")
    return server.start()
