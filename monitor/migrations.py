"""The database schema, one migration per change, applied in order on open.

The schema version is the number of the newest migration (``m005_...`` is
version 5); it is also written to ``PRAGMA user_version`` so that any tool can
read it. A database holding a migration this program does not know, or a
higher ``user_version``, was written by a newer news-monitor and is refused
before anything touches it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("news_monitor")

_NUMBER = re.compile(r"m(\d+)_")


def _number(name: str) -> int:
    match = _NUMBER.match(name)
    return int(match.group(1)) if match else 0


def known_version() -> tuple[int, str]:
    """``(version, migration name)`` of the newest schema this program knows."""
    newest = max((m.name for m in migrations._migrations), key=_number)
    return _number(newest), newest


def stored_version(db: Database) -> tuple[int, list[str]]:
    """``(version, unknown migration names)`` of the database; reads only."""
    known = {m.name for m in migrations._migrations}
    unknown = [m.name for m in migrations.applied(db) if m.name not in known]
    version = max([db.execute("PRAGMA user_version").fetchone()[0], *(_number(n) for n in unknown)])
    return version, unknown


def is_newer_than_known(db: Database) -> str | None:
    """A sentence naming both versions when the database is newer than this program, else ``None``."""
    return newer_schema(*stored_version(db), known_version())


def newer_schema(version: int, unknown: list[str], known: tuple[int, str]) -> str | None:
    """A sentence naming both versions when a database at ``version`` (with ``unknown`` migrations) is newer
    than ``known``, this program's ``(version, newest migration)``, else ``None``; either store's words."""
    mine, newest = known
    if not unknown and version <= mine:
        return None
    theirs = f"version {version}" + (f" ({', '.join(unknown)})" if unknown else "")
    return (f"the database schema is {theirs}, newer than this news-monitor knows (version {mine}, {newest}): "
            "it was written by a newer release; upgrade news-monitor, or use another database")


def apply(db: Database) -> None:
    """Apply pending migrations and record the schema version in ``user_version``.

    Several processes may open a new or old database at once (three ``monitor
    train`` beside a daemon). Each migration runs in a ``BEGIN IMMEDIATE``
    transaction, which waits for the write lock (the busy timeout) instead of
    failing with "database is locked" when a read transaction cannot become a
    write one, and checks again under that lock whether another process has
    just applied it.
    """
    while pending := migrations.pending(db):
        migration = pending[0]
        if not migration.transactional:
            # VACUUM cannot run in a transaction; such a migration checks for itself whether it is needed.
            migration.fn(db)
        with _write_lock(db):
            if migration.name not in {m.name for m in migrations.pending(db)}:
                continue  # another process applied it while this one waited
            if migration.transactional:
                migration.fn(db)
            _record_applied(db, migration.name)
    mine, _ = known_version()
    if db.execute("PRAGMA user_version").fetchone()[0] != mine:
        db.execute(f"PRAGMA user_version = {mine}")


@contextmanager
def _write_lock(db: Database) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _record_applied(db: Database, name: str) -> None:
    # The table and row sqlite-utils' own Migrations.apply writes, so its
    # pending() and applied() read them as before.
    table = db[migrations.migrations_table]
    if not table.exists():
        table.create({"id": int, "migration_set": str, "name": str, "applied_at": str}, pk="id")
        table.create_index(["migration_set", "name"], unique=True)
    table.insert({"migration_set": migrations.name, "name": name,
                  "applied_at": str(datetime.now(timezone.utc))})


@migrations()
def m001_initial(db: Database) -> None:
    db["sources"].create(
        {
            "name": str, "url": str, "kind": str, "enabled": int,
            "status": str, "http_status": int, "last_error": str,
            "etag": str, "last_modified": str, "body_hash": str,
            "last_fetch_at": str, "last_success_at": str, "next_poll_at": str,
            "error_count": int, "stories_count": int,
            "first_polled_at": str, "created_at": str,
        },
        pk="name",
        defaults={"enabled": 1, "error_count": 0, "stories_count": 0},
        not_null={"url", "kind"},
    )
    db["stories"].create(
        {
            "id": str, "source": str, "guid": str, "url": str,
            "title": str, "text": str, "summary": str,
            "published_at": str, "fetched_at": str, "first_seen_at": str, "updated_at": str,
            "author": str, "language": str, "content_hash": str,
        },
        pk="id",
        not_null={"source", "title", "text"},
    )
    db["stories"].create_index(["source", "first_seen_at"])
    db["stories"].create_index(["published_at"])
    db["stories"].enable_fts(["title", "text"], tokenize="porter unicode61", create_triggers=True)
    db["matches"].create(
        {
            "id": int, "story_id": str, "watchlist": str, "score": float,
            "classifier": str, "evidence": str, "matched_at": str,
        },
        pk="id",
        foreign_keys=[("story_id", "stories", "id")],
        not_null={"story_id", "watchlist", "score"},
    )
    db["matches"].create_index(["story_id", "watchlist"], unique=True)
    db["matches"].create_index(["watchlist", "matched_at"])
    db["outbox"].create(
        {
            "id": int, "match_id": int, "channel": str, "status": str,
            "attempts": int, "next_attempt_at": str, "last_error": str,
            "created_at": str, "sent_at": str, "updated_at": str,
        },
        pk="id",
        foreign_keys=[("match_id", "matches", "id")],
        defaults={"attempts": 0, "status": "pending"},
        not_null={"match_id", "channel", "status"},
    )
    db["outbox"].create_index(["match_id", "channel"], unique=True)
    db["outbox"].create_index(["status", "next_attempt_at"])


@migrations()
def m002_outbox_delivery(db: Database) -> None:
    # claimed_at: set when a dispatcher takes a row ('sending'), so a crash
    # mid-send is visible and recoverable. digest_id: the rows sent together
    # in one digest message share it (the smallest outbox id of the batch).
    db["outbox"].add_column("claimed_at", str)
    db["outbox"].add_column("digest_id", int)
    db["outbox"].create_index(["channel", "status", "sent_at"])
    db["channel_state"].create(
        {"channel": str, "digest_spec": str, "next_digest_at": str, "updated_at": str},
        pk="channel",
    )


@migrations()
def m003_polling_state(db: Database) -> None:
    # The URL polling actually uses after permanent redirects (the configured
    # one stays in ``url``), and the adaptive interval the last poll chose.
    db["sources"].add_column("effective_url", str)
    db["sources"].add_column("poll_interval", float)
    # What a successful poll read around (a malformed feed, dropped duplicates).
    db["sources"].add_column("last_note", str)
    # Ids of pruned stories: a story still in its feed must not come back as new.
    db["pruned_stories"].create({"id": str, "source": str, "pruned_at": str}, pk="id")
    db["pruned_stories"].create_index(["pruned_at"])


@migrations()
def m004_semantic_models(db: Database) -> None:
    # What `monitor train` learned per watchlist (the semantic plugin): a
    # logistic model over sentence embeddings, weights as a JSON list.
    db["semantic_models"].create(
        {
            "watchlist": str, "embedder": str, "dim": int, "weights": str, "bias": float,
            "cutoff": float, "positives": int, "negatives": int,
            "labels_file": str, "trained_at": str,
        },
        pk="watchlist",
        not_null={"embedder", "dim", "weights", "bias", "cutoff"},
    )


@migrations(transactional=False)
def m005_incremental_vacuum(db: Database) -> None:
    # Pruning frees pages; only with auto_vacuum do they go back to the file
    # system (``PRAGMA incremental_vacuum`` after each prune). New databases
    # are created with it; an existing one needs one VACUUM to switch, which
    # rewrites the file once (it needs as much free disk as the file's size).
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("VACUUM")


@migrations()
def m006_poll_reason(db: Database) -> None:
    # Why a source's next poll is when it is: the basis ("interval",
    # "adaptive", "max_age", "retry_after", "backoff", "gone") and the same in
    # words, as `monitor sources` shows it. poll_interval now holds whichever
    # interval governs, not only the adaptive one.
    db["sources"].add_column("poll_basis", str)
    db["sources"].add_column("poll_reason", str)


@migrations()
def m007_story_clusters(db: Database) -> None:
    # The id of the first story of a story's cluster (the same story from
    # other outlets). NULL for stories stored before clustering: such a story
    # is its own cluster, so queries read coalesce(cluster_id, id).
    db["stories"].add_column("cluster_id", str)
    db["stories"].create_index(["cluster_id"])
    # The clustering index is rebuilt at start from the stories first seen
    # within its window.
    db["stories"].create_index(["first_seen_at"])


@migrations()
def m008_learned_models_and_feedback(db: Database) -> None:
    # `monitor train` stores a learned watchlist model here (an .npz blob, see
    # monitor_plugins.learned_model), with the cross-validated figures it was
    # accepted on, so a worse model can be refused.
    db["learned_models"].create(
        {
            "watchlist": str, "model": bytes, "format": int, "examples": int, "positives": int,
            "feedback": int, "cv_precision": float, "cv_recall": float, "cv_f1": float,
            "origin": str, "trained_at": str,
        },
        pk="watchlist",
        not_null={"model"},
    )
    # Verdicts on a story for a watchlist: 'right' or 'wrong' about a match, or
    # 'right' about a story the watchlist missed. The story's title and text are
    # kept so a verdict still teaches after retention prunes the story.
    db["feedback"].create(
        {
            "id": int, "story_id": str, "watchlist": str, "verdict": str, "match_id": int,
            "title": str, "text": str, "created_at": str,
        },
        pk="id",
        not_null={"story_id", "watchlist", "verdict"},
    )
    db["feedback"].create_index(["watchlist", "story_id"], unique=True)


@migrations()
def m012_feedback(db: Database) -> None:
    # Verdicts given in the web UI carry a note and say where they came from
    # ("web", "cli"); a story that should have matched is stored as "missed".
    db["feedback"].add_column("note", str)
    db["feedback"].add_column("origin", str)
    db["feedback"].create_index(["watchlist", "created_at"], if_not_exists=True)


# Shared by both stores: the same table, filled from the alerts already queued.
CLUSTER_ALERTS_BACKFILL = (
    "INSERT INTO cluster_alerts (cluster_id, watchlist, channel, match_id) "
    "SELECT coalesce(s.cluster_id, s.id), m.watchlist, o.channel, min(m.id) FROM outbox o "
    "JOIN matches m ON m.id = o.match_id JOIN stories s ON s.id = m.story_id "
    "GROUP BY coalesce(s.cluster_id, s.id), m.watchlist, o.channel"
)


@migrations()
def m013_cluster_alerts(db: Database) -> None:
    # One row per cluster, watchlist and channel that has queued an alert: the
    # primary key decides "has this cluster alerted here already?" for every
    # writer at once (several fleet workers, reclassify beside the daemon),
    # where a look at the outbox first could be raced.
    db.execute(
        "CREATE TABLE cluster_alerts (cluster_id TEXT NOT NULL, watchlist TEXT NOT NULL, channel TEXT NOT NULL, "
        "match_id INTEGER NOT NULL, PRIMARY KEY (cluster_id, watchlist, channel))"
    )
    db.execute("CREATE INDEX idx_cluster_alerts_match_id ON cluster_alerts (match_id)")
    db.execute(CLUSTER_ALERTS_BACKFILL)


@migrations()
def m014_search_folds_accents(db: Database) -> None:
    # Nothing to change here: FTS5's unicode61 tokenizer has always folded
    # accents. PostgreSQL's search gained the same in its m014; the number
    # keeps both schemas at one version.
    pass


# Shared by both stores: a verdict kept from before it carried its story's language takes the
# language of the story, where the story is still stored (a pruned one's stays unknown).
FEEDBACK_LANGUAGE_BACKFILL = (
    "UPDATE feedback SET language = (SELECT s.language FROM stories s WHERE s.id = feedback.story_id) "
    "WHERE language IS NULL"
)


@migrations()
def m015_feedback_language(db: Database) -> None:
    # A verdict teaches `monitor train` with the story's language, as the story is classified
    # with it: the query's hit features depend on it (monitor.letters).
    db["feedback"].add_column("language", str)
    db.execute(FEEDBACK_LANGUAGE_BACKFILL)
