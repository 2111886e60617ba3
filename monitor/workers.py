"""Worker processes for the CPU part of polls (``schedule.processes``).

Fetching stays in the polling threads (it waits on the network); parsing,
normalising and classifying run in a few worker processes, so they use every
core instead of taking turns behind one interpreter lock. Each worker builds
its own plugins and classifiers once (``register_classifiers``, never
``startup``), reads the database through a read-only connection and sends
plain data back; the daemon's process stays the one writer.

A worker that dies or does not answer within ``schedule.process_timeout``
costs only the poll it was running: that poll fails with a stated error and
a fresh worker takes its place.
"""

from __future__ import annotations

import logging
import queue
import signal
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection, Pipe
from typing import TYPE_CHECKING, Any

from .budget import PollInterrupted
from .errors import ParseError, SourceError
from .models import FetchResult, Source
from .reading import FeedRead, read_feed

if TYPE_CHECKING:
    from .app import Monitor
    from .config import Config

__all__ = ["WorkerPool", "WorkerError", "WorkersUnavailable"]

log = logging.getLogger("monitor.workers")

# Starting a worker imports the plugins; on a loaded machine that can take seconds.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 3.0


class WorkerError(SourceError):
    """The worker reading a feed died or hung; the poll failed, the daemon did not."""


class WorkersUnavailable(Exception):
    """No worker process could start (a plugin fails to load there): read in this process instead."""


@dataclass(frozen=True)
class Job:
    """One fetched body to read."""

    source: Source
    fetched: FetchResult
    now: datetime
    classifiers: tuple[str, ...]  # the names the worker may run (see reading.crossing_classifiers)


class WorkerPool:
    """``size`` worker processes, handed out one poll at a time.

    :param config: what each worker builds its plugins and read-only database from.
    :param timeout: seconds one feed may take in a worker before the worker is stopped.
    """

    def __init__(self, config: Config, size: int, timeout: float, stopping: threading.Event | None = None):
        self.config = config
        self.stopping = stopping or threading.Event()
        self.size = size
        self.timeout = timeout
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.unavailable: str | None = None  # why workers cannot start, once known
        for _ in range(size):
            self._idle.put(self._start())

    def _start(self) -> _Worker:
        worker = _Worker(self.config)
        with self._lock:
            self._all.add(worker)
        return worker

    def read_feed(self, source: Source, fetched: FetchResult, now: datetime, classifiers: tuple[str, ...]) -> FeedRead:
        """Read ``fetched`` in a worker.

        :raises SourceError: the feed cannot be parsed (as in-process), or the worker died or hung.
        :raises WorkersUnavailable: workers cannot start here.
        """
        if self.unavailable:
            raise WorkersUnavailable(self.unavailable)
        worker = self._idle.get()
        try:
            reply = worker.call(Job(source, fetched, now, classifiers), self.timeout, self.stopping)
        except WorkersUnavailable as exc:
            self.unavailable = str(exc)
            raise
        except _Lost as exc:
            worker = self._replace(worker)
            if self.stopping.is_set():
                raise PollInterrupted("interrupted while reading: the monitor is stopping", url=fetched.url) from None
            raise WorkerError(str(exc), url=fetched.url) from None
        finally:
            self._idle.put(worker)
        return _unpack(reply, fetched.url)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.stop()
        with self._lock:
            self._all.discard(worker)
            if self._closed:
                return worker
        return self._start()

    def close(self) -> None:
        """Stop every worker (a running job ends with a :class:`WorkerError`)."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
        for worker in workers:
            worker.stop()


class _Lost(Exception):
    """The worker died or did not answer in time."""


class _Worker:
    """One ``python -m monitor.workers FD`` process and our end of its socket.

    A plain subprocess, not ``multiprocessing.Process``: spawning re-runs the
    parent's main script in the child, which an embedding script without an
    ``if __name__ == "__main__":`` guard would turn into a second monitor.
    """

    def __init__(self, config: Config):
        self.conn, child = Pipe()
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "monitor.workers", str(child.fileno())],
                                            pass_fds=[child.fileno()], stdin=subprocess.DEVNULL)
        finally:
            child.close()
        self.conn.send(config)
        self.started = False

    def call(self, job: Job, timeout: float, stopping: threading.Event) -> Any:
        if not self.started:
            try:
                reply = self._receive(START_TIMEOUT, "did not start")
            except _Lost as exc:
                # Dying while starting is not this feed's doing (a script that starts the
                # monitor without an ``if __name__ == "__main__":`` guard does this).
                raise WorkersUnavailable(f"worker processes cannot start ({exc}); feeds are read in the daemon's "
                                         "process") from None
            if reply[0] == "failed":
                raise WorkersUnavailable(reply[1])
            self.started = True
        try:
            self.conn.send(job)
        except (OSError, ValueError):
            raise _Lost(self._death("before it could take the feed")) from None
        reply, records = self._receive(timeout, f"took longer than {timeout:g}s (process_timeout); it was stopped",
                                       stopping)
        for record in records:
            logging.getLogger(record.name).handle(record)
        return reply

    def _receive(self, timeout: float, late: str, stopping: threading.Event | None = None) -> Any:
        try:
            waited = 0.0
            # In short steps, so a stopping daemon does not wait for a long parse to end.
            while not self.conn.poll(min(0.5, timeout - waited)):
                waited += 0.5
                if waited >= timeout or (stopping is not None and stopping.is_set()):
                    self._kill()
                    raise _Lost(f"the worker process reading this feed {late}")
            return self.conn.recv()
        except (EOFError, OSError):
            raise _Lost(self._death("while reading this feed")) from None

    def _death(self, when: str) -> str:
        try:
            code = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"the worker process died {when} ({how}); a new one takes its place"

    def _kill(self) -> None:
        self.process.kill()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.process.wait(STOP_TIMEOUT)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self._kill()
        self.conn.close()


def _unpack(reply: tuple, url: str) -> FeedRead:
    kind = reply[0]
    if kind == "ok":
        return reply[1]
    if kind == "parse_error":
        raise ParseError(reply[1], url=reply[2] or url)
    raise WorkerError(reply[1], url=url)


# -- inside the worker process ----------------------------------------------------


class _Collector(logging.Handler):
    """Keeps a job's log records to send back with its result: the daemon's handlers log them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        record.msg, record.args, record.exc_info = record.getMessage(), None, None
        self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        records, self.records = self.records, []
        return records


def _serve(conn: Connection) -> None:
    # Ctrl-C reaches the whole process group: the daemon decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        config = conn.recv()
    except (EOFError, OSError):
        return
    collector = _Collector()
    root = logging.getLogger()
    root.handlers[:] = [collector]
    root.setLevel(config.log_level)
    try:
        monitor = _worker_monitor(config)
    except Exception as exc:
        conn.send(("failed", f"worker processes cannot start ({type(exc).__name__}: {exc}); "
                             "feeds are read in the daemon's process"))
        return
    collector.take()  # what plugins said while registering, the daemon's process said already
    conn.send(("ready", tuple(monitor.classifiers)))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        reply = _run(monitor, job)
        try:
            conn.send((reply, collector.take()))
        except Exception as exc:  # a plugin's result that cannot be pickled
            conn.send((("error", f"a worker could not send its result back: {type(exc).__name__}: {exc}"), []))


def _run(monitor: Monitor, job: Job) -> tuple:
    classifiers = {name: c for name, c in monitor.classifiers.items() if name in job.classifiers}
    try:
        return ("ok", read_feed(monitor, job.source, job.fetched, job.now, classifiers))
    except ParseError as exc:
        return ("parse_error", exc.message, exc.url)
    except SourceError as exc:
        return ("error", exc.message)
    except Exception as exc:  # a plugin bug costs this feed only
        log.exception("%s: unexpected error while reading %s", job.source.name, monitor.config.redact(job.fetched.url))
        return ("error", f"internal error: {type(exc).__name__}: {exc}")


def _worker_monitor(config: Config) -> Monitor:
    from .app import Monitor
    from .plugins import load_plugins, make_plugin_manager
    from .storage import open_store

    pm = make_plugin_manager()
    origins = load_plugins(pm, disable=config.disable_plugins, plugins_dir=config.plugins_dir, redact=config.redact)
    store = open_store(config.db, config.secrets, read_only=True, quick_check=False)
    monitor = Monitor(config, pm, store, origins)
    monitor.register_classifiers()
    return monitor


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
