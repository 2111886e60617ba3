"""The SQLite store: one file, the zero-setup default (see :mod:`monitor.storage`).

The database runs in WAL mode so the CLI can read while the daemon writes.
Everything one poll produces (stories, matches, outbox rows, the source's
fetch state) is written in one ``BEGIN IMMEDIATE`` transaction: a crash
leaves either all of it or none of it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from .errors import DatabaseDamagedError, DatabaseFullError, DatabaseReadOnlyError, SchemaTooNewError, StorageError
from .migrations import apply as apply_migrations
from .migrations import is_newer_than_known, migrations
from .query import split_cjk
from .secrets import Secrets
from .sql_store import SQLStore, cjk_snippet

BUSY_TIMEOUT_MS = 30_000


class SQLiteStore(SQLStore):
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

    dialect = "sqlite"

    def __init__(self, path: str | Path, secrets: Secrets | None = None, *, read_only: bool = False,
                 quick_check: bool = True):
        self._init_common(secrets)
        self.path = Path(path)
        self.location = str(path)
        self.read_only = read_only
        # Set once the file is known to be damaged: from then on every write is refused.
        self.damaged: str | None = None
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
    def for_reading(cls, path: str | Path, secrets: Secrets | None = None) -> "SQLiteStore":
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

    def _redacting(self, on: bool) -> None:
        # secure_delete overwrites the old bytes instead of leaving them in the file's free space.
        self.db.execute(f"PRAGMA secure_delete = {'ON' if on else 'OFF'}")

    def _after_prune(self, db: Any) -> None:
        # A deleted row leaves a marker in the full-text index until its segments are
        # merged: without this, an emptied index keeps most of its size.
        db.execute("INSERT INTO stories_fts(stories_fts) VALUES ('optimize')")

    def columns(self, table: str) -> set[str]:
        return {c["name"] for c in self.query(f"PRAGMA table_info({table})")}

    def _fts_clause(self, fts_query: str) -> tuple[str, list[Any]]:
        return "s.rowid IN (SELECT rowid FROM stories_fts WHERE stories_fts MATCH ?)", [fts_query]

    def pending_migrations(self) -> list[str]:
        """The migrations this program knows that the database has not had (read only)."""
        with self._lock:
            return [m.name for m in migrations.pending(self.db)]

    def close(self) -> None:
        """Close the connections (checkpointing the WAL)."""
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._lock:
            self.db.close()

    @contextmanager
    def write(self) -> Iterator[_Transaction]:
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
                tx = _Transaction(self.db.conn)
                self._run_fence(tx)
                yield tx
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
            row["snippet"] = cjk_snippet(row.pop("text") or row["title"], runs[0])
        return rows

class _Transaction:
    """The neutral face of the write connection inside :meth:`SQLiteStore.write`."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)


def _open_reader(path: Path) -> sqlite3.Connection:
    """A second connection for reads: autocommit, so each query sees the latest commit."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only = ON")
    return conn


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
