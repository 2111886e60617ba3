"""A fleet worker: one of any number of identical processes sharing one PostgreSQL database.

Each worker loops: claim a due host's lease (:mod:`monitor.leases`), poll
that host's due sources with at most ``fetch.max_per_host`` requests at once,
write each poll fenced by the lease (:mod:`monitor.fleet_tables`), give the
lease back with the host's next due time. ``fleet.hosts_at_once`` hosts are
worked on at the same time. Because only the lease holder polls a host, the
per-host cap holds across every worker.

A heartbeat thread renews the leases this worker holds and its row in
``fleet_workers``. A worker also keeps a local deadline per lease on the
monotonic clock (which keeps running while a process is stopped): past it,
no new request is started under that lease, so a worker continued after a
SIGSTOP does not hit a host that another worker owns now. The fence at the
write is what makes it safe; the local deadline only keeps it polite.

Alerts: a worker claims a channel's lease, puts back rows left ``sending``
under an older token (their sender died mid-send: the one duplicate window,
which the ``Idempotency-Key`` lets receivers close), then claims, sends and
marks rows one at a time, each step fenced. One dispatcher per channel at a
time, whatever the number of workers.

When PostgreSQL goes away the worker logs it once per outage, retries with
backoff (``RETRY_FIRST`` doubling to ``RETRY_MAX`` seconds) and carries on
where the database says it is: nothing it had committed is lost, and what it
had not committed is polled again by whoever holds the lease next.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from . import reading
from .config import parse_rate_limit
from .errors import ConfigError, ConfigErrors, SourceError
from .fleet_tables import WORK_SCHEMA, SourceRow, due_sources, host_of, next_due, record_failure, record_poll, sync_sources
from .leases import CHANNEL, HOST, Coordinator, Lease, LeaseLost, new_worker_id
from .models import Alert, FetchState, Source, Story
from .outbox import render
from .polling import next_poll_after_failure, next_poll_after_success, planned_interval, quiet_on_first_poll
from .safetext import MESSAGE_MAX, safe_line
from .store import match_from_row
from .timeutil import utcnow

if TYPE_CHECKING:
    from .app import Monitor
    from .config import Config

__all__ = ["FleetSettings", "FleetWorker", "run_worker", "main"]

log = logging.getLogger("monitor.fleet")

# The database cannot be used for now: down, restarting, unreachable, or it ended this
# session (a worker paused inside a transaction past its lease).
CONNECTION_LOST = (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout, PoolTimeout)
RETRY_FIRST = 0.5
POOL_WAIT = 5.0
RETRY_MAX = 15.0
SEND_BATCH = 100


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
        self.hosts = sorted({host_of(s) for s in self.sources.values()})
        self.channels = {name: tuple(w.channels) for name, w in monitor.config.watchlists.items()}
        digests = [name for name, table in monitor.config.channels.items() if table.get("digest")]
        if digests:
            raise ConfigErrors([ConfigError("fleet workers do not send digests yet; remove digest from this channel "
                                            "or run a single monitor on SQLite", file=monitor.config.where,
                                            key=f"channels.{name}.digest") for name in digests])
        self._held: dict[tuple[str, str], _Held] = {}
        self._held_lock = threading.Lock()
        self._outage = threading.Lock()
        # Since the last heartbeat: [claims, their seconds, the longest], [polls, last source].
        self._claims: list = [0, 0.0, 0.0]
        self._polls: list = [0, None]
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

    def _configure(self, conn: psycopg.Connection) -> None:
        # A worker stopped inside a transaction holds its lease row's lock: the
        # server ends such a session so the lease can pass on.
        conn.execute(f"SET idle_in_transaction_session_timeout = {int(self.settings.lease * 1000)}")

    # -- the database, with retries ----------------------------------------------------------

    @contextmanager
    def coordinator(self) -> Iterator[Coordinator]:
        """A coordinator on a pooled connection."""
        with self.pool.connection() as conn:
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
        """Create the tables if needed, add this worker's sources and their hosts' leases, say hello."""
        with self.coordinator() as coord:
            coord.create_schema()
            with coord.conn.transaction():
                coord.conn.execute("SELECT pg_advisory_xact_lock(%s)", [0x6E65_7774])
                coord.conn.execute(WORK_SCHEMA)
            with coord.conn.cursor() as cur:
                sync_sources(cur, self.sources.values())
            coord.ensure(HOST, self.hosts)
            coord.ensure(CHANNEL, sorted(self.monitor.channels))
            coord.register()

    def run(self) -> None:
        """Work until :attr:`stopping` is set; then give back every lease."""
        self.pool.open(wait=False)
        try:
            if self.retrying("starting", self.setup) is None and self.stopping.is_set():
                return
            beat = threading.Thread(target=self._heartbeats, name="fleet heartbeat", daemon=True)
            beat.start()
            with ThreadPoolExecutor(self.settings.hosts_at_once, thread_name_prefix="fleet host") as hosts:
                last_dispatch = 0.0
                while not self.stopping.is_set():
                    claimed = None
                    if self._hosts_held() < self.settings.hosts_at_once:
                        claimed = self.retrying("claiming a host", self._claim, HOST, self.hosts)
                    if claimed is not None:
                        hosts.submit(self._work_host, claimed)
                        continue
                    if time.monotonic() - last_dispatch >= self.settings.dispatch_every:
                        last_dispatch = time.monotonic()
                        self._dispatch_all()
                    self.stopping.wait(self.settings.idle)
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
        with self.coordinator() as coord:
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
                    for _ in polls.map(lambda row: self._poll(lease, row), due):
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

    def _due(self, lease: Lease) -> list[SourceRow]:
        with self.pool.connection() as conn:
            return due_sources(conn, lease.name, list(self.sources))

    def _release_host(self, lease: Lease) -> None:
        with self.coordinator() as coord:
            coord.release(lease, next_due(coord.conn, lease.name))

    def _poll(self, lease: Lease, row: SourceRow) -> None:
        """Fetch, read and store one source under ``lease``.

        :raises LeaseLost: the lease was lost; the host's remaining sources are left to its next holder.
        """
        if self.stopping.is_set():
            return
        if not self.still_mine(lease):
            raise LeaseLost(lease)
        source = self.sources[row.name]
        state = FetchState(etag=row.etag, last_modified=row.last_modified, first_poll=row.polls == 0,
                           error_count=row.errors)
        now = utcnow()
        try:
            fetched = self.monitor.pm.hook.fetch_source(source=source, state=state, monitor=self.monitor)
            if fetched is None:
                raise SourceError(f"no loaded plugin can read a source of kind {source.kind!r}", url=source.url)
            if fetched.not_modified:
                stories: list[Story] = []
                matches: list = []
            else:
                read = reading.read_feed(self.monitor, source, fetched, now, self.monitor.classifiers)
                stories = read.new + read.changed
                matches = reading.finish(self.monitor, read)
        except SourceError as exc:
            error = safe_line(self.monitor.config.redact(exc.message), MESSAGE_MAX)
            log.warning("%s: %s", source.name, error)
            after = next_poll_after_failure(source, row.errors, now, getattr(exc, "retry_after", None),
                                            max_backoff=float(self.monitor.config.schedule["max_interval"]))
            self.retrying(f"recording {source.name}", self._record_failure, lease, source, error, after.at)
            return
        window = float(self.monitor.config.alerts["new_source_window"])
        quiet = quiet_on_first_poll(stories, window, now) if state.first_poll and window else set()
        plan = planned_interval(source, self.monitor.config.schedule, len(stories))
        after = next_poll_after_success(now, plan, fetched.headers, float(self.monitor.config.schedule["jitter"]))
        stored, queued = self.retrying(
            f"storing {source.name}", self._record_poll, lease, source, stories, matches, quiet, after.at,
            fetched.etag, fetched.last_modified) or (0, 0)
        log.info("%s: %d entries, %d new, %d alert(s) queued (worker %s)", source.name, len(stories), stored,
                 queued, self.worker)

    def _record_poll(self, lease: Lease, source: Source, stories: list[Story], matches: list, quiet: set[str],
                     next_poll_at: datetime, etag: str | None, last_modified: str | None) -> tuple[int, int]:
        with self.coordinator() as coord:
            counts = record_poll(coord, lease, source, stories=stories, matches=matches, channels=self.channels,
                                 quiet=quiet, next_poll_at=next_poll_at, etag=etag, last_modified=last_modified)
        self._count_poll(source)
        return counts

    def _count_poll(self, source: Source) -> None:
        with self._held_lock:
            self._polls = [self._polls[0] + 1, source.name]

    def _record_failure(self, lease: Lease, source: Source, error: str, next_poll_at: datetime) -> None:
        with self.coordinator() as coord:
            record_failure(coord, lease, source, error, next_poll_at)
        self._count_poll(source)

    # -- alerts --------------------------------------------------------------------------------

    def _dispatch_all(self) -> None:
        for name in sorted(self.monitor.channels):
            if self.stopping.is_set():
                return
            lease = self.retrying(f"claiming channel {name}", self._claim, CHANNEL, [name])
            if lease is None:
                continue
            try:
                self._dispatch(lease)
                if self.still_mine(lease):
                    self._drop(lease)  # first: the heartbeat must not renew what is being given back
                    self.retrying(f"releasing channel {name}", self._with, lambda c: c.release(lease))
            except LeaseLost as exc:
                log.warning("%s", exc)
            except CONNECTION_LOST as exc:
                self._database_down(f"sending alerts to {name}", exc, RETRY_FIRST)
            finally:
                self._drop(lease)

    def _dispatch(self, lease: Lease) -> None:
        channel = lease.name
        with self.coordinator() as coord:
            with coord.fenced(lease) as cur:
                # Claimed under an older token: that sender stopped mid-send. Sent again; the
                # receiver may see it twice and can tell by the Idempotency-Key.
                cur.execute(
                    "UPDATE fleet_outbox SET status = 'pending', last_error = 'interrupted while sending (the worker "
                    "stopped); sent again, the receiver may see it twice' "
                    "WHERE channel = %s AND status = 'sending' AND claimed_token < %s",
                    [channel, lease.token],
                )
                if cur.rowcount:
                    log.warning("%d alert(s) to %s were being sent by a worker that stopped; sending them again",
                                cur.rowcount, channel)
            rows = coord.conn.execute(
                "SELECT o.id AS outbox_id, o.channel, o.attempts, o.story_id, o.watchlist, o.score, o.classifier, "
                "o.evidence, s.source, s.title, s.text, s.url, s.published_at FROM fleet_outbox o "
                "JOIN fleet_stories s ON s.id = o.story_id WHERE o.channel = %s AND o.status = 'pending' "
                "AND o.next_attempt_at <= clock_timestamp() ORDER BY o.id LIMIT %s",
                [channel, SEND_BATCH],
            ).fetchall()
        limit = self.monitor.config.channels.get(channel, {}).get("rate_limit")
        for row in rows:
            if self.stopping.is_set() or not self.still_mine(lease):
                return
            if limit and self._rate_limited(channel, limit):
                return  # the rest wait for the next round; only the lease holder sends, so the count is exact
            self._send_one(lease, row)

    def _rate_limited(self, channel: str, spec: str) -> bool:
        count, period = parse_rate_limit(spec)
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM fleet_outbox WHERE channel = %s AND status IN ('sent', 'sending') "
                "AND COALESCE(sent_at, claimed_at) > clock_timestamp() - make_interval(secs => %s)",
                [channel, period],
            ).fetchone()
        return row["n"] >= count

    def _send_one(self, lease: Lease, row: dict[str, Any]) -> None:
        with self.coordinator() as coord:
            with coord.fenced(lease) as cur:
                cur.execute(
                    "UPDATE fleet_outbox SET status = 'sending', claimed_by = %s, claimed_token = %s, "
                    "claimed_at = clock_timestamp(), attempts = attempts + 1 WHERE id = %s AND status = 'pending'",
                    [lease.owner, lease.token, row["outbox_id"]],
                )
                if cur.rowcount != 1:
                    return
        alert = self._alert(row)
        channel = self.monitor.channels[alert.channel]
        try:
            channel.send(render(self.monitor, alert, self.monitor.config.channels[alert.channel]["type"]), alert)
            error = None
        except Exception as exc:  # a channel's failure costs this alert a retry, never the worker
            error = safe_line(self.monitor.config.redact(f"{type(exc).__name__}: {exc}"), MESSAGE_MAX)
        # The duplicate window: the receiver has it, the row is not marked yet.
        with self.coordinator() as coord:
            with coord.fenced(lease) as cur:
                if error is None:
                    cur.execute("UPDATE fleet_outbox SET status = 'sent', sent_at = clock_timestamp(), "
                                "last_error = NULL WHERE id = %s AND claimed_token = %s",
                                [alert.id, lease.token])
                    return
                attempts = row["attempts"] + 1
                settings = self.monitor.config.alerts
                final = attempts >= settings["max_attempts"]
                delay = min(settings["backoff"] * 2 ** (attempts - 1), settings["backoff_max"]) * random.uniform(0.75, 1.25)
                cur.execute(
                    "UPDATE fleet_outbox SET status = %s, last_error = %s, "
                    "next_attempt_at = clock_timestamp() + make_interval(secs => %s) WHERE id = %s AND claimed_token = %s",
                    ["failed" if final else "pending", error, delay, alert.id, lease.token],
                )
        log.warning("alert %s to %s failed (attempt %d): %s", alert.id, alert.channel, attempts, error)

    def _alert(self, row: dict[str, Any]) -> Alert:
        from .models import Watchlist

        match = match_from_row(row)
        story = Story(id=row["story_id"], source=row["source"], title=row["title"], text=row["text"], url=row["url"],
                      published=row["published_at"])
        watchlist = self.monitor.config.watchlists.get(match.watchlist) or Watchlist(name=match.watchlist)
        return Alert(id=row["outbox_id"], channel=row["channel"], match=match, story=story, watchlist=watchlist,
                     attempts=row["attempts"])


def run_worker(config: Config, url: str, settings: FleetSettings | None = None, worker_id: str | None = None) -> int:
    """Open the monitor for ``config`` and work as one fleet worker on ``url`` until SIGTERM or SIGINT.

    ``config.db_path`` is the worker's own scratch SQLite file (for plugins
    that keep something locally); the fleet's data is in PostgreSQL.
    """
    from .app import Monitor

    try:
        monitor = Monitor.open(config)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(f"error: {config.redact(str(error))}", file=sys.stderr)
        return 2
    try:
        worker = FleetWorker(monitor, url, settings, worker_id=worker_id)
    except ConfigErrors as exc:
        monitor.close()
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: monitor.stopping.set())
    log.info("fleet worker %s started on %d sources over %d hosts", worker.worker, len(worker.sources),
             len(worker.hosts))
    try:
        worker.run()
    finally:
        monitor.close()
    return 0


def scratch_database() -> Path:
    """A fresh scratch SQLite path for a worker's :class:`Monitor`."""
    return Path(tempfile.mkdtemp(prefix="monitor-fleet-")) / "scratch.db"


def main(argv: list[str] | None = None) -> int:
    """``python -m monitor.fleet --config FILE --postgres URL``: one worker, with the lease timings as options."""
    from .config import load_config
    from .errors import ConfigErrors
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
        config = load_config(args.config, db=scratch_database())
    except ConfigErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.redact)
    settings = FleetSettings(lease=args.lease, heartbeat=args.heartbeat, hosts_at_once=args.hosts_at_once)
    return run_worker(config, args.postgres, settings, worker_id=args.id)


if __name__ == "__main__":
    sys.exit(main())
