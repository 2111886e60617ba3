"""Broken and hostile feeds: each is read as far as it can be, or rejected with a reason."""

from __future__ import annotations

import resource
import time

import pytest

from conftest import DATA, rss
from monitor import FetchResult, Monitor, ParseError, Source, load_config

FIXTURES = {
    "truncated": ("truncated.xml", "ok", 3, "malformed feed"),
    "dupes": ("duplicate_guids.xml", "ok", 2, "1 entry with a duplicate id ignored"),
    "bare": ("no_links_no_dates.xml", "ok", 4, None),
    "html": ("not_a_feed.html", "error", 0, "HTML page, not a feed"),
    "wrong_encoding": ("wrong_encoding.xml", "ok", 1, "wrong encoding declared"),
    "cp1252": ("undeclared_cp1252.xml", "ok", 1, "wrong encoding declared"),
    "utf16": ("utf16_no_bom.xml", "ok", 1, None),
    "laughs": ("billion_laughs.xml", "ok", 1, "malformed feed"),
    "quadratic": ("quadratic_blowup.xml", "ok", 1, "malformed feed"),
}


@pytest.fixture
def monitor(make_config, tmp_path):
    big_entry = rss([{"title": "Huge", "guid": "huge", "description": "word " * 300_000}])
    many = rss([{"title": f"Entry {i}", "guid": f"g{i}", "link": f"http://many.test/{i}"} for i in range(2000)])
    (tmp_path / "huge.xml").write_bytes(big_entry)
    (tmp_path / "many.xml").write_bytes(many)
    sources = {name: DATA / file for name, (file, *_rest) in FIXTURES.items()}
    sources.update(huge=tmp_path / "huge.xml", many=tmp_path / "many.xml")
    text = "[fetch]\nmax_bytes = 20000000\n" + "".join(
        f'[sources.{name}]\nurl = "{path}"\n' for name, path in sources.items()
    )
    with Monitor.open(load_config(make_config(text))) as m:
        yield m


def test_each_broken_feed_is_handled_and_its_status_says_what_happened(monitor):
    started = time.monotonic()
    results = {r.source: r for r in monitor.run_once()}
    assert time.monotonic() - started < 20
    rows = {r["name"]: r for r in monitor.store.sources()}
    for name, (_file, status, stories, words) in FIXTURES.items():
        row = rows[name]
        assert row["status"] == status, (name, row)
        assert row["stories_count"] == stories, (name, row)
        if words:
            assert words in (row["last_note"] or row["last_error"] or ""), (name, row)
        assert "internal error" not in (results[name].error or "")

    titles = {r["title"] for r in monitor.store.query("SELECT title FROM stories WHERE source = 'wrong_encoding'")}
    assert titles == {"Café crème à Genève"}
    # Entries without a title take their text's opening; a far-future date is dropped.
    bare = {r["title"]: r["published_at"] for r in monitor.store.query("SELECT title, published_at FROM stories WHERE source = 'bare'")}
    assert "Only a description, no title, link, guid or date." in bare
    assert bare["Far future date"] is None and bare["Bad date"] is None
    # Entity expansion is not performed: the title keeps the reference, nothing exploded.
    laugh = monitor.store.query("SELECT title, length(text) AS n FROM stories WHERE source = 'laughs'")[0]
    assert laugh["n"] < 1000
    assert rows["huge"]["stories_count"] == 1
    # fetch.max_entries (1000): undated entries are kept in feed order, and the note says so.
    assert rows["many"]["stories_count"] == 1000
    assert "2000 entries: read the newest 1000 (fetch.max_entries)" in rows["many"]["last_note"]
    kept = {r["title"] for r in monitor.store.query("SELECT title FROM stories WHERE source = 'many'")}
    assert "Entry 0" in kept and "Entry 999" in kept and "Entry 1000" not in kept


def test_entity_expansion_attacks_neither_hang_nor_eat_memory(monitor):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    for name in ("laughs", "quadratic"):
        assert monitor.update_source(name).error is None
    assert time.monotonic() - started < 2
    # ru_maxrss is in KiB on Linux: the peak grew by less than 50 MB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000


def test_bytes_that_crash_feedparser_are_a_parse_error_not_a_crash(monitor):
    # Found by the fuzz run: a non-UTF-8 byte in the encoding declaration.
    body = b'<?xml version="1.0" encoding="u\x9ctf-8"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    source = Source("x", "http://x.test/feed")
    fetched = FetchResult(url=source.url, content=body, media_type="application/rss+xml",
                          headers={"content-type": "application/rss+xml"})
    with pytest.raises(ParseError, match="feedparser failed: UnicodeDecodeError"):
        monitor.pm.hook.parse_feed(source=source, fetched=fetched, limits=monitor.entry_limits)
