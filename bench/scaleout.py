"""Scale-out benchmark: 1, 2 and 3 fleet workers on one PostgreSQL, and the SQLite single process, one workload.

``python -m bench.scaleout`` (``--quick`` for a smaller run) serves 10,000
loopback feeds over 50 hosts (127.0.0.2 … 127.0.0.51, ``bench.feedfarm``)
with a server delay per response (200 ms by default: fetches are slow, as on
the internet), then polls all of them once

- with ``monitor once`` on a SQLite database (the single process of today),
- with 1, 2 and 3 ``python -m monitor.fleet`` worker processes sharing a
  fresh PostgreSQL database each time,

with clustering on (every farm entry is a story of its own, so each alerting
entry alerts once), and prints, per run: stories/s, worker CPU per 1,000 stories, PostgreSQL
backend CPU and writes (transactions, rows, WAL bytes) per 1,000 stories,
claim latency, and the three counts that must be zero (requests over the
per-host cap, duplicate polls, duplicate alerts). Then the targets, met or
not: 2 workers ≥ 1.6× one worker; PostgreSQL single worker ≥ 0.7× SQLite.

Every run's wall time starts when its processes are launched (imports and
plugin loading included, alike for all) and ends when every feed is polled,
every story stored and every alert delivered.

PostgreSQL: ``--postgres URL`` (default ``$MONITOR_TEST_POSTGRES_URL``); a
database is created for each run and dropped after it. pg_stat_statements is
used when the server has it loaded, else left out (said in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fleetrig import FarmProcess, WorkerProcess, done, fleet_counts, wait_until, write_config

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class RunResult:
    name: str
    seconds: float
    stories: int
    window: float  # from the first story stored to the end: the rate without start-up
    worker_cpu: float
    pg_cpu: float | None = None
    commits: int | None = None
    rows_written: int | None = None
    wal_bytes: int | None = None
    claims: int | None = None
    claim_mean_ms: float | None = None
    claim_max_ms: float | None = None
    farm: dict[str, Any] = field(default_factory=dict)

    @property
    def stories_per_second(self) -> float:
        return self.stories / self.window if self.window else 0.0

    def per_thousand(self, value: float | None) -> float | None:
        return None if value is None or not self.stories else value * 1000 / self.stories


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _admin(url: str):
    import psycopg
    from psycopg.rows import dict_row

    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def _database_url(url: str, name: str) -> str:
    from monitor.testing import with_database

    return with_database(url, name)


def run_sqlite(farm: FarmProcess, config: Path, folder: Path, timeout: float) -> RunResult:
    db = folder / "sqlite.db"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "monitor", "once", "--config", str(config), "--db", str(db)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with sqlite3.connect(db) as conn:
        stories, first = conn.execute("SELECT count(*), min(first_seen_at) FROM stories").fetchone()
    # first_seen_at is the wall clock; the run ended just now.
    window = time.time() - datetime.fromisoformat(first).timestamp() - (time.monotonic() - started - seconds)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return RunResult("SQLite, 1 process (monitor once)", seconds, stories, window, cpu, farm=farm.stats())


def run_fleet(workers: int, farm: FarmProcess, config: Path, folder: Path, server: str, *, hosts_at_once: int,
              timeout: float) -> RunResult:
    name = f"bench_scaleout_{uuid.uuid4().hex[:8]}"
    with _admin(server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _database_url(server, name)
    procs: list[WorkerProcess] = []
    try:
        with _admin(url) as conn:
            statements = _has_pg_stat_statements(conn)
            wal_before = conn.execute("SELECT pg_current_wal_lsn() AS lsn").fetchone()["lsn"]
            started = time.monotonic()
            procs = [WorkerProcess(f"w{i + 1}", config, url, folder, lease=60, heartbeat=2,
                                   hosts_at_once=hosts_at_once) for i in range(workers)]
            finished = wait_until(lambda: done(conn, farm), timeout, every=0.25)
            seconds = time.monotonic() - started
            first = conn.execute("SELECT min(first_seen_at) AS t FROM stories").fetchone()["t"]
            window = (time.time() - datetime.fromisoformat(first).timestamp()) if first else seconds
            if not finished:
                print(f"  warning: not finished within {timeout:g}s: {fleet_counts(conn)}", file=sys.stderr)
            worker_cpu = sum(process_cpu(p.pid) for p in procs)
            backends = [r["pid"] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [name])]
            pg_cpu = sum(process_cpu(pid) for pid in backends)
            wal = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)::bigint AS b",
                               [wal_before]).fetchone()["b"]
            stories = fleet_counts(conn)["stories"]
            for proc in procs:
                proc.stop()
            stat = conn.execute(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS rows FROM pg_stat_database "
                "WHERE datname = %s", [name]).fetchone()
            claims = conn.execute(
                "SELECT sum(claims) AS n, sum(claim_seconds) AS s, max(claim_max_seconds) AS m FROM fleet_workers"
            ).fetchone()
            del statements
        n = int(claims["n"] or 0)
        return RunResult(
            f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}", seconds, stories, window, worker_cpu,
            pg_cpu=pg_cpu,
            commits=int(stat["xact_commit"]), rows_written=int(stat["rows"]), wal_bytes=int(wal), claims=n,
            claim_mean_ms=(claims["s"] / n * 1000) if n else None,
            claim_max_ms=(claims["m"] or 0) * 1000, farm=farm.stats(),
        )
    finally:
        for proc in procs:
            proc.stop()
        with _admin(server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _has_pg_stat_statements(conn: Any) -> bool:
    row = conn.execute("SELECT count(*) AS n FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
    return bool(row["n"])


def _reset(farm: FarmProcess) -> None:
    import urllib.request

    urllib.request.urlopen(f"http://127.0.0.1:{farm.port}/_reset", timeout=10).read()


def _progress(result: RunResult) -> None:
    """One line as soon as a run ends: a benchmark stopped half-way still says what it measured."""
    print(f"  {result.name}: {result.stories:,} stories, {result.stories_per_second:,.1f} stories/s, "
          f"{result.seconds:.1f} s wall, farm {json.dumps({k: v for k, v in result.farm.items() if not k.endswith('_times')})}",
          flush=True)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(results: list[RunResult], args: argparse.Namespace) -> dict[str, Any]:
    print(f"\nworkload: {args.feeds:,} feeds over {args.hosts} hosts, {args.items} entries each, "
          f"{args.delay * 1000:g} ms server delay, fetch.max_per_host = {args.cap}, "
          f"{args.hosts_at_once} hosts at once per worker ({args.hosts_at_once * args.cap} requests in flight)")
    header = (f"{'run':<36} {'wall s':>7} {'stories/s':>10} {'worker CPU s/1k':>16} {'PG CPU s/1k':>12} "
              f"{'commits/1k':>11} {'rows/1k':>8} {'WAL kB/1k':>10} {'claim ms (mean/max)':>20} "
              f"{'over-cap':>8} {'dup polls':>9} {'dup alerts':>10}")
    print(header)
    print("-" * len(header))
    print("wall s: launch to done, start-up included; stories/s: from the first story stored to done")
    for r in results:
        wal = r.per_thousand(r.wal_bytes)
        claim = "-" if r.claims is None else f"{_fmt(r.claim_mean_ms, 2)}/{_fmt(r.claim_max_ms, 1)}"
        print(f"{r.name:<36} {r.seconds:>7.1f} {r.stories_per_second:>10,.0f} {_fmt(r.per_thousand(r.worker_cpu), 2):>16} "
              f"{_fmt(r.per_thousand(r.pg_cpu), 2):>12} {_fmt(r.per_thousand(r.commits), 0):>11} "
              f"{_fmt(r.per_thousand(r.rows_written), 0):>8} {_fmt(None if wal is None else wal / 1024, 0):>10} "
              f"{claim:>20} {r.farm.get('over_cap', 0):>8} {r.farm.get('duplicate_fetches', 0):>9} "
              f"{r.farm.get('duplicate_hooks', 0):>10}")
    by = {r.name: r for r in results}
    sqlite = next((r for r in results if r.name.startswith("SQLite")), None)
    one = by.get("PostgreSQL, 1 worker")
    two = by.get("PostgreSQL, 2 workers")
    targets = {}
    print()
    if one and two:
        ratio = two.stories_per_second / one.stories_per_second
        targets["two_vs_one"] = ratio
        print(f"target 2 workers ≥ 1.6× one worker: {ratio:.2f}× — {'met' if ratio >= 1.6 else 'NOT met'}")
    if one and sqlite:
        ratio = one.stories_per_second / sqlite.stories_per_second
        targets["pg_vs_sqlite"] = ratio
        print(f"target PostgreSQL single worker ≥ 0.7× SQLite: {ratio:.2f}× — {'met' if ratio >= 0.7 else 'NOT met'}")
    zeros = sum(r.farm.get(k, 0) for r in results for k in ("over_cap", "duplicate_fetches", "duplicate_hooks"))
    print(f"counts that must be zero (over-cap, duplicate polls, duplicate alerts), all runs: {zeros} — "
          f"{'met' if zeros == 0 else 'NOT met'}")
    print("PG CPU: the CPU of the run's database backends (from /proc); writes: pg_stat_database deltas and WAL bytes"
          " (pg_stat_statements is not loaded on this server, so no per-statement figures)")
    return {"results": [r.__dict__ | {"stories_per_second": r.stories_per_second} for r in results],
            "targets": targets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 feeds, 50 ms delay: a minute, not ten")
    parser.add_argument("--feeds", type=int)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--delay", type=float)
    parser.add_argument("--cap", type=int, default=2, help="fetch.max_per_host")
    parser.add_argument("--hosts-at-once", type=int, default=4, help="hosts one worker polls at once")
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--postgres", default=os.environ.get("MONITOR_TEST_POSTGRES_URL"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.feeds = args.feeds or (1000 if args.quick else 10_000)
    args.delay = args.delay if args.delay is not None else (0.05 if args.quick else 0.2)
    if not args.postgres:
        parser.error("say which PostgreSQL server to use: --postgres URL or $MONITOR_TEST_POSTGRES_URL")
    timeout = 120 + args.feeds * args.delay / max(1, args.cap) + args.feeds * 0.05
    farm = FarmProcess(hosts=args.hosts, feeds=args.feeds, items=args.items, delay=args.delay, cap=args.cap)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
            folder = Path(tmp)
            config = write_config(folder, farm, max_per_host=args.cap, max_workers=args.hosts_at_once * args.cap)
            if not args.no_sqlite:
                _reset(farm)
                print("running: SQLite, monitor once …", flush=True)
                results.append(run_sqlite(farm, config, folder, timeout))
                _progress(results[-1])
            for count in (int(n) for n in args.workers.split(",")):
                _reset(farm)
                print(f"running: PostgreSQL, {count} worker(s) …", flush=True)
                results.append(run_fleet(count, farm, config, folder, args.postgres,
                                         hosts_at_once=args.hosts_at_once, timeout=timeout))
                _progress(results[-1])
    finally:
        farm.stop()
    figures = report(results, args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
