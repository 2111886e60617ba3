"""Host and channel leases with fencing tokens, on a real PostgreSQL database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")

from monitor.leases import CHANNEL, HOST, Coordinator, LeaseLost, connect, live_workers  # noqa: E402

LONG = 60.0  # seconds: a lease that cannot expire during a test


@pytest.fixture(scope="module")
def db_url(monitor_postgres_database: str) -> Iterator[str]:
    yield monitor_postgres_database


@pytest.fixture
def coordinators(db_url: str) -> Iterator[list[Coordinator]]:
    made: list[Coordinator] = []

    def make(worker: str) -> Coordinator:
        coord = Coordinator(connect(db_url), worker)
        made.append(coord)
        return coord

    first = make("w-setup")
    first.create_schema()
    first.conn.execute("TRUNCATE fleet_leases, fleet_workers")
    yield [first, make("a"), make("b"), make("c")]
    for coord in made:
        coord.conn.close()


def test_two_workers_never_get_the_same_host(coordinators: list[Coordinator]) -> None:
    _, a, b, _ = coordinators
    a.ensure(HOST, ["h1", "h2"])
    first, second = a.claim(HOST, LONG), b.claim(HOST, LONG)
    assert first is not None and second is not None
    assert {first.name, second.name} == {"h1", "h2"}
    assert a.claim(HOST, LONG) is None and b.claim(HOST, LONG) is None  # both held, none expired


def test_a_claim_skips_a_row_locked_by_a_write_in_progress(coordinators: list[Coordinator]) -> None:
    _, a, b, _ = coordinators
    a.ensure(HOST, ["h1", "h2"])
    lease = a.claim(HOST, LONG, ["h1"])
    assert lease is not None
    with a.fenced(lease):
        # a's write transaction holds h1's row: b neither waits for it nor gets it.
        started = time.monotonic()
        other = b.claim(HOST, LONG)
        assert time.monotonic() - started < 5
        assert other is not None and other.name == "h2"


def test_a_worker_past_its_lease_cannot_write_over_the_one_that_took_over(coordinators: list[Coordinator]) -> None:
    _, a, b, _ = coordinators
    a.ensure(HOST, ["h1"])
    a.conn.execute("CREATE TABLE IF NOT EXISTS writes (who text, token bigint)")
    a.conn.execute("TRUNCATE writes")
    old = a.claim(HOST, 0.3)
    assert old is not None
    time.sleep(0.6)  # a is "paused" past its lease
    new = b.claim(HOST, LONG)
    assert new is not None and new.name == "h1" and new.token == old.token + 1
    with b.fenced(new) as cur:
        cur.execute("INSERT INTO writes VALUES ('b', %s)", [new.token])
    with pytest.raises(LeaseLost):
        with a.fenced(old) as cur:
            cur.execute("INSERT INTO writes VALUES ('a', %s)", [old.token])
    with pytest.raises(LeaseLost):
        a.renew(old, LONG)
    assert a.release(old) is False  # giving back a lease it lost changes nothing
    rows = a.conn.execute("SELECT who, token FROM writes").fetchall()
    assert rows == [{"who": "b", "token": new.token}]
    assert b.renew(new, LONG).token == new.token


def test_an_expired_lease_refuses_writes_even_before_anyone_takes_over(coordinators: list[Coordinator]) -> None:
    _, a, _, _ = coordinators
    a.ensure(HOST, ["h1"])
    lease = a.claim(HOST, 0.3)
    assert lease is not None
    time.sleep(0.6)
    with pytest.raises(LeaseLost):
        with a.fenced(lease):
            pass


def test_a_claim_waits_for_the_write_that_checked_the_fence(coordinators: list[Coordinator]) -> None:
    """Between the fence and the commit no one can take the lease: the check and the write are one."""
    _, a, b, _ = coordinators
    a.ensure(HOST, ["h1"])
    lease = a.claim(HOST, 1.0)
    assert lease is not None
    claimed: list[object] = []
    with a.fenced(lease):
        time.sleep(1.3)  # the lease expires while the write that passed the fence is still open
        thread = threading.Thread(target=lambda: claimed.append(b.claim(HOST, LONG)))
        thread.start()
        thread.join()
        assert claimed == [None]  # the row is locked by the write: skipped, not taken
    assert b.claim(HOST, LONG) is not None  # committed: now it can be taken


def test_release_sets_when_the_host_is_due_again(coordinators: list[Coordinator]) -> None:
    _, a, b, _ = coordinators
    a.ensure(HOST, ["h1"])
    lease = a.claim(HOST, LONG)
    assert lease is not None
    later = a.conn.execute("SELECT clock_timestamp() + interval '1 hour' AS t").fetchone()["t"]
    assert a.release(lease, later) is True
    assert b.claim(HOST, LONG) is None  # free, but not due
    a.release(lease)  # stale token: no effect
    assert b.claim(HOST, LONG) is None


def test_tokens_only_grow(coordinators: list[Coordinator]) -> None:
    _, a, b, _ = coordinators
    a.ensure(CHANNEL, ["ops"])
    tokens = []
    for coord in (a, b, a, b):
        lease = coord.claim(CHANNEL, LONG)
        assert lease is not None
        tokens.append(lease.token)
        coord.release(lease)
    assert tokens == sorted(tokens) and len(set(tokens)) == 4


def test_a_session_stopped_inside_a_transaction_lets_its_lease_go(db_url: str,
                                                                   coordinators: list[Coordinator]) -> None:
    _, a, b, _ = coordinators
    a.ensure(HOST, ["h1"])
    paused = Coordinator(connect(db_url, lease_seconds=1.0), "paused")
    lease = paused.claim(HOST, 1.0)
    assert lease is not None
    try:
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            with paused.fenced(lease):
                time.sleep(2.5)  # past idle_in_transaction_session_timeout: the server ends the session
        taken = b.claim(HOST, LONG)
        assert taken is not None and taken.token == lease.token + 1
    finally:
        paused.conn.close()


def test_live_workers_lists_heartbeats_and_leases(coordinators: list[Coordinator]) -> None:
    setup, a, b, c = coordinators
    for coord in (a, b, c):
        coord.register()
    a.ensure(HOST, ["h1"])
    assert a.claim(HOST, LONG) is not None
    c.stopped()
    workers = {w["id"]: w for w in live_workers(setup.conn, stale_after=30)}
    assert set(workers) == {"a", "b"}
    assert workers["a"]["leases"] == ["host h1"] and workers["b"]["leases"] == []
    a.heartbeat(polls=1, last_source="feed-1", claims=2, claim_seconds=0.01, claim_max=0.007)
    row = live_workers(setup.conn, stale_after=30)[0]
    assert row["last_source"] == "feed-1" and row["polls"] == 1 and row["last_poll_at"] is not None
    setup.conn.execute("UPDATE fleet_workers SET heartbeat_at = heartbeat_at - interval '1 minute' WHERE id = 'b'")
    assert [w["id"] for w in live_workers(setup.conn, stale_after=30)] == ["a"]
