"""Every fault a feed server can throw at us, served for real on 127.0.0.1.

For each: what the source's row says afterwards, when it is polled next,
and that the other sources of the same cycle were polled all the same.
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import timedelta

import pytest

import faults
from conftest import rss, seed_rss
from monitor import Monitor
from monitor.timeutil import from_iso, utcnow

# Every fault shares the host 127.0.0.1: lift the per-host cap except where it is the test.
FAST_FETCH = """
[fetch]
timeout = 1
deadline = 2
max_bytes = 1000000
max_redirects = 3
max_per_host = 20
"""


@pytest.fixture
def open_monitor(open_monitor):
    def build(sources: dict[str, str], extra: str = FAST_FETCH, interval: str = "60s") -> Monitor:
        return open_monitor(extra + "".join(
            f'\n[sources.{name}]\nurl = "{url}"\ninterval = "{interval}"\n' for name, url in sources.items()
        ))

    return build


def row(monitor: Monitor, name: str) -> dict:
    return monitor.store.source_row(name)


def test_every_fault_is_recorded_on_its_source_and_the_good_source_is_still_polled(fault_server, open_monitor):
    s = fault_server
    faults_by_name = {
        "drip": s.route("/drip", faults.drip()),
        "drip_headers": s.route("/drip-headers", faults.drip_headers()),
        "reset": s.route("/reset", faults.reset_mid_body()),
        "e500": s.route("/500", faults.status(500)),
        "e503": s.route("/503", faults.status(503)),
        "loop": s.route("/loop", faults.redirect("/loop")),
        "to_file": s.route("/to-file", faults.redirect("file:///etc/passwd")),
        "html": s.route("/html", faults.feed(b"<!doctype html><html><body><p>Welcome</p></body></html>", "text/html")),
        "oversize": s.route("/big", faults.feed(b"<rss>" + b"x" * 2_000_000 + b"</rss>")),
        "empty": s.route("/empty", faults.feed(b"")),
        "bad_gzip": s.route("/bad-gzip", faults.compressed(b"\x1f\x8b\x08\x00garbage-not-gzip")),
    }
    good = s.route("/good", faults.feed(seed_rss()))
    monitor = open_monitor({**faults_by_name, "good": good})

    polled_at = utcnow()
    started = time.monotonic()
    results = {r.source: r for r in monitor.run_once()}
    elapsed = time.monotonic() - started

    assert results["good"].error is None and results["good"].new_stories == 2
    # The drip is cut by the total deadline (2 s), not left to hang a worker.
    assert elapsed < 15
    expected = {
        "drip": "fetch.deadline",
        "drip_headers": "fetch.deadline",
        "reset": ("connection reset by 127.0.0.1:", "closed the connection before the whole response arrived"),  # RST seen while reading, or after
        "e500": "HTTP 500",
        "e503": "HTTP 503",
        "loop": "too many redirects",
        "to_file": "only http and https are followed",
        "html": "HTML page, not a feed",
        "oversize": "fetch.max_bytes",
        "empty": "empty",
        "bad_gzip": "corrupt gzip body",
    }
    for name, words in expected.items():
        source_row = row(monitor, name)
        assert source_row["status"] == "error", (name, source_row)
        alternatives = words if isinstance(words, tuple) else (words,)
        assert any(w in source_row["last_error"] for w in alternatives), (name, source_row["last_error"])
        assert results[name].error and "internal error" not in results[name].error
        # Backing off: not due again before its interval.
        assert from_iso(source_row["next_poll_at"]) >= polled_at + timedelta(seconds=59), name
    assert row(monitor, "e503")["http_status"] == 503
    assert s.hits("/loop") == 4  # the first request and max_redirects = 3 more


def test_failures_back_off_exponentially_and_429_retry_after_is_honoured(fault_server, open_monitor):
    failing = fault_server.route("/503", faults.status(503))
    limited = fault_server.route("/429", faults.status(429, {"Retry-After": "3600"}))
    monitor = open_monitor({"failing": failing, "limited": limited}, interval="10s")

    delays = []
    for _ in range(4):
        before = utcnow()
        monitor.update_source("failing")
        delays.append((from_iso(row(monitor, "failing")["next_poll_at"]) - before).total_seconds())
    assert row(monitor, "failing")["error_count"] == 4
    # 10 s, then about 20, 40, 80 (jitter takes up to 20% off, never below the interval).
    assert 9 <= delays[0] <= 11
    assert delays[1] >= 15 and delays[2] >= 31 and delays[3] >= 63
    assert delays[3] > delays[2] > delays[1]

    result = monitor.update_source("limited")
    assert "429" in result.error and "3600" in result.error
    assert from_iso(row(monitor, "limited")["next_poll_at"]) >= utcnow() + timedelta(seconds=3590)


def test_a_gzip_bomb_is_cut_at_max_bytes_without_inflating_it_in_memory(fault_server, open_monitor):
    bomb = faults.gzip_bomb(200 << 20)  # 200 MB of zeros in ~200 KB
    assert len(bomb) < 400_000
    url = fault_server.route("/bomb", faults.compressed(bomb))
    monitor = open_monitor({"bomb": url})

    tracemalloc.start()
    try:
        result = monitor.update_source("bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "fetch.max_bytes" in result.error and "decompressed" in result.error
    # max_bytes is 1 MB; nothing near the 200 MB the bomb would inflate to.
    assert peak < 20_000_000, peak


def test_gzip_and_deflate_bodies_within_the_limit_are_read(fault_server, open_monitor):
    import zlib

    body = seed_rss()
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    monitor = open_monitor({
        "gz": fault_server.route("/gz", faults.compressed(faults.gzipped(body))),
        "zl": fault_server.route("/zl", faults.compressed(zlib.compress(body), "deflate")),
        "raw": fault_server.route("/raw", faults.compressed(raw_deflate.compress(body) + raw_deflate.flush(), "deflate")),
    })
    for name in ("gz", "zl", "raw"):
        result = monitor.update_source(name)
        assert result.error is None and result.seen_stories == 2, (name, result)
    assert "gzip" in fault_server.requests[0][1].get("Accept-Encoding", "")


def test_wrong_content_type_still_reads_the_feed(fault_server, open_monitor):
    monitor = open_monitor({
        "as_html": fault_server.route("/as-html", faults.feed(seed_rss(), "text/html")),
        "as_text": fault_server.route("/as-text", faults.feed(seed_rss(), "text/plain")),
        "as_octets": fault_server.route("/as-bin", faults.feed(seed_rss(), "application/octet-stream")),
    })
    for result in monitor.run_once():
        assert result.error is None and result.seen_stories == 2, result


def test_permanent_redirect_moves_the_source_and_is_reported(fault_server, open_monitor, cli_run):
    old = fault_server.route("/old", faults.redirect("/new", 301))
    fault_server.route("/new", faults.feed(seed_rss()))
    fault_server.route("/temp", faults.redirect("/new", 302))
    monitor = open_monitor({"moved": old, "temporary": fault_server.url("/temp")})

    assert monitor.update_source("moved").new_stories == 2
    assert row(monitor, "moved")["effective_url"] == fault_server.url("/new")
    assert row(monitor, "moved")["url"] == old  # the configured URL stays
    monitor.update_source("moved")
    assert fault_server.hits("/old") == 1  # the second poll went straight to the new address

    monitor.update_source("temporary")
    monitor.update_source("temporary")
    assert fault_server.hits("/temp") == 2 and row(monitor, "temporary")["effective_url"] is None

    out = cli_run("sources", "-c", monitor.config.file).output
    assert f"moved permanently to: {fault_server.url('/new')}" in out


def test_gone_410_stops_polling_with_a_clear_status(fault_server, open_monitor, cli_run):
    url = fault_server.route("/gone", faults.status(410))
    monitor = open_monitor({"gone": url})
    first = monitor.update_source("gone")
    assert "410" in first.error
    assert row(monitor, "gone")["status"] == "gone" and row(monitor, "gone")["next_poll_at"] is None
    second = monitor.update_source("gone")
    assert "not polled" in second.error and fault_server.hits("/gone") == 1
    out = cli_run("sources", "-c", monitor.config.file).output
    assert "gone (HTTP 410)" in out and "next poll: never (gone)" in out


def test_at_most_max_per_host_requests_in_flight(fault_server, open_monitor):
    def slow_feed(h):
        time.sleep(0.3)
        faults.send(h, 200, seed_rss(), {"Content-Type": "application/rss+xml"})

    urls = {f"s{i}": fault_server.route(f"/f{i}", slow_feed) for i in range(4)}
    monitor = open_monitor(urls, extra=FAST_FETCH.replace("max_per_host = 20", "max_per_host = 1")
                           + "[schedule]\nmax_workers = 4\n")
    results = monitor.run_once()
    assert all(r.error is None for r in results)
    assert fault_server.max_in_flight == 1


def test_user_agent_names_the_project(fault_server, open_monitor):
    from monitor import __version__

    monitor = open_monitor({"good": fault_server.route("/good", faults.feed(seed_rss()))})
    monitor.update_source("good")
    agent = fault_server.requests[0][1]["User-Agent"]
    assert "news-monitor" in agent and __version__ in agent


def test_a_reset_then_recovery_clears_the_error(fault_server, open_monitor):
    url = fault_server.route("/flaky", faults.reset_mid_body())
    monitor = open_monitor({"flaky": url})
    assert monitor.update_source("flaky").error
    fault_server.route("/flaky", faults.feed(rss([{"title": "Back", "guid": "1"}])))
    result = monitor.update_source("flaky")
    assert result.error is None and result.new_stories == 1
    assert row(monitor, "flaky")["status"] == "ok" and row(monitor, "flaky")["error_count"] == 0


def test_a_saturated_host_fails_its_waiting_sources_at_the_deadline(fault_server, open_monitor):
    urls = {f"d{i}": fault_server.route(f"/d{i}", faults.drip()) for i in range(2)}
    urls["waiting"] = fault_server.route("/ok", faults.feed(seed_rss()))
    monitor = open_monitor(urls, extra=FAST_FETCH.replace("max_per_host = 20", "max_per_host = 2")
                           + "[schedule]\nmax_workers = 3\n")
    started = time.monotonic()
    results = {r.source: r for r in monitor.run_once()}
    assert time.monotonic() - started < 10
    assert "fetch.deadline" in results["d0"].error and "fetch.deadline" in results["d1"].error
    # The third request to the host waited for a slot; it either got one in time or says why not
    # (no slot came, or the slot came so late that its own deadline ran out: a loaded machine).
    waiting = results["waiting"]
    assert (waiting.error is None or "free connection to 127.0.0.1" in waiting.error
            or "fetch.deadline" in waiting.error), waiting.error
