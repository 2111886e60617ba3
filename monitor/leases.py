"""Leases with fencing tokens in PostgreSQL: how identical workers share hosts and channels.

PostgreSQL is the coordinator; there is no broker. A lease is one row of
``fleet_leases`` keyed by ``(kind, name)``: a host (``kind = "host"``) whose
due sources one worker polls, or an alert channel (``kind = "channel"``) whose
outbox one worker dispatches. A row holds the owner (a worker id), the expiry
and a fencing token that grows by one at every claim.

- **Claim** (:meth:`Coordinator.claim`): ``SELECT … FOR UPDATE SKIP LOCKED``
  picks one free or expired row that is due, and the same statement makes it
  ours with the next token. Two workers never get the same row; neither waits
  on the other.
- **Fence** (:meth:`Coordinator.fence`): every write made under a lease starts
  with this check, in the same transaction as the write. It share-locks the
  lease row and fails unless the owner and token are still ours and the
  expiry has not passed. A claim by another worker takes the row lock, so it
  cannot slip in between the check and the commit; a worker paused past its
  lease (GC, SIGSTOP, a network stall) finds a newer token and its write is
  refused (:class:`LeaseLost`), so it cannot write over the worker that took
  over.
- **Renew** / **release**: renewal pushes the expiry out while the token
  still matches; release gives the row back and says when it is next due.

All times are the database's clock (``clock_timestamp()``): workers on many
machines need not agree on the time, only on PostgreSQL's.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .errors import LeaseLost

__all__ = ["Coordinator", "Lease", "LeaseLost", "FLEET_SCHEMA", "HOST", "CHANNEL", "new_worker_id", "lease_fence",
           "store_fence", "live_workers"]

HOST = "host"
CHANNEL = "channel"

# Idempotent: every worker runs it at start (CREATE … IF NOT EXISTS under an
# advisory lock, so two workers starting together do not race on the catalog).
FLEET_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_workers (
    id text PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    stopped_at timestamptz,
    polls bigint NOT NULL DEFAULT 0,
    last_poll_at timestamptz,
    last_source text,
    claims bigint NOT NULL DEFAULT 0,
    claim_seconds double precision NOT NULL DEFAULT 0,
    claim_max_seconds double precision NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS fleet_leases (
    kind text NOT NULL,
    name text NOT NULL,
    owner text,
    token bigint NOT NULL DEFAULT 0,
    expires_at timestamptz,
    due_at timestamptz NOT NULL DEFAULT '-infinity',
    claimed_at timestamptz,
    PRIMARY KEY (kind, name)
);
CREATE INDEX IF NOT EXISTS fleet_leases_due ON fleet_leases (kind, due_at);
CREATE TABLE IF NOT EXISTS fleet_polls (
    source text PRIMARY KEY,
    worker text NOT NULL,
    token bigint NOT NULL,
    polled_at timestamptz NOT NULL
);
"""

_SCHEMA_LOCK = 0x6E65_7773  # pg_advisory_xact_lock key: "news"


def lease_lost(lease: "Lease") -> LeaseLost:
    """The refusal of a write under ``lease``, in words naming the lease and its token."""
    return LeaseLost(f"lease on {lease.kind} {lease.name!r} (token {lease.token}) is no longer held by "
                     f"{lease.owner}; the write was refused")


@dataclass(frozen=True)
class Lease:
    """A claimed lease: the row ``(kind, name)``, who holds it and with which fencing token."""

    kind: str
    name: str
    owner: str
    token: int
    expires_at: datetime


def new_worker_id() -> str:
    """``hostname:pid:random``: unique across machines and restarts, readable in ``monitor workers``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def connect(url: str, *, lease_seconds: float | None = None) -> psycopg.Connection:
    """A connection for coordination (autocommit; transactions are explicit).

    ``lease_seconds`` bounds how long a session may sit idle inside a
    transaction: a worker stopped while holding a lease row's lock loses its
    session (and the lock) instead of blocking the takeover forever.
    """
    conn = psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10)
    if lease_seconds:
        conn.execute(f"SET idle_in_transaction_session_timeout = {int(lease_seconds * 1000)}")
    return conn


class Coordinator:
    """Leases, fencing and heartbeats for one worker on one connection.

    :param conn: from :func:`connect` (autocommit); used by one thread at a time.
    :param worker: this worker's id (:func:`new_worker_id`).
    """

    def __init__(self, conn: psycopg.Connection, worker: str):
        self.conn = conn
        self.worker = worker

    def _one(self, sql: str, params: Any) -> dict[str, Any] | None:
        # Rows as dicts on any connection: the store's pool lends plain tuple-row connections.
        return self.conn.cursor(row_factory=dict_row).execute(sql, params).fetchone()

    # -- schema and workers ------------------------------------------------

    def create_schema(self) -> None:
        """Create the fleet tables if missing (safe with many workers starting at once)."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
            self.conn.execute(FLEET_SCHEMA)

    def register(self) -> None:
        """Announce this worker (its first heartbeat)."""
        self.conn.execute(
            "INSERT INTO fleet_workers (id, hostname, pid) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = clock_timestamp(), stopped_at = NULL",
            [self.worker, socket.gethostname(), os.getpid()],
        )

    def heartbeat(self, polls: int = 0, last_source: str | None = None, claims: int = 0,
                  claim_seconds: float = 0.0, claim_max: float = 0.0) -> None:
        """Say this worker is alive, with what it did since the last heartbeat.

        Polls are counted here rather than by each poll's transaction: a row
        every poll of a worker updated would make its polls queue for its lock.

        :param polls: polls recorded since the last heartbeat; ``last_source`` the latest one's source.
        :param claims: lease claims made since, ``claim_seconds`` their total time, ``claim_max`` the longest.
        """
        self.conn.execute(
            "UPDATE fleet_workers SET heartbeat_at = clock_timestamp(), polls = polls + %(polls)s, "
            "last_poll_at = CASE WHEN %(polls)s > 0 THEN clock_timestamp() ELSE last_poll_at END, "
            "last_source = COALESCE(%(source)s, last_source), claims = claims + %(claims)s, "
            "claim_seconds = claim_seconds + %(seconds)s, claim_max_seconds = greatest(claim_max_seconds, %(max)s) "
            "WHERE id = %(id)s",
            {"polls": polls, "source": last_source, "claims": claims, "seconds": claim_seconds, "max": claim_max,
             "id": self.worker},
        )

    def stopped(self) -> None:
        """Say this worker stopped, and give back every lease it holds (now due again)."""
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE fleet_leases SET owner = NULL, expires_at = NULL WHERE owner = %s", [self.worker])
            self.conn.execute("UPDATE fleet_workers SET stopped_at = clock_timestamp() WHERE id = %s", [self.worker])

    # -- leases ------------------------------------------------------------

    def ensure(self, kind: str, names: Sequence[str]) -> None:
        """Make sure a lease row exists for each name (due now when new)."""
        if names:
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO fleet_leases (kind, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(kind, name) for name in names],
                )

    def claim(self, kind: str, seconds: float, names: Sequence[str] | None = None) -> Lease | None:
        """Claim one due lease of ``kind`` nobody holds (or whose holder let it expire); ``None`` if none.

        :param names: only among these names (a worker claims only the hosts of its own sources).
        """
        only = "AND name = ANY(%(names)s)" if names is not None else ""
        row = self._one(
            f"""
            WITH pick AS (
                SELECT kind, name FROM fleet_leases
                WHERE kind = %(kind)s {only} AND due_at <= clock_timestamp()
                  AND (owner IS NULL OR expires_at <= clock_timestamp())
                ORDER BY due_at, name
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE fleet_leases l SET owner = %(owner)s, token = l.token + 1, claimed_at = clock_timestamp(),
                expires_at = clock_timestamp() + make_interval(secs => %(seconds)s)
            FROM pick WHERE l.kind = pick.kind AND l.name = pick.name
            RETURNING l.kind, l.name, l.owner, l.token, l.expires_at
            """,
            {"kind": kind, "names": list(names) if names is not None else None, "owner": self.worker,
             "seconds": seconds},
        )
        return Lease(**row) if row else None

    def holders(self, kind: str, names: Sequence[str]) -> list[dict[str, Any]]:
        """``name`` and ``owner`` (``None`` when free or expired) of the leases ``names`` of ``kind``."""
        return self.conn.cursor(row_factory=dict_row).execute(
            "SELECT name, CASE WHEN expires_at > clock_timestamp() THEN owner END AS owner FROM fleet_leases "
            "WHERE kind = %s AND name = ANY(%s) ORDER BY name", [kind, list(names)]).fetchall()

    def renew(self, lease: Lease, seconds: float) -> Lease:
        """Push the lease's expiry ``seconds`` out from now.

        :raises LeaseLost: the lease expired or another worker claimed it.
        """
        row = self._one(
            "UPDATE fleet_leases SET expires_at = clock_timestamp() + make_interval(secs => %s) "
            "WHERE kind = %s AND name = %s AND owner = %s AND token = %s AND expires_at > clock_timestamp() "
            "RETURNING expires_at",
            [seconds, lease.kind, lease.name, lease.owner, lease.token],
        )
        if row is None:
            raise lease_lost(lease)
        return Lease(lease.kind, lease.name, lease.owner, lease.token, row["expires_at"])

    def release(self, lease: Lease, due_at: datetime | None = None) -> bool:
        """Give the lease back; the row falls due again at ``due_at`` (now when ``None``).

        Returns ``False`` when it was no longer ours (nothing is changed then).
        """
        cur = self.conn.execute(
            "UPDATE fleet_leases SET owner = NULL, expires_at = NULL, due_at = COALESCE(%s, clock_timestamp()) "
            "WHERE kind = %s AND name = %s AND owner = %s AND token = %s",
            [due_at, lease.kind, lease.name, lease.owner, lease.token],
        )
        return cur.rowcount == 1

    @staticmethod
    def fence(cur: psycopg.Cursor[Any], lease: Lease) -> None:
        """The first statement of every write under ``lease``, inside the write's transaction.

        Share-locks the lease row until the transaction ends, so no claim can
        take it between this check and the commit.

        :raises LeaseLost: the lease is no longer ours; roll the transaction back.
        """
        cur.execute(
            "SELECT 1 FROM fleet_leases WHERE kind = %s AND name = %s AND owner = %s AND token = %s "
            "AND expires_at > clock_timestamp() FOR SHARE",
            [lease.kind, lease.name, lease.owner, lease.token],
        )
        if cur.fetchone() is None:
            raise lease_lost(lease)

    @contextmanager
    def fenced(self, lease: Lease) -> Iterator[psycopg.Cursor[Any]]:
        """A transaction whose writes count only while ``lease`` is held: fence first, commit at the end.

        :raises LeaseLost: the lease is gone; nothing written in the block is kept.
        """
        with self.conn.transaction(), self.conn.cursor() as cur:
            self.fence(cur, lease)
            yield cur


def lease_fence(lease: Lease) -> Callable[[Any], None]:
    """The check to give :meth:`monitor.storage.Storage.fenced` for writes under ``lease``.

    In the store's write transaction (neutral SQL, ``?`` placeholders) it
    share-locks the lease row and refuses the write unless ``lease`` still
    holds; the row stays locked until the commit, so no claim slips in between.

    :raises LeaseLost: the lease is no longer ours; the store rolls the transaction back.
    """

    def check(tx: Any) -> None:
        row = tx.execute(
            "SELECT 1 FROM fleet_leases WHERE kind = ? AND name = ? AND owner = ? AND token = ? "
            "AND expires_at > clock_timestamp() FOR SHARE",
            [lease.kind, lease.name, lease.owner, lease.token],
        ).fetchone()
        if row is None:
            raise lease_lost(lease)

    return check


def store_fence(lease: Lease, source: str) -> Callable[[Any], None]:
    """The check a fleet worker gives :meth:`monitor.storage.Storage.fenced` for a poll of ``source``:
    :func:`lease_fence`, then a record of which worker, under which token, wrote ``source``'s
    poll (``monitor sources`` shows it).

    :raises LeaseLost: the lease is no longer ours; the store rolls the transaction back.
    """
    fence = lease_fence(lease)

    def check(tx: Any) -> None:
        fence(tx)
        tx.execute(
            "INSERT INTO fleet_polls (source, worker, token, polled_at) VALUES (?, ?, ?, clock_timestamp()) "
            "ON CONFLICT (source) DO UPDATE SET worker = excluded.worker, token = excluded.token, "
            "polled_at = excluded.polled_at",
            [source, lease.owner, lease.token],
        )

    return check


def live_workers(conn: psycopg.Connection, stale_after: float) -> list[dict[str, Any]]:
    """Workers whose heartbeat is younger than ``stale_after`` seconds, with the leases they hold."""
    return conn.execute(
        """
        SELECT w.id, w.hostname, w.pid, w.started_at, w.heartbeat_at, w.polls, w.last_poll_at, w.last_source,
               COALESCE(array_agg(l.kind || ' ' || l.name ORDER BY l.kind, l.name)
                        FILTER (WHERE l.name IS NOT NULL), '{}') AS leases
        FROM fleet_workers w
        LEFT JOIN fleet_leases l ON l.owner = w.id AND l.expires_at > clock_timestamp()
        WHERE w.stopped_at IS NULL AND w.heartbeat_at > clock_timestamp() - make_interval(secs => %s)
        GROUP BY w.id ORDER BY w.started_at, w.id
        """,
        [stale_after],
    ).fetchall()
