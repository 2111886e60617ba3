"""``monitor run``: the long-running process.

Signal handlers only set a flag; the main thread waits on it and then stops
in a fixed order: the scheduler (waiting for in-flight polls, each bounded by
fetch timeouts and written in one transaction), a last outbox run, the
``shutdown`` hook, the database. The database's sender lock
(:mod:`monitor.sender_lock`), held for the daemon's life, keeps a second
daemon off the same database and keeps ``monitor once`` from delivering
beside it. A damaged database stops the daemon (nothing more is written).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from .errors import ConfigError, StorageError
from .outbox import recover_interrupted
from .scheduler import build_scheduler
from .sender_lock import DAEMON, SenderLock

if TYPE_CHECKING:
    from .app import Monitor
    from .metrics_server import MetricsServer

log = logging.getLogger("monitor.daemon")


def take_sender_lock(lock: SenderLock, stop: threading.Event) -> bool:
    """Hold the database's sender lock for the daemon's life; ``False`` if stopped while waiting.

    A command such as ``monitor once`` holds it only while it delivers: wait
    for it. Another daemon holds it for good: refuse.
    """
    waiting = False
    while not lock.try_acquire(DAEMON):
        pid, role = lock.holder()
        if role == DAEMON:
            raise StorageError(
                f"{lock.path}: another monitor daemon (pid {pid or 'unknown'}) is already running on this database "
                f"({lock.db_path}); stop it first, or give this one its own --db"
            )
        if not waiting:
            log.info("waiting for %s to finish delivering alerts from %s", lock.describe_holder(), lock.db_path)
            waiting = True
        if stop.wait(0.2):
            return False
    return True


def run_daemon(monitor) -> int:
    """Run until SIGINT or SIGTERM; returns the process exit code."""
    lock = monitor.sender_lock
    # The monitor's own flag: polls in progress see it and end at their next
    # check (monitor.budget), so the first signal stops the daemon promptly.
    stop = monitor.stopping
    received: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # A second signal: leave now. Every write is one transaction, so
            # abandoning in-flight polls loses nothing that was committed.
            os.write(2, b"second signal: exiting at once\n")
            os._exit(130)
        received.append(signal.Signals(signum).name)
        stop.set()

    metrics = start_metrics(monitor)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    scheduler = None
    try:
        if lock is not None and not take_sender_lock(lock, stop):
            return 0
        # Under the lock no other process sends from this database, so every row
        # still 'sending' was left by a run that died mid-send: queue it again.
        recover_interrupted(monitor)
        scheduler = build_scheduler(monitor)
        sources = [s.name for s in monitor.config.sources.values() if s.enabled]
        log.info(
            "news-monitor started (pid %d): %d sources (%s), %d watchlists, channels: %s; database %s",
            os.getpid(), len(sources), ", ".join(sources) or "none", len(monitor.watchlists),
            ", ".join(monitor.channels) or "none", monitor.config.database,
        )
        monitor.worker_pool()  # its processes start while the first feeds are fetched
        scheduler.start()
        while not stop.wait(timeout=1.0):
            if monitor.store.damaged:
                break
        if monitor.store.damaged:
            # Writing on would spread the damage: stop, saying how to recover.
            log.error("stopping: %s", monitor.store.damaged)
            scheduler.shutdown(wait=True)
            return 1
        log.info("received %s: stopping (waiting for polls in progress)", received[0] if received else "stop")
        scheduler.shutdown(wait=True)
        try:
            monitor.dispatch()
        except StorageError as exc:
            log.error("last delivery run: %s", exc)
        log.info("news-monitor stopped")
        return 0
    finally:
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics is not None:
            metrics.stop()
        if lock is not None:
            lock.release()


def start_metrics(monitor: Monitor) -> MetricsServer | None:
    """Start the ``[metrics]`` server and count this process's events into it; ``None`` when no port is set."""
    settings = monitor.config.metrics
    if not settings.get("port"):
        return None
    from .metrics import make_registry
    from .metrics_server import MetricsServer

    registry, events = make_registry(monitor.config, monitor.store)
    try:
        server = MetricsServer(monitor.config, registry, settings["host"], settings["port"])
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings['host']}:{settings['port']}: {exc.strerror or exc}",
                          file=monitor.config.where, key="metrics.port") from None
    monitor.pm.register(events, name="metrics")
    return server.start()
