"""Polling real feeds from a loopback HTTP server into a real SQLite file."""

import json

import pytest
import sqlite_utils

from conftest import rss, seed_rss


@pytest.fixture
def open_monitor(open_monitor):
    # These tests are about storing and deduplicating; the first-poll alert
    # window has its own tests (test_polling), so every entry alerts here.
    return lambda text: open_monitor(ALERT_EVERYTHING + text)


ALERT_EVERYTHING = "[alerts]\nnew_source_window = 0\n"


def feed_config(**urls: str) -> str:
    return "".join(f'[sources.{name}]\nurl = "{url}"\n' for name, url in urls.items())


def rows(monitor, sql, params=()):
    return monitor.store.query(sql, params)


def test_seed_feed_over_http_is_stored_matched_and_then_not_modified(feed_server, open_monitor):
    url = feed_server.serve("/seeds.xml", seed_rss())
    monitor = open_monitor(feed_config(wire=url))

    [first] = monitor.run_once()
    assert (first.new_stories, first.matches, first.error) == (2, 6, None)
    stories = rows(monitor, "SELECT title, url, published_at, text FROM stories ORDER BY title")
    assert [s["published_at"] for s in stories] == ["2019-05-27T09:00:00+00:00"] * 2
    assert all(s["url"].startswith("http://news.test/") and len(s["text"]) > 1000 for s in stories)

    [second] = monitor.run_once()
    assert second.not_modified and second.new_stories == 0
    conditional = feed_server.hits("/seeds.xml")[-1]
    assert conditional.headers.get("If-None-Match")
    source = rows(monitor, "SELECT status, http_status, stories_count, error_count FROM sources")[0]
    assert source == {"status": "not_modified", "http_status": 304, "stories_count": 2, "error_count": 0}
    assert rows(monitor, "SELECT count(*) AS n FROM outbox")[0]["n"] == 6


def test_a_dead_source_is_recorded_and_the_others_still_work(feed_server, open_monitor):
    good = feed_server.serve("/good.xml", seed_rss())
    monitor = open_monitor(feed_config(dead="http://127.0.0.1:9/feed.xml", good=good))

    results = {r.source: r for r in monitor.run_once()}
    assert results["good"].new_stories == 2
    assert "connection refused by 127.0.0.1:9" in results["dead"].error
    dead = rows(monitor, "SELECT * FROM sources WHERE name = 'dead'")[0]
    assert dead["status"] == "error" and dead["error_count"] == 1
    assert dead["last_error"].endswith("connection refused by 127.0.0.1:9")
    assert dead["next_poll_at"] > dead["last_fetch_at"]


@pytest.mark.parametrize(
    "body, content_type, reason",
    [
        (b"<!DOCTYPE html><html><body>Welcome</body></html>", "text/html", "HTML page, not a feed"),
        (b"", "application/rss+xml", "empty"),
        (b"\x00\x01\x02garbage", "application/octet-stream", "not a feed"),
    ],
)
def test_a_page_that_is_not_a_feed_is_rejected_with_a_reason(feed_server, open_monitor, body, content_type, reason):
    url = feed_server.serve("/x", body, headers={"Content-Type": content_type})
    monitor = open_monitor(feed_config(bad=url))
    [result] = monitor.run_once()
    assert reason in result.error
    assert reason in rows(monitor, "SELECT last_error FROM sources")[0]["last_error"]


def test_http_errors_are_recorded_with_status(feed_server, open_monitor):
    url = feed_server.serve("/busy", b"try later", status=503, headers={"Retry-After": "120"})
    monitor = open_monitor(feed_config(busy=url))
    [result] = monitor.run_once()
    assert result.error.startswith("HTTP 503") and result.status == 503
    row = rows(monitor, "SELECT http_status, next_poll_at, last_fetch_at FROM sources")[0]
    assert row["http_status"] == 503


def test_odd_entries_are_stored_sensibly(feed_server, open_monitor):
    body = rss([
        {"description": "A story with no title about <b>Pyongyang</b> &amp; more.", "guid": "no-title"},
        {"title": "Dated in the future", "guid": "future", "pubDate": "Tue, 01 Jan 2999 00:00:00 GMT"},
        {"title": "Odd date", "guid": "odd", "pubDate": "sometime last week"},
        {"title": "Dup one", "guid": "dup", "description": "first"},
        {"title": "Dup two", "guid": "dup", "description": "second"},
        {"title": "Caf\u00e9 \u2013 \u00fcnicode \u201cquotes\u201d", "link": "http://news.test/a?utm_source=x&id=1#top"},
    ])
    monitor = open_monitor(feed_config(odd=feed_server.serve("/odd.xml", body)))
    [result] = monitor.run_once()
    assert result.error is None and result.new_stories == 5
    stored = {s["guid"] or s["title"]: s for s in rows(monitor, "SELECT * FROM stories")}
    assert stored["no-title"]["title"] == "A story with no title about Pyongyang & more."
    assert stored["future"]["published_at"] is None
    assert stored["odd"]["published_at"] is None
    assert stored["dup"]["title"] == "Dup one"
    assert "Café – ünicode “quotes”" in {s["title"] for s in stored.values()}


def test_a_story_seen_again_is_stored_once_and_an_edit_updates_it_without_new_alerts(feed_server, open_monitor):
    items = [{"title": "Pyongyang fires missile", "guid": "g1", "description": "North Korea fired a missile."}]
    feed_server.serve("/f.xml", rss(items))
    monitor = open_monitor(feed_config(f=feed_server.url("/f.xml")))
    [first] = monitor.run_once()
    assert (first.new_stories, first.matches) == (1, 1)

    items[0]["description"] = "North Korea fired a missile into the sea, officials said."
    feed_server.serve("/f.xml", rss(items + [{"title": "Weather", "guid": "g2", "description": "Sunny."}]))
    [second] = monitor.run_once()
    assert (second.new_stories, second.updated_stories, second.matches) == (1, 1, 0)
    assert rows(monitor, "SELECT count(*) AS n FROM stories")[0]["n"] == 2
    assert "into the sea" in rows(monitor, "SELECT text FROM stories WHERE guid = 'g1'")[0]["text"]
    assert rows(monitor, "SELECT count(*) AS n FROM outbox")[0]["n"] == 1


def test_atom_and_json_feed_are_read(feed_server, open_monitor):
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id><updated>2024-01-01T00:00:00Z</updated>
<entry><title>Tariffs on steel rise</title><id>urn:a:1</id><updated>2024-01-02T10:00:00Z</updated>
<link href="http://news.test/atom/1"/><content type="html">&lt;p&gt;New &lt;b&gt;tariffs&lt;/b&gt;.&lt;/p&gt;</content></entry></feed>"""
    jsonfeed = json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "J",
        "items": [{"id": "j1", "url": "http://news.test/j/1", "title": "Pyongyang talks",
                   "content_text": "Talks with North Korea resumed.", "date_published": "2024-01-03T08:00:00Z"}],
    }).encode()
    monitor = open_monitor(feed_config(
        atom=feed_server.serve("/atom", atom, headers={"Content-Type": "application/atom+xml"}),
        json=feed_server.serve("/json", jsonfeed, headers={"Content-Type": "application/feed+json"}),
    ))
    results = {r.source: r for r in monitor.run_once()}
    assert results["atom"].new_stories == 1 and results["json"].new_stories == 1
    texts = {s["title"]: s for s in rows(monitor, "SELECT * FROM stories")}
    assert texts["Tariffs on steel rise"]["text"] == "New tariffs."
    assert texts["Pyongyang talks"]["published_at"] == "2024-01-03T08:00:00+00:00"


def test_the_database_is_wal_and_has_the_documented_tables(feed_server, open_monitor, tmp_path):
    monitor = open_monitor(feed_config(w=feed_server.serve("/s", seed_rss())))
    monitor.run_once()
    db = sqlite_utils.Database(tmp_path / "monitor.db")
    assert db.journal_mode == "wal"
    assert {"sources", "stories", "matches", "outbox", "stories_fts"} <= set(db.table_names())
    assert db["stories_fts"].count == 2


def test_a_feed_in_a_legacy_encoding_is_decoded(feed_server, open_monitor):
    body = (
        '<?xml version="1.0" encoding="windows-1252"?><rss version="2.0"><channel><title>t</title>'
        "<item><title>Caf\u00e9 owners protest new tariffs \u2013 again</title><guid>e1</guid></item></channel></rss>"
    ).encode("cp1252")
    monitor = open_monitor(feed_config(legacy=feed_server.serve("/l", body)))
    [result] = monitor.run_once()
    assert result.new_stories == 1
    assert rows(monitor, "SELECT title FROM stories")[0]["title"] == "Caf\u00e9 owners protest new tariffs \u2013 again"


def test_the_same_link_in_two_feeds_is_one_story(feed_server, open_monitor):
    one = rss([{"title": "Pyongyang summit ends", "link": "http://news.test/story/1?utm_source=rss"}])
    two = rss([{"title": "Pyongyang summit ends", "link": "HTTP://News.Test/story/1#comments"}])
    monitor = open_monitor(feed_config(a=feed_server.serve("/a", one), b=feed_server.serve("/b", two)))
    results = monitor.run_once()
    assert sum(r.new_stories for r in results) == 1
    assert rows(monitor, "SELECT count(*) AS n FROM outbox")[0]["n"] == 1


def test_a_story_in_swedish_is_matched_with_its_own_letters(feed_server, open_monitor):
    # "gått" (gone) folded to "gatt" used to match a watchlist about the trade agreement.
    when = "Mon, 27 May 2019 09:00:00 GMT"
    swedish = feed_server.serve("/sv.xml", rss([
        {"title": "Priserna har gått upp i Malmö", "link": "http://sv.test/1", "guid": "sv-1", "pubDate": when},
    ], language="sv-SE"))
    english = feed_server.serve("/en.xml", rss([
        {"title": "GATT talks resume as Malmo hosts ministers", "link": "http://en.test/1", "guid": "en-1",
         "pubDate": when},
    ], language="en"))
    # A feed that does not say its language, and one that says it wrong, told by the configuration.
    untold = feed_server.serve("/untold.xml", rss([
        {"title": "Tullarna har gått ner", "link": "http://sv.test/2", "guid": "sv-2", "pubDate": when},
    ]))
    wrong = feed_server.serve("/wrong.xml", rss([
        {"title": "Exporten har gått bra", "link": "http://sv.test/3", "guid": "sv-3", "pubDate": when},
    ], language="en-us"))
    told = "".join(f'[sources.{name}]\nurl = "{url}"\nlanguage = "sv"\n' for name, url in
                   (("untold", untold), ("wrong", wrong)))
    monitor = open_monitor(feed_config(sv=swedish, en=english) + told
                           + '[watchlists.gatt]\nquery = "gatt"\n[watchlists.malmo]\nquery = "malmö"\n')
    monitor.run_once()
    found = rows(monitor, "SELECT s.source, m.watchlist FROM matches m JOIN stories s ON s.id = m.story_id "
                          "WHERE m.watchlist IN ('gatt', 'malmo') ORDER BY 1, 2")
    assert [(r["source"], r["watchlist"]) for r in found] == [("en", "gatt"), ("en", "malmo"), ("sv", "malmo")]


def test_a_source_language_that_is_not_a_language_code_is_a_config_error(make_config):
    from monitor import load_config
    from monitor.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as caught:
        load_config(make_config('[sources.a]\nurl = "http://127.0.0.1/a.xml"\nlanguage = "Swedish please"\n'), env={})
    assert 'sources.a.language: must be a language code such as "sv" or "pt-BR"' in str(caught.value)
