"""Polite, efficient polling: conditional requests, adaptive intervals, new sources, retention."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from conftest import rss, seed_rss
from monitor import Source
from monitor.polling import (Plan, adaptive_interval, max_age, next_poll_after_failure, next_poll_after_success,
                             planned_interval)
from monitor.timeutil import from_iso, utcnow

SCHEDULE = {"adaptive": True, "min_interval": 300.0, "max_interval": 43200.0}


def items(n: int, start: datetime, step: timedelta, prefix: str = "item") -> list[dict[str, str]]:
    return [
        {"title": f"{prefix} {i}", "guid": f"{prefix}-{i}", "link": f"http://news.test/{prefix}/{i}",
         "description": f"body {i}", "pubDate": format_datetime(start - i * step)}
        for i in range(n)
    ]


def test_adaptive_polling_shortens_a_busy_feed_but_never_lengthens_without_adaptive_max():
    source = Source("s", "http://x", interval=900)
    assert adaptive_interval(source, SCHEDULE, 0) == 900  # quiet: as configured, not 12 h
    assert adaptive_interval(source, SCHEDULE, 7) == 900
    assert adaptive_interval(source, SCHEDULE, 168) == 900  # hourly stories: still every 15 min
    assert adaptive_interval(source, SCHEDULE, 1008) == 600  # busier than configured: more often
    assert adaptive_interval(source, SCHEDULE, 100_000) == 300  # down to schedule.min_interval
    assert adaptive_interval(source, {**SCHEDULE, "adaptive": False}, 100_000) == 900
    # An explicitly short configured interval is never stretched, whatever the feed does.
    assert adaptive_interval(Source("fast", "http://x", interval=60), SCHEDULE, 0) == 60
    assert adaptive_interval(Source("fast", "http://x", interval=60), SCHEDULE, 100_000) == 60
    # Local sources keep their interval.
    assert adaptive_interval(Source("file", "/tmp/feed.xml", interval=900), SCHEDULE, 100_000) == 900


def test_adaptive_max_is_the_opt_in_to_longer_intervals():
    opted = {**SCHEDULE, "adaptive_max": 43200.0}
    source = Source("s", "http://x", interval=900)
    assert adaptive_interval(source, opted, 0) == 43200  # quiet: up to adaptive_max
    assert adaptive_interval(source, opted, 168) == 3600  # hourly: hourly
    assert adaptive_interval(source, opted, 100_000) == 300
    # Per source: its own bound wins over the schedule's; 0 opts it out.
    assert adaptive_interval(Source("s", "http://x", interval=900, adaptive_max=7200), opted, 0) == 7200
    assert adaptive_interval(Source("s", "http://x", interval=900, adaptive_max=0), opted, 0) == 900
    assert adaptive_interval(Source("s", "http://x", interval=900, adaptive_max=7200), SCHEDULE, 0) == 7200
    plan = planned_interval(source, opted, 3)
    assert plan.basis == "adaptive" and plan.reason.startswith("every 12h: adaptive, 3 stories in the last week")
    assert planned_interval(source, SCHEDULE, 3) == Plan(900, "interval", "every 15m")


def test_the_servers_wishes_lengthen_an_interval_within_bounds_and_say_so():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert max_age({"Cache-Control": "public, max-age=7200"}) == 7200
    assert max_age({"cache-control": "no-cache, max-age=7200"}) is None
    after = next_poll_after_success(now, 600, {"cache-control": "max-age=1800"})
    assert after.at == now + timedelta(seconds=1800)
    assert after.plan.reason == "server asked: Cache-Control max-age=1800"
    assert next_poll_after_success(now, 600, {"cache-control": "max-age=60"}).plan.reason == "every 10m"
    after = next_poll_after_success(now, 600, {"retry-after": "1800"})
    assert after.at == now + timedelta(seconds=1800) and after.plan.basis == "retry_after"
    # A CDN's day-long max-age or a silly Retry-After is bounded (1 h and 6 h).
    after = next_poll_after_success(now, 600, {"cache-control": "max-age=86400"})
    assert after.at == now + timedelta(hours=1) and after.plan.reason.endswith("capped at 1h")
    assert next_poll_after_success(now, 600, {"retry-after": "99999999"}).at == now + timedelta(hours=6)
    # Jitter is at most a tenth of the interval.
    for _ in range(50):
        at = next_poll_after_success(now, 60, {}, jitter=30).at
        assert now + timedelta(seconds=60) <= at <= now + timedelta(seconds=66)


def test_failures_back_off_and_a_retry_after_beyond_the_backoff_is_the_reason():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    source = Source("s", "http://x", interval=60)
    after = next_poll_after_failure(source, 2, now, None, max_backoff=43200)
    assert after.plan.reason == "backing off after 3 failures"
    assert now + timedelta(seconds=192) <= after.at <= now + timedelta(seconds=240)
    after = next_poll_after_failure(source, 0, now, 3600, max_backoff=43200)
    assert after.plan.reason == "server asked: Retry-After 3600s" and after.at == now + timedelta(hours=1)


def test_busy_feed_polls_more_often_quiet_feed_as_configured_unless_opted_in(feed_server, open_monitor):
    now = utcnow()
    busy = feed_server.serve("/busy", rss(items(50, now, timedelta(hours=1))))  # 50 in the last week
    quiet = feed_server.serve("/quiet", rss(items(3, now - timedelta(days=60), timedelta(days=30))))
    cached = feed_server.serve("/cached", seed_rss(), headers={"Content-Type": "application/rss+xml",
                                                             "Cache-Control": "max-age=20000"})
    monitor = open_monitor(
        "[schedule]\ninterval = \"6h\"\nmin_interval = \"5m\"\nmax_interval = \"12h\"\n"
        f'[sources.busy]\nurl = "{busy}"\n[sources.quiet]\nurl = "{quiet}"\n[sources.cached]\nurl = "{cached}"\n'
        f'[sources.quiet_opted]\nurl = "{quiet}"\nadaptive_max = "12h"\n'
    )
    monitor.run_once()
    rows = {r["name"]: r for r in monitor.store.sources()}
    assert rows["busy"]["poll_interval"] == pytest.approx(7 * 86400 / 50)  # shorter than the 6 h configured
    assert rows["busy"]["poll_basis"] == "adaptive"
    assert rows["quiet"]["poll_interval"] == 6 * 3600  # not stretched to max_interval
    assert rows["quiet"]["poll_reason"] == "every 6h"
    assert rows["quiet_opted"]["poll_interval"] == 12 * 3600  # stretched: the user allowed it
    # max-age cannot push a poll past an hour (and never below the interval).
    assert from_iso(rows["cached"]["next_poll_at"]) <= now + timedelta(hours=6, minutes=31)
    assert rows["cached"]["poll_reason"] == "every 6h"


def test_conditional_get_304_costs_no_parsing_and_no_story_writes(feed_server, open_monitor):
    url = feed_server.serve("/feed", seed_rss(), headers={"Content-Type": "application/rss+xml",
                                                         "Last-Modified": "Mon, 27 May 2019 09:00:00 GMT"})
    monitor = open_monitor(f'[sources.feed]\nurl = "{url}"\n')
    assert monitor.update_source("feed").new_stories == 2
    stamps = monitor.store.query("SELECT id, updated_at FROM stories ORDER BY id")
    second = monitor.update_source("feed")
    request = feed_server.hits("/feed")[-1]
    assert request.headers.get("If-None-Match", "").startswith('"')
    assert request.headers.get("If-Modified-Since") == "Mon, 27 May 2019 09:00:00 GMT"
    assert second.not_modified and second.status == 304
    assert monitor.store.source_row("feed")["status"] == "not_modified"
    assert monitor.store.query("SELECT id, updated_at FROM stories ORDER BY id") == stamps


def test_unchanged_body_without_validators_is_skipped_by_its_hash(feed_server, open_monitor):
    url = feed_server.serve("/feed", seed_rss(), etag=False)
    monitor = open_monitor(f'[sources.feed]\nurl = "{url}"\n')
    monitor.update_source("feed")
    again = monitor.update_source("feed")
    assert again.not_modified and again.status == 200


def test_a_changed_feed_behind_a_stale_etag_is_not_missed(feed_server, open_monitor):
    now = utcnow()
    stale = {"Content-Type": "application/rss+xml", "ETag": '"never-changes"'}
    url = feed_server.serve("/feed", rss(items(1, now, timedelta(hours=1))), headers=stale, etag=False)
    monitor = open_monitor(f'[sources.feed]\nurl = "{url}"\n')
    monitor.update_source("feed")
    feed_server.serve("/feed", rss(items(2, now, timedelta(hours=1))), headers=stale, etag=False)
    assert monitor.update_source("feed").new_stories == 1


def test_a_changed_entry_is_updated_and_an_unchanged_one_is_not_rewritten(feed_server, open_monitor):
    now = utcnow()
    entries = items(2, now, timedelta(hours=1))
    url = feed_server.serve("/feed", rss(entries))
    monitor = open_monitor(f'[sources.feed]\nurl = "{url}"\n')
    monitor.update_source("feed")
    entries[0] = {**entries[0], "description": "corrected body"}
    feed_server.serve("/feed", rss(entries))
    result = monitor.update_source("feed")
    assert (result.new_stories, result.updated_stories) == (0, 1)


def test_a_new_source_alerts_only_on_recent_entries(feed_server, open_monitor, cli_run):
    now = utcnow()
    # Titles any trade classifier takes: the test is about the new-source window, not the watchlist.
    feed = rss([
        {"title": "Fresh: US raises tariffs on Chinese steel imports as trade talks stall", "guid": "fresh", "pubDate": format_datetime(now - timedelta(hours=2))},
        {"title": "Old: US raises tariffs on Chinese steel imports as trade talks stall", "guid": "old", "pubDate": format_datetime(now - timedelta(days=3))},
        {"title": "Undated: US raises tariffs on Chinese steel imports as trade talks stall", "guid": "undated"},
    ])
    url = feed_server.serve("/feed", feed)
    config = f'[alerts]\nnew_source_window = "24h"\n[sources.fresh]\nurl = "{url}"\n'
    check = cli_run("check", "-c", _write(open_monitor, config))
    assert "New source (never polled): fresh" in check.output and "24h" in check.output

    monitor = open_monitor(config)
    result = monitor.update_source("fresh")
    assert result.new_stories == 3 and result.matches == 3  # all stored and matched...
    assert result.alerts_queued == 1  # ...but only the fresh one alerts
    # Later polls alert on everything new, dated or not.
    feed_server.serve("/feed", feed.replace(b"</channel>", b"<item><title>Undated 2: US raises tariffs on Chinese steel imports as trade talks stall</title><guid>u2</guid></item></channel>"))
    assert monitor.update_source("fresh").alerts_queued == 1
    assert "New source" not in cli_run("check", "-c", monitor.config.file).output


def _write(open_monitor, config: str):
    monitor = open_monitor(config)  # writes the file and creates the database, without polling
    path = monitor.config.file
    monitor.close()
    return path


def test_pruned_stories_never_come_back_as_new(feed_server, open_monitor):
    url = feed_server.serve("/feed", seed_rss(), etag=False)
    monitor = open_monitor(f'[retention]\nmax_age = "1d"\n[sources.feed]\nurl = "{url}"\n[alerts]\nnew_source_window = 0\n')
    first = monitor.update_source("feed")
    assert first.new_stories == 2 and first.matches == 6
    # Age one story past retention and drop its matches' protection by adding an unmatched one.
    feed_server.serve("/feed", seed_rss().replace(b"</channel>", b"<item><title>Weather</title><guid>w</guid></item></channel>"))
    monitor.update_source("feed")
    monitor.store.db.execute("UPDATE stories SET first_seen_at = '2000-01-01T00:00:00+00:00'")
    monitor.store.db.conn.commit()

    assert monitor.prune() == 1  # the matched seeds stay (retention.matched_max_age = 0 keeps them)
    assert monitor.store.counts()["stories"] == 2 and monitor.store.counts()["matches"] == 6
    feed_server.serve("/feed", feed_server.routes["/feed"].body + b" ")  # the body changes, the entries do not
    again = monitor.update_source("feed")
    assert again.new_stories == 0 and again.error is None
    assert monitor.store.counts()["stories"] == 2


def test_matched_stories_are_pruned_after_matched_max_age(feed_server, open_monitor):
    url = feed_server.serve("/feed", seed_rss())
    monitor = open_monitor(
        f'[retention]\nmax_age = "1d"\nmatched_max_age = "30d"\n[sources.feed]\nurl = "{url}"\n'
    )
    monitor.update_source("feed")
    monitor.store.db.execute("UPDATE stories SET first_seen_at = '2000-01-01T00:00:00+00:00'")
    monitor.store.db.conn.commit()
    assert monitor.prune() == 2
    assert monitor.store.counts() == {"sources": 1, "stories": 0, "matches": 0, "outbox": 0}
    assert len(monitor.store.query("SELECT * FROM pruned_stories")) == 2


def test_sources_command_shows_interval_and_status(feed_server, open_monitor, cli_run):
    url = feed_server.serve("/feed", seed_rss())
    monitor = open_monitor(f'[sources.feed]\nurl = "{url}"\n')
    monitor.update_source("feed")
    out = cli_run("sources", "-c", monitor.config.file).output
    assert "feed  ok (HTTP 200)  stories: 2" in out and "(every 15m)  errors in a row: 0" in out


def test_prune_command(feed_server, open_monitor, cli_run):
    url = feed_server.serve("/feed", rss([{"title": "Weather", "guid": "w"}]))
    monitor = open_monitor(f'[retention]\nmax_age = "2d"\n[sources.feed]\nurl = "{url}"\n')
    monitor.update_source("feed")
    monitor.store.db.execute("UPDATE stories SET first_seen_at = '2000-01-01T00:00:00+00:00'")
    monitor.store.db.conn.commit()
    config = monitor.config.file
    monitor.close()
    out = cli_run("prune", "-c", config).output
    assert "Pruned 1 story first seen more than 2d ago." in out
