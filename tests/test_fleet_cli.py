"""``monitor run --db postgresql://…`` as a fleet worker, and ``monitor workers``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")
from psycopg.rows import dict_row  # noqa: E402

from bench.fleetrig import FarmProcess, done, wait_until, write_config  # noqa: E402

MONITOR = [sys.executable, "-m", "monitor"]


@pytest.fixture(scope="module")
def db_url(monitor_postgres_database: str) -> Iterator[str]:
    yield monitor_postgres_database


def _workers(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MONITOR, "workers", *args], capture_output=True, text=True, timeout=60)


def test_workers_needs_a_postgresql_database(tmp_path: Path) -> None:
    result = _workers("--db", str(tmp_path / "monitor.db"))
    assert result.returncode == 2
    assert "needs the fleet's PostgreSQL database" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_naming_it() -> None:
    result = _workers("--db", "postgresql://monitor:s3cret@127.0.0.1:9/fleet")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "monitor:***@127.0.0.1:9/fleet: cannot read the fleet" in result.stderr and "s3cret" not in result.stderr


@pytest.mark.slow
def test_monitor_run_on_postgresql_is_a_fleet_worker_that_monitor_workers_lists(tmp_path: Path, db_url: str) -> None:
    farm = FarmProcess(hosts=2, feeds=10)
    worker = None
    try:
        config = write_config(tmp_path, farm)
        log = open(tmp_path / "run.log", "w")
        worker = subprocess.Popen([*MONITOR, "run", "--config", str(config), "--db", db_url], stdout=log,
                                  stderr=subprocess.STDOUT)
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
            assert wait_until(lambda: done(conn, farm), 60), (tmp_path / "run.log").read_text()

        def listed() -> list[dict]:
            return json.loads(_workers("--db", db_url, "--json").stdout)

        # Polls are counted at the heartbeat (every 5 s by default).
        assert wait_until(lambda: listed()[0]["polls"] == 10, 30), listed()
        row = listed()[0]
        assert row["pid"] == worker.pid and row["last_source"].startswith("feed-")
        human = _workers("--db", db_url).stdout
        assert f"pid {worker.pid}" in human and "polls: 10" in human
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        assert listed() == []
        assert "no live workers" in _workers("--db", db_url).stdout
        assert farm.stats()["hook_keys"] == farm.expected_alerts
        listing = subprocess.run([*MONITOR, "sources", "--config", str(config), "--db", db_url, "--json"],
                                 capture_output=True, text=True, timeout=60)
        assert {row["polled_by"] for row in json.loads(listing.stdout)} == {row["id"]}, listing.stderr
        human = subprocess.run([*MONITOR, "sources", "--config", str(config), "--db", db_url],
                               capture_output=True, text=True, timeout=60).stdout
        assert f"by worker {row['id']}" in human
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        farm.stop()


@pytest.mark.slow
def test_monitor_once_on_postgresql_leaves_a_channel_to_the_worker_holding_its_lease(
        tmp_path: Path, db_url: str) -> None:
    from monitor.leases import CHANNEL, Coordinator, connect

    with psycopg.connect(db_url, autocommit=True) as conn:  # the fleet test above stored the same farm stories
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    farm = FarmProcess(hosts=1, feeds=10)  # one alerting entry
    holder = Coordinator(connect(db_url), "w9")
    try:
        config = write_config(tmp_path, farm)
        holder.create_schema()
        holder.ensure(CHANNEL, ["hook"])
        lease = holder.claim(CHANNEL, 60, ["hook"])  # a live worker sending on the channel
        assert lease is not None
        once = subprocess.run([*MONITOR, "once", "--config", str(config), "--db", db_url], capture_output=True,
                              text=True, timeout=120)
        assert once.returncode == 0, once.stderr[-2000:]
        assert "Alerts: not delivered by this command: fleet worker w9 delivers from this database." in once.stdout
        assert farm.stats()["hooks"] == 0
        holder.release(lease)
        again = subprocess.run([*MONITOR, "once", "--config", str(config), "--db", db_url], capture_output=True,
                               text=True, timeout=120)
        assert again.returncode == 0 and "not delivered" not in again.stdout, again.stdout + again.stderr[-2000:]
        stats = farm.stats()
        assert stats["hook_keys"] == 1 and stats["duplicate_hooks"] == 0, stats
    finally:
        holder.conn.close()
        farm.stop()
