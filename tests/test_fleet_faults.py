"""Fleet workers under faults, against a real PostgreSQL and a loopback feed farm.

Each test runs real ``python -m monitor.fleet`` processes over a
``bench.feedfarm`` process, then checks what the farm saw (requests per host
in flight, webhook POSTs by Idempotency-Key) and what the database holds.
Every feed's entries have stable GUIDs, so "every story stored once" is
"exactly feeds × items rows"; the interval is an hour, so every feed is
fetched once unless a poll was lost and done again.
"""

from __future__ import annotations

import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.testing import postgres_server_url

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")
from psycopg.rows import dict_row  # noqa: E402

from bench.fleetrig import FarmProcess, WorkerProcess, done, fleet_counts, wait_until, write_config  # noqa: E402

pytestmark = pytest.mark.slow

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def module_db(monitor_postgres_database: str) -> Iterator[str]:
    yield monitor_postgres_database


@pytest.fixture
def db_url(module_db: str) -> Iterator[str]:
    """The module's database, emptied of fleet tables before each test."""
    with psycopg.connect(module_db, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    yield module_db


@pytest.fixture
def run(tmp_path: Path) -> Iterator[dict]:
    """Owns the farm and worker processes a test starts, and stops them all at the end."""
    made: dict = {"farms": [], "workers": []}
    yield made
    for worker in made["workers"]:
        worker.stop(timeout=10)
    for farm in made["farms"]:
        farm.stop()


def _farm(run: dict, **options) -> FarmProcess:
    farm = FarmProcess(**options)
    run["farms"].append(farm)
    return farm


def _worker(run: dict, name: str, config: Path, url: str, folder: Path, **options) -> WorkerProcess:
    worker = WorkerProcess(name, config, url, folder, **options)
    run["workers"].append(worker)
    return worker


def _conn(url: str):
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def _assert_exactly_once(conn, farm: FarmProcess, *, in_flight_window: int = 0) -> dict:
    counts = fleet_counts(conn)
    stats = farm.stats()
    assert counts["stories"] == farm.expected_stories, (counts, stats)
    assert counts["sent"] == farm.expected_alerts and counts["unsent"] == 0, counts
    assert stats["hook_keys"] == farm.expected_alerts, stats
    assert stats["duplicate_hooks"] <= in_flight_window, stats
    assert stats["over_cap"] == 0 and stats["max_in_flight"] <= farm.cap, stats
    return stats


def test_kill_9_mid_poll_another_worker_finishes_after_the_lease(tmp_path: Path, db_url: str, run: dict) -> None:
    farm = _farm(run, hosts=4, feeds=40, delay=0.5)
    config = write_config(tmp_path, farm)
    first = _worker(run, "w1", config, db_url, tmp_path, lease=3, heartbeat=0.5)
    assert wait_until(lambda: farm.stats()["requests"] >= 4, 60), first.log()
    first.kill()  # mid-poll: requests in flight, hosts leased
    with _conn(db_url) as conn:
        stranded = conn.execute("SELECT count(*) AS n FROM fleet_leases WHERE owner = 'w1'").fetchone()["n"]
        assert stranded > 0  # it died holding leases
        _worker(run, "w2", config, db_url, tmp_path, lease=3, heartbeat=0.5)
        assert wait_until(lambda: done(conn, farm), 60), fleet_counts(conn)
        stats = _assert_exactly_once(conn, farm)
        # Re-fetched: at most what w1 had in flight when it died (it never recorded those polls).
        assert stats["duplicate_fetches"] <= 4 * farm.cap, stats
        by = conn.execute("SELECT count(*) AS n FROM fleet_polls WHERE worker = 'w2'").fetchone()["n"]
        assert by > 0


def test_kill_9_mid_send_resends_only_the_alert_in_flight(tmp_path: Path, db_url: str, run: dict) -> None:
    farm = _farm(run, hosts=2, feeds=30, hook_delay=1.5)  # 3 alerts; the receiver is slow
    config = write_config(tmp_path, farm)
    first = _worker(run, "w1", config, db_url, tmp_path, lease=3, heartbeat=0.5)
    assert wait_until(lambda: farm.stats()["hooks_in_flight"] >= 1, 60), first.log()
    first.kill()  # the receiver has the POST; w1 never marks it sent
    with _conn(db_url) as conn:
        sending = conn.execute("SELECT count(*) AS n FROM outbox WHERE status = 'sending'").fetchone()["n"]
        assert sending == 1
        second = _worker(run, "w2", config, db_url, tmp_path, lease=3, heartbeat=0.5)
        assert wait_until(lambda: done(conn, farm), 60), fleet_counts(conn)
        stats = _assert_exactly_once(conn, farm, in_flight_window=1)
        assert stats["duplicate_hooks"] == 1  # the documented window: the one in flight, sent again
        assert "were being sent when a previous run stopped" in second.log()


def test_sigstop_past_the_lease_then_sigcont_its_writes_are_refused(tmp_path: Path, db_url: str, run: dict) -> None:
    farm = _farm(run, hosts=1, feeds=12, delay=1.0)
    config = write_config(tmp_path, farm)
    paused = _worker(run, "w1", config, db_url, tmp_path, lease=2, heartbeat=0.4)
    # Both of w1's requests have reached the server: stopped now, it has nothing half-started.
    # (A request being started at the instant of a pause goes out when the worker continues,
    # before it can notice: docs/scale-out.md.)
    assert wait_until(lambda: farm.stats()["requests"] >= 2, 60), paused.log()
    paused.signal(signal.SIGSTOP)  # two requests in flight; they complete at the server while w1 is stopped
    with _conn(db_url) as conn:
        taker = _worker(run, "w2", config, db_url, tmp_path, lease=30, heartbeat=0.5)
        assert wait_until(lambda: conn.execute(
            "SELECT owner FROM fleet_leases WHERE kind = 'host'").fetchone()["owner"] == "w2", 60), taker.log()
        paused.signal(signal.SIGCONT)  # w1 wakes with fetched bodies to write under a lost lease
        assert wait_until(lambda: done(conn, farm), 60), fleet_counts(conn)
        time.sleep(1.0)  # time for w1 to try its writes
        log = paused.log()
        assert "no longer held by w1; the write was refused" in log, log
        rows = conn.execute("SELECT worker AS stored_by, count(*) AS n FROM fleet_polls GROUP BY worker").fetchall()
        tokens = conn.execute("SELECT token FROM fleet_leases WHERE kind = 'host'").fetchone()["token"]
        stats = _assert_exactly_once(conn, farm)
        assert stats["over_cap"] == 0
        written_by = {r["stored_by"]: r["n"] for r in rows}
        assert written_by.get("w2", 0) > 0 and tokens >= 2, (written_by, tokens)
        # After the takeover nothing of w1 reached the tables: the polls it had in flight when
        # stopped came back after w2 claimed the host, and the fence refused them.
        late = conn.execute(
            "SELECT count(*) AS n FROM fleet_polls WHERE worker = 'w1' AND polled_at > "
            "(SELECT claimed_at FROM fleet_leases WHERE kind = 'host')").fetchone()["n"]
        assert late == 0


def test_random_starts_and_stops_of_two_then_three_workers(tmp_path: Path, db_url: str, run: dict) -> None:
    farm = _farm(run, hosts=6, feeds=120, delay=0.15)
    config = write_config(tmp_path, farm)
    rng = random.Random(13)
    live: list[WorkerProcess] = []
    serial = 0
    kills = 0

    def start() -> None:
        nonlocal serial
        serial += 1
        live.append(_worker(run, f"w{serial}", config, db_url, tmp_path, lease=3, heartbeat=0.5, hosts_at_once=3))

    for _ in range(2):
        start()
    deadline = time.monotonic() + 25
    three_from = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(1.0, 2.5))
        target = 3 if time.monotonic() > three_from else 2
        if len(live) >= target or (live and rng.random() < 0.5):
            victim = live.pop(rng.randrange(len(live)))
            if rng.random() < 0.3:
                victim.kill()
                kills += 1
            else:
                victim.stop()
        while len(live) < target:
            start()
    with _conn(db_url) as conn:
        if not live:
            start()
        assert wait_until(lambda: done(conn, farm), 60), fleet_counts(conn)
        stats = _assert_exactly_once(conn, farm, in_flight_window=kills)
        assert stats["duplicate_hooks"] <= kills
    assert serial >= 4  # workers really came and went


def test_two_workers_send_two_channels_at_once_and_never_one_channel_twice_at_once(
        tmp_path: Path, db_url: str, run: dict) -> None:
    """A channel is sent by the holder of its lease: two channels go out in parallel, each alert once."""
    farm = _farm(run, hosts=2, feeds=40, hook_delay=1.0, channels=("alpha", "beta"))  # 4 alerts per channel
    config = write_config(tmp_path, farm)
    for name in ("w1", "w2"):
        _worker(run, name, config, db_url, tmp_path, lease=3, heartbeat=0.5)
    with _conn(db_url) as conn:
        assert wait_until(lambda: done(conn, farm), 90), fleet_counts(conn)
        stats = _assert_exactly_once(conn, farm)
    assert stats["channel_max_in_flight"] == {"alpha": 1, "beta": 1}, stats  # never two senders on one channel
    # Both channels at once: a worker sends one message at a time, so that took both workers.
    assert stats["max_hooks_in_flight"] == 2, stats


def test_a_rate_limit_holds_across_workers(tmp_path: Path, db_url: str, run: dict) -> None:
    """Each channel's lease has one holder at a time, so "1 per 2 s" is 1 per 2 s for the whole fleet."""
    farm = _farm(run, hosts=3, feeds=40, channels=("alpha", "beta"))  # 4 alerts a channel, queued within a second or two
    config = write_config(tmp_path, farm, channel_options='rate_limit = "1/2s"')
    for name in ("w1", "w2"):
        _worker(run, name, config, db_url, tmp_path, lease=5, heartbeat=0.5)
    with _conn(db_url) as conn:
        assert wait_until(lambda: done(conn, farm), 60), fleet_counts(conn)
        _assert_exactly_once(conn, farm)
    for channel, times in farm.stats()["channel_times"].items():
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        assert len(times) == 4 and min(gaps) >= 1.9, (channel, gaps)


def test_sigstop_past_a_channel_lease_then_sigcont_cannot_mark_or_send(tmp_path: Path, db_url: str, run: dict) -> None:
    farm = _farm(run, hosts=1, feeds=12, hook_delay=3.0)  # 2 alerts; the receiver holds each POST 3 s
    config = write_config(tmp_path, farm)
    paused = _worker(run, "w1", config, db_url, tmp_path, lease=2, heartbeat=0.4)
    assert wait_until(lambda: farm.stats()["hooks_in_flight"] >= 1, 60), paused.log()
    paused.signal(signal.SIGSTOP)  # mid-send: the receiver has the POST, w1 has not marked it sent
    with _conn(db_url) as conn:
        taker = _worker(run, "w2", config, db_url, tmp_path, lease=30, heartbeat=0.5)
        assert wait_until(lambda: done(conn, farm), 60), (fleet_counts(conn), taker.log())
        paused.signal(signal.SIGCONT)  # w1 wakes with its answer in hand and a lease that is gone
        assert wait_until(lambda: "the write was refused" in paused.log(), 20), paused.log()
        time.sleep(2.0)  # time for w1 to try anything else
        stats = _assert_exactly_once(conn, farm, in_flight_window=1)
        token = conn.execute("SELECT token FROM fleet_leases WHERE kind = 'channel' AND name = 'hook'").fetchone()
    log = paused.log()
    assert "lease on channel 'hook'" in log and "no longer held by w1; the write was refused" in log, log
    # The one in flight when w1 stopped went twice (the documented window); w1 sent nothing after continuing.
    assert stats["duplicate_hooks"] == 1 and stats["hooks"] == farm.expected_alerts + 1, stats
    assert "were being sent when a previous run stopped" in taker.log()
    assert token["token"] >= 2


def test_two_workers_put_three_outlets_copies_of_one_wire_story_in_one_cluster(
        tmp_path: Path, db_url: str, run: dict) -> None:
    """Clusters are the database's: copies polled by different workers at the same moment join one cluster,
    and its watchlist alerts once per channel."""
    farm = _farm(run, hosts=3, feeds=30, delay=0.3, wire=True, channels=("alpha", "beta"))
    config = write_config(tmp_path, farm)
    for name in ("w1", "w2"):
        _worker(run, name, config, db_url, tmp_path, lease=3, heartbeat=0.5, hosts_at_once=2)
    with _conn(db_url) as conn:
        assert wait_until(lambda: done(conn, farm), 90), fleet_counts(conn)
        _assert_exactly_once(conn, farm)
        wire = conn.execute("SELECT s.id, coalesce(s.cluster_id, s.id) AS cluster, p.worker FROM stories s "
                            "JOIN fleet_polls p ON p.source = s.source WHERE s.guid LIKE 'wire-%'").fetchall()
        alerts = conn.execute(
            "SELECT o.channel, count(*) AS n FROM outbox o JOIN matches m ON m.id = o.match_id "
            "JOIN stories s ON s.id = m.story_id WHERE s.guid LIKE 'wire-%' GROUP BY o.channel").fetchall()
        clusters = conn.execute("SELECT count(DISTINCT coalesce(cluster_id, id)) AS n FROM stories").fetchone()["n"]
    assert len(wire) == 3 and len({row["cluster"] for row in wire}) == 1, wire
    assert {row["channel"]: row["n"] for row in alerts} == {"alpha": 1, "beta": 1}
    assert clusters == farm.expected_stories - 2  # every other farm story is a cluster of its own


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(*command: str) -> list[str]:
    """Run a PostgreSQL program as the ``postgres`` user (the server refuses to run as root)."""
    import os

    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture
def throwaway_cluster() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL 15 cluster of our own on a free port in a temp folder: ours to restart."""
    postgres_server_url()  # skips with the reason when PostgreSQL tests are off
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"{PG_BIN}/initdb is missing: install postgresql-15 (.ci/run does)")
    import os
    import pwd

    # Not under pytest's temp folder: that is private to this user, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="monitor-pgcluster-"))
    data = folder / "data"
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E",
                                "UTF8", "--no-sync"), check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off"

    def ctl(*args: str) -> None:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
                                    "-o", options, "-w", *args), check=True, capture_output=True)

    ctl("start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", data
    finally:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"),
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_postgres_restarted_under_running_workers(tmp_path: Path, throwaway_cluster, run: dict) -> None:
    url, data = throwaway_cluster
    farm = _farm(run, hosts=4, feeds=80, delay=0.2)
    # A poll whose write failed while the server was away is polled again after its interval:
    # 15 s, so the test sees the stories it could not store then arrive.
    config = write_config(tmp_path, farm, interval="15s")
    workers = [_worker(run, f"w{i}", config, url, tmp_path, lease=4, heartbeat=0.5, hosts_at_once=2)
               for i in (1, 2)]
    with _conn(url) as conn:
        assert wait_until(lambda: fleet_counts(conn)["stories"] >= 20, 60)
        before = fleet_counts(conn)["stories"]
    ctl = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    subprocess.run(ctl, check=True, capture_output=True)
    time.sleep(3)  # the workers find it gone
    options = (f"-c listen_addresses=127.0.0.1 -c port={url.rsplit(':', 1)[1].split('/')[0]} "
               f"-c unix_socket_directories={data.parent} -c fsync=off")
    subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data.parent / "server.log"),
                                "-o", options, "-w", "start"), check=True, capture_output=True)
    with _conn(url) as conn:
        assert fleet_counts(conn)["stories"] >= before  # nothing committed was lost
        assert wait_until(lambda: done(conn, farm), 60), fleet_counts(conn)
        logs = "".join(w.log() for w in workers)
        # An alert whose "sent" could not be recorded while the server was away is sent again
        # (the documented window), and each such resend is logged.
        resent = sum(int(n) for n in re.findall(r"(\d+) alert\(s\) were being sent when a previous run stopped", logs))
        _assert_exactly_once(conn, farm, in_flight_window=resent)
        assert farm.stats()["duplicate_hooks"] == resent
    assert "PostgreSQL unreachable" in logs and "PostgreSQL reachable again" in logs, logs[-3000:]
    assert all(w.alive() for w in workers)  # they carried on
