"""``monitor run`` as a real process: polls on schedule, stops cleanly on a signal."""

import signal
import sqlite3

import pytest

from conftest import monitor_process, rss, seed_rss, wait_for

pytestmark = pytest.mark.slow


def count(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # the daemon has not created the schema yet
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_polls_a_loopback_feed_on_schedule_and_stops_cleanly(feed_server, make_config, tmp_path, stop_signal):
    url = feed_server.serve("/seeds.xml", seed_rss())
    other = feed_server.serve("/other.xml", rss([{"title": "Weather today", "guid": "w1"}]))
    config = make_config(
        f'[schedule]\ninterval = 1\njitter = 0\ndispatch_interval = 1\nadaptive = false\n'
        f'[alerts]\nnew_source_window = 0\n'
        f'[sources.wire]\nurl = "{url}"\n[sources.other]\nurl = "{other}"\ninterval = 2\n'
    )
    db = tmp_path / "monitor.db"
    proc = monitor_process("run", "--config", str(config), cwd=tmp_path)
    try:
        wait_for(lambda: db.exists() and count(db, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 6)
        # The schedule keeps polling: conditional requests answered 304 after the first.
        wait_for(lambda: len(feed_server.hits("/seeds.xml")) >= 3, timeout=10)
        assert count(db, "SELECT count(*) FROM stories") == 3
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "news-monitor started" in err and f"received {stop_signal.name}" in err and "news-monitor stopped" in err
    assert out.count("=== [") == 6  # each match alerted once, however many polls
    assert count(db, "SELECT count(*) FROM stories") == 3
    assert count(db, "PRAGMA integrity_check") == "ok"
    polls = feed_server.hits("/seeds.xml")
    assert all("If-None-Match" in r.headers for r in polls[1:])
