"""``monitor migrate-db``: copy a SQLite database into an empty PostgreSQL database.

Every table the monitor keeps is copied (sources with their fetch state,
stories, matches, the outbox, digest timetables, tombstones, trained models,
feedback), each read in batches in storage order and written into one
PostgreSQL transaction: a copy that fails leaves the target as empty as it
was. Ids are kept (an alert's Idempotency-Key is its outbox id), and the
target's id sequences continue after the highest copied id. A target that
holds any row is refused: nothing is merged.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import StorageError
from .postgres_store import PostgresStore
from .sqlite_store import SQLiteStore

BATCH = 2000

# In the order foreign keys need: a match after its story, an alert after its match.
TABLES = ("sources", "stories", "matches", "outbox", "cluster_alerts", "channel_state", "pruned_stories",
          "semantic_models", "learned_models", "feedback")
# Tables whose integer id PostgreSQL numbers itself (identity columns).
_IDENTITY = ("matches", "outbox", "feedback")


def row_counts(store: SQLiteStore | PostgresStore) -> dict[str, int]:
    """Rows per table of ``store``."""
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in TABLES}


def copy_database(source: SQLiteStore, target: PostgresStore, batch: int = BATCH,
                  progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy every table of ``source`` into ``target``; returns the rows copied per table.

    :raises StorageError: ``target`` is not empty (naming what it holds), or a read or write failed
        (then nothing was copied).
    """
    held = {t: n for t, n in row_counts(target).items() if n}
    if held:
        what = ", ".join(f"{n} in {t}" for t, n in held.items())
        raise StorageError(f"{target.location} is not empty ({what} rows): migrate-db copies into an empty "
                           "database only; create a new one (createdb) or drop this one's tables first")
    copied: dict[str, int] = {}
    with target.write() as db:
        for table in TABLES:
            columns = sorted((source.columns(table) & target.columns(table)) - {"rowid"})
            names = ", ".join(columns)
            insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
            last, count = 0, 0
            while True:
                rows = source.query(f"SELECT rowid AS copy_key, {names} FROM {table} WHERE rowid > ? "
                                    "ORDER BY rowid LIMIT ?", [last, batch])
                if not rows:
                    break
                db.executemany(insert, [[r[c] for c in columns] for r in rows])
                last = rows[-1]["copy_key"]
                count += len(rows)
                if progress is not None:
                    progress(table, count)
            copied[table] = count
        for table in _IDENTITY:
            db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                       f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
    return copied
