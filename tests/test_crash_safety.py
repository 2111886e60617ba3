"""The daemon as a real process: SIGKILL mid-cycle, a second daemon, `once` beside a daemon."""

from __future__ import annotations

import itertools
import re
import signal
import sqlite3
import threading
from email.utils import format_datetime

import pytest

from conftest import monitor_process, rss, wait_for
from monitor.timeutil import utcnow


def churning_feed(name: str):
    """A feed that gains 40 entries on every request (keeping the last 120), all matching watchlists."""
    counter = itertools.count()
    lock = threading.Lock()

    def body(handler) -> bytes:
        with lock:
            n = next(counter)
        now = format_datetime(utcnow())
        return rss([
            {"title": f"North Korea tariff story {name}-{i}", "guid": f"{name}-{i}", "pubDate": now,
             "description": "Pyongyang and the trade talks. " * 20}
            for i in range(max(0, (n + 1) * 40 - 120), (n + 1) * 40)
        ])

    return body


def db_counts(db) -> dict:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return {
            "stories": conn.execute("SELECT count(*) FROM stories").fetchone()[0],
            "ids": {r[0] for r in conn.execute("SELECT id FROM stories")},
            "matches": conn.execute("SELECT count(*) FROM matches").fetchone()[0],
            "sent": {r[0] for r in conn.execute(
                "SELECT s.title || '|' || m.watchlist FROM outbox o JOIN matches m ON m.id = o.match_id "
                "JOIN stories s ON s.id = m.story_id WHERE o.status = 'sent'")},
        }
    finally:
        conn.close()


def stored(db) -> int:
    """Stories in the database, 0 while it is still being created."""
    try:
        return db_counts(db)["stories"] if db.exists() else 0
    except sqlite3.OperationalError:
        return 0


def daemon_config(make_config, feed_server, sources: int = 4) -> str:
    text = '[schedule]\ninterval = "1s"\nmin_interval = "1s"\nadaptive = false\njitter = 0\ndispatch_interval = "1s"\n' \
           '[alerts]\nnew_source_window = 0\n'
    for i in range(sources):
        url = feed_server.serve(f"/f{i}", churning_feed(f"f{i}"), etag=False)
        text += f'[sources.s{i}]\nurl = "{url}"\ninterval = "1s"\n'
    return str(make_config(text))


def integrity(db) -> str:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.slow
def test_sigkill_mid_cycle_loses_nothing_and_duplicates_nothing(feed_server, make_config, tmp_path):
    config = daemon_config(make_config, feed_server)
    db = tmp_path / "monitor.db"
    first = monitor_process("run", "-c", config, cwd=tmp_path)
    try:
        wait_for(lambda: stored(db) >= 300, timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        first_out, _ = first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    committed = db_counts(db)
    assert integrity(db) == "ok"

    second = monitor_process("run", "-c", config, cwd=tmp_path)
    try:
        wait_for(lambda: stored(db) >= committed["stories"] + 200, timeout=30)
    finally:
        second.send_signal(signal.SIGTERM)
        second_out, second_err = second.communicate(timeout=30)
    assert second.returncode == 0, second_err[-2000:]

    after = db_counts(db)
    assert integrity(db) == "ok"
    assert committed["ids"] <= after["ids"]  # nothing committed was lost
    conn = sqlite3.connect(db)
    # One row per story id, per (story, watchlist) match, per (match, channel) alert.
    assert conn.execute("SELECT count(*) - count(DISTINCT guid || source) FROM stories").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM (SELECT story_id, watchlist FROM matches GROUP BY 1, 2 HAVING count(*) > 1)").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM (SELECT match_id, channel FROM outbox GROUP BY 1, 2 HAVING count(*) > 1)").fetchone()[0] == 0
    conn.close()
    # No alert recorded as sent before the kill was printed again after the restart.
    printed_again = set(re.findall(r"^=== \[(\w+)\] (.+)$", second_out, re.M))
    resent = {f"{title}|{wl}" for wl, title in printed_again} & committed["sent"]
    assert not resent, sorted(resent)[:5]


@pytest.mark.slow
def test_a_second_daemon_on_the_same_database_refuses_to_start(feed_server, make_config, tmp_path):
    config = daemon_config(make_config, feed_server, sources=1)
    first = monitor_process("run", "-c", config, cwd=tmp_path)
    try:
        wait_for(lambda: (tmp_path / "monitor.db.lock").exists() and (tmp_path / "monitor.db").exists(), timeout=20)
        second = monitor_process("run", "-c", config, cwd=tmp_path)
        _, err = second.communicate(timeout=20)
        assert second.returncode != 0
        assert "another monitor daemon" in err and "already running on this database" in err
        assert first.poll() is None  # the first one is unharmed
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0


@pytest.mark.slow
def test_once_beside_a_running_daemon_does_not_corrupt_the_database(feed_server, make_config, tmp_path):
    config = daemon_config(make_config, feed_server, sources=3)
    db = tmp_path / "monitor.db"
    daemon = monitor_process("run", "-c", config, cwd=tmp_path)
    try:
        wait_for(lambda: stored(db) > 0, timeout=20)
        onces = [monitor_process("once", "-c", config, cwd=tmp_path) for _ in range(2)]
        for proc in onces:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err[-2000:]
            assert "Polled 3 sources" in out
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    assert daemon.returncode == 0
    assert integrity(db) == "ok"
    conn = sqlite3.connect(db)
    stories = conn.execute("SELECT count(*) FROM stories").fetchone()[0]
    per_source = dict(conn.execute("SELECT source, count(*) FROM stories GROUP BY source").fetchall())
    counted = dict(conn.execute("SELECT name, stories_count FROM sources").fetchall())
    conn.close()
    assert stories == sum(per_source.values()) and stories > 0
    assert all(counted[name] == count for name, count in per_source.items())
