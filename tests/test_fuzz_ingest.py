"""Hypothesis over parse -> bound -> normalise -> classify, with a time and memory bound per input.

The strategies and the property live in ``scripts/fuzz_ingest.py``; the long
run (``python scripts/fuzz_ingest.py --minutes 10``) adds loopback HTTP and
SQLite. Here a few dozen examples keep the suite fast.
"""

from __future__ import annotations

import sys

from hypothesis import HealthCheck, given, settings

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import fuzz_ingest  # noqa: E402

TOOLS = fuzz_ingest.tools()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(fuzz_ingest.documents(repeat=300, many=150))
def test_any_feed_like_input_is_read_or_rejected_within_bounds(doc):
    _fmt, media, body = doc
    outcome = fuzz_ingest.check_parse_path(TOOLS, media, body)
    assert outcome["entries"] <= fuzz_ingest.LIMITS.max_entries


def test_the_bounds_scale_with_the_input():
    assert fuzz_ingest.time_bound(10_000_000) > fuzz_ingest.time_bound(0)
    assert fuzz_ingest.memory_bound(10_000_000) > fuzz_ingest.memory_bound(0)


def test_lone_surrogates_in_a_json_feed_are_replaced_not_fatal(feed_server, open_monitor):
    # Found by scripts/fuzz_ingest.py: JSON's "\ud800" decodes to a lone surrogate,
    # which no UTF-8 encoder accepts: the entry was skipped (in its id) or the
    # whole poll raised out of update_source (in its title, when storing it).
    import json

    items = [{"id": "a\ud800", "title": "North Korea \udfff", "content_html": "<p>x\ud834</p>", "url": "http://x.test/\ud800"},
             {"id": "b", "title": "other"}]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "f", "items": items}).encode()
    url = feed_server.serve("/feed.json", body, headers={"Content-Type": "application/feed+json"})
    monitor = open_monitor(f'[sources.wire]\nurl = "{url}"\n')
    result = monitor.update_source("wire")
    assert result.error is None and result.new_stories == 2
    titles = {r["title"] for r in monitor.store.query("SELECT title FROM stories")}
    assert titles == {"North Korea \ufffd", "other"}
    assert monitor.store.source_row("wire")["last_note"] is None


def test_a_server_claiming_the_folder_bundle_type_is_not_read_as_one(feed_server, open_monitor):
    # Found by scripts/fuzz_ingest.py: a JSON Feed served as the folder bundle's
    # media type reached the bundle parser and failed with an internal KeyError.
    body = b'{"version": "https://jsonfeed.org/version/1.1", "title": "f", "items": [{"id": "1", "title": "t"}]}'
    url = feed_server.serve("/feed", body, headers={"Content-Type": "application/x-news-monitor-articles+json"})
    monitor = open_monitor(f'[sources.wire]\nurl = "{url}"\n')
    result = monitor.update_source("wire")
    # Read as the JSON Feed it is, like any feed served with the wrong type.
    assert result.error is None and result.new_stories == 1


def test_a_broken_folder_bundle_is_a_parse_error():
    from monitor import FetchResult, ParseError, Source

    folder = Source("desk", "/nowhere", kind="directory")
    for body in (b'{"articles": [{"uri": "x"}], "notes": []}', b'[1, 2]', b'{"x": 1}'):
        fetched = FetchResult(url="/nowhere", content=body, media_type="application/x-news-monitor-articles+json")
        try:
            TOOLS.pm.hook.parse_feed(source=folder, fetched=fetched, limits=fuzz_ingest.LIMITS)
        except ParseError as exc:
            assert "unreadable article bundle" in exc.message
        else:
            raise AssertionError(f"{body!r} was read")
