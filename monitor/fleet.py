"""A fleet worker: one of any number of identical processes sharing one PostgreSQL database.

Each worker loops: claim a due host's lease (:mod:`monitor.leases`), poll
that host's due sources with at most ``fetch.max_per_host`` requests at once
through the ordinary pipeline (:meth:`monitor.app.Monitor.update_source`)
with every store write fenced by the lease (:meth:`monitor.storage.Storage.fenced`),
give the lease back with the host's next due time. ``hosts_at_once`` hosts
are worked on at the same time. Because only the lease holder polls a host,
the per-host cap holds across every worker.

A heartbeat thread renews the leases this worker holds and its row in
``fleet_workers``. A worker also keeps a local deadline per lease on the
monotonic clock (which keeps running while a process is stopped): past it,
no new request is started under that lease, so a worker continued after a
SIGSTOP does not hit a host that another worker owns now. The fence at the
write is what makes it safe; the local deadline only keeps it polite.

Alerts: every worker runs the outbox dispatcher in a thread of its own; a
channel is sent by the holder of its lease (:mod:`monitor.channel_dispatch`),
so two workers send on two channels at once and never on the same one (rate
limits and digests stay exact), and the next holder resends rows left
``sending`` by a sender that died mid-send (the one duplicate window, which
the ``Idempotency-Key`` lets receivers close).

When PostgreSQL goes away the worker logs it once per outage, retries with
backoff (``RETRY_FIRST`` doubling to ``RETRY_MAX`` seconds) and carries on
where the database says it is: nothing it had committed is lost, and what it
had not committed is polled again by whoever holds the lease next.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from .errors import ConfigErrors, LeaseLost, StorageError
from .channel_dispatch import ChannelDispatcher
from .leases import CHANNEL, HOST, Coordinator, Lease, lease_lost, new_worker_id, store_fence
from .models import Source
from .polling import longest_wait
from .safetext import MESSAGE_MAX, safe_line
from .timeutil import from_iso, trusted_future, utcnow

if TYPE_CHECKING:
    from .app import Monitor
    from .config import Config

__all__ = ["FleetSettings", "FleetWorker", "run_worker", "main"]

log = logging.getLogger("monitor.fleet")

# The database cannot be used for now: down, restarting, unreachable, or it ended this
# session (a worker paused inside a transaction past its lease).
CONNECTION_LOST = (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout, PoolTimeout,
                   StorageError)
RETRY_FIRST = 0.5
POOL_WAIT = 5.0
RETRY_MAX = 15.0


@dataclass(frozen=True)
class FleetSettings:
    """How a worker shares work.

    :param lease: seconds a lease lasts unless renewed; a dead worker's hosts wait this long.
    :param heartbeat: seconds between heartbeats (and lease renewals); well under ``lease``.
    :param hosts_at_once: hosts this worker polls at the same time.
    :param idle: seconds to wait when nothing is due.
    :param dispatch_every: seconds between two looks at the outbox.
    """

    lease: float = 60.0
    heartbeat: float = 5.0
    hosts_at_once: int = 8
    idle: float = 0.5
    dispatch_every: float = 1.0


class _Held:
    """A lease this worker holds, with its local deadline on the monotonic clock."""

    def __init__(self, lease: Lease, deadline: float):
        self.lease = lease
        self.deadline = deadline


def host_of(source: Source) -> str:
    """The host a source's requests go to (lower-case): what a worker claims."""
    return (urlsplit(source.url).hostname or source.url).lower()


class FleetWorker:
    """One worker of the fleet.

    :param monitor: the configuration and plugins (fetching, parsing, classifying, channels).
    :param url: the PostgreSQL database shared by the fleet.
    """

    def __init__(self, monitor: Monitor, url: str, settings: FleetSettings | None = None,
                 worker_id: str | None = None):
        self.monitor = monitor
        self.url = url
        self.settings = settings or FleetSettings()
        self.worker = worker_id or new_worker_id()
        self.stopping = monitor.stopping
        self.per_host = int(monitor.config.fetch["max_per_host"])
        self.sources = {s.name: s for s in monitor.config.sources.values() if s.enabled}
        self.by_host: dict[str, list[str]] = {}
        for source in self.sources.values():
            self.by_host.setdefault(host_of(source), []).append(source.name)
        self.hosts = sorted(self.by_host)
        self._held: dict[tuple[str, str], _Held] = {}
        self._held_lock = threading.Lock()
        self._outage = threading.Lock()
        # Since the last heartbeat: [claims, their seconds, the longest], [polls, last source].
        self._claims: list = [0, 0.0, 0.0]
        self._polls: list = [0, None]
        if not monitor.config.is_postgres:
            raise ValueError("a fleet worker needs a monitor on a PostgreSQL database")
        self._down_since: float | None = None
        size = self.settings.hosts_at_once * self.per_host + 3
        # The pool reconnects on its own, with backoff, for as long as the server is away;
        # a caller waits POOL_WAIT at most for a connection, then logs and backs off (retrying).
        self.pool = ConnectionPool(url, min_size=1, max_size=size, open=False, timeout=POOL_WAIT,
                                   kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 10},
                                   configure=self._configure, check=ConnectionPool.check_connection,
                                   reconnect_timeout=24 * 3600, name=f"fleet {self.worker}")
        # Its own warnings repeat per connection attempt; one line per outage comes from _database_down.
        logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
        # Alerts go out under channel leases held in this worker's name (monitor.channel_dispatch).
        monitor.channel_dispatcher = _FleetChannelDispatcher(self)

    def _configure(self, conn: psycopg.Connection) -> None:
        # A worker stopped inside a transaction holds its lease row's lock: the
        # server ends such a session so the lease can pass on.
        conn.execute(f"SET idle_in_transaction_session_timeout = {int(self.settings.lease * 1000)}")

    # -- the database, with retries ----------------------------------------------------------

    @contextmanager
    def coordinator(self, wait: float | None = None) -> Iterator[Coordinator]:
        """A coordinator on a pooled connection, waiting at most ``wait`` seconds (else POOL_WAIT) for one."""
        with self.pool.connection(timeout=wait) as conn:
            yield Coordinator(conn, self.worker)

    def retrying(self, what: str, func: Any, *args: Any) -> Any:
        """``func(*args)``, retried with backoff while PostgreSQL cannot be reached; ``None`` when stopping."""
        delay = RETRY_FIRST
        while True:
            try:
                result = func(*args)
            except CONNECTION_LOST as exc:
                self._database_down(what, exc, delay)
                if self.stopping.wait(delay):
                    return None
                delay = min(delay * 2, RETRY_MAX)
                continue
            self._database_up()
            return result

    def _database_down(self, what: str, exc: Exception, delay: float) -> None:
        with self._outage:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
        detail = safe_line(str(exc).strip() or type(exc).__name__, MESSAGE_MAX)
        if first:
            log.error("PostgreSQL unreachable while %s: %s; retrying with backoff", what, detail)
        else:
            log.debug("PostgreSQL still unreachable while %s: %s; next try in %.1fs", what, detail, delay)

    def _database_up(self) -> None:
        with self._outage:
            if self._down_since is None:
                return
            lasted, self._down_since = time.monotonic() - self._down_since, None
        log.warning("PostgreSQL reachable again after %.1fs; carrying on", lasted)

    # -- life -------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the fleet's tables if needed, add its hosts' leases, say hello (the monitor added the sources)."""
        with self.coordinator() as coord:
            coord.create_schema()
            coord.ensure(HOST, self.hosts)
            coord.register()

    def run(self) -> None:
        """Work until :attr:`stopping` is set; then give back every lease."""
        self.pool.open(wait=False)
        try:
            if self.retrying("starting", self.setup) is None and self.stopping.is_set():
                return
            beat = threading.Thread(target=self._heartbeats, name="fleet heartbeat", daemon=True)
            beat.start()
            # Its own thread: a slow receiver must not hold up claiming hosts.
            sender = threading.Thread(target=self._dispatching, name="fleet dispatch", daemon=True)
            sender.start()
            with ThreadPoolExecutor(self.settings.hosts_at_once, thread_name_prefix="fleet host") as hosts:
                while not self.stopping.is_set():
                    claimed = None
                    if self._hosts_held() < self.settings.hosts_at_once:
                        claimed = self.retrying("claiming a host", self._claim, HOST, self.hosts)
                    if claimed is not None:
                        hosts.submit(self._work_host, claimed)
                        continue
                    self.stopping.wait(self.settings.idle)
            sender.join(timeout=self.settings.lease)
            beat.join(timeout=self.settings.heartbeat + 1)
        finally:
            self.retrying_once("stopping", lambda: self._with(lambda c: (c.heartbeat(self._polls[0], self._polls[1], *self._claims),
                                                                   c.stopped())))
            self.pool.close(timeout=5)

    def retrying_once(self, what: str, func: Any) -> None:
        try:
            func()
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("could not say this worker stopped (%s): %s; its leases expire on their own", what,
                        safe_line(str(exc), MESSAGE_MAX))

    def _with(self, func: Any) -> Any:
        with self.coordinator() as coord:
            return func(coord)

    def _hosts_held(self) -> int:
        with self._held_lock:
            return sum(1 for kind, _ in self._held if kind == HOST)

    def _claim(self, kind: str, names: list[str]) -> Lease | None:
        started = time.monotonic()
        with self.coordinator() as coord:
            lease = coord.claim(kind, self.settings.lease, names)
        took = time.monotonic() - started
        with self._held_lock:
            self._claims = [self._claims[0] + 1, self._claims[1] + took, max(self._claims[2], took)]
        if lease is not None:
            # Counted from before the claim was sent: never later than the database's expiry.
            with self._held_lock:
                self._held[(lease.kind, lease.name)] = _Held(lease, started + self.settings.lease * 0.9)
        return lease

    def _drop(self, lease: Lease) -> None:
        with self._held_lock:
            held = self._held.get((lease.kind, lease.name))
            if held is not None and held.lease.token == lease.token:
                del self._held[(lease.kind, lease.name)]

    def still_mine(self, lease: Lease) -> bool:
        """Whether ``lease`` is held and its local deadline has not passed (see the module's note)."""
        with self._held_lock:
            held = self._held.get((lease.kind, lease.name))
            return held is not None and held.lease.token == lease.token and time.monotonic() < held.deadline

    def _heartbeats(self) -> None:
        while not self.stopping.wait(self.settings.heartbeat):
            try:
                self._beat()
                self._database_up()
            except CONNECTION_LOST as exc:
                self._database_down("sending a heartbeat", exc, self.settings.heartbeat)

    def _beat(self) -> None:
        with self._held_lock:
            claims, self._claims = self._claims, [0, 0.0, 0.0]
            polls, self._polls = self._polls, [0, None]
        # The heartbeat is the worker's probe of the database: it does not wait out an outage in the
        # pool's queue, so the outage is logged (once) while it lasts and its end when it is over.
        with self.coordinator(wait=max(self.settings.heartbeat, 1.0)) as coord:
            try:
                coord.heartbeat(polls[0], polls[1], *claims)
            except BaseException:
                with self._held_lock:  # counted at the next heartbeat instead
                    self._claims = [self._claims[0] + claims[0], self._claims[1] + claims[1],
                                    max(self._claims[2], claims[2])]
                    self._polls = [self._polls[0] + polls[0], self._polls[1] or polls[1]]
                raise
            with self._held_lock:
                held = list(self._held.values())
            for entry in held:
                started = time.monotonic()
                try:
                    renewed = coord.renew(entry.lease, self.settings.lease)
                except LeaseLost as exc:
                    with self._held_lock:
                        current = self._held.get((entry.lease.kind, entry.lease.name))
                        lost = current is not None and current.lease.token == entry.lease.token
                    if lost:  # not merely given back since the list was taken
                        log.warning("%s", exc)
                        self._drop(entry.lease)
                    continue
                with self._held_lock:
                    current = self._held.get((renewed.kind, renewed.name))
                    if current is not None and current.lease.token == renewed.token:
                        current.deadline = started + self.settings.lease * 0.9

    # -- polling ------------------------------------------------------------------------------

    def _work_host(self, lease: Lease) -> None:
        try:
            due = self.retrying(f"reading {lease.name}'s due sources", self._due, lease)
            if due:
                with ThreadPoolExecutor(self.per_host, thread_name_prefix=f"poll {lease.name}") as polls:
                    for _ in polls.map(lambda source: self._poll(lease, source), due):
                        pass
            if self.still_mine(lease):
                self._drop(lease)  # first: the heartbeat must not renew what is being given back
                self.retrying(f"releasing {lease.name}", self._release_host, lease)
        except LeaseLost as exc:
            log.warning("%s", exc)
        except Exception:
            log.exception("host %s: unexpected error; its lease will expire and another worker takes it", lease.name)
        finally:
            self._drop(lease)

    def _rows(self, host: str) -> list[dict[str, Any]]:
        names = self.by_host.get(host, [])
        marks = ", ".join("?" * len(names))
        return self.monitor.store.query(
            f"SELECT name, url, status, next_poll_at, last_fetch_at FROM sources WHERE name IN ({marks})", names)

    def _due(self, lease: Lease) -> list[Source]:
        """The host's sources whose next poll has come (never polled ones first), as the scheduler decides it."""
        now = utcnow()
        due = []
        rows = {row["name"]: row for row in self._rows(lease.name)}
        for name in self.by_host.get(lease.name, []):
            source = self.sources[name]
            row = rows.get(name)
            if row is not None:
                if row["status"] == "gone" and row["url"] == self.monitor.store.stored_url(source):
                    continue
                at = self._next_poll(source, row, now)
                if at is not None and at > now:
                    continue
            due.append(source)
        return due

    def _next_poll(self, source: Source, row: dict[str, Any], now: datetime) -> datetime | None:
        at = from_iso(row["next_poll_at"])
        if at is None:
            return None
        return trusted_future(at, now, longest_wait(source, self.monitor.config.schedule), from_iso(row["last_fetch_at"]))

    def _release_host(self, lease: Lease) -> None:
        now = utcnow()
        times = [self._next_poll(self.sources[row["name"]], row, now) for row in self._rows(lease.name)
                 if row["status"] != "gone"]
        # A source never polled (no row yet, or no time) is due now: None releases it as due now.
        due_at = min(times) if times and None not in times and len(times) == len(self.by_host[lease.name]) else None
        with self.coordinator() as coord:
            coord.release(lease, due_at)

    def _poll(self, lease: Lease, source: Source) -> None:
        """One poll of ``source`` through the pipeline, every write of it fenced by ``lease``.

        :raises LeaseLost: the lease was lost; the host's remaining sources are left to its next holder.
        """
        if self.stopping.is_set():
            return
        if not self.still_mine(lease):
            raise lease_lost(lease)
        with self.monitor.store.fenced(store_fence(lease, source.name)):
            self.monitor.update_source(source)
        with self._held_lock:
            self._polls = [self._polls[0] + 1, source.name]

    # -- alerts --------------------------------------------------------------------------------

    def _dispatching(self) -> None:
        # A look at start (a backlog from before a restart goes out at once), then one every
        # dispatch_every; a run that had a whole batch due on a channel is followed by the next at once.
        while not self.stopping.is_set():
            more = self._dispatch()
            if self.stopping.wait(0.0 if more else self.settings.dispatch_every):
                return

    def _dispatch(self) -> bool:
        """Deliver what is due on the channels whose leases this worker can take (monitor.channel_dispatch),
        one batch per channel; whether more may be due now."""
        try:
            result = self.monitor.dispatch()
        except CONNECTION_LOST as exc:
            self._database_down("delivering alerts", exc, self.settings.dispatch_every)
        except Exception:
            log.exception("delivering alerts: unexpected error; trying again in %.1fs", self.settings.dispatch_every)
        else:
            self._database_up()
            return result.more
        return False


class _FleetChannelDispatcher(ChannelDispatcher):
    """Channel leases held like host leases: renewed by the worker's heartbeat while a send is slow,
    so only a worker that stops (or is stopped) loses one."""

    def __init__(self, worker: FleetWorker):
        super().__init__(worker.monitor, worker.pool.connection, worker.worker, worker.settings.lease)
        self.fleet = worker

    def claim(self, channel: str) -> Lease | None:
        return self.fleet._claim(CHANNEL, [channel])

    def release(self, lease: Lease) -> None:
        self.fleet._drop(lease)  # first: the heartbeat must not renew what is being given back
        super().release(lease)


def run_worker(config: Config, settings: FleetSettings | None = None, worker_id: str | None = None) -> int:
    """Open the monitor for ``config`` (its database a PostgreSQL URL) and work as one fleet worker
    until SIGTERM or SIGINT; returns the exit code."""
    from .app import Monitor

    try:
        monitor = Monitor.open(config)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(f"error: {config.redact(str(error))}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    worker = FleetWorker(monitor, config.db, settings, worker_id=worker_id)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: monitor.stopping.set())
    log.info("fleet worker %s started on %d sources over %d hosts", worker.worker, len(worker.sources),
             len(worker.hosts))
    try:
        worker.run()
    finally:
        monitor.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m monitor.fleet --config FILE --postgres URL``: one worker, with the lease timings as options."""
    from .config import load_config
    from .logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m monitor.fleet", description="Run one fleet worker.")
    parser.add_argument("--config", required=True)
    parser.add_argument("--postgres", required=True, help="postgresql://user@host/dbname shared by the fleet")
    parser.add_argument("--lease", type=float, default=FleetSettings.lease)
    parser.add_argument("--heartbeat", type=float, default=FleetSettings.heartbeat)
    parser.add_argument("--hosts-at-once", type=int, default=FleetSettings.hosts_at_once)
    parser.add_argument("--id", help="worker id (default hostname:pid:random)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, db=args.postgres)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.redact)
    settings = FleetSettings(lease=args.lease, heartbeat=args.heartbeat, hosts_at_once=args.hosts_at_once)
    return run_worker(config, settings, worker_id=args.id)


if __name__ == "__main__":
    sys.exit(main())
