"""Prometheus metrics: counters from this process's events, gauges read from the database.

Counters (polls by outcome, fetch durations, matches, deliveries) count what
this process did, through the ``track_event`` hook and a wrapper around
``fetch_source``; register an :class:`EventMetrics` with the plugin manager.
Gauges (stories, matches per watchlist, alerts per channel and status,
outbox depth, overdue polls, each source's last success) are read from the
database on every scrape by :class:`DatabaseCollector`, so any process — the
daemon, a worker, ``monitor serve`` — reports the same state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .errors import StorageError
from .hookspecs import hookimpl
from .models import AlertFailed, AlertSent, Event, MatchFound, SourceFailed, SourceUpdated
from .storage import open_store
from .timeutil import from_iso, utcnow

if TYPE_CHECKING:
    from .config import Config
    from .storage import Storage

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class EventMetrics:
    """A plugin object counting this process's polls, matches and deliveries into ``registry``."""

    def __init__(self, registry: CollectorRegistry):
        self.polls = Counter("monitor_polls", "Polls of a source by outcome (ok, not_modified, error).",
                             ["outcome"], registry=registry)
        self.fetch_seconds = Histogram("monitor_fetch_duration_seconds", "Time one fetch of a source took.",
                                       buckets=FETCH_BUCKETS, registry=registry)
        self.matches = Counter("monitor_matches_found", "New matches found, by watchlist.", ["watchlist"],
                               registry=registry)
        self.deliveries = Counter("monitor_alert_deliveries", "Alert delivery attempts by channel and result "
                                  "(sent, retrying, failed).", ["channel", "result"], registry=registry)

    @hookimpl
    def track_event(self, event: Event) -> None:
        """Count one event."""
        if isinstance(event, SourceUpdated):
            outcome = "error" if event.result.error else "not_modified" if event.result.not_modified else "ok"
            # A failed poll is counted by SourceFailed; SourceUpdated carries only successes then.
            if outcome != "error":
                self.polls.labels(outcome).inc()
        elif isinstance(event, SourceFailed):
            self.polls.labels("error").inc()
        elif isinstance(event, MatchFound):
            self.matches.labels(event.match.watchlist).inc()
        elif isinstance(event, AlertSent):
            self.deliveries.labels(event.channel, "sent").inc()
        elif isinstance(event, AlertFailed):
            self.deliveries.labels(event.channel, "failed" if event.final else "retrying").inc()

    @hookimpl(wrapper=True)
    def fetch_source(self) -> Iterator[Any]:
        """Time every fetch, whichever plugin answers and however it ends."""
        start = time.monotonic()
        try:
            return (yield)
        finally:
            self.fetch_seconds.observe(time.monotonic() - start)


class DatabaseCollector(Collector):
    """Gauges read from the database on every scrape (read-only): through ``store``, the
    process's own (its reads never wait behind a write: SQLite's WAL reader, PostgreSQL's
    pool), or, without one, a read-only store opened for the scrape."""

    def __init__(self, config: Config, store: Storage | None = None):
        self.config = config
        self.store = store

    def describe(self) -> list:
        return []  # collected on demand: no up-front scrape at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("monitor_database_up", "1 when the database could be read on this scrape.")
        try:
            if self.store is not None:
                families = self._read(self.store)
            else:
                with closing(open_store(self.config.db, self.config.secrets, read_only=True,
                                        quick_check=False)) as store:
                    families = self._read(store)
        except StorageError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self, store: Storage) -> list[GaugeMetricFamily]:
        return list(self._families(lambda sql: [tuple(r.values()) for r in store.query(sql)], utcnow()))

    @staticmethod
    def _families(rows: Callable[[str], list], now: datetime) -> Iterator[GaugeMetricFamily]:
        def gauge(name: str, doc: str, labels: list[str], sql: str) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=labels)
            for row in rows(sql):
                family.add_metric([str(v) for v in tuple(row)[:-1]], float(tuple(row)[-1] or 0))
            return family

        yield gauge("monitor_stories_stored", "Stories in the database.", [], "SELECT count(*) FROM stories")
        yield gauge("monitor_matches_stored", "Matches in the database, by watchlist.", ["watchlist"],
                    "SELECT watchlist, count(*) FROM matches GROUP BY watchlist")
        yield gauge("monitor_alerts", "Outbox rows by channel and status (pending, sending, sent, failed).",
                    ["channel", "status"], "SELECT channel, status, count(*) FROM outbox GROUP BY channel, status")
        yield gauge("monitor_outbox_depth", "Alerts waiting to be sent (pending or sending).", [],
                    "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
        overdue = GaugeMetricFamily("monitor_oldest_due_poll_age_seconds",
                                    "How long the most overdue poll has been due (0 when none is due).")
        oldest = rows("SELECT min(next_poll_at) FROM sources WHERE enabled = 1 AND status != 'gone'")[0][0]
        due = from_iso(oldest)
        overdue.add_metric([], max(0.0, (now - due).total_seconds()) if due else 0.0)
        yield overdue
        success = GaugeMetricFamily("monitor_source_last_success_age_seconds",
                                    "Seconds since each source's last successful poll (absent: never).",
                                    labels=["source"])
        for name, last in rows("SELECT name, last_success_at FROM sources ORDER BY name"):
            when = from_iso(last)
            if when is not None:
                success.add_metric([name], (now - when).total_seconds())
        yield success


def make_registry(config: Config, store: Storage | None = None,
                  events: bool = True) -> tuple[CollectorRegistry, EventMetrics | None]:
    """A registry with the database gauges (read through ``store`` when given) and (``events``) the
    event counters to register as a plugin."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(config, store))
    return registry, EventMetrics(registry) if events else None
