"""A monitor with a web UI to test against: loopback feeds, a real `monitor once`, a real `monitor serve`.

Shared by the server tests, the browser tests and scripts/screenshots.py (which
takes the README's pictures on the browser tests' code path).
"""

from __future__ import annotations

import html
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import seed_rss
from monitor.testing import FeedServer, allow_private_networks, rss

HOSTILE_TITLE = "<img src=x onerror=alert(1)> Pyongyang test-fires a missile"
HOSTILE_LINK = "javascript:alert(2)"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]
CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 900}


def outlet_feed(base: str) -> bytes:
    """A second outlet: a hostile story that matches north_korea, and a story on trade talks."""
    return rss([
        # Escaped once more than markup: what a feed sends to show the characters "<img ...>" as text.
        {"title": html.escape(HOSTILE_TITLE), "link": HOSTILE_LINK, "guid": f"{base}/hostile",
         "description": "North Korea fired a missile from near Pyongyang on Monday, "
                        "&lt;script&gt;alert(3)&lt;/script&gt; officials in Seoul said.",
         "pubDate": "Mon, 27 May 2019 10:00:00 +0000"},
        {"title": "Ministers resume trade talks over tariffs on steel", "link": f"{base}/trade",
         "guid": f"{base}/trade", "description": "Negotiators met in Geneva to discuss tariffs and a free trade "
                                                 "agreement between the two economies.",
         "pubDate": "Mon, 27 May 2019 11:00:00 +0000"},
    ], title="Outlet")


def config_text(feeds: FeedServer, db: Path) -> str:
    """Two loopback feeds and one that answers 404, the shipped watchlists, the console and a webhook that always fails (one attempt)."""
    return allow_private_networks(f"""
[monitor]
db = "{db}"
log_level = "WARNING"

[alerts]
max_attempts = 1
new_source_window = 0

[channels.hook]
type = "webhook"
url = "{feeds.url('/hook')}"

[sources.wire]
url = "{feeds.url('/wire.xml')}"

[sources.outlet]
url = "{feeds.url('/outlet.xml')}"

[sources.moved]
url = "{feeds.url('/moved.xml')}"

""" + WATCHLIST_CHANNELS)


# The shipped watchlists alert the console and the failing webhook.
WATCHLIST_CHANNELS = "".join(
    f'[watchlists.{name}]\nchannels = ["console", "hook"]\n\n' for name in ("north_korea", "abductions", "trade"))


@dataclass
class ServedMonitor:
    """A filled database and a `monitor serve` process answering on ``base``."""

    config: Path
    db: Path
    base: str
    process: subprocess.Popen
    feeds: FeedServer

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.feeds.stop()


def run_monitor(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m monitor ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def start_server(config: Path, cwd: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``monitor serve --port 0`` as a process; returns it and its base URL once it listens."""
    process = subprocess.Popen([sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", "0",
                                *extra], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the server announces itself (or exits)
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not found:
        process.kill()
        raise AssertionError(f"monitor serve did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
    return process, f"http://127.0.0.1:{found.group(1)}"


def served_monitor(folder: Path) -> ServedMonitor:
    """Fill a database in ``folder`` with a real `monitor once` over two loopback feeds, then serve it."""
    feeds = FeedServer().start()
    feeds.serve("/wire.xml", seed_rss(feeds.base))
    feeds.serve("/outlet.xml", outlet_feed(feeds.base))
    feeds.serve("/moved.xml", b"no feed here", status=404, headers={"Content-Type": "text/plain"})
    feeds.serve("/hook", b"receiver down", status=500, headers={"Content-Type": "text/plain"})
    db = folder / "monitor.db"
    config = folder / "monitor.toml"
    config.write_text(config_text(feeds, db), encoding="utf-8")
    once = run_monitor("once", "--config", str(config), cwd=folder)
    assert once.returncode == 0, once.stderr
    assert "8 new matches" in once.stdout, once.stdout
    process, base = start_server(config, folder)
    return ServedMonitor(config, db, base, process, feeds)


def launch_browser(playwright):  # -> playwright Browser
    """Debian's Chromium, headless; never a downloaded browser."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)


def take_screenshots(page, base: str, folder: Path) -> list[Path]:
    """The matches, story and sources pages at desktop width, as PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    shots = []
    page.goto(f"{base}/matches")
    shots.append(folder / "web-matches.png")
    page.screenshot(path=str(shots[-1]), full_page=False)
    story = page.locator("li.match h2 a", has_text="Trump").first
    story.click()
    page.wait_for_selector("article.story")
    shots.append(folder / "web-story.png")
    page.screenshot(path=str(shots[-1]), full_page=False)
    page.goto(f"{base}/sources")
    shots.append(folder / "web-sources.png")
    page.screenshot(path=str(shots[-1]), full_page=False)
    return shots


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedMonitor]:
    """One served monitor per test module (import this fixture into the module)."""
    server = served_monitor(tmp_path_factory.mktemp("web"))
    try:
        yield server
    finally:
        server.stop()


def db_rows(served: ServedMonitor, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows read straight from the served database, as a second process would."""
    conn = sqlite3.connect(served.db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
