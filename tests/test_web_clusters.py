"""The web UI shows a story's cluster: one match line for the story, and the other outlets that carried it."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx

from conftest import seed_rss
from monitor.testing import FeedServer, allow_private_networks
from webui import run_monitor, start_server


def test_matches_and_story_pages_say_which_other_sources_reported_the_story(tmp_path: Path) -> None:
    feeds = FeedServer().start()
    process = None
    try:
        # Two outlets carry the same two seed articles under their own links.
        feeds.serve("/first.xml", seed_rss(f"{feeds.base}/first"))
        feeds.serve("/second.xml", seed_rss(f"{feeds.base}/second"))
        db = tmp_path / "monitor.db"
        config = tmp_path / "monitor.toml"
        config.write_text(allow_private_networks(
            f'[monitor]\ndb = "{db}"\nlog_level = "WARNING"\n[alerts]\nnew_source_window = 0\n'
            f'[sources.first]\nurl = "{feeds.url("/first.xml")}"\n'
            f'[sources.second]\nurl = "{feeds.url("/second.xml")}"\n'), encoding="utf-8")
        once = run_monitor("once", "--config", str(config), cwd=tmp_path)
        assert once.returncode == 0, once.stderr
        process, base = start_server(config, tmp_path)
        with httpx.Client(base_url=base, timeout=30) as client:
            page = client.get("/matches", params={"watchlist": "trade"})
            assert page.status_code == 200
            text = html.unescape(page.text)
            # Two seed stories, each carried by both outlets: every match says the other outlet carried it too.
            lines = len(re.findall(r'<li class="match', page.text))
            assert lines == 4 and text.count("also reported by 1 source") == lines, text
            story = re.search(r'href="(/stories/[^"]+)"', page.text)
            assert story, text
            detail = html.unescape(client.get(story.group(1)).text)
            assert "also reported by 1 source" in detail
            assert "first" in detail and "second" in detail
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=20)
        feeds.stop()
