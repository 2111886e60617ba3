"""The SQL both stores share: every method whose SQL runs unchanged on SQLite and PostgreSQL.

The SQL here is neutral: ``?`` placeholders, ISO 8601 text timestamps,
``INSERT ... ON CONFLICT``, ``RETURNING``, and ``instr``/``group_concat``
(PostgreSQL gets both from its first migration). What differs between the
dialects is asked of the subclass: how to open a transaction and read, the
full-text search, what pruning leaves to clean, and a few spellings
(:attr:`SQLStore.NEWLINE`, :attr:`SQLStore.ORDERED_JOIN`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .errors import StorageError
from .models import VERDICTS, FetchState, Feedback, Match, Source, Story, Watchlist
from .storage import SavedUpdate, SourceOutcome, Storage, Transaction, story_from_row
from .timeutil import from_iso, to_iso, utcnow

# A story's cluster is coalesce(cluster_id, id) (stories stored before
# clustering have none); members are found through the cluster_id index and
# the primary key, never by scanning.
_CLUSTER_OF = "c AS (SELECT coalesce(cluster_id, id) AS id FROM stories WHERE id = ?)"
_IN_CLUSTER = "(other.cluster_id = c.id OR other.id = c.id)"

# Columns that may quote a source's URL: values from the environment never reach them.
# (table, its key, the columns)
_REDACTED_COLUMNS = (("sources", "name", ("url", "effective_url", "last_error", "last_note")),
                     ("outbox", "id", ("last_error",)))

# The tables plugins keep their per-watchlist models in (see Storage.models).
MODEL_TABLES = {"learned": "learned_models", "semantic": "semantic_models"}

# Rows per multi-row INSERT: 6 parameters each stays far below SQLite's limit of 32,766.
_ROWS_PER_STATEMENT = 500

STORY_COLUMNS = ("id", "source", "guid", "url", "title", "text", "summary", "published_at", "fetched_at",
                 "first_seen_at", "updated_at", "author", "language", "content_hash", "cluster_id")


class SQLStore(Storage):
    """The portable half of a store. Subclasses provide :meth:`query`, :meth:`write`,
    :meth:`close`, the full-text search and the dialect hooks."""

    NEWLINE = "char(10)"  # a newline in SQL: keeps a substring from spanning title and text
    ORDERED_JOIN = "CROSS JOIN"  # a join whose order the planner must keep (SQLite's CROSS JOIN)

    def _init_common(self, secrets: Any) -> None:
        from .secrets import Secrets

        self.secrets = secrets or Secrets()
        self.warning = None
        # Failed polls that could not be recorded (the database refused the write): recorded by the next write.
        self._deferred: dict[str, tuple[Source, SourceOutcome]] = {}
        self._lock = threading.RLock()
        self._fence = threading.local()  # this thread's write check (see fenced)

    @contextmanager
    def fenced(self, check: Callable[[Transaction], None]) -> Iterator[None]:
        """Inside the block, every write transaction this thread opens runs ``check(tx)`` first.

        A fleet worker passes its lease check: when ``check`` raises, the
        transaction is rolled back and the exception goes to the caller as it
        is, so nothing is written by a worker that lost its lease.
        """
        previous = getattr(self._fence, "check", None)
        self._fence.check = check
        try:
            yield
        finally:
            self._fence.check = previous

    def _run_fence(self, tx: Transaction) -> None:
        """Call at the start of every write transaction (both dialects do)."""
        check = getattr(self._fence, "check", None)
        if check is not None:
            check(tx)

    # -- dialect hooks ----------------------------------------------------------

    def _fts_clause(self, fts_query: str) -> tuple[str, list[Any]]:
        """A condition on ``stories s`` true for the stories an FTS5-form query finds, and its parameters."""
        raise NotImplementedError

    def _after_prune(self, db: Transaction) -> None:
        """Clean up after stories were deleted (inside the same transaction)."""

    def _redacting(self, on: bool) -> None:
        """Called around the rewrite of redacted rows (SQLite overwrites the old bytes)."""

    def columns(self, table: str) -> set[str]:
        """The column names of ``table`` (empty when there is no such table)."""
        raise NotImplementedError

    # -- secrets ------------------------------------------------------------------

    def _redact_stored(self) -> None:
        """Redact environment values from rows written before they were redacted on the way in."""
        values = [v for v in self.secrets.values.values() if v]
        if not values:
            return
        found = []
        for table, key, columns in _REDACTED_COLUMNS:
            for column in columns:
                hits = " OR ".join(f"instr({column}, ?) > 0" for _ in values)
                for row in self.query(f"SELECT {key} AS k, {column} AS text FROM {table} WHERE {hits}", values):
                    found.append((table, key, column, row["k"], row["text"]))
        if not found:
            return  # the usual case: no write, so read commands stay read-only
        self._redacting(True)
        try:
            with self.write() as db:
                for table, key, column, k, text in found:
                    db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", [self.secrets.redact(text), k])
        finally:
            self._redacting(False)

    def stored_url(self, source: Source) -> str:
        """The form of ``source.url`` kept in the ``sources`` table (environment values redacted)."""
        return self.secrets.redact(source.url)

    # -- sources ----------------------------------------------------------------

    def sync_sources(self, sources: Iterable[Source]) -> None:
        now = to_iso(utcnow())
        with self.write() as db:
            for source in sources:
                db.execute(
                    "INSERT INTO sources (name, url, kind, enabled, status, created_at) VALUES (?, ?, ?, ?, 'new', ?) "
                    "ON CONFLICT(name) DO UPDATE SET url = excluded.url, kind = excluded.kind, enabled = excluded.enabled",
                    [source.name, self.stored_url(source), source.kind, int(source.enabled), now],
                )

    def fetch_state(self, source: Source, row: dict[str, Any] | None = None) -> FetchState:
        if row is None:
            row = self.source_row(source.name)
        if row is None:
            return FetchState()
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

    def record_outcome(self, db: Transaction, source: Source, outcome: SourceOutcome, *,
                       count_stories: bool = False) -> None:
        """Update a source's row in one statement; call inside :meth:`write`.

        :param count_stories: also recount the source's stored stories (after a poll stored new ones).
        """
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
        # (column, SQL expression, its parameters) beside the plain assignments above.
        computed: list[tuple[str, str, list[Any]]] = []
        if ok:
            if outcome.status == "ok":  # a 304 says nothing new about the feed's damage
                fields["last_note"] = self.secrets.redact(outcome.note) if outcome.note else None
            fields.update(
                etag=outcome.etag, last_modified=outcome.last_modified, body_hash=outcome.body_hash,
                last_success_at=now, error_count=0,
            )
            computed.append(("first_polled_at", "coalesce(first_polled_at, ?)", [now]))
        else:
            computed.append(("error_count", "coalesce(error_count, 0) + 1", []))
        if count_stories:
            computed.append(("stories_count", "(SELECT count(*) FROM stories WHERE source = ?)", [source.name]))
        sets = [f"{k} = ?" for k in fields] + [f"{column} = {expression}" for column, expression, _ in computed]
        params = [*fields.values(), *(p for _, _, ps in computed for p in ps)]
        db.execute(f"UPDATE sources SET {', '.join(sets)} WHERE name = ?", [*params, source.name])

    def record_poll(self, source: Source, outcome: SourceOutcome) -> None:
        with self.write() as db:
            recorded = self._record_deferred(db, but=source.name)
            self.record_outcome(db, source, outcome)
        self._forget_deferred(recorded)

    def record_failure(self, source: Source, outcome: SourceOutcome) -> None:
        try:
            self.record_poll(source, outcome)
        except StorageError:
            with self._lock:
                self._deferred[source.name] = (source, outcome)
            raise

    def _record_deferred(self, db: Transaction, but: str) -> dict[str, tuple[Source, SourceOutcome]]:
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
        rows = self.query("SELECT * FROM sources WHERE name = ?", [name])
        return rows[0] if rows else None

    def sources(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM sources ORDER BY name")

    def source_names(self) -> list[str]:
        """Every source's name, sorted."""
        return [r["name"] for r in self.query("SELECT name FROM sources ORDER BY name")]

    def never_polled(self, names: Sequence[str]) -> list[str]:
        polled = {r["name"] for r in self.query("SELECT name FROM sources WHERE first_polled_at IS NOT NULL")}
        return [n for n in names if n not in polled]

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

    # -- retention ----------------------------------------------------------------

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
                f"INSERT INTO pruned_stories (id, source, pruned_at) "
                f"SELECT id, source, ? FROM stories WHERE id IN ({doomed}) ON CONFLICT DO NOTHING", [now, *params],
            )
            if matched_older_than:
                for table in ("outbox", "cluster_alerts"):
                    db.execute(f"DELETE FROM {table} WHERE match_id IN (SELECT id FROM matches WHERE story_id IN "
                               f"({doomed}))", params)
                db.execute(f"DELETE FROM matches WHERE story_id IN ({doomed})", params)
            deleted = db.execute(f"DELETE FROM stories WHERE id IN ({doomed})", params).rowcount
            if deleted:
                db.execute(
                    "UPDATE sources SET stories_count = (SELECT count(*) FROM stories WHERE stories.source = sources.name)"
                )
                self._after_prune(db)
        return deleted

    def count_prunable(self, older_than: datetime, matched_older_than: datetime | None = None) -> int:
        """How many stories :meth:`prune` would delete with the same arguments (it deletes nothing)."""
        doomed, params = _prunable(older_than, matched_older_than)
        return self.query(f"SELECT count(*) AS n FROM ({doomed}) AS doomed", params)[0]["n"]

    def expire_tombstones(self, older_than: datetime) -> int:
        """Forget pruned ids recorded before ``older_than``; returns how many."""
        with self.write() as db:
            return db.execute("DELETE FROM pruned_stories WHERE pruned_at < ?", [to_iso(older_than)]).rowcount

    # -- stories and matches ----------------------------------------------------

    def known_hashes(self, ids: Sequence[str]) -> dict[str, str]:
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
        clusters: Callable[[Sequence[Story]], list[Story]] | None = None,
    ) -> SavedUpdate:
        """Write one poll's results in one transaction, a statement per table.

        Matches already stored for a story and watchlist are kept as they are
        and alert nobody again; each new match gets one outbox row per channel
        of its watchlist (unless ``alert`` is false, or its story id is in
        ``quiet``: stored, but too old to alert on), and one per cluster:
        see :meth:`_insert_matches`.

        :param clusters: gives the new stories their clusters inside this
            transaction, after :meth:`_serialise_clusters` (a store shared by
            several processes: :class:`monitor.cluster_stage.StoryClusters`).
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
            if clusters is not None and new:
                self._serialise_clusters(db)
                new = clusters(new)
            if new:
                marks = ", ".join("?" * len(STORY_COLUMNS))
                db.executemany(
                    f"INSERT INTO stories ({', '.join(STORY_COLUMNS)}) VALUES ({marks}) ON CONFLICT(id) DO NOTHING",
                    [_story_values(s, now) for s in new],
                )
            for story in changed:
                row = dict(zip(STORY_COLUMNS, _story_values(story, now)))
                del row["id"], row["first_seen_at"], row["cluster_id"]  # a changed story keeps its cluster
                db.execute(f"UPDATE stories SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
                           [*row.values(), story.id])
            known = {story.id: story.cluster or story.id for story in new}
            new_ids, queued = self._insert_matches(db, matches, watchlists, now, alert=alert, quiet=quiet,
                                                   clusters=known)
            self.record_outcome(db, source, outcome, count_stories=bool(new))
        self._forget_deferred(recorded)
        return SavedUpdate(len(new), len(changed), len(new_ids), queued, tuple(new_ids))

    def _serialise_clusters(self, db: Transaction) -> None:
        """Inside a write: wait until no other process is assigning clusters, until this transaction ends.

        Nothing to do for a store one process writes (SQLite): its writes are serialised already.
        """

    def _insert_matches(
        self, db: Transaction, matches: Sequence[Match], watchlists: dict[str, Watchlist], now: str, *,
        alert: bool, quiet: Collection[str] = (), clusters: dict[str, str] | None = None,
    ) -> tuple[list[int], int]:
        """Store new matches and queue their alerts; call inside :meth:`write`. Returns (new match ids, rows queued).

        One alert per cluster, watchlist and channel: the first match to claim
        ``(cluster, watchlist, channel)`` in ``cluster_alerts`` queues the
        alert; a later match of the cluster queues nothing there (the first
        alert lists it as "also reported by"). The claim is a primary key, so
        it cannot be raced: of two processes claiming at once, the second waits
        for the first's commit and then finds the row.

        :param clusters: ``{story id: cluster id}`` known already (this poll's new stories); the others are read.
        """
        new_ids: list[int] = []
        if not matches:
            return new_ids, 0
        inserted: list[Sequence[Any]] = []
        for chunk in _chunks(matches, _ROWS_PER_STATEMENT):
            inserted += db.execute(
                "INSERT INTO matches (story_id, watchlist, score, classifier, evidence, matched_at) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
                + " ON CONFLICT(story_id, watchlist) DO NOTHING RETURNING id, story_id, watchlist",
                [v for m in chunk for v in (m.story_id, m.watchlist, m.score, m.classifier,
                                            json.dumps(m.evidence.to_dict(), ensure_ascii=False), now)],
            ).fetchall()
        inserted.sort(key=lambda r: r[0])  # RETURNING's order is not promised: the first stored alerts
        new_ids = [r[0] for r in inserted]
        wanted = [(r[0], r[1], r[2]) for r in inserted if alert and r[1] not in quiet]
        if not wanted:
            return new_ids, 0
        cluster_of = dict(clusters or {})
        unknown = sorted({story for _, story, _ in wanted if story not in cluster_of})
        for chunk in _chunks(unknown, 500):
            for row in db.execute(f"SELECT id, coalesce(cluster_id, id) FROM stories WHERE id IN "
                                  f"({','.join('?' * len(chunk))})", chunk).fetchall():
                cluster_of[row[0]] = row[1]
        claims = [(cluster_of.get(story, story), watchlist, channel, match_id)
                  for match_id, story, watchlist in wanted for channel in watchlists[watchlist].channels]
        won: list[tuple[int, str]] = []
        for chunk in _chunks(claims, _ROWS_PER_STATEMENT):
            won += [(r[0], r[1]) for r in db.execute(
                "INSERT INTO cluster_alerts (cluster_id, watchlist, channel, match_id) VALUES "
                + ", ".join(["(?, ?, ?, ?)"] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING match_id, channel",
                [v for claim in chunk for v in claim]).fetchall()]
        for chunk in _chunks(sorted(won), _ROWS_PER_STATEMENT):
            db.execute(
                "INSERT INTO outbox (match_id, channel, status, attempts, next_attempt_at, created_at, updated_at) "
                "VALUES " + ", ".join(["(?, ?, 'pending', 0, ?, ?, ?)"] * len(chunk))
                + " ON CONFLICT(match_id, channel) DO NOTHING",
                [v for match_id, channel in chunk for v in (match_id, channel, now, now, now)])
        return new_ids, len(won)

    def save_matches(self, matches: Sequence[Match], watchlists: dict[str, Watchlist], *, alert: bool) -> SavedUpdate:
        now = to_iso(utcnow())
        with self.write() as db:
            new_ids, queued = self._insert_matches(db, matches, watchlists, now, alert=alert)
        return SavedUpdate(0, 0, len(new_ids), queued, tuple(new_ids))

    def set_clusters(self, clusters: dict[str, str]) -> int:
        """Record ``{story id: cluster id}`` for stories that had none; returns how many changed.

        Serialised with every other cluster-assigning write (a fleet's polls on PostgreSQL,
        :meth:`_serialise_clusters`), as a poll's write is: ``monitor reclassify`` beside a
        fleet never changes a cluster while a worker is assigning one.
        """
        changed = 0
        with self.write() as db:
            self._serialise_clusters(db)
            for story_id, cluster in clusters.items():
                changed += db.execute("UPDATE stories SET cluster_id = ? WHERE id = ? AND cluster_id IS NULL",
                                      [cluster, story_id]).rowcount
        return changed

    def stories_after(self, rowid: int, limit: int, since: datetime | None = None) -> list[dict[str, Any]]:
        where, params = "", []
        if since is not None:
            where, params = "AND coalesce(published_at, first_seen_at) >= ?", [to_iso(since)]
        return self.query(
            f"SELECT rowid, * FROM stories WHERE rowid > ? {where} ORDER BY rowid LIMIT ?", [rowid, *params, limit])

    def stories_for_clustering(self, *, first_seen_since: str | None = None,
                               after_rowid: int | None = None) -> list[dict[str, Any]]:
        """What the clustering index remembers of stories: first seen since a time, or stored after a rowid."""
        columns = "rowid, id, source, title, text, url, published_at, first_seen_at, coalesce(cluster_id, id) AS cluster"
        if after_rowid is not None:
            return self.query(f"SELECT {columns} FROM stories WHERE rowid > ? ORDER BY rowid", [after_rowid])
        return self.query(f"SELECT {columns} FROM stories WHERE first_seen_at >= ? ORDER BY rowid", [first_seen_since])

    def last_story_rowid(self) -> int:
        """The storage position of the latest stored story (0 when there is none)."""
        return self.query("SELECT max(rowid) AS top FROM stories")[0]["top"] or 0

    def cluster_reports(self, story_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The other stories of ``story_id``'s cluster (id, source, title, url, published_at), earliest first."""
        return self.query(
            f"WITH {_CLUSTER_OF} SELECT other.id, other.source, other.title, other.url, other.published_at "
            f"FROM c JOIN stories other ON {_IN_CLUSTER} "
            "WHERE other.id != ? ORDER BY other.first_seen_at, other.rowid LIMIT ?",
            [story_id, story_id, limit],
        )

    def match_listing(self, watchlist: str | None = None, source: str | None = None, *,
                      since: datetime | None = None, containing: str | None = None,
                      before: tuple[str, int] | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Matches newest first, as the web UI lists them: each with its story (id, title, url, source,
        published_at), its cluster and the verdict given on it, if any.

        :param containing: only stories whose title or text contains this, ignoring case.
        :param before: only matches older than this ``(matched_at, id)`` (the next page).
        """
        where, params = _match_filter(watchlist, source, since)
        more: list[str] = []
        if containing:
            more.append("(instr(lower(s.title), ?) > 0 OR instr(lower(s.text), ?) > 0)")
            params += [containing.lower(), containing.lower()]
        if before is not None:
            more.append("(m.matched_at, m.id) < (?, ?)")
            params += list(before)
        if more:
            where = (where + " AND " if where else "WHERE ") + " AND ".join(more)
        return self.query(
            "SELECT m.id, m.watchlist, m.score, m.classifier, m.evidence, m.matched_at, "
            "s.id AS story_id, s.title, s.url, s.source, s.published_at, coalesce(s.cluster_id, s.id) AS cluster, "
            "(SELECT verdict FROM feedback f WHERE f.story_id = s.id AND f.watchlist = m.watchlist) AS verdict "
            f"FROM matches m JOIN stories s ON s.id = m.story_id {where} "
            "ORDER BY m.matched_at DESC, m.id DESC LIMIT ?",
            [*params, limit],
        )

    def daily_story_counts(self, since_day: str) -> dict[str, dict[str, int]]:
        """``{source: {day: stories first seen that day}}`` from ``since_day`` (``YYYY-MM-DD``, UTC) on."""
        counts: dict[str, dict[str, int]] = {}
        for row in self.query(
            "SELECT source, substr(first_seen_at, 1, 10) AS day, count(*) AS n FROM stories "
            "WHERE first_seen_at >= ? GROUP BY source, day", [since_day],
        ):
            counts.setdefault(row["source"], {})[row["day"]] = row["n"]
        return counts

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
            f"FROM matches m JOIN stories s ON s.id = m.story_id {where} "
            "GROUP BY m.watchlist, coalesce(s.cluster_id, s.id)) "
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
        rows = self.query("SELECT * FROM stories WHERE id = ?", [story_id])
        return story_from_row(rows[0]) if rows else None

    def story_row(self, story_id: str) -> dict[str, Any] | None:
        """A stored story's row, or ``None``."""
        rows = self.query("SELECT * FROM stories WHERE id = ?", [story_id])
        return rows[0] if rows else None

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

    def story_matches(self, story_id: str) -> list[dict[str, Any]]:
        """The matches stored for one story."""
        return self.query("SELECT id, watchlist, score, classifier, evidence, matched_at FROM matches "
                          "WHERE story_id = ?", [story_id])

    def search_candidates(self, fts_query: str | None, substrings: Sequence[Sequence[str]] = (),
                          batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every story the FTS5-form query finds, or whose title or text holds every substring of any group,
        with its text, in batches (for :mod:`monitor.search`)."""
        found = []
        params: list[Any] = []
        if fts_query:
            clause, fts_params = self._fts_clause(fts_query)
            found.append(clause)
            params.extend(fts_params)
        for group in substrings:
            found.append("(" + " AND ".join(f"instr(s.title || {self.NEWLINE} || s.text, ?) > 0" for _ in group) + ")")
            params.extend(group)
        if not found:
            return
        last = 0
        while True:
            rows = self._search_rows(
                "SELECT s.rowid AS rowid, s.id, s.title, s.text, s.url, s.source, s.published_at, s.first_seen_at, s.language "
                f"FROM stories s WHERE ({' OR '.join(found)}) AND s.rowid > ? ORDER BY s.rowid LIMIT ?",
                [*params, last, batch], fts_query or "",
            )
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1]["rowid"]

    def newest_found(self, fts_query: str, limit: int) -> list[dict[str, Any]]:
        """The newest stories (first seen) the FTS5-form query finds, with their text."""
        clause, params = self._fts_clause(fts_query)
        return self._search_rows(
            "SELECT s.id, s.title, s.text, s.url, s.source, s.published_at, s.first_seen_at FROM stories s "
            f"WHERE {clause} ORDER BY s.first_seen_at DESC LIMIT ?", [*params, limit], fts_query)

    def _search_rows(self, sql: str, params: list[Any], query: str) -> list[dict[str, Any]]:
        return self.query(sql, params)

    def watchlist_names(self) -> set[str]:
        """Every watchlist that has matches stored (configured or not any more)."""
        return {r["watchlist"] for r in self.query("SELECT DISTINCT watchlist FROM matches")}

    def matched_story_ids(self, watchlist: str) -> set[str]:
        """The ids of the stories stored as matches of ``watchlist``."""
        return {r["story_id"] for r in self.query("SELECT story_id FROM matches WHERE watchlist = ?", [watchlist])}

    def has_match(self, story_id: str, watchlist: str) -> bool:
        """Whether ``story_id`` is stored as a match of ``watchlist``."""
        return bool(self.query("SELECT 1 AS x FROM matches WHERE story_id = ? AND watchlist = ?", [story_id, watchlist]))

    # -- the outbox -----------------------------------------------------------------

    def outbox_channels(self) -> set[str]:
        """Every channel that has rows in the outbox."""
        return {r["channel"] for r in self.query("SELECT DISTINCT channel FROM outbox")}

    def outbox_counts(self) -> dict[str, int]:
        """``{status: rows}`` of the outbox."""
        return {r["status"]: r["n"] for r in self.query("SELECT status, count(*) AS n FROM outbox GROUP BY status")}

    def outbox(self, status: str | None = None, channel: str | None = None, limit: int = 50, *,
               before_id: int | None = None) -> list[dict[str, Any]]:
        """Outbox rows with their watchlist and story (id, title), newest first; only those older than
        ``before_id`` when given (the next page)."""
        where, params = _where(("o.status = ?", status), ("o.channel = ?", channel), ("o.id < ?", before_id))
        return self.query(
            "SELECT o.id, o.channel, o.status, o.attempts, o.next_attempt_at, o.sent_at, o.last_error, o.created_at, "
            "m.watchlist, s.id AS story_id, s.title FROM outbox o JOIN matches m ON m.id = o.match_id "
            f"JOIN stories s ON s.id = m.story_id {where} ORDER BY o.id DESC LIMIT ?",
            [*params, limit],
        )

    def story_alerts(self, story_id: str) -> list[dict[str, Any]]:
        """The outbox rows of one story's matches, oldest first."""
        return self.query(
            "SELECT o.id, o.channel, o.status, o.attempts, o.next_attempt_at, o.sent_at, o.last_error, m.watchlist "
            "FROM outbox o JOIN matches m ON m.id = o.match_id WHERE m.story_id = ? ORDER BY o.id", [story_id])

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

    # The claim protocol of monitor.outbox: a row is 'pending' until a dispatcher
    # claims it ('sending', committed before the send), then 'sent' or back to
    # 'pending' (a retry) or 'failed'.

    def due_channels(self, now: str) -> list[str]:
        """Channels with pending rows due at ``now``, by name."""
        return [r["channel"] for r in self.query(
            "SELECT DISTINCT channel FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY channel",
            [now])]

    def due_alerts(self, channel: str, now: str, limit: int) -> list[dict[str, Any]]:
        """``channel``'s pending rows due at ``now`` with their match and story, oldest first."""
        return self.query(
            "SELECT o.id AS outbox_id, o.channel, o.attempts, m.id AS match_id, m.story_id, m.watchlist, m.score, "
            "m.classifier, m.evidence, s.source, s.guid, s.url, s.title, s.text, s.summary, s.published_at, "
            "s.fetched_at, s.author, s.language, s.content_hash, s.cluster_id "
            "FROM outbox o JOIN matches m ON m.id = o.match_id JOIN stories s ON s.id = m.story_id "
            "WHERE o.channel = ? AND o.status = 'pending' AND o.next_attempt_at <= ? ORDER BY o.id LIMIT ?",
            [channel, now, limit])

    def reschedule_future_alerts(self, now: str, latest: str, written_after: str, channel: str | None = None) -> int:
        """Bring pending rows (of ``channel``, else all) scheduled after ``latest`` (or written after
        ``written_after``, by a clock that was ahead) back to ``latest`` (or ``now``); returns how many.
        Reads first: usually writes nothing."""
        where = "status = 'pending' AND (next_attempt_at > ? OR updated_at > ?)"
        params: list[Any] = [latest, written_after]
        if channel is not None:
            where += " AND channel = ?"
            params.append(channel)
        if not self.query(f"SELECT 1 AS x FROM outbox WHERE {where} LIMIT 1", params):
            return 0
        with self.write() as db:
            return db.execute(
                f"UPDATE outbox SET next_attempt_at = CASE WHEN updated_at > ? THEN ? ELSE ? END, updated_at = ? "
                f"WHERE {where}",
                [written_after, now, latest, now, *params],
            ).rowcount

    def channels_to_dispatch(self, now: str) -> list[str]:
        """Channels with pending rows due at ``now`` or rows left ``sending``, by name: what a
        dispatcher per channel looks at (a ``sending`` row may have been left by a sender that died)."""
        return [r["channel"] for r in self.query(
            "SELECT DISTINCT channel FROM outbox WHERE (status = 'pending' AND next_attempt_at <= ?) "
            "OR status = 'sending' ORDER BY channel", [now])]

    def channel_state(self, channel: str) -> dict[str, Any] | None:
        """A digest channel's timetable (``digest_spec``, ``next_digest_at``), or ``None``."""
        rows = self.query("SELECT digest_spec, next_digest_at FROM channel_state WHERE channel = ?", [channel])
        return rows[0] if rows else None

    def set_channel_state(self, channel: str, spec: str, next_digest_at: str, now: str) -> None:
        """Record a digest channel's timetable."""
        with self.write() as db:
            db.execute(
                "INSERT INTO channel_state (channel, digest_spec, next_digest_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(channel) DO UPDATE SET digest_spec = excluded.digest_spec, "
                "next_digest_at = excluded.next_digest_at, updated_at = excluded.updated_at",
                [channel, spec, next_digest_at, now],
            )

    def recent_messages(self, channel: str, after: str, until: str) -> list[dict[str, Any]]:
        """Messages (a digest counts once) sent or being sent on ``channel`` in (``after``, ``until``], oldest first."""
        return self.query(
            "SELECT COALESCE(digest_id, id) AS message, MIN(COALESCE(sent_at, claimed_at)) AS at FROM outbox "
            "WHERE channel = ? AND status IN ('sent', 'sending') AND COALESCE(sent_at, claimed_at) > ? "
            "AND COALESCE(sent_at, claimed_at) <= ? GROUP BY COALESCE(digest_id, id) ORDER BY at",
            [channel, after, until],
        )

    def update_alerts(self, ids: Sequence[int], *, only_pending: bool = False, **fields: Any) -> None:
        """Set ``fields`` on the outbox rows ``ids`` (only those still pending, if asked), in one transaction."""
        sets = ", ".join(f"{name} = ?" for name in fields)
        pending = "status = 'pending' AND " if only_pending else ""
        with self.write() as db:
            db.execute(f"UPDATE outbox SET {sets} WHERE {pending}id IN ({','.join('?' * len(ids))})",
                       [*fields.values(), *ids])

    def claim_alerts(self, ids: Sequence[int], now: str) -> list[int]:
        """Mark pending rows ``sending`` (committed before the send); returns the ids this call got."""
        claimed = []
        with self.write() as db:
            for alert_id in ids:
                cursor = db.execute(
                    "UPDATE outbox SET status = 'sending', claimed_at = ?, attempts = attempts + 1, updated_at = ? "
                    "WHERE id = ? AND status = 'pending'",
                    [now, now, alert_id],
                )
                if cursor.rowcount == 1:
                    claimed.append(alert_id)
        return claimed

    def requeue_interrupted(self, now: str, note: str, channel: str | None = None) -> int:
        """Put rows (of ``channel``, else all) left ``sending`` back in the queue with ``note`` as
        their error; returns how many."""
        where, params = _where(("status = ?", "sending"), ("channel = ?", channel))
        if not self.query(f"SELECT 1 AS x FROM outbox {where} LIMIT 1", params):
            return 0
        with self.write() as db:
            return db.execute(
                f"UPDATE outbox SET status = 'pending', next_attempt_at = ?, updated_at = ?, last_error = ? {where}",
                [now, now, note, *params]).rowcount

    # -- feedback and models --------------------------------------------------------

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
                raise StorageError(f"{self.location}: no match with id {match_id} (see `monitor matches`)")
            story_id, watchlist = rows[0]["story_id"], rows[0]["watchlist"]
        story = self.story(story_id) if story_id is not None else None
        if story is None:
            raise StorageError(f"{self.location}: no story with id {story_id!r} (see `monitor search`)")
        if match_id is None:
            found = self.query("SELECT id FROM matches WHERE story_id = ? AND watchlist = ?", [story.id, watchlist])
            match_id = found[0]["id"] if found else None
        if verdict == "right" and match_id is None:
            verdict = "missed"
        now = to_iso(utcnow())
        with self.write() as db:
            db.execute(
                "INSERT INTO feedback (story_id, watchlist, verdict, match_id, title, text, language, note, origin, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(watchlist, story_id) DO UPDATE SET "
                "verdict = excluded.verdict, match_id = excluded.match_id, note = excluded.note, "
                "origin = excluded.origin, created_at = excluded.created_at",
                [story.id, watchlist, verdict, match_id, story.title, story.text, story.language, note, origin, now],
            )
        return self.feedback(watchlist, story_id=story.id)[0]

    def feedback(self, watchlist: str | None = None, *, story_id: str | None = None, limit: int | None = None,
                 newest_first: bool = False, with_text: bool = True) -> list[Feedback]:
        """Stored verdicts, oldest first (or newest first); only ``watchlist``'s (and ``story_id``'s) when given.

        :param with_text: read each story's text (training does; a listing does not need it).
        """
        where, params = _where(("watchlist = ?", watchlist), ("story_id = ?", story_id))
        order = "ORDER BY created_at DESC, id DESC" if newest_first else "ORDER BY id"
        if limit is not None:
            order, params = order + " LIMIT ?", [*params, limit]
        columns = "*" if with_text else "id, story_id, watchlist, verdict, match_id, title, created_at, note, origin"
        rows = self.query(f"SELECT {columns} FROM feedback {where} {order}", params)
        return [Feedback(id=r["id"], story_id=r["story_id"], watchlist=r["watchlist"], verdict=r["verdict"],
                         match_id=r["match_id"], title=r["title"] or "", text=r.get("text") or "",
                         language=r.get("language"),
                         created_at=from_iso(r["created_at"]), note=r.get("note") or "",
                         origin=r.get("origin") or "") for r in rows]

    def feedback_rows(self, *, story_id: str | None = None, watchlist: str | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
        """Stored verdicts newest first, as the web UI and API list them: :meth:`feedback` without the story's text."""
        return [verdict.listing() for verdict in self.feedback(watchlist, story_id=story_id, limit=limit,
                                                               newest_first=True, with_text=False)]

    def story_feedback(self, story_id: str) -> dict[str, dict[str, Any]]:
        """The verdicts on one story, by watchlist."""
        return {r["watchlist"]: r for r in self.query(
            "SELECT watchlist, verdict, origin, created_at FROM feedback WHERE story_id = ?", [story_id])}

    def models(self, kind: str) -> dict[str, dict[str, Any]]:
        return {r["watchlist"]: r for r in self.query(f"SELECT * FROM {_model_table(kind)}")}

    def model_versions(self, kind: str) -> dict[str, str]:
        """``{watchlist: trained_at}`` of the stored models of ``kind`` (without reading the models)."""
        return {r["watchlist"]: r["trained_at"]
                for r in self.query(f"SELECT watchlist, trained_at FROM {_model_table(kind)}")}

    def model(self, kind: str, watchlist: str) -> dict[str, Any] | None:
        """``watchlist``'s stored model of ``kind`` (its row), or ``None``."""
        rows = self.query(f"SELECT * FROM {_model_table(kind)} WHERE watchlist = ?", [watchlist])
        return rows[0] if rows else None

    def save_model(self, kind: str, watchlist: str, **fields: Any) -> None:
        row = {"watchlist": watchlist, "trained_at": to_iso(utcnow()), **fields}
        columns = ", ".join(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != "watchlist")
        with self.write() as db:
            db.execute(f"INSERT INTO {_model_table(kind)} ({columns}) VALUES ({', '.join('?' * len(row))}) "
                       f"ON CONFLICT(watchlist) DO UPDATE SET {updates}", list(row.values()))

    def forget_model(self, kind: str, watchlist: str) -> bool:
        with self.write() as db:
            return db.execute(f"DELETE FROM {_model_table(kind)} WHERE watchlist = ?", [watchlist]).rowcount > 0

    def save_learned_model(self, watchlist: str, model: bytes, **figures: Any) -> None:
        """Store (or replace) ``watchlist``'s learned model with its figures (``learned_models`` columns)."""
        self.save_model("learned", watchlist, model=model, **figures)

    def learned_models(self) -> dict[str, dict[str, Any]]:
        """Every stored learned model's row, by watchlist."""
        return self.models("learned")

    def forget_learned_model(self, watchlist: str) -> bool:
        """Delete ``watchlist``'s stored model; whether there was one."""
        return self.forget_model("learned", watchlist)

    def counts(self) -> dict[str, int]:
        """Row counts of the main tables."""
        return {t: self.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in ("sources", "stories", "matches", "outbox")}


def _model_table(kind: str) -> str:
    try:
        return MODEL_TABLES[kind]
    except KeyError:
        raise StorageError(f"no stored model kind {kind!r} (known: {', '.join(MODEL_TABLES)})") from None


def _prunable(older_than: datetime, matched_older_than: datetime | None) -> tuple[str, list[str]]:
    """The ids :meth:`SQLStore.prune` deletes, as SQL and its parameters."""
    sql = (
        "SELECT id FROM stories WHERE (first_seen_at < ? AND id NOT IN (SELECT story_id FROM matches))"
        + (" OR first_seen_at < ?" if matched_older_than else "")
    )
    return sql, [to_iso(older_than)] + ([to_iso(matched_older_than)] if matched_older_than else [])


def _story_values(story: Story, now: str | None) -> list[Any]:
    """A story's ``stories`` row, in the order of :data:`STORY_COLUMNS`."""
    return [story.id, story.source, story.guid, story.url, story.title, story.text, story.summary,
            to_iso(story.published), to_iso(story.fetched), now, now, story.author, story.language,
            story.content_hash, story.cluster]


def _chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``rows`` in slices of at most ``size``."""
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the ``(clause, value)`` pairs whose value is given (not None or empty), and its parameters."""
    given = [(clause, value) for clause, value in conditions if value is not None and value != ""]
    if not given:
        return "", []
    return "WHERE " + " AND ".join(clause for clause, _ in given), [value for _, value in given]


def _match_filter(watchlist: str | None, source: str | None, since: datetime | None) -> tuple[str, list[Any]]:
    """The WHERE clause and parameters that narrow ``matches m JOIN stories s`` to a watchlist, source and time."""
    return _where(("m.watchlist = ?", watchlist), ("s.source = ?", source),
                  ("m.matched_at >= ?", to_iso(since) if since else None))


def cjk_snippet(text: str, run: str, around: int = 24) -> str:
    """The text around the first ``run``, marked ``[...]`` as FTS5's snippet() marks its hits."""
    at = text.find(run)
    if at < 0:  # the run is in the title only
        return text[: 2 * around]
    start, end = max(0, at - around), at + len(run) + around
    return ("…" if start else "") + text[start:at] + "[" + run + "]" + text[at + len(run):end] + ("…" if end < len(text) else "")
