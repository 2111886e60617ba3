"""The web UI's search is `monitor search`: the same stories for the same query, over one real database
filled by a real `monitor once` and served by a real `monitor serve`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor.testing import FeedServer, rss, write_config
from webui import run_monitor, start_server

STORIES = [
    ("beijing", "北京举行贸易峰会", "各国领导人周一在北京会面，讨论钢铁关税。"),
    ("shanghai", "上海港口恢复运营", "港口在台风过后重新开放。"),
    ("talks", "Trade talks stall in Geneva", "Negotiators left without a deal on tariffs."),
    ("steel", "Steel tariffs raised again", "The trade dispute widened as steel duties rose."),
    ("farm", "Farm exports fall", "Soybean trade with the region dropped sharply."),
    ("mill", "Steel mill reopens", "Two hundred workers return to the furnaces."),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, httpx.Client]]:
    folder = tmp_path_factory.mktemp("websearch")
    feeds = FeedServer().start()
    feeds.serve("/news.xml", rss([
        {"title": title, "link": f"{feeds.base}/{name}", "guid": f"{feeds.base}/{name}", "description": text,
         "pubDate": f"Mon, 27 May 2019 {10 + i:02d}:00:00 +0000"}
        for i, (name, title, text) in enumerate(STORIES)
    ]))
    config = write_config(folder, f'[alerts]\nnew_source_window = 0\n[sources.news]\nurl = "{feeds.url("/news.xml")}"\n')
    once = run_monitor("once", "--config", str(config), cwd=folder)
    assert once.returncode == 0, once.stderr
    process, base = start_server(config, folder)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            yield config, client
    finally:
        process.terminate()
        process.wait(timeout=20)
        feeds.stop()


def cli_titles(config: Path, query: str) -> list[str]:
    result = run_monitor("search", "--config", str(config), "--nl", query, cwd=config.parent)
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["title"] for line in result.stdout.splitlines()]


@pytest.mark.parametrize("query, expected", [
    ("北京", ["北京举行贸易峰会"]),  # inside one run of Chinese characters, which FTS5 indexes as one token
    ("港口", ["上海港口恢复运营"]),
    ("trade -steel", ["Farm exports fall", "Trade talks stall in Geneva"]),
    ("tariffs -steel", ["Trade talks stall in Geneva"]),
])
def test_web_search_finds_what_monitor_search_finds(served: tuple[Path, httpx.Client], query: str,
                                                     expected: list[str]) -> None:
    config, client = served
    assert sorted(cli_titles(config, query)) == expected
    api = client.get("/api/search", params={"q": query})
    assert api.status_code == 200
    assert sorted(item["title"] for item in api.json()["items"]) == expected
    page = client.get("/search", params={"q": query}).text
    assert sorted(re.findall(r'<h2><a href="/stories/[^"]+">([^<]+)</a></h2>', page)) == expected


def test_a_negated_term_finds_no_candidates(served: tuple[Path, httpx.Client]) -> None:
    # Only "tariffs" can make the query match: the stories holding "steel" alone are not read.
    _, client = served
    found = client.get("/api/search", params={"q": "tariffs -steel"}).json()
    assert found["candidates"] == 2 and not found["truncated"]
    assert "1 match among 2 candidate stories" in client.get("/search", params={"q": "tariffs -steel"}).text
