"""SQLite storage: one place for every read and write the monitor makes.

The database runs in WAL mode so the CLI can read while the daemon writes.
Everything one poll produces (stories, matches, outbox rows, the source's
fetch state) is written in one ``BEGIN IMMEDIATE`` transaction: a crash
leaves either all of it or none of it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from .errors import DatabaseDamagedError, DatabaseFullError, DatabaseReadOnlyError, SchemaTooNewError, StorageError
from .migrations import apply as apply_migrations
from .migrations import is_newer_than_known
from .models import VERDICTS, Evidence, FetchState, Feedback, Match, Source, Story, Watchlist
from .query import split_cjk
from .secrets import Secrets
from .timeutil import from_iso, to_iso, utcnow

BUSY_TIMEOUT_MS = 30_000

# A story's cluster is coalesce(cluster_id, id) (stories stored before
# clustering have none); members are found through the cluster_id index and
# the primary key, never by scanning.
_CLUSTER_OF = "c AS (SELECT coalesce(cluster_id, id) AS id FROM stories WHERE id = ?)"
_IN_CLUSTER = "(other.cluster_id = c.id OR other.id = c.id)"


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
    """Counts from :meth:`Store.save_update`."""

    new_stories: int
    updated_stories: int
    matches: int
    alerts_queued: int
    new_match_ids: tuple[int, ...]


# Columns that may quote a source's URL: values from the environment never reach them.
_REDACTED_COLUMNS = {"sources": ("url", "effective_url", "last_error", "last_note"), "outbox": ("last_error",)}


class Store:
    """The database. Thread-safe: writes go through one connection, serialised by a lock;
    reads from other threads go through a second connection, so in WAL mode they never
    wait for a write to commit.

    :param secrets: the configuration's environment values; source URLs are
        stored with them redacted (``${VAR}``), and rows written before that
        are redacted on open.
    :param read_only: open the file read-only (no migrations, every write
        refused): how read commands still read a damaged or read-only database.
    :param quick_check: check the file with ``PRAGMA quick_check`` before use
        (worker processes, which only read what the daemon checked, skip it).
    """

    def __init__(self, path: str | Path, secrets: Secrets | None = None, *, read_only: bool = False,
                 quick_check: bool = True):
        self.path = Path(path)
        self.secrets = secrets or Secrets()
        self.read_only = read_only
        # Set once the file is known to be damaged: from then on every write is refused.
        self.damaged: str | None = None
        self.warning: str | None = None  # what a read command should say before its output
        # Failed polls that could not be recorded (the database refused the write): recorded by the next write.
        self._deferred: dict[str, tuple[Source, SourceOutcome]] = {}
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._writing = threading.local()  # set in the thread inside write(): its reads must see its writes
        self._reader: sqlite3.Connection | None = None
        memory = str(path) == ":memory:"
        try:
            if read_only:
                conn = _open_read_only(self.path)
            else:
                if not memory:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
            self.db = Database(conn, execute_plugins=False)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise self._failure(exc, "open the database") from exc
        try:
            self._check_before_use(quick_check)
            if not read_only:
                if not memory:
                    if not self.db.table_names():
                        # Must precede the first table: SQLite fixes it when the file is created.
                        self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                    self.db.enable_wal()
                self.db.execute("PRAGMA synchronous = NORMAL")
                self.db.execute("PRAGMA foreign_keys = ON")
                with self._lock:
                    apply_migrations(self.db)
                self._redact_stored()
                if not memory:
                    self._reader = _open_reader(self.path)
        except StorageError:
            self.db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise self._failure(exc, "open the database") from exc

    def _check_before_use(self, quick_check: bool = True) -> None:
        """Refuse a newer schema; refuse to write to a file that fails ``quick_check``."""
        problems = [r[0] for r in self.db.execute("PRAGMA quick_check(3)").fetchall()] if quick_check else ["ok"]
        if problems != ["ok"]:
            self.damaged = _damaged_message(self.path, "quick_check: " + " ".join(" ".join(problems).split()))
            if not self.read_only:
                raise DatabaseDamagedError(self.damaged)
        newer = is_newer_than_known(self.db)
        if newer:
            raise SchemaTooNewError(f"{self.path}: {newer}")

    @classmethod
    def for_reading(cls, path: str | Path, secrets: Secrets | None = None) -> "Store":
        """The database for a read command: opened as usual (migrating it), or, when the
        file is damaged or cannot be written, opened read-only with ``warning`` set."""
        try:
            return cls(path, secrets)
        except (DatabaseDamagedError, DatabaseReadOnlyError) as exc:
            if not Path(path).is_file():
                raise
            store = cls(path, secrets, read_only=True)
            store.warning = f"{exc} (reading what can be read)"
            return store

    def _failure(self, exc: BaseException, doing: str) -> StorageError:
        """One sentence for a database error, naming the file; remembers damage."""
        error = storage_error(self.path, exc, doing)
        if isinstance(error, DatabaseDamagedError):
            self.damaged = str(error)
        return error

    def _redact_stored(self) -> None:
        """Redact environment values from rows written before they were redacted on the way in."""
        values = [v for v in self.secrets.values.values() if v]
        if not values:
            return
        found = []
        for table, columns in _REDACTED_COLUMNS.items():
            for column in columns:
                hits = " OR ".join(f"instr({column}, ?) > 0" for _ in values)
                for row in self.query(f"SELECT rowid, {column} AS text FROM {table} WHERE {hits}", values):
                    found.append((table, column, row["rowid"], row["text"]))
        if not found:
            return  # the usual case: no write, so read commands stay read-only
        # secure_delete overwrites the old bytes instead of leaving them in the file's free space.
        self.db.execute("PRAGMA secure_delete = ON")
        try:
            with self.write() as db:
                for table, column, rowid, text in found:
                    db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", [self.secrets.redact(text), rowid])
        finally:
            self.db.execute("PRAGMA secure_delete = OFF")

    def stored_url(self, source: Source) -> str:
        """The form of ``source.url`` kept in the ``sources`` table (environment values redacted)."""
        return self.secrets.redact(source.url)

    def close(self) -> None:
        """Close the connections (checkpointing the WAL)."""
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._lock:
            self.db.close()

    @contextmanager
    def write(self) -> Iterator[Database]:
        """A write transaction, taken immediately so concurrent writers wait instead of failing.

        :raises StorageError: (one of its subclasses for a full disk, a
            read-only or a damaged file) the transaction was rolled back.
        """
        with self._lock:
            if self.damaged:
                raise DatabaseDamagedError(self.damaged)
            if self.read_only:
                raise DatabaseReadOnlyError(f"{self.path}: opened read-only: this command cannot write")
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise self._failure(exc, "start a write") from exc
            self._writing.active = True
            try:
                yield self.db
                self.db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self._rollback()
                raise self._failure(exc, "write") from exc
            except BaseException:
                self._rollback()
                raise
            finally:
                self._writing.active = False

    def _rollback(self) -> None:
        if self.db.conn.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass  # SQLite already rolled back (a full disk or an I/O error does that)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts (through the read connection unless this thread is writing)."""
        if self._reader is not None and not getattr(self._writing, "active", False):
            with self._read_lock:
                if self._reader is not None:
                    try:
                        cursor = self._reader.execute(sql, params)
                        names = [d[0] for d in cursor.description or ()]
                        return [dict(zip(names, row)) for row in cursor]
                    except sqlite3.DatabaseError as exc:
                        raise self._failure(exc, "read") from exc
        with self._lock:
            try:
                return list(self.db.query(sql, params))
            except sqlite3.DatabaseError as exc:
                raise self._failure(exc, "read") from exc

    # -- sources ----------------------------------------------------------------

    def sync_sources(self, sources: Iterable[Source]) -> None:
        """Make sure every configured source has a row; keep existing fetch state."""
        now = to_iso(utcnow())
        with self.write() as db:
            for source in sources:
                db.execute(
                    "INSERT INTO sources (name, url, kind, enabled, status, created_at) VALUES (?, ?, ?, ?, 'new', ?) "
                    "ON CONFLICT(name) DO UPDATE SET url = excluded.url, kind = excluded.kind, enabled = excluded.enabled",
                    [source.name, self.stored_url(source), source.kind, int(source.enabled), now],
                )

    def fetch_state(self, source: Source) -> FetchState:
        """What the previous poll of ``source`` left behind."""
        rows = self.query("SELECT * FROM sources WHERE name = ?", [source.name])
        if not rows:
            return FetchState()
        row = rows[0]
        if row["url"] != self.stored_url(source):
            # The configured URL changed: the validators belong to the old one.
            return FetchState(first_poll=row["first_polled_at"] is None)
        return FetchState(
            etag=row["etag"],
            last_modified=row["last_modified"],
            body_hash=row["body_hash"],
            last_fetch_at=from_iso(row["last_fetch_at"]),
            error_count=row["error_count"] or 0,
            first_poll=row["first_polled_at"] is None,
            effective_url=self.secrets.reveal(row["effective_url"]) if row["effective_url"] else None,
            interval=row["poll_interval"],
        )

    def record_outcome(self, db: Database, source: Source, outcome: SourceOutcome) -> None:
        """Update a source's row; call inside :meth:`write`."""
        now = to_iso(utcnow())
        ok = outcome.status in ("ok", "not_modified")
        fields: dict[str, Any] = {
            "status": outcome.status,
            "http_status": outcome.http_status,
            "last_error": self.secrets.redact(outcome.error) if outcome.error else outcome.error,
            "last_fetch_at": now,
            "next_poll_at": to_iso(outcome.next_poll_at),
            "poll_basis": outcome.poll_basis,
            "poll_reason": outcome.poll_reason,
        }
        if outcome.url:
            fields["effective_url"] = self.secrets.redact(outcome.url)
        if outcome.interval:
            fields["poll_interval"] = outcome.interval
        if ok:
            if outcome.status == "ok":  # a 304 says nothing new about the feed's damage
                fields["last_note"] = self.secrets.redact(outcome.note) if outcome.note else None
            fields.update(
                etag=outcome.etag, last_modified=outcome.last_modified, body_hash=outcome.body_hash,
                last_success_at=now, error_count=0,
            )
            db.execute(
                "UPDATE sources SET first_polled_at = coalesce(first_polled_at, ?) WHERE name = ?",
                [now, source.name],
            )
        else:
            db.execute("UPDATE sources SET error_count = error_count + 1 WHERE name = ?", [source.name])
        sets = ", ".join(f"{k} = ?" for k in fields)
        db.execute(f"UPDATE sources SET {sets} WHERE name = ?", [*fields.values(), source.name])

    def record_poll(self, source: Source, outcome: SourceOutcome) -> None:
        """Record a poll that stored no stories (not modified, or failed)."""
        with self.write() as db:
            recorded = self._record_deferred(db, but=source.name)
            self.record_outcome(db, source, outcome)
        self._forget_deferred(recorded)

    def record_failure(self, source: Source, outcome: SourceOutcome) -> None:
        """Record a failed poll now, or, if the database refuses the write, with the next write."""
        try:
            self.record_poll(source, outcome)
        except StorageError:
            with self._lock:
                self._deferred[source.name] = (source, outcome)
            raise

    def _record_deferred(self, db: Database, but: str) -> dict[str, tuple[Source, SourceOutcome]]:
        """Inside a write: record the failures that could not be written when they happened.
        Pass what it returns to :meth:`_forget_deferred` once the write has committed."""
        with self._lock:
            waiting = dict(self._deferred)
        for name, (source, outcome) in waiting.items():
            if name != but:  # this write records a newer outcome of that source
                self.record_outcome(db, source, outcome)
        return waiting

    def _forget_deferred(self, recorded: dict[str, tuple[Source, SourceOutcome]]) -> None:
        with self._lock:
            for name, entry in recorded.items():
                if self._deferred.get(name) is entry:
                    del self._deferred[name]

    def source_row(self, name: str) -> dict[str, Any] | None:
        """One source's row, or ``None``."""
        rows = self.query("SELECT * FROM sources WHERE name = ?", [name])
        return rows[0] if rows else None

    def recent_story_count(self, source: str, since: datetime) -> int:
        """Stories of ``source`` published (or, undated, first seen) since ``since``."""
        rows = self.query(
            "SELECT count(*) AS n FROM stories WHERE source = ? AND coalesce(published_at, first_seen_at) >= ?",
            [source, to_iso(since)],
        )
        return rows[0]["n"]

    def pruned_ids(self, ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` that were pruned (tombstones)."""
        out: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            out.update(r["id"] for r in self.query(f"SELECT id FROM pruned_stories WHERE id IN ({marks})", chunk))
        return out

    def prune(self, older_than: datetime, matched_older_than: datetime | None = None) -> int:
        """Delete stories first seen before ``older_than``, leaving a tombstone for each.

        Stories that matched a watchlist are kept, with their matches and
        alerts, unless ``matched_older_than`` is given and they are older than
        that too. Returns the number of stories deleted.
        """
        now = to_iso(utcnow())
        doomed, params = _prunable(older_than, matched_older_than)
        with self.write() as db:
            db.execute(
                f"INSERT OR IGNORE INTO pruned_stories (id, source, pruned_at) "
                f"SELECT id, source, ? FROM stories WHERE id IN ({doomed})", [now, *params],
            )
            if matched_older_than:
                db.execute(
                    f"DELETE FROM outbox WHERE match_id IN (SELECT id FROM matches WHERE story_id IN ({doomed}))", params
                )
                db.execute(f"DELETE FROM matches WHERE story_id IN ({doomed})", params)
            deleted = db.execute(f"DELETE FROM stories WHERE id IN ({doomed})", params).rowcount
            if deleted:
                db.execute(
                    "UPDATE sources SET stories_count = (SELECT count(*) FROM stories WHERE stories.source = sources.name)"
                )
                # A deleted row leaves a marker in the full-text index until its segments are
                # merged: without this, an emptied index keeps most of its size.
                db.execute("INSERT INTO stories_fts(stories_fts) VALUES ('optimize')")
        return deleted

    def count_prunable(self, older_than: datetime, matched_older_than: datetime | None = None) -> int:
        """How many stories :meth:`prune` would delete with the same arguments (it deletes nothing)."""
        doomed, params = _prunable(older_than, matched_older_than)
        return self.query(f"SELECT count(*) AS n FROM ({doomed})", params)[0]["n"]

    def expire_tombstones(self, older_than: datetime) -> int:
        """Forget pruned ids recorded before ``older_than``; returns how many."""
        with self.write() as db:
            return db.execute("DELETE FROM pruned_stories WHERE pruned_at < ?", [to_iso(older_than)]).rowcount

    def reclaim_space(self) -> int | None:
        """Give the pages freed by deletions back to the file system; returns the bytes the
        database (with its WAL) shrank by, or ``None`` when the file was created without
        ``auto_vacuum`` (the m005 migration converts it on the next open that can write)."""
        if str(self.path) == ":memory:":
            return 0
        with self._lock:
            if self.damaged:
                raise DatabaseDamagedError(self.damaged)
            try:
                if self.db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                    return None
                before = self.file_size()
                # executescript steps the pragma to the end; execute() would free one page only.
                self.db.conn.executescript("PRAGMA incremental_vacuum;")
                # The freed pages went through the WAL: copy them back and truncate both files.
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._failure(exc, "give the pruned space back") from exc
            return before - self.file_size()

    def file_size(self) -> int:
        """Bytes of the database file and its WAL."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def sources(self) -> list[dict[str, Any]]:
        """Every source row, by name."""
        return self.query("SELECT * FROM sources ORDER BY name")

    # -- stories and matches ----------------------------------------------------

    def known_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{story id: content hash}`` for the ids already stored."""
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.query(f"SELECT id, content_hash FROM stories WHERE id IN ({marks})", chunk):
                out[row["id"]] = row["content_hash"]
        return out

    def save_update(
        self,
        source: Source,
        outcome: SourceOutcome,
        new: Sequence[Story],
        changed: Sequence[Story],
        matches: Sequence[Match],
        watchlists: dict[str, Watchlist],
        alert: bool = True,
        quiet: Collection[str] = (),
    ) -> SavedUpdate:
        """Write one poll's results in one transaction.

        Matches already stored for a story and watchlist are kept as they are
        and alert nobody again; each new match gets one outbox row per channel
        of its watchlist (unless ``alert`` is false, or its story id is in
        ``quiet``: stored, but too old to alert on).
        """
        now = to_iso(utcnow())
        with self.write() as db:
            recorded = self._record_deferred(db, but=source.name)
            # Another poll (another source linking the same story, or another
            # process) may have stored some of these since we looked: decide
            # new-or-changed again inside the write transaction.
            stored = self.known_hashes([s.id for s in new])
            if stored:
                changed = [*changed, *(s for s in new if s.id in stored and stored[s.id] != s.content_hash)]
                new = [s for s in new if s.id not in stored]
            if new:
                db["stories"].insert_all((_story_row(s, now) for s in new), pk="id", ignore=True)
            for story in changed:
                row = _story_row(story, now)
                del row["first_seen_at"], row["cluster_id"]  # a changed story keeps its cluster
                db["stories"].update(story.id, row)
            new_ids, queued = self._insert_matches(db, matches, watchlists, now, alert=alert, quiet=quiet)
            self.record_outcome(db, source, outcome)
            if new:
                db.execute(
                    "UPDATE sources SET stories_count = (SELECT count(*) FROM stories WHERE source = ?) WHERE name = ?",
                    [source.name, source.name],
                )
        self._forget_deferred(recorded)
        return SavedUpdate(len(new), len(changed), len(new_ids), queued, tuple(new_ids))

    def _insert_matches(
        self, db: Database, matches: Sequence[Match], watchlists: dict[str, Watchlist], now: str, *,
        alert: bool, quiet: Collection[str] = (),
    ) -> tuple[list[int], int]:
        """Store new matches and queue their alerts; call inside :meth:`write`. Returns (new match ids, rows queued).

        One alert per cluster, watchlist and channel: a match whose story's
        cluster has already queued an alert for that watchlist on a channel
        queues nothing there (the first alert lists it as "also reported by").
        """
        new_ids: list[int] = []
        queued = 0
        for match in matches:
            cursor = db.execute(
                "INSERT INTO matches (story_id, watchlist, score, classifier, evidence, matched_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(story_id, watchlist) DO NOTHING",
                [match.story_id, match.watchlist, match.score, match.classifier,
                 json.dumps(match.evidence.to_dict(), ensure_ascii=False), now],
            )
            if cursor.rowcount != 1:
                continue
            match_id = cursor.lastrowid
            new_ids.append(match_id)
            if alert and match.story_id not in quiet:
                alerted = self._cluster_alerted_channels(db, match.story_id, match.watchlist)
                for channel in watchlists[match.watchlist].channels:
                    if channel in alerted:
                        continue
                    db.execute(
                        "INSERT INTO outbox (match_id, channel, status, attempts, next_attempt_at, created_at, updated_at) "
                        "VALUES (?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT(match_id, channel) DO NOTHING",
                        [match_id, channel, now, now, now],
                    )
                    queued += 1
        return new_ids, queued

    @staticmethod
    def _cluster_alerted_channels(db: Database, story_id: str, watchlist: str) -> set[str]:
        """Channels on which another story of ``story_id``'s cluster already has an alert for ``watchlist``."""
        rows = db.execute(
            # CROSS JOIN fixes the order: cluster -> its stories -> their matches, never all matches of a watchlist.
            f"WITH {_CLUSTER_OF} SELECT DISTINCT o.channel FROM c CROSS JOIN stories other ON {_IN_CLUSTER} "
            "CROSS JOIN matches m ON m.story_id = other.id AND m.watchlist = ? "
            "JOIN outbox o ON o.match_id = m.id WHERE other.id != ?",
            [story_id, watchlist, story_id],
        ).fetchall()
        return {r[0] for r in rows}

    def save_matches(self, matches: Sequence[Match], watchlists: dict[str, Watchlist], *, alert: bool) -> SavedUpdate:
        """Store matches found for stored stories (``monitor reclassify``), queueing alerts when ``alert``."""
        now = to_iso(utcnow())
        with self.write() as db:
            new_ids, queued = self._insert_matches(db, matches, watchlists, now, alert=alert)
        return SavedUpdate(0, 0, len(new_ids), queued, tuple(new_ids))

    def set_clusters(self, clusters: dict[str, str]) -> int:
        """Record ``{story id: cluster id}`` for stories that had none; returns how many changed."""
        changed = 0
        with self.write() as db:
            for story_id, cluster in clusters.items():
                changed += db.execute("UPDATE stories SET cluster_id = ? WHERE id = ? AND cluster_id IS NULL",
                                      [cluster, story_id]).rowcount
        return changed

    def stories_after(self, rowid: int, limit: int, since: datetime | None = None) -> list[dict[str, Any]]:
        """Stored stories in storage order after ``rowid`` (with it), for batch work over a large database."""
        where, params = "", []
        if since is not None:
            where, params = "AND coalesce(published_at, first_seen_at) >= ?", [to_iso(since)]
        return self.query(
            f"SELECT rowid, * FROM stories WHERE rowid > ? {where} ORDER BY rowid LIMIT ?", [rowid, *params, limit])

    def cluster_reports(self, story_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The other stories of ``story_id``'s cluster (source, title, url), earliest first."""
        return self.query(
            f"WITH {_CLUSTER_OF} SELECT other.id, other.source, other.title, other.url "
            f"FROM c JOIN stories other ON {_IN_CLUSTER} "
            "WHERE other.id != ? ORDER BY other.first_seen_at, other.rowid LIMIT ?",
            [story_id, story_id, limit],
        )

    def matches_by_cluster(
        self, watchlist: str | None = None, limit: int = 20, *, since: datetime | None = None, source: str | None = None,
    ) -> list[dict[str, Any]]:
        """Recent matches, one row per watchlist and cluster (its first matched story), newest first,
        optionally of one watchlist, of stories from one source and matched at or after ``since``.

        ``stories`` and ``sources`` count the cluster's matched stories and their distinct sources.
        """
        where, params = _match_filter(watchlist, source, since)
        return self.query(
            "WITH g AS (SELECT m.watchlist, coalesce(s.cluster_id, s.id) AS cluster, min(m.id) AS first_match, "
            "max(m.matched_at) AS last_matched, count(*) AS stories, count(DISTINCT s.source) AS sources, "
            "group_concat(DISTINCT s.source) AS source_names "
            f"FROM matches m JOIN stories s ON s.id = m.story_id {where} GROUP BY m.watchlist, cluster) "
            "SELECT m.id, m.watchlist, m.score, m.classifier, m.evidence, m.matched_at, g.cluster, g.stories, "
            "g.sources, g.source_names, g.last_matched, s.id AS story_id, s.title, s.url, s.source, s.published_at "
            "FROM g JOIN matches m ON m.id = g.first_match JOIN stories s ON s.id = m.story_id "
            "ORDER BY g.last_matched DESC, m.id DESC LIMIT ?",
            [*params, limit],
        )

    def cluster_matches(self, watchlist: str, cluster: str) -> list[dict[str, Any]]:
        """Every match of ``watchlist`` in ``cluster``, first first."""
        return self.query(
            "SELECT m.id, m.watchlist, m.score, m.matched_at, s.id AS story_id, s.title, s.url, s.source, "
            "s.published_at FROM matches m JOIN stories s ON s.id = m.story_id "
            "WHERE m.watchlist = ? AND (s.cluster_id = ? OR s.id = ?) ORDER BY m.id",
            [watchlist, cluster, cluster],
        )

    def story(self, story_id: str) -> Story | None:
        """A stored story by id."""
        rows = self.query("SELECT * FROM stories WHERE id = ?", [story_id])
        return story_from_row(rows[0]) if rows else None

    def matches(
        self, watchlist: str | None = None, limit: int = 20, *, since: datetime | None = None, source: str | None = None,
    ) -> list[dict[str, Any]]:
        """Recent matches joined with their stories, newest first, optionally of one watchlist or source
        and matched at or after ``since``."""
        where, params = _match_filter(watchlist, source, since)
        return self.query(
            "SELECT m.id, m.watchlist, m.score, m.classifier, m.evidence, m.matched_at, "
            "s.id AS story_id, s.title, s.url, s.source, s.published_at, coalesce(s.cluster_id, s.id) AS cluster "
            f"FROM matches m JOIN stories s ON s.id = m.story_id {where} "
            "ORDER BY m.matched_at DESC, m.id DESC LIMIT ?",
            [*params, limit],
        )

    def search_candidates(self, fts_query: str | None, substrings: Sequence[Sequence[str]] = (),
                          batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every story the FTS5 query finds, or whose title or text holds every substring of any group,
        with its text, in batches (for :mod:`monitor.search`)."""
        found = []
        params: list[Any] = []
        if fts_query:
            found.append("s.rowid IN (SELECT rowid FROM stories_fts WHERE stories_fts MATCH ?)")
            params.append(fts_query)
        for group in substrings:
            found.append("(" + " AND ".join("instr(s.title || char(10) || s.text, ?) > 0" for _ in group) + ")")
            params.extend(group)
        if not found:
            return
        last = 0
        while True:
            rows = self._search_rows(
                "SELECT s.rowid AS rowid, s.id, s.title, s.text, s.url, s.source, s.published_at, s.first_seen_at "
                f"FROM stories s WHERE ({' OR '.join(found)}) AND s.rowid > ? ORDER BY s.rowid LIMIT ?",
                [*params, last, batch], fts_query or "",
            )
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1]["rowid"]

    def watchlist_names(self) -> set[str]:
        """Every watchlist that has matches stored (configured or not any more)."""
        return {r["watchlist"] for r in self.query("SELECT DISTINCT watchlist FROM matches")}

    def outbox_channels(self) -> set[str]:
        """Every channel that has rows in the outbox."""
        return {r["channel"] for r in self.query("SELECT DISTINCT channel FROM outbox")}

    def outbox_counts(self) -> dict[str, int]:
        """``{status: rows}`` of the outbox."""
        return {r["status"]: r["n"] for r in self.query("SELECT status, count(*) AS n FROM outbox GROUP BY status")}

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Full-text search over stored stories (SQLite FTS5 syntax), best first.

        Runs of Chinese, Japanese or Korean characters are each required as a
        substring of the title or text (FTS5 cannot split them into words);
        the rest of the query is FTS5 as usual.
        """
        rest, runs = split_cjk(query)
        if runs:
            return self._search_cjk(query, rest, runs, limit)
        sql = ("SELECT s.id, s.title, s.url, s.source, s.published_at, "
               "snippet(stories_fts, 1, '[', ']', '…', 16) AS snippet "
               "FROM stories_fts JOIN stories s ON s.rowid = stories_fts.rowid "
               "WHERE stories_fts MATCH ? ORDER BY rank LIMIT ?")
        return self._search_rows(sql, [query, limit], query)

    def _search_rows(self, sql: str, params: list[Any], query: str) -> list[dict[str, Any]]:
        """Run a search; a query FTS5 refuses is the user's error, anything else the database's."""
        with self._lock:
            try:
                return list(self.db.query(sql, params))
            except sqlite3.OperationalError as exc:
                if not getattr(exc, "sqlite_errorname", "").startswith("SQLITE_ERROR"):
                    raise self._failure(exc, "search") from exc
                raise StorageError(f"cannot search for {query!r}: {exc} (raw FTS5 syntax with --fts; without it, "
                                   "the watchlist query language)") from exc
            except sqlite3.DatabaseError as exc:
                raise self._failure(exc, "search") from exc

    def _search_cjk(self, query: str, rest: str, runs: list[str], limit: int) -> list[dict[str, Any]]:
        """Stories holding every CJK run (and matching ``rest`` in FTS5, if any), newest first."""
        clauses = ["instr(s.title || char(10) || s.text, ?) > 0" for _ in runs]
        params: list[Any] = list(runs)
        if rest:
            clauses.append("s.rowid IN (SELECT rowid FROM stories_fts WHERE stories_fts MATCH ?)")
            params.append(rest)
        sql = ("SELECT s.id, s.title, s.url, s.source, s.published_at, s.text FROM stories s "
               f"WHERE {' AND '.join(clauses)} ORDER BY s.published_at DESC, s.rowid DESC LIMIT ?")
        rows = self._search_rows(sql, [*params, limit], query)
        for row in rows:
            row["snippet"] = _cjk_snippet(row.pop("text") or row["title"], runs[0])
        return rows

    def outbox(self, status: str | None = None, channel: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Outbox rows with their watchlist and story title, newest first."""
        clauses, params = [], []
        if status:
            clauses.append("o.status = ?")
            params.append(status)
        if channel:
            clauses.append("o.channel = ?")
            params.append(channel)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self.query(
            "SELECT o.id, o.channel, o.status, o.attempts, o.next_attempt_at, o.sent_at, o.last_error, "
            "m.watchlist, s.title FROM outbox o JOIN matches m ON m.id = o.match_id "
            f"JOIN stories s ON s.id = m.story_id {where} ORDER BY o.id DESC LIMIT ?",
            [*params, limit],
        )

    def requeue_failed(self, channel: str | None = None, alert_id: int | None = None) -> int:
        """Put failed outbox rows (of ``channel``, or only row ``alert_id``) back in the queue, due now,
        their attempts reset; returns how many."""
        now = to_iso(utcnow())
        clauses, params = [], []
        if channel:
            clauses.append("AND channel = ?")
            params.append(channel)
        if alert_id is not None:
            clauses.append("AND id = ?")
            params.append(alert_id)
        with self.write() as db:
            cursor = db.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ? "
                f"WHERE status = 'failed' {' '.join(clauses)}",
                [now, now, *params],
            )
            return cursor.rowcount
    # -- feedback and learned models ------------------------------------------

    def add_feedback(self, watchlist: str, verdict: str, *, match_id: int | None = None,
                     story_id: str | None = None, note: str = "", origin: str = "cli") -> Feedback:
        """Record a verdict on a match (``right``/``wrong``) or on a story the watchlist missed.

        A ``right`` about a story that has no match for ``watchlist`` is
        stored as ``missed`` (it should have matched). A later verdict on the
        same story and watchlist replaces the earlier one. Matches and alerts
        are never touched: feedback only teaches the next model (``monitor train``).

        :param origin: where the verdict was given (``cli``, ``web``).
        :raises StorageError: no such match or story, or an unknown verdict.
        """
        if verdict not in VERDICTS:
            raise StorageError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        if match_id is not None:
            rows = self.query("SELECT story_id, watchlist FROM matches WHERE id = ?", [match_id])
            if not rows:
                raise StorageError(f"{self.path}: no match with id {match_id} (see `monitor matches`)")
            story_id, watchlist = rows[0]["story_id"], rows[0]["watchlist"]
        story = self.story(story_id) if story_id is not None else None
        if story is None:
            raise StorageError(f"{self.path}: no story with id {story_id!r} (see `monitor search`)")
        if match_id is None:
            found = self.query("SELECT id FROM matches WHERE story_id = ? AND watchlist = ?", [story.id, watchlist])
            match_id = found[0]["id"] if found else None
        if verdict == "right" and match_id is None:
            verdict = "missed"
        now = to_iso(utcnow())
        with self.write() as db:
            db.execute(
                "INSERT INTO feedback (story_id, watchlist, verdict, match_id, title, text, note, origin, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(watchlist, story_id) DO UPDATE SET "
                "verdict = excluded.verdict, match_id = excluded.match_id, note = excluded.note, "
                "origin = excluded.origin, created_at = excluded.created_at",
                [story.id, watchlist, verdict, match_id, story.title, story.text, note, origin, now],
            )
        return self.feedback(watchlist, story_id=story.id)[0]

    def feedback(self, watchlist: str | None = None, *, story_id: str | None = None) -> list[Feedback]:
        """Stored verdicts, oldest first; only ``watchlist``'s (and ``story_id``'s) when given."""
        clauses, params = [], []
        if watchlist is not None:
            clauses.append("watchlist = ?")
            params.append(watchlist)
        if story_id is not None:
            clauses.append("story_id = ?")
            params.append(story_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self.query(f"SELECT * FROM feedback {where} ORDER BY id", params)
        return [Feedback(id=r["id"], story_id=r["story_id"], watchlist=r["watchlist"], verdict=r["verdict"],
                         match_id=r["match_id"], title=r["title"] or "", text=r["text"] or "",
                         created_at=from_iso(r["created_at"]), note=r.get("note") or "",
                         origin=r.get("origin") or "") for r in rows]

    def save_learned_model(self, watchlist: str, model: bytes, **figures: Any) -> None:
        """Store (or replace) ``watchlist``'s learned model with its figures (``learned_models`` columns)."""
        row = {"watchlist": watchlist, "model": model, "trained_at": to_iso(utcnow()), **figures}
        with self.write() as db:
            db["learned_models"].upsert(row, pk="watchlist")

    def learned_models(self) -> dict[str, dict[str, Any]]:
        """Every stored learned model's row, by watchlist."""
        return {r["watchlist"]: r for r in self.query("SELECT * FROM learned_models")}

    def forget_learned_model(self, watchlist: str) -> bool:
        """Delete ``watchlist``'s stored model; whether there was one."""
        with self.write() as db:
            return db.execute("DELETE FROM learned_models WHERE watchlist = ?", [watchlist]).rowcount > 0

    def counts(self) -> dict[str, int]:
        """Row counts of the main tables."""
        return {t: self.db[t].count for t in ("sources", "stories", "matches", "outbox")}


def _open_reader(path: Path) -> sqlite3.Connection:
    """A second connection for reads: autocommit, so each query sees the latest commit."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only = ON")
    return conn


def _prunable(older_than: datetime, matched_older_than: datetime | None) -> tuple[str, list[str]]:
    """The ids :meth:`Store.prune` deletes, as SQL and its parameters."""
    sql = (
        "SELECT id FROM stories WHERE (first_seen_at < ? AND id NOT IN (SELECT story_id FROM matches))"
        + (" OR first_seen_at < ?" if matched_older_than else "")
    )
    return sql, [to_iso(older_than)] + ([to_iso(matched_older_than)] if matched_older_than else [])


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. A WAL database needs its ``-shm`` file even to be
    read; when that cannot be created (a folder we may not write), the file is read as
    immutable, which is right as long as nothing writes it meanwhile."""
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        if not getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
            raise
        conn.close()
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)


def _damaged_message(path: Path, detail: str) -> str:
    return (f"{path}: the database file is damaged ({detail}); news-monitor will not write to it. "
            f"Recover what it holds with `sqlite3 {path} .recover | sqlite3 fixed.db` and use fixed.db "
            "(monitor.db or --db); read commands still read the damaged file")


def storage_error(path: Path, exc: BaseException, doing: str) -> StorageError:
    """The :class:`StorageError` that says in one line what ``exc`` means for the file at ``path``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return DatabaseFullError(
            f"{path}: the disk is full (or the database reached its size limit): could not {doing}; "
            "the write was undone and nothing stored before is lost; free some space and it carries on"
        )
    if name.startswith("SQLITE_READONLY") or "readonly database" in text or isinstance(exc, PermissionError):
        return DatabaseReadOnlyError(
            f"{path}: the database cannot be written (read-only file, folder or mount): could not {doing}; "
            "make the file and its folder writable for the user running news-monitor"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return DatabaseDamagedError(_damaged_message(path, text))
    return StorageError(f"{path}: could not {doing}: {text}")


def never_polled(path: str | Path, names: Sequence[str]) -> list[str]:
    """Which of ``names`` have never been polled successfully in the database at ``path``.

    Opens the file read-only and creates nothing: a missing database means
    every source is new.
    """
    path = Path(path)
    if not path.is_file():
        return list(names)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            polled = {r[0] for r in conn.execute("SELECT name FROM sources WHERE first_polled_at IS NOT NULL")}
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return list(names)
    return [n for n in names if n not in polled]


def _story_row(story: Story, now: str | None) -> dict[str, Any]:
    return {
        "id": story.id, "source": story.source, "guid": story.guid, "url": story.url,
        "title": story.title, "text": story.text, "summary": story.summary,
        "published_at": to_iso(story.published), "fetched_at": to_iso(story.fetched),
        "first_seen_at": now, "updated_at": now,
        "author": story.author, "language": story.language, "content_hash": story.content_hash,
        "cluster_id": story.cluster,
    }


def _match_filter(watchlist: str | None, source: str | None, since: datetime | None) -> tuple[str, list[Any]]:
    """The WHERE clause and parameters that narrow ``matches m JOIN stories s`` to a watchlist, source and time."""
    clauses, params = [], []
    for clause, value in (("m.watchlist = ?", watchlist), ("s.source = ?", source),
                          ("m.matched_at >= ?", to_iso(since) if since else None)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


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


def _cjk_snippet(text: str, run: str, around: int = 24) -> str:
    """The text around the first ``run``, marked ``[...]`` as FTS5's snippet() marks its hits."""
    at = text.find(run)
    if at < 0:  # the run is in the title only
        return text[: 2 * around]
    start, end = max(0, at - around), at + len(run) + around
    return ("…" if start else "") + text[start:at] + "[" + run + "]" + text[at + len(run):end] + ("…" if end < len(text) else "")
