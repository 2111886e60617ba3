"""A system clock that was wrong once: 400 days ahead for one poll, then put right.

The real monitor polls and delivers with the process clock moved by
time-machine (every ``datetime.now`` and ``time.time`` in the process); the
source, the alert retry and the digest must not wait for the wrong clock's
future to come round again.
"""

from __future__ import annotations

import time
from datetime import timedelta

import time_machine

from conftest import Response, rss
from monitor import Monitor, load_config
from monitor.scheduler import poll_if_due
from monitor.timeutil import from_iso, trusted_future, utcnow

AHEAD = timedelta(days=400)


def test_a_clock_400_days_ahead_for_one_poll_parks_neither_the_source_nor_the_retry_nor_the_digest(
        feed_server, make_config):
    url = feed_server.serve("/feed.xml", rss([{"title": "Pyongyang story", "guid": "g1",
                                               "description": "Officials in Pyongyang said something."}]), etag=False)
    feed_server.routes["/hook"] = [Response(status=503, etag=False), Response(status=204, etag=False)]
    feed_server.routes["/digest"] = Response(status=204, etag=False)
    config = load_config(make_config(
        '[alerts]\nnew_source_window = 0\nbackoff = "1s"\nbackoff_max = "10s"\n'
        '[schedule]\nadaptive = false\njitter = 0\n'
        f'[sources.feed]\nurl = "{url}"\ninterval = "10m"\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{feed_server.url("/hook")}"\n'
        f'[channels.daily]\ntype = "webhook"\nurl = "{feed_server.url("/digest")}"\ndigest = "1h"\n'
        '[watchlists.korea]\nquery = "pyongyang"\nchannels = ["hook", "daily"]\n'
        '[watchlists.north_korea]\nenabled = false\n[watchlists.abductions]\nenabled = false\n'
        '[watchlists.trade]\nenabled = false\n'
    ), env={})
    source = config.sources["feed"]
    with Monitor.open(config) as monitor:
        with time_machine.travel(utcnow() + AHEAD, tick=True):
            poll_if_due(monitor, source)  # polls, queues two alerts; the webhook answers 503
        assert len(feed_server.hits("/feed.xml")) == 1 and len(feed_server.hits("/hook")) == 1
        row = monitor.store.source_row("feed")
        assert from_iso(row["next_poll_at"]) > utcnow() + AHEAD - timedelta(days=1)  # the wrong clock's schedule

        # The clock is right again.
        poll_if_due(monitor, source)
        assert len(feed_server.hits("/feed.xml")) == 2  # polled now, not in 400 days
        assert from_iso(monitor.store.source_row("feed")["next_poll_at"]) <= utcnow() + timedelta(minutes=11)

        deadline = time.monotonic() + 15
        while len(feed_server.hits("/hook")) < 2 and time.monotonic() < deadline:
            monitor.dispatch()
            time.sleep(0.1)
        assert len(feed_server.hits("/hook")) == 2  # the retry went now, not in 400 days
        [digest] = monitor.store.query("SELECT next_digest_at FROM channel_state WHERE channel = 'daily'")
        assert from_iso(digest["next_digest_at"]) <= utcnow() + timedelta(hours=1, seconds=5)
        pending = monitor.store.query("SELECT next_attempt_at FROM outbox WHERE status = 'pending'")
        assert all(from_iso(r["next_attempt_at"]) <= utcnow() + timedelta(days=7, seconds=5) for r in pending)


def test_a_stored_time_is_at_most_the_longest_wait_away_and_one_written_in_the_future_is_now():
    now = utcnow()
    hour = timedelta(hours=1)
    assert trusted_future(now + AHEAD, now, hour.total_seconds()) == now + hour
    assert trusted_future(now + timedelta(minutes=10), now, 3600, written_at=now + AHEAD) == now
    assert trusted_future(now + timedelta(minutes=10), now, 3600, written_at=now - hour) == now + timedelta(minutes=10)
    # A small step back (an NTP correction) is not a jump.
    assert trusted_future(now + timedelta(minutes=10), now, 3600, written_at=now + timedelta(seconds=20)) == \
        now + timedelta(minutes=10)
