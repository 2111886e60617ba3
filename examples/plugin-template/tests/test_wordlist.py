"""The wordlist classifier on a real monitor: news-monitor's fixtures (monitor.testing) do the setting up.

``make_monitor(toml, plugins=[module])`` registers the plugin even when it
is not installed, so these tests run from a checkout as well.
"""

import news_monitor_wordlist as wordlist
import pytest

from monitor import ConfigErrors, PluginConfigError
from monitor.testing import rss

CONFIG = '''
[alerts]
new_source_window = 0

[plugins.wordlist]
score = 1.5

[sources.wire]
url = "{url}"

[watchlists.officials]
description = "Stories naming North Korean officials."
options = {{ wordlist = {{ file = "words/officials.txt", min_hits = 1 }} }}
'''


@pytest.fixture
def words(tmp_path):
    # Beside the configuration file: the plugin resolves the path from there.
    (tmp_path / "words").mkdir()
    (tmp_path / "words" / "officials.txt").write_text("# names\nKim Yo Jong\nChoe Son Hui\n", encoding="utf-8")


def test_a_watchlist_without_a_query_matches_through_the_plugin(words, make_monitor, monitor_feed_server):
    url = monitor_feed_server.serve("/wire.xml", rss([
        {"title": "Kim Yo Jong warns Seoul", "link": "http://news.test/1", "description": "A statement."},
        {"title": "Rice prices rise", "link": "http://news.test/2", "description": "Markets."},
    ]))
    monitor = make_monitor(CONFIG.format(url=url), plugins=[wordlist])

    [result] = monitor.run_once(deliver=False)

    assert result.error is None  # (the built-in north_korea watchlist matches too)
    [match] = monitor.store.matches("officials", 10)
    assert match["title"] == "Kim Yo Jong warns Seoul"
    assert match["score"] == 1.5 and match["classifier"] == "wordlist"


def test_bad_options_are_reported_with_their_key(words, make_monitor, monitor_feed_server):
    url = monitor_feed_server.serve("/wire.xml", rss([]))
    broken = CONFIG.format(url=url).replace("officials.txt", "missing.txt").replace("min_hits = 1", "min_hits = 0")
    monitor = make_monitor(broken, plugins=[wordlist])
    [problem] = [p for p in monitor.check() if "wordlist" in p]
    assert "watchlists.officials.options.wordlist.min_hits: must be a whole number of at least 1" in problem


def test_a_bad_plugin_table_stops_start_up(words, make_monitor, monitor_feed_server):
    url = monitor_feed_server.serve("/wire.xml", rss([]))
    with pytest.raises((PluginConfigError, ConfigErrors), match="plugins.wordlist.score"):
        make_monitor(CONFIG.format(url=url).replace("score = 1.5", "score = -1"), plugins=[wordlist])
