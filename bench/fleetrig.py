"""The pieces fleet runs are made of, shared by ``bench/scaleout.py`` and the fault tests.

A feed farm process (:mod:`bench.feedfarm`), a configuration naming every farm
feed as a source with the farm's webhook receiver as the alert channel, fleet
worker processes (``python -m monitor.fleet``) to start, stop, kill, pause and
continue, and the counts read back from the fleet's PostgreSQL tables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from bench.feedfarm import ALERT_WORD, expected_alerts, expected_stories, feed_url

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_WATCHLISTS = ("north_korea", "abductions", "trade")


class FarmProcess:
    """``python -m bench.feedfarm`` in its own process."""

    def __init__(self, *, hosts: int, feeds: int, items: int = 2, delay: float = 0.0, cap: int = 2,
                 hook_delay: float = 0.0, wire: bool = False, channels: tuple[str, ...] = ("hook",)):
        """:param channels: the webhook receivers the configuration alerts (``hook`` is ``/hook``,
        another name ``/hook/<name>``); :param wire: feeds 0-2 carry one wire story, reworded."""
        self.hosts, self.feeds, self.items, self.cap, self.wire = hosts, feeds, items, cap, wire
        self.channels = channels
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.feedfarm", "--hosts", str(hosts), "--feeds", str(feeds),
             "--items", str(items), "--delay", str(delay), "--cap", str(cap), "--hook-delay", str(hook_delay),
             *(["--wire"] if wire else [])],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the feed farm did not start")
        self.port = int(json.loads(line)["port"])

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def receiver_url(self, channel: str) -> str:
        """Where the configuration's channel ``channel`` posts."""
        return self.hook_url if channel == "hook" else f"{self.hook_url}/{channel}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stats", timeout=10) as response:
            return json.loads(response.read())

    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def expected_stories(self) -> int:
        return expected_stories(self.feeds, self.items, self.wire)

    @property
    def expected_alerts(self) -> int:
        """Alerts over every channel: one per alerting story (the wire story's cluster counts once) and channel."""
        return expected_alerts(self.feeds, self.wire) * len(self.channels)


def write_config(folder: Path, farm: FarmProcess, *, max_per_host: int = 2, max_workers: int = 16,
                 interval: str = "1h", channel_options: str = "") -> Path:
    """A configuration with every farm feed as a source, alerting the farm's receiver on :data:`ALERT_WORD`."""
    lines = [
        # The keyword classifier alone: the models' start-up is not what a fleet run measures.
        "[monitor]", 'disable_plugins = ["semantic", "learned", "apprise_alerts"]', "",
        "[schedule]", f"max_workers = {max_workers}", "jitter = 0", "",
        "[fetch]", f"max_per_host = {max_per_host}", "allow_private_networks = true", "",
        "[alerts]", "new_source_window = 0", "",
        # Only the farm's watchlist: the shipped ones would alert on the wire story too (console).
        *(line for name in SHIPPED_WATCHLISTS for line in (f"[watchlists.{name}]", "enabled = false", "")),
        # Clustering on, as in production: every farm entry is a story of its own, the wire copies one.
        "[clustering]", "enabled = true", "",
    ]
    for channel in farm.channels:
        lines += [f"[channels.{channel}]", 'type = "webhook"', f'url = "{farm.receiver_url(channel)}"', channel_options, ""]
    lines += ["[watchlists.embargo]", f'query = "{ALERT_WORD}"', f"channels = {json.dumps(list(farm.channels))}", ""]
    for n in range(farm.feeds):
        lines += [f"[sources.feed-{n}]", f'url = "{feed_url(n, farm.hosts, farm.port)}"', f'interval = "{interval}"', ""]
    path = folder / "fleet.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class WorkerProcess:
    """One ``python -m monitor.fleet`` process, its log in ``folder/<name>.log``."""

    def __init__(self, name: str, config: Path, postgres: str, folder: Path, *, lease: float, heartbeat: float,
                 hosts_at_once: int = 8):
        self.name = name
        self.log_path = folder / f"{name}.log"
        self._log: IO[str] = open(self.log_path, "a", encoding="utf-8")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.fleet", "--config", str(config), "--postgres", postgres,
             "--lease", str(lease), "--heartbeat", str(heartbeat), "--hosts-at-once", str(hosts_at_once),
             "--id", name],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL: no goodbye, leases left to expire."""
        self.signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL if it does not end in ``timeout`` seconds."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def fleet_counts(conn: Any) -> dict[str, int]:
    """What the fleet has done so far, from the store's tables (alerts: every channel, all the farm's receivers)."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM sources WHERE last_fetch_at IS NOT NULL) AS polled, "
        "(SELECT count(*) FROM stories) AS stories, "
        "(SELECT count(*) FROM outbox) AS alerts, "
        "(SELECT count(*) FROM outbox WHERE status = 'sent') AS sent, "
        "(SELECT count(*) FROM outbox WHERE status <> 'sent') AS unsent"
    ).fetchone()
    return dict(row)


def tables_exist(conn: Any) -> bool:
    row = conn.execute("SELECT to_regclass('outbox') IS NOT NULL AND to_regclass('fleet_leases') IS NOT NULL AS ok"
                       ).fetchone()
    return bool(row["ok"])


def wait_until(predicate: Any, timeout: float, every: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # the database may be down or the tables not made yet
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


def done(conn: Any, farm: FarmProcess) -> bool:
    """Every feed polled, every story stored and every alert sent."""
    if not tables_exist(conn):
        return False
    counts = fleet_counts(conn)
    return (counts["polled"] == farm.feeds and counts["stories"] == farm.expected_stories
            and counts["sent"] == farm.expected_alerts and counts["unsent"] == 0)
