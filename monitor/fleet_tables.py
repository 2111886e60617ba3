"""What a fleet worker writes in PostgreSQL, every write fenced by the lease it works under.

A poll's results (its stories, the outbox rows of its new matches, the
source's next poll time and validators) go in one transaction that starts
with :meth:`monitor.leases.Coordinator.fence`: a worker that lost its host's
lease writes nothing. Stories are keyed by their id and outbox rows are
unique per story, watchlist and channel, so even a poll repeated after a
worker died stores and queues nothing twice.

These tables are the fleet's own (``fleet_*``): the sources a worker polls
with their host and next poll time, the stories, and the outbox. They hold
what the coordination needs to be proved correct under faults; the shared
``Store`` interface for PostgreSQL is where stories and matches are meant to
live, and :func:`record_poll` is the one place that would call it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from .leases import Coordinator, Lease
from .models import Match, Source, Story

__all__ = ["WORK_SCHEMA", "SourceRow", "sync_sources", "due_sources", "next_due", "record_poll", "record_failure"]

WORK_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_sources (
    name text PRIMARY KEY,
    url text NOT NULL,
    host text NOT NULL,
    next_poll_at timestamptz NOT NULL DEFAULT '-infinity',
    etag text,
    last_modified text,
    polls bigint NOT NULL DEFAULT 0,
    errors integer NOT NULL DEFAULT 0,
    last_error text,
    last_polled_by text,
    last_polled_at timestamptz
);
CREATE INDEX IF NOT EXISTS fleet_sources_host ON fleet_sources (host, next_poll_at);
CREATE TABLE IF NOT EXISTS fleet_stories (
    id text PRIMARY KEY,
    source text NOT NULL,
    title text NOT NULL,
    text text NOT NULL,
    url text,
    published_at timestamptz,
    stored_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    stored_by text NOT NULL,
    token bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_outbox (
    id bigserial PRIMARY KEY,
    story_id text NOT NULL REFERENCES fleet_stories (id),
    watchlist text NOT NULL,
    channel text NOT NULL,
    score double precision NOT NULL,
    classifier text NOT NULL,
    evidence text NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    claimed_by text,
    claimed_token bigint,
    claimed_at timestamptz,
    sent_at timestamptz,
    last_error text,
    UNIQUE (story_id, watchlist, channel)
);
CREATE INDEX IF NOT EXISTS fleet_outbox_pending ON fleet_outbox (channel, status, next_attempt_at);
"""


@dataclass(frozen=True)
class SourceRow:
    """What a poll needs from a source's row: its validators and whether it was ever polled."""

    name: str
    etag: str | None
    last_modified: str | None
    polls: int
    errors: int


def host_of(source: Source) -> str:
    """The host a source's requests go to (lower-case; the scheme's default port is not part of it)."""
    from urllib.parse import urlsplit

    parts = urlsplit(source.url)
    return (parts.hostname or source.url).lower()


def sync_sources(cur: psycopg.Cursor[Any], sources: Iterable[Source]) -> list[str]:
    """Add the configured sources (a new URL moves a source to its new host); returns the hosts."""
    rows = [(s.name, s.url, host_of(s)) for s in sources]
    cur.executemany(
        "INSERT INTO fleet_sources (name, url, host) VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE "
        "SET url = excluded.url, host = excluded.host WHERE fleet_sources.url <> excluded.url",
        rows,
    )
    return sorted({host for _, _, host in rows})


def due_sources(conn: psycopg.Connection, host: str, names: Sequence[str]) -> list[SourceRow]:
    """The sources of ``host`` (among ``names``, this worker's configuration) whose poll is due."""
    rows = conn.execute(
        "SELECT name, etag, last_modified, polls, errors FROM fleet_sources "
        "WHERE host = %s AND name = ANY(%s) AND next_poll_at <= clock_timestamp() ORDER BY next_poll_at, name",
        [host, list(names)],
    ).fetchall()
    return [SourceRow(**row) for row in rows]


def next_due(conn: psycopg.Connection, host: str) -> datetime | None:
    """When the host's next source falls due (its lease's ``due_at`` on release)."""
    row = conn.execute("SELECT min(next_poll_at) AS at FROM fleet_sources WHERE host = %s", [host]).fetchone()
    return row["at"] if row else None


def record_poll(coordinator: Coordinator, lease: Lease, source: Source, *, stories: Sequence[Story],
                matches: Sequence[Match], channels: dict[str, Sequence[str]], quiet: set[str],
                next_poll_at: datetime, etag: str | None, last_modified: str | None) -> tuple[int, int]:
    """Write one poll under ``lease``, all or nothing; returns ``(stories stored, alerts queued)``.

    :param channels: each watchlist's channels.
    :param quiet: ids of stories stored without alerting (first poll of a new source).
    :raises monitor.leases.LeaseLost: the host's lease is no longer ours: nothing was written.
    """
    with coordinator.fenced(lease) as cur:
        stored: set[str] = set()
        for story in stories:
            cur.execute(
                "INSERT INTO fleet_stories (id, source, title, text, url, published_at, stored_by, token) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id",
                [story.id, story.source, story.title, story.text, story.url, story.published, lease.owner, lease.token],
            )
            if cur.fetchone() is not None:
                stored.add(story.id)
        queued = 0
        for match in matches:
            if match.story_id not in stored or match.story_id in quiet:
                continue  # an alert goes out for the poll that first stored the story, never again
            for channel in channels.get(match.watchlist, ()):
                cur.execute(
                    "INSERT INTO fleet_outbox (story_id, watchlist, channel, score, classifier, evidence) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [match.story_id, match.watchlist, channel, match.score, match.classifier,
                     json.dumps(match.evidence.to_dict(), ensure_ascii=False)],
                )
                queued += cur.rowcount
        cur.execute(
            "UPDATE fleet_sources SET next_poll_at = %s, etag = %s, last_modified = %s, polls = polls + 1, "
            "errors = 0, last_error = NULL, last_polled_by = %s, last_polled_at = clock_timestamp() WHERE name = %s",
            [next_poll_at, etag, last_modified, lease.owner, source.name],
        )
    return len(stored), queued


def record_failure(coordinator: Coordinator, lease: Lease, source: Source, error: str,
                   next_poll_at: datetime) -> None:
    """Record a failed poll under ``lease`` (it is retried at ``next_poll_at``).

    :raises monitor.leases.LeaseLost: the host's lease is no longer ours.
    """
    with coordinator.fenced(lease) as cur:
        cur.execute(
            "UPDATE fleet_sources SET next_poll_at = %s, errors = errors + 1, last_error = %s, polls = polls + 1, "
            "last_polled_by = %s, last_polled_at = clock_timestamp() WHERE name = %s",
            [next_poll_at, error, lease.owner, source.name],
        )
