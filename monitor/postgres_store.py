"""The PostgreSQL store: one database shared by any number of monitor processes (see :mod:`monitor.storage`).

Connections come from a pool (psycopg 3, psycopg-pool): reads run in
autocommit, each seeing the latest commit; a write takes one connection for
its transaction, and reads made inside it go through the same connection.
Within one process writes are serialised, as on SQLite; between processes
PostgreSQL's row locks and unique constraints keep them apart (the claimed-row
protocol of the outbox relies on ``UPDATE ... WHERE status = 'pending'``
being decided once).

The pool checks a connection before lending it and reconnects with backoff,
so a server restart costs the writes made while it was down (each says so in
one line; the daemon's next run of the job tries again) and nothing committed.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from . import pg_migrations
from .errors import DatabaseFullError, DatabaseReadOnlyError, SchemaTooNewError, StorageError
from .query import split_cjk
from .secrets import Secrets
from .sql_store import SQLStore, cjk_snippet
from .storage import redact_url

log = logging.getLogger("monitor.postgres")

CONNECT_TIMEOUT = 5  # seconds to reach the server before saying it cannot be reached
POOL_SIZE = 4
POOL_WAIT = 10  # seconds a read or write waits for a connection while the server is away
CLUSTER_LOCK_KEY = 0x6E6D5F636C7573  # "nm_clus": pg_advisory_xact_lock of the write that assigns clusters

_HEADLINE = "StartSel=[, StopSel=], MaxWords=16, MinWords=6, MaxFragments=1, FragmentDelimiter=…"
# The configuration of the stories_fts index (pg_migrations m014): 'simple' that folds accents.
_TS_CONFIG = "news_monitor"
_TSV = f"to_tsvector('{_TS_CONFIG}', s.title || ' ' || s.text)"


@functools.lru_cache(maxsize=512)
def to_pg(sql: str) -> str:
    """Neutral SQL (``?`` placeholders) in psycopg's form (``%s``, a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def server_of(url: str) -> str:
    """``host:port/dbname`` of a URL, for messages (never the user's password)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}{parts.path or '/'}"


class PostgresStore(SQLStore):
    """A PostgreSQL database. Thread-safe.

    :param url: ``postgresql://user[:password]@host[:port]/dbname[?options]``.
    :param read_only: refuse every write and apply no migration.
    """

    dialect = "postgresql"
    NEWLINE = "chr(10)"
    ORDERED_JOIN = "JOIN"  # PostgreSQL's planner keeps a cluster's few stories first on its own

    def __init__(self, url: str, secrets: Secrets | None = None, *, read_only: bool = False,
                 pool_size: int = POOL_SIZE):
        self._init_common(secrets)
        self.url = url
        self.location = redact_url(self.secrets.redact(url))
        self.read_only = read_only
        self.path = None  # no file
        self._local = threading.local()  # the connection of this thread's open write, if any
        self.pool: ConnectionPool | None = None
        try:
            with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
                if read_only:
                    newer = pg_migrations.is_newer_than_known(conn)
                    if newer:
                        raise SchemaTooNewError(f"{self.location}: {newer}")
                else:
                    pg_migrations.apply(conn, lambda text: SchemaTooNewError(f"{self.location}: {text}"))
                    if not pg_migrations.ensure_accent_folding(conn):
                        log.warning("%s: search does not fold accents (cafe will not find Café): the unaccent "
                                    "extension is missing and this user may not create it; an administrator can "
                                    "run CREATE EXTENSION unaccent SCHEMA public in this database", self.location)
        except psycopg.Error as exc:
            raise self._failure(exc, "open the database") from exc
        self.pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, name="news-monitor",
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            # A lost connection is replaced in the background with backoff; a caller waits at most
            # POOL_WAIT for one, then fails in one line and its job tries again at its next run.
            # Connections are not tested before being lent (a round trip per query): a read that
            # finds its connection dead (a server restart) is tried again on another, see query().
            timeout=POOL_WAIT,
        )
        try:
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
        except psycopg.Error as exc:
            self.pool.close()
            raise self._failure(exc, "open the database") from exc
        if not read_only:
            self._redact_stored()

    def _failure(self, exc: BaseException, doing: str) -> StorageError:
        """One sentence for a database error, naming the server (never the password)."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        text = redact_url(self.secrets.redact(text))
        password = urlsplit(self.url).password
        if password:
            text = text.replace(password, "***")
        if isinstance(exc, psycopg.errors.DiskFull):
            return DatabaseFullError(f"{self.location}: the server's disk is full: could not {doing}; "
                                     "the write was undone and nothing stored before is lost")
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return DatabaseReadOnlyError(f"{self.location}: the server accepts no writes (a read-only "
                                         f"standby or transaction): could not {doing}")
        if isinstance(exc, psycopg.OperationalError):
            return StorageError(f"PostgreSQL at {server_of(self.url)} cannot be reached or refused us: "
                                f"could not {doing}: {text}")
        return StorageError(f"{self.location}: could not {doing}: {text}")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    # -- the neutral SQL ------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[_Transaction]:
        """A write transaction (READ COMMITTED), committed when the block ends.

        :raises StorageError: the transaction was rolled back.
        """
        if self.read_only:
            raise DatabaseReadOnlyError(f"{self.location}: opened read-only: this command cannot write")
        assert self.pool is not None
        with self._lock:
            try:
                with self.pool.connection() as conn:
                    with conn.transaction():
                        self._local.conn = conn
                        try:
                            tx = _Transaction(conn)
                            self._run_fence(tx)
                            yield tx
                        finally:
                            self._local.conn = None
            except psycopg.Error as exc:
                raise self._failure(exc, "write") from exc

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query (neutral SQL), as dicts."""
        conn = getattr(self._local, "conn", None)
        try:
            if conn is not None:
                return conn.cursor(row_factory=dict_row).execute(to_pg(sql), params).fetchall()
            assert self.pool is not None
            for attempt in range(POOL_SIZE + 1):
                with self.pool.connection() as conn:
                    try:
                        return conn.cursor(row_factory=dict_row).execute(to_pg(sql), params).fetchall()
                    except psycopg.OperationalError:
                        # A connection the server dropped (the pool discards it): another one, or a new one.
                        if not conn.broken or attempt == POOL_SIZE:
                            raise
            raise AssertionError("unreachable")
        except psycopg.Error as exc:
            raise self._failure(exc, "read") from exc

    # -- dialect --------------------------------------------------------------

    def _serialise_clusters(self, db: _Transaction) -> None:
        """Wait for the transaction-level advisory lock every cluster-assigning write takes.

        Held until this transaction commits or rolls back, so the writer that holds
        it reads every story the writers before it committed, and stores its own
        before the next one reads: two processes given two outlets' copies of one
        story cannot both start a cluster. It also makes ``rowid`` order the
        commit order among these writers, which the cluster stage's catch-up
        ("stories after the last rowid I saw") relies on.
        """
        db.execute("SELECT pg_advisory_xact_lock(?)", [CLUSTER_LOCK_KEY])

    def columns(self, table: str) -> set[str]:
        return {r["column_name"] for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = current_schema()", [table])}

    def _fts_clause(self, fts_query: str) -> tuple[str, list[Any]]:
        tsquery = fts5_to_tsquery(fts_query)
        if not tsquery:
            return "FALSE", []
        return f"{_TSV} @@ to_tsquery('{_TS_CONFIG}', ?)", [tsquery]

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Full-text search over stored stories (PostgreSQL's web-search syntax: words, "phrases",
        ``or``, ``-word``), best first. Runs of Chinese, Japanese or Korean characters are each
        required as a substring (the 'simple' parser does not split them into words)."""
        rest, runs = split_cjk(query)
        if runs:
            clauses = [f"instr(s.title || {self.NEWLINE} || s.text, ?) > 0" for _ in runs]
            params: list[Any] = list(runs)
            if rest.strip():
                clauses.append(f"{_TSV} @@ websearch_to_tsquery('{_TS_CONFIG}', ?)")
                params.append(rest)
            rows = self.query(
                "SELECT s.id, s.title, s.url, s.source, s.published_at, s.text FROM stories s "
                f"WHERE {' AND '.join(clauses)} ORDER BY s.published_at DESC, s.rowid DESC LIMIT ?", [*params, limit])
            for row in rows:
                row["snippet"] = cjk_snippet(row.pop("text") or row["title"], runs[0])
            return rows
        return self.query(
            "SELECT s.id, s.title, s.url, s.source, s.published_at, "
            f"ts_headline('{_TS_CONFIG}', s.text, q, '{_HEADLINE}') AS snippet "
            f"FROM stories s, websearch_to_tsquery('{_TS_CONFIG}', ?) AS q WHERE {_TSV} @@ q "
            f"ORDER BY ts_rank({_TSV}, q) DESC, s.rowid DESC LIMIT ?", [query, limit])

    def pending_migrations(self) -> list[str]:
        """The migrations this program knows that the database has not had."""
        assert self.pool is not None
        with self.pool.connection() as conn:
            done = set(pg_migrations.applied(conn))
        return [name for name, _ in pg_migrations.MIGRATIONS if name not in done]

    def reclaim_space(self) -> int | None:
        """Nothing to do by hand: PostgreSQL's autovacuum reuses the space deletions free."""
        return 0

    def file_size(self) -> int:
        """Bytes the database takes on the server."""
        return int(self.query("SELECT pg_database_size(current_database()) AS n")[0]["n"])

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection, for coordination that is not the store's (channel leases:
        :mod:`monitor.channel_dispatch`)."""
        assert self.pool is not None
        with self.pool.connection() as conn:
            yield conn


class _Transaction:
    """The neutral face of the connection inside :meth:`PostgresStore.write`."""

    def __init__(self, conn: psycopg.Connection):
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self._conn.execute(to_pg(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.cursor().executemany(to_pg(sql), list(rows))


def fts5_to_tsquery(fts: str) -> str:
    """The ``to_tsquery`` text of the FTS5 subset :func:`monitor.search.candidates` writes:
    quoted words (``"word"``, ``"pre"*``), ``AND``, ``OR`` and parentheses."""
    out: list[str] = []
    for token in re.findall(r'"(?:[^"]|"")*"\*?|\(|\)|\bAND\b|\bOR\b|\bNOT\b', fts):
        if token in ("(", ")"):
            out.append(token)
        elif token == "AND":
            out.append("&")
        elif token == "OR":
            out.append("|")
        elif token == "NOT":
            out.append("& !")
        else:
            prefix = token.endswith("*")
            words = re.findall(r"\w+", token.rstrip("*")[1:-1].replace('""', '"').lower())
            if not words:
                # Nothing the parser would index: no story has it.
                out.append("'news_monitor_no_such_word'")
                continue
            lexemes = [f"'{w}'" for w in words]
            if prefix:
                lexemes[-1] += ":*"
            out.append("(" + " <-> ".join(lexemes) + ")")
    return " ".join(out)
