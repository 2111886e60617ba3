"""``monitor sources add | import | export | remove`` against real files and loopback servers."""

import json
import tomllib

import listparser

from conftest import DATA, rss
from monitor import load_config

LAYOUT = '''# My news monitor: hand-written, comments and all.
[monitor]
db = "{db}"   # next to the config

[fetch]
allow_private_networks = true  # the test feeds live on 127.0.0.1

# The wire, polled often.
[sources.wire]
url = "{wire}"  # keep this comment
interval = "5m"

[watchlists.korea]
query = "pyongyang"  # short on purpose
'''

PAGE = b'''<!doctype html><html><head><title>Example News</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="Gone" href="/feeds/gone.xml">
<link rel="alternate" type="application/atom+xml" title="All stories" href="feeds/all.atom">
<link rel="alternate" type="application/feed+json" href="/feed.json">
</head><body><p>Front page</p></body></html>'''

ATOM = b'''<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Example News: All Stories</title><id>urn:x</id>
<updated>2026-11-29T10:00:00Z</updated>
<entry><title>Pyongyang fires a missile</title><id>urn:1</id><link href="http://news.test/1"/>
<updated>2026-11-29T10:00:00Z</updated></entry>
<entry><title>Markets calm</title><id>urn:2</id><link href="http://news.test/2"/>
<updated>2026-11-29T09:00:00Z</updated></entry></feed>'''


def write_layout(tmp_path, wire="http://127.0.0.1:9/wire.xml"):
    path = tmp_path / "monitor.toml"
    path.write_text(LAYOUT.format(db=tmp_path / "monitor.db", wire=wire), encoding="utf-8")
    return path


def test_add_discovers_the_feed_behind_a_web_page_and_keeps_the_file_as_written(feed_server, tmp_path, cli_run):
    page = feed_server.serve("/news/", PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
    feed_server.serve("/news/feeds/all.atom", ATOM, headers={"Content-Type": "application/atom+xml"})
    path = write_layout(tmp_path)
    before = path.read_text(encoding="utf-8")

    result = cli_run("sources", "add", page, "--config", path, "--interval", "15m")

    assert result.exit_code == 0, result.output
    # Every announced feed is shown, relative hrefs resolved; the first one (404) is passed over.
    assert f"{feed_server.url('/feeds/gone.xml')}  (Gone)" in result.output
    assert "Atom      " + feed_server.url("/news/feeds/all.atom") in result.output
    assert "JSON Feed " + feed_server.url("/feed.json") in result.output
    assert 'Read ' + feed_server.url("/news/feeds/all.atom") + ': "Example News: All Stories", 2 entries.' in result.output
    after = path.read_text(encoding="utf-8")
    assert after.startswith(before.split("[watchlists.korea]")[0])  # comments and layout above kept byte for byte
    assert after.endswith('[watchlists.korea]\nquery = "pyongyang"  # short on purpose\n')
    source = load_config(path).sources["example-news-all-stories"]
    assert source.url == feed_server.url("/news/feeds/all.atom") and source.interval == 900
    # The new source polls like any other.
    assert cli_run("once", "--config", path, "--source", "example-news-all-stories").exit_code == 0
    assert "Pyongyang fires a missile" in cli_run("matches", "--config", path).output


def test_add_reads_a_feed_address_directly_and_refuses_taken_names_and_urls(feed_server, tmp_path, cli_run):
    url = feed_server.serve("/feed.json", json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "Daily Brief",
        "items": [{"id": "1", "title": "One", "content_text": "x", "url": "http://news.test/x"}],
    }).encode(), headers={"Content-Type": "application/feed+json"})
    path = write_layout(tmp_path)
    before = path.read_text(encoding="utf-8")

    taken = cli_run("sources", "add", url, "--config", path, "--name", "wire")
    assert taken.exit_code == 2
    assert "sources.wire: a source named 'wire' exists already" in taken.output
    assert path.read_text(encoding="utf-8") == before

    added = cli_run("sources", "add", url, "--config", path)
    assert added.exit_code == 0, added.output
    assert '"Daily Brief", 1 entry' in added.output and "Added source daily-brief" in added.output
    again = cli_run("sources", "add", url, "--config", path, "--name", "other")
    assert again.exit_code == 1 and "configured already, as source 'daily-brief'" in again.output


def test_add_goes_through_the_daemons_network_policy(feed_server, tmp_path, cli_run):
    url = feed_server.serve("/feed.xml", rss([{"title": "x", "link": "http://news.test/x"}]))
    path = tmp_path / "monitor.toml"
    path.write_text(f'[monitor]\ndb = "{tmp_path / "m.db"}"\n', encoding="utf-8")  # the default policy

    result = cli_run("sources", "add", url, "--config", path)

    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "allow_private_networks" in line and url in line
    assert "[sources" not in path.read_text(encoding="utf-8")
    assert not feed_server.hits("/feed.xml")  # refused before any connection


def test_add_says_so_when_a_page_announces_no_feed(feed_server, tmp_path, cli_run):
    page = feed_server.serve("/about", b"<html><head><title>About</title></head><body>hi</body></html>",
                             headers={"Content-Type": "text/html"})
    path = write_layout(tmp_path)
    result = cli_run("sources", "add", page, "--config", path)
    assert result.exit_code == 1
    assert "web page that announces no feed" in result.output and len(result.output.strip().splitlines()) == 1
    bad = cli_run("sources", "add", page, "--config", path, "--interval", "soon")
    assert bad.exit_code == 2 and "--interval" in bad.output


def test_add_without_config_uses_config_monitor_toml(feed_server, tmp_path, cli_run, monkeypatch):
    url = feed_server.serve("/feed.xml", rss([{"title": "x", "link": "http://news.test/x"}], title="Wire"))
    monkeypatch.chdir(tmp_path)
    # No file yet: the built-in defaults apply (loopback refused), and nothing is created on failure.
    refused = cli_run("sources", "add", url)
    assert refused.exit_code == 1 and not (tmp_path / "config").exists()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "monitor.toml").write_text("[fetch]\nallow_private_networks = true\n")
    assert cli_run("sources", "add", url).exit_code == 0
    assert tomllib.loads((tmp_path / "config" / "monitor.toml").read_text())["sources"]["wire"]["url"] == url


NESTED_OPML = b'''<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Feeds exported by a reader</title></head>
  <body>
    <outline text="News" title="News">
      <outline text="Asia" title="Asia">
        <outline type="rss" text="Korea Wire" xmlUrl="http://korea.example/rss.xml"/>
        <outline type="rss" text="NYT &gt; Business" xmlUrl="http://www.nytimes.com/services/xml/rss/nyt/Business.xml"/>
      </outline>
      <outline type="rss" text="The Wire (again)" xmlUrl="http://127.0.0.1:9/wire.xml"/>
    </outline>
    <outline text="Blogs">
      <outline type="rss" text="Korea Wire" xmlUrl="http://korea-two.example/rss.xml"/>
      <outline type="rss" text="Korea Wire" xmlUrl="http://korea.example/rss.xml"/>
      <outline type="rss" text="A gopher hole" xmlUrl="gopher://old.example/1"/>
    </outline>
  </body>
</opml>'''


def test_import_real_and_nested_opml_then_export_round_trips(tmp_path, cli_run):
    path = write_layout(tmp_path)
    before = path.read_text(encoding="utf-8")
    nested = tmp_path / "reader.opml"
    nested.write_bytes(NESTED_OPML)

    first = cli_run("sources", "import", DATA / "opml" / "subscriptionList.opml", "--config", path)
    assert first.exit_code == 0, first.output
    assert first.output.startswith(f"Added 13 sources to {path}, skipped 0.")
    assert "added nyt-business: http://www.nytimes.com/services/xml/rss/nyt/Business.xml" in first.output

    second = cli_run("sources", "import", nested, "--config", path)
    assert second.exit_code == 0, second.output
    # listparser merges the same URL listed twice in one file; the first folder is kept.
    assert second.output.startswith(f"Added 2 sources to {path}, skipped 3.")
    assert "added korea-wire: http://korea.example/rss.xml  [News/Asia]" in second.output
    assert "added korea-wire-2: http://korea-two.example/rss.xml  [Blogs]" in second.output
    assert "skipped http://www.nytimes.com/services/xml/rss/nyt/Business.xml: configured already, as source " \
           "'nyt-business'" in second.output
    assert "skipped http://127.0.0.1:9/wire.xml: configured already, as source 'wire'" in second.output
    assert "skipped gopher://old.example/1: no loaded plugin reads gopher: URLs for sources of kind 'feed'" \
        in second.output
    assert path.read_text(encoding="utf-8").startswith(before.split("[watchlists.korea]")[0])

    again = cli_run("sources", "import", DATA / "opml" / "subscriptionList.opml", "--config", path)
    assert again.output.startswith(f"Added 0 sources to {path}, skipped 13.")

    out = tmp_path / "export.opml"
    exported = cli_run("sources", "export", "--config", path, "--output", out)
    assert exported.exit_code == 0, exported.output
    parsed = listparser.parse(out.read_bytes())
    assert not parsed.bozo and parsed.version == "opml2"
    feeds = {f.url: f.categories for f in parsed.feeds}
    config = load_config(path)
    assert set(feeds) == {s.url for s in config.sources.values()} and len(feeds) == 16
    assert feeds["http://korea.example/rss.xml"] == [["News", "Asia"]]
    assert feeds["http://www.scripting.com/rss.xml"] == []

    # Into an empty configuration, the export brings back the same sources, names and categories.
    fresh = tmp_path / "fresh.toml"
    fresh.write_text("")
    assert cli_run("sources", "import", out, "--config", fresh).exit_code == 0
    restored = load_config(fresh).sources
    assert {(n, s.url, s.category) for n, s in restored.items()} == \
           {(n, s.url, s.category) for n, s in config.sources.items()}


def test_export_to_stdout_and_import_of_something_else(tmp_path, cli_run):
    path = write_layout(tmp_path)
    out = cli_run("sources", "export", "--config", path).output
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    assert 'xmlUrl="http://127.0.0.1:9/wire.xml"' in out
    junk = tmp_path / "not.opml"
    junk.write_text("this is not xml at all <")
    result = cli_run("sources", "import", junk, "--config", path)
    assert result.exit_code == 2 and f"{junk}: not an OPML subscription list" in result.output


def test_remove_deletes_one_table_and_keeps_the_rest(tmp_path, cli_run):
    path = write_layout(tmp_path)
    path.write_text(path.read_text() + '\n# Another.\n[sources.other]\nurl = "http://127.0.0.1:9/o.xml"\n')
    before = path.read_text()

    result = cli_run("sources", "remove", "wire", "--config", path)

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Removed source wire (http://127.0.0.1:9/wire.xml) from {path}."
    after = path.read_text()
    # The comment written directly above the table goes with it.
    start, end = before.index("# The wire, polled often."), before.index("[watchlists.korea]")
    assert after == before[:start] + before[end:]
    assert set(load_config(path).sources) == {"other"}
    missing = cli_run("sources", "remove", "wire", "--config", path)
    assert missing.exit_code == 2 and "no source named 'wire' in this file (its sources: other)" in missing.output
    assert path.read_text() == after


def test_remove_takes_the_comment_directly_above_and_leaves_every_other_comment(tmp_path, cli_run):
    path = tmp_path / "monitor.toml"
    kept_above = '# My sources.\n\n# Set apart by a blank line: about every source.\n\n'
    path.write_text(
        f'[monitor]\ndb = "{tmp_path / "monitor.db"}"\n\n' + kept_above +
        '# The wire, polled often.\n# Its second line.\n[sources.wire]\nurl = "http://127.0.0.1:9/wire.xml"\n'
        '# interval = "1m"  (inside the table: goes with it)\ninterval = "5m"\n\n'
        '# Below the wire, apart from the outlet.\n\n'
        '# The outlet, directly above it.\n[sources.outlet]\nurl = "http://127.0.0.1:9/outlet.xml"\n\n'
        '# The agency.\n[sources.agency]\nurl = "http://127.0.0.1:9/agency.xml"\n', encoding="utf-8")

    assert cli_run("sources", "remove", "wire", "--config", path).exit_code == 0
    after = path.read_text(encoding="utf-8")
    assert after == (
        f'[monitor]\ndb = "{tmp_path / "monitor.db"}"\n\n' + kept_above +
        '# Below the wire, apart from the outlet.\n\n'
        '# The outlet, directly above it.\n[sources.outlet]\nurl = "http://127.0.0.1:9/outlet.xml"\n\n'
        '# The agency.\n[sources.agency]\nurl = "http://127.0.0.1:9/agency.xml"\n')

    assert cli_run("sources", "remove", "agency", "--config", path).exit_code == 0
    assert path.read_text(encoding="utf-8") == after.replace(
        '# The agency.\n[sources.agency]\nurl = "http://127.0.0.1:9/agency.xml"\n', "")
    assert cli_run("sources", "remove", "outlet", "--config", path).exit_code == 0
    assert path.read_text(encoding="utf-8") == (
        f'[monitor]\ndb = "{tmp_path / "monitor.db"}"\n\n' + kept_above + '# Below the wire, apart from the outlet.\n\n')
    assert load_config(path).sources == {}


def test_feed_links_follow_base_and_skip_what_is_not_a_web_feed():
    from monitor.discovery import feed_links

    page = '''<html xmlns="http://www.w3.org/1999/xhtml"><head><base href="https://cdn.example/site/"/>
    <link rel="alternate stylesheet" type="text/css" href="alt.css"/>
    <link rel="Alternate" type="application/rss+xml; charset=utf-8" href="rss.xml" title="News &amp; more"/>
    <link rel="alternate" type="application/atom+xml" href="//feeds.example/atom"/>
    <link rel="alternate" type="application/rss+xml" href="rss.xml"/>
    <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)"/>
    <link rel="alternate" hreflang="fr" href="/fr/"/></head></html>'''
    links = feed_links(page, "https://www.example/news/")
    assert [(l.url, l.kind, l.title) for l in links] == [
        ("https://cdn.example/site/rss.xml", "RSS", "News & more"),
        ("https://feeds.example/atom", "Atom", None),
    ]
