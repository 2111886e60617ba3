"""The storage interface: what the monitor, its commands and its plugins may ask of a database.

Two implementations stand behind it: :class:`monitor.sqlite_store.SQLiteStore`
(the zero-setup default, one file) and
:class:`monitor.postgres_store.PostgresStore` (PostgreSQL, shared by many
processes). Both share the portable SQL of :mod:`monitor.sql_store`; each keeps
its own dialect: schema and migrations, full-text search, pruning, the way a
transaction is taken. :func:`open_store` picks one from the location the
configuration or ``--db`` gives: a ``postgresql://`` URL, else a file path.

Nothing outside the implementations touches a connection: callers use the
methods below, and :meth:`Storage.query` and :meth:`Storage.write` speak a
neutral SQL (``?`` placeholders, ISO 8601 text timestamps) that both dialects
run. Plugins that keep data per watchlist use the model methods
(:meth:`Storage.models`, :meth:`Storage.save_model`, :meth:`Storage.forget_model`).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from .models import Evidence, FetchState, Feedback, Match, Source, Story, Watchlist
from .secrets import Secrets
from .timeutil import from_iso

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str | Path | None) -> bool:
    """Whether a database location names a PostgreSQL server rather than a SQLite file."""
    return isinstance(location, str) and location.lower().startswith(POSTGRES_SCHEMES)


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: what logs and errors may show."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def describe_location(location: str | Path) -> str:
    """How messages name a database: the file path, or the URL with its password redacted."""
    return redact_url(location) if is_postgres_url(location) else str(location)


@dataclass(frozen=True)
class SourceOutcome:
    """What to record on a source's row after a poll."""

    status: str  # "ok", "not_modified", "error", "gone"
    http_status: int | None = None
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    next_poll_at: datetime | None = None
    url: str | None = None  # the effective URL after a permanent redirect, if one moved it
    interval: float | None = None  # seconds to the next poll, before jitter
    note: str | None = None  # what a successful poll read around (malformed XML, duplicates)
    # Why the next poll is when it is (see monitor.polling.Plan): "interval",
    # "adaptive", "max_age", "retry_after", "backoff" or "gone", and in words.
    poll_basis: str | None = None
    poll_reason: str | None = None


@dataclass(frozen=True)
class SavedUpdate:
    """Counts from :meth:`Storage.save_update`."""

    new_stories: int
    updated_stories: int
    matches: int
    alerts_queued: int
    new_match_ids: tuple[int, ...]


class Cursor(Protocol):
    """What :meth:`Transaction.execute` returns: the rows a statement changed, and any it returned."""

    rowcount: int

    def fetchone(self) -> Sequence[Any] | None: ...

    def fetchall(self) -> list[Sequence[Any]]: ...


class Transaction(Protocol):
    """One open write transaction (from :meth:`Storage.write`): neutral SQL, ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class Storage(ABC):
    """Every read and write the monitor makes. Thread-safe.

    ``location`` is what messages name the database by (a path, or a URL with
    its password redacted); ``warning`` is what a read command should say
    before its output (a damaged file opened read-only); ``read_only`` refuses
    every write.
    """

    location: str
    secrets: Secrets
    read_only: bool
    warning: str | None
    dialect: str  # "sqlite" or "postgresql"

    # -- the neutral SQL ------------------------------------------------------

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts."""

    @abstractmethod
    def write(self) -> AbstractContextManager[Transaction]:
        """A write transaction: committed when the block ends, rolled back when it raises.

        :raises StorageError: the transaction was rolled back.
        """

    @abstractmethod
    def fenced(self, check: Any) -> AbstractContextManager[None]:
        """Inside the block, every write transaction of this thread runs ``check(tx)`` first;
        an exception from it rolls the transaction back and reaches the caller unchanged."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection."""

    # -- sources --------------------------------------------------------------

    @abstractmethod
    def sync_sources(self, sources: Iterable[Source]) -> None:
        """Make sure every configured source has a row; keep existing fetch state."""

    @abstractmethod
    def fetch_state(self, source: Source, row: dict[str, Any] | None = None) -> FetchState:
        """What the previous poll of ``source`` left behind (read from ``row``, its :meth:`source_row`, when given)."""

    @abstractmethod
    def record_poll(self, source: Source, outcome: SourceOutcome) -> None:
        """Record a poll that stored no stories (not modified, or failed)."""

    @abstractmethod
    def record_failure(self, source: Source, outcome: SourceOutcome) -> None:
        """Record a failed poll now, or, if the database refuses the write, with the next write."""

    @abstractmethod
    def source_row(self, name: str) -> dict[str, Any] | None:
        """One source's row, or ``None``."""

    @abstractmethod
    def sources(self) -> list[dict[str, Any]]:
        """Every source row, by name."""

    @abstractmethod
    def never_polled(self, names: Sequence[str]) -> list[str]:
        """Which of ``names`` have never been polled successfully."""

    # -- stories and matches --------------------------------------------------

    @abstractmethod
    def known_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{story id: content hash}`` for the ids already stored."""

    @abstractmethod
    def save_update(self, source: Source, outcome: SourceOutcome, new: Sequence[Story], changed: Sequence[Story],
                    matches: Sequence[Match], watchlists: dict[str, Watchlist], alert: bool = True,
                    quiet: Collection[str] = (),
                    clusters: Callable[[Sequence[Story]], list[Story]] | None = None) -> SavedUpdate:
        """Write one poll's results (stories, matches, outbox rows, fetch state) in one transaction.

        :param clusters: when given, called inside the transaction with the new
            stories, once no other process assigns clusters, to give them their clusters.
        """

    @abstractmethod
    def save_matches(self, matches: Sequence[Match], watchlists: dict[str, Watchlist], *, alert: bool) -> SavedUpdate:
        """Store matches found for stored stories, queueing alerts when ``alert``."""

    @abstractmethod
    def story(self, story_id: str) -> Story | None:
        """A stored story by id."""

    @abstractmethod
    def stories_after(self, rowid: int, limit: int, since: datetime | None = None) -> list[dict[str, Any]]:
        """Stored stories in storage order after ``rowid``, for batch work over a large database."""

    @abstractmethod
    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Full-text search in the dialect's own syntax, best first."""

    @abstractmethod
    def search_candidates(self, fts_query: str | None, substrings: Sequence[Sequence[str]] = (),
                          batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every story the (FTS5-form) query finds, or holding every substring of any group."""

    @abstractmethod
    def prune(self, older_than: datetime, matched_older_than: datetime | None = None) -> int:
        """Delete old stories, leaving tombstones; returns how many."""

    @abstractmethod
    def pending_migrations(self) -> list[str]:
        """The migrations this program knows that the database has not had (read only)."""

    @abstractmethod
    def reclaim_space(self) -> int | None:
        """Give space freed by deletions back; bytes regained, or ``None`` when it cannot."""

    @abstractmethod
    def file_size(self) -> int:
        """Bytes the database takes."""

    @abstractmethod
    def set_clusters(self, clusters: dict[str, str]) -> int:
        """Record ``{story id: cluster id}`` for stories that had none; returns how many changed."""

    @abstractmethod
    def stories_for_clustering(self, *, first_seen_since: str | None = None,
                               after_rowid: int | None = None) -> list[dict[str, Any]]:
        """What the clustering index remembers of stories: first seen since a time, or stored after a rowid."""

    # -- the outbox: the claimed-row protocol (monitor.outbox) ---------------------

    @abstractmethod
    def due_channels(self, now: str) -> list[str]:
        """Channels with pending rows due at ``now``."""

    @abstractmethod
    def due_alerts(self, channel: str, now: str, limit: int) -> list[dict[str, Any]]:
        """``channel``'s pending rows due at ``now`` with their match and story, oldest first."""

    @abstractmethod
    def claim_alerts(self, ids: Sequence[int], now: str) -> list[int]:
        """Mark pending rows ``sending`` (committed before the send); the ids this call got."""

    @abstractmethod
    def update_alerts(self, ids: Sequence[int], *, only_pending: bool = False, **fields: Any) -> None:
        """Set ``fields`` on outbox rows (sent, retrying, failed, deferred)."""

    @abstractmethod
    def requeue_interrupted(self, now: str, note: str, channel: str | None = None) -> int:
        """Put rows (of ``channel``, else all) left ``sending`` by a process that died back in the queue."""

    @abstractmethod
    def requeue_failed(self, channel: str | None = None, alert_id: int | None = None) -> int:
        """Put failed rows back in the queue, due now."""

    @abstractmethod
    def channel_state(self, channel: str) -> dict[str, Any] | None:
        """A digest channel's timetable."""

    @abstractmethod
    def set_channel_state(self, channel: str, spec: str, next_digest_at: str, now: str) -> None:
        """Record a digest channel's timetable."""

    @abstractmethod
    def recent_messages(self, channel: str, after: str, until: str) -> list[dict[str, Any]]:
        """Messages sent or being sent on ``channel`` in a time window (rate limits)."""

    # -- feedback ---------------------------------------------------------------------

    @abstractmethod
    def add_feedback(self, watchlist: str, verdict: str, *, match_id: int | None = None,
                     story_id: str | None = None, note: str = "", origin: str = "cli") -> Feedback:
        """Record a verdict on a match or a missed story."""

    @abstractmethod
    def feedback(self, watchlist: str | None = None, *, story_id: str | None = None, limit: int | None = None,
                 newest_first: bool = False, with_text: bool = True) -> list[Feedback]:
        """Stored verdicts, oldest first (or newest first), at most ``limit``; ``with_text=False`` leaves the
        stories' texts unread."""

    # -- plugins' data: one row per watchlist and kind -------------------------

    @abstractmethod
    def models(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every stored model of ``kind`` (``"learned"``, ``"semantic"``), by watchlist."""

    @abstractmethod
    def save_model(self, kind: str, watchlist: str, **fields: Any) -> None:
        """Store (or replace) ``watchlist``'s model of ``kind``."""

    @abstractmethod
    def forget_model(self, kind: str, watchlist: str) -> bool:
        """Delete ``watchlist``'s model of ``kind``; whether there was one."""


def open_store(location: str | Path, secrets: Secrets | None = None, *, read_only: bool = False,
               quick_check: bool = True, for_reading: bool = False) -> Storage:
    """The store at ``location``: a PostgreSQL URL or a SQLite file path.

    :param for_reading: a read command's store: a damaged or read-only SQLite
        file is opened read-only with ``warning`` set instead of refused.
    :raises StorageError: the database cannot be opened (one line, naming it).
    """
    if is_postgres_url(location):
        from .postgres_store import PostgresStore

        return PostgresStore(str(location), secrets, read_only=read_only)
    from .sqlite_store import SQLiteStore

    if for_reading:
        return SQLiteStore.for_reading(location, secrets)
    return SQLiteStore(location, secrets, read_only=read_only, quick_check=quick_check)


def story_from_row(row: dict[str, Any]) -> Story:
    """A :class:`Story` from a ``stories`` row."""
    return Story(
        id=row["id"], source=row["source"], title=row["title"], text=row["text"],
        url=row["url"], summary=row["summary"] or "", guid=row["guid"],
        published=from_iso(row["published_at"]), fetched=from_iso(row["fetched_at"]),
        author=row["author"], language=row["language"], content_hash=row["content_hash"] or "",
        cluster=row.get("cluster_id"),
    )


def match_from_row(row: dict[str, Any]) -> Match:
    """A :class:`Match` from a ``matches`` row."""
    return Match(
        story_id=row["story_id"], watchlist=row["watchlist"], score=row["score"],
        classifier=row["classifier"] or "", evidence=Evidence.from_dict(json.loads(row["evidence"] or "{}")),
    )


__all__ = [
    "Cursor", "SavedUpdate", "SourceOutcome", "Storage", "Transaction", "describe_location",
    "is_postgres_url", "match_from_row", "open_store", "redact_url", "story_from_row",
]
