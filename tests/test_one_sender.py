"""One sender per outbox row, across real processes.

A second daemon reaching the database through a symlink or a ``..`` path is
refused; ``monitor once`` sending beside a starting daemon (or beside another
``once``) never makes a receiver see an alert twice, however long the send
takes.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections import Counter

import pytest

from conftest import Response, monitor_process, rss, wait_for

pytestmark = pytest.mark.slow


def quick_config(make_config, feed_server, extra: str = "", alerts: str = ""):
    url = feed_server.serve("/feed.xml", rss([{"title": f"Pyongyang story {i}", "guid": f"g{i}",
                                               "description": f"Officials in Pyongyang said thing {i}."}
                                              for i in range(3)]))
    text = ('[schedule]\ninterval = "1s"\nmin_interval = "1s"\nadaptive = false\njitter = 0\n'
            'dispatch_interval = "200ms"\n[alerts]\nnew_source_window = 0\n' + alerts +
            f'[sources.feed]\nurl = "{url}"\n' + extra)
    return make_config(text)


def test_a_second_daemon_through_a_symlink_or_dotdot_path_refuses_to_start(feed_server, make_config, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link.db").symlink_to(tmp_path / "monitor.db")
    first_config = quick_config(make_config, feed_server)
    first = monitor_process("run", "-c", str(first_config), cwd=tmp_path)
    try:
        wait_for(lambda: (tmp_path / "monitor.db.lock").exists() and (tmp_path / "monitor.db.lock").read_text(),
                 timeout=20)
        for path in (tmp_path / "link.db", tmp_path / "elsewhere" / ".." / "monitor.db"):
            second = monitor_process("run", "-c", str(first_config), "--db", str(path), cwd=tmp_path)
            _, err = second.communicate(timeout=30)
            assert second.returncode != 0, err[-2000:]
            assert f"another monitor daemon (pid {first.pid}) is already running on this database" in err
            assert "Traceback" not in err
        assert first.poll() is None  # the first one is unharmed
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0


def test_once_sending_beside_a_starting_daemon_and_another_once_delivers_each_alert_once(
        feed_server, make_config, tmp_path):
    first_request = threading.Event()

    def slow(handler) -> bytes:
        first_request.set()
        time.sleep(10)  # a long pause between the send and marking it sent
        return b""

    feed_server.routes["/hook"] = [Response(body=slow, status=200, etag=False), Response(status=204, etag=False)]
    # claim_timeout was the lease of the old design: one second let any dispatcher resend.
    config = quick_config(
        make_config, feed_server, alerts='claim_timeout = "1s"\n',
        extra=f'[channels.hook]\ntype = "webhook"\nurl = "{feed_server.url("/hook")}"\ntimeout = "20s"\n'
        '[watchlists.korea]\nquery = "pyongyang"\nchannels = ["hook"]\n'
        '[watchlists.north_korea]\nenabled = false\n[watchlists.abductions]\nenabled = false\n'
        '[watchlists.trade]\nenabled = false\n')
    db = tmp_path / "monitor.db"

    once = monitor_process("once", "-c", str(config), cwd=tmp_path)
    assert first_request.wait(30), "once never sent an alert"
    second_once = monitor_process("once", "-c", str(config), cwd=tmp_path)
    time.sleep(1.5)  # past the old claim timeout, with the first send still open
    daemon = monitor_process("run", "-c", str(config), cwd=tmp_path)
    try:
        out2, err2 = second_once.communicate(timeout=60)
        assert second_once.returncode == 0, err2[-2000:]
        assert "not delivered by this command" in out2 and f"pid {once.pid}" in out2
        out1, err1 = once.communicate(timeout=60)
        assert once.returncode == 0, err1[-2000:]

        def all_sent() -> bool:
            conn = sqlite3.connect(db, timeout=30)
            try:
                return {r[0] for r in conn.execute("SELECT status FROM outbox")} == {"sent"}
            finally:
                conn.close()

        wait_for(all_sent, timeout=30)
        time.sleep(1.0)  # a few more dispatcher runs: nothing may go twice
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, daemon_err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, daemon_err[-2000:]
    assert "waiting for another monitor command" in daemon_err
    keys = Counter(h.headers["Idempotency-Key"] for h in feed_server.hits("/hook"))
    assert len(keys) == 3 and set(keys.values()) == {1}, keys
