"""The web UI in a real browser: Debian's headless Chromium driven by Playwright.

The server is a real `monitor serve` over a database filled by a real
`monitor once` from loopback feeds (tests/webui.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from webui import DESKTOP, HOSTILE_TITLE, ServedMonitor, db_rows, launch_browser, take_screenshots
from webui import served  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, timezone_id="Asia/Tokyo")
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()
    assert dialogs == [], f"a page opened a dialog: {dialogs}"


def test_matches_filter_by_watchlist_and_times_in_the_viewers_zone(served: ServedMonitor, page: Page) -> None:
    page.goto(f"{served.base}/matches")
    expect(page.locator("li.match")).to_have_count(8)
    page.select_option("select[name=watchlist]", "trade")
    page.click(".filters button[type=submit]")
    expect(page).to_have_url(f"{served.base}/matches?watchlist=trade&source=&range=all&q=")
    expect(page.locator("li.match")).to_have_count(3)
    expect(page.locator("li.match .watchlist")).to_have_text(["trade"] * 3)
    # /static/app.js ran under the CSP and showed the times in the viewer's zone.
    first = page.locator("li.match time").first
    expect(first).to_have_class("local")
    assert "UTC" in (first.get_attribute("title") or "") and "UTC" not in first.inner_text()


def test_story_shows_highlighted_hits_and_every_watchlist(served: ServedMonitor, page: Page) -> None:
    page.goto(f"{served.base}/matches?watchlist=abductions")
    page.locator("li.match h2 a").first.click()
    expect(page.locator("article.story")).to_be_visible()
    marks = page.locator("article.story mark")
    assert marks.count() >= 5
    assert any("abduct" in text.lower() for text in marks.all_inner_texts())
    expect(page.locator("table.decisions tbody tr")).to_have_count(3)
    expect(page.locator("tr[data-watchlist=abductions] td").nth(1)).to_have_text("matched")


def test_mark_a_match_wrong_and_see_it_stored(served: ServedMonitor, page: Page) -> None:
    page.goto(f"{served.base}/matches?source=outlet&watchlist=trade")
    item = page.locator("li.match").first
    story_id = item.locator("h2 a").get_attribute("href").split("/stories/", 1)[1]
    item.locator("button[data-verdict=wrong]").click()
    expect(page.locator(".notice")).to_contain_text("Saved: trade was wrong")
    expect(page.locator("li.match .verdict-said").first).to_have_text("you said: wrong")
    assert db_rows(served, "SELECT verdict FROM feedback WHERE watchlist = 'trade' AND story_id = ?",
                   (story_id.replace("%3A", ":"),)) == [("wrong",)]
    page.goto(f"{served.base}/feedback")
    expect(page.locator("tr[data-verdict=wrong]")).to_have_count(1)


def test_say_a_story_should_have_matched(served: ServedMonitor, page: Page) -> None:
    page.goto(f"{served.base}/matches?source=outlet&watchlist=trade")
    page.locator("li.match h2 a").first.click()
    page.locator("tr[data-watchlist=abductions] button[data-verdict=missed]").click()
    expect(page.locator(".notice")).to_contain_text("abductions was missed")
    assert db_rows(served, "SELECT count(*) FROM feedback WHERE watchlist = 'abductions' AND verdict = 'missed'") == [(1,)]


def test_retry_a_failed_alert(served: ServedMonitor, page: Page) -> None:
    page.goto(f"{served.base}/alerts?status=failed")
    row = page.locator("tr.status-failed").first
    alert_id = int(row.get_attribute("data-alert-id"))
    row.locator("button.retry").click()
    expect(page.locator(".notice")).to_contain_text(f"Alert #{alert_id} is queued again")
    expect(page.locator(f"tr[data-alert-id='{alert_id}']")).to_have_count(0)  # no longer failed
    assert db_rows(served, "SELECT status FROM outbox WHERE id = ?", (alert_id,)) == [("pending",)]


def test_hostile_story_renders_as_text_and_fires_nothing(served: ServedMonitor, page: Page) -> None:
    page.goto(f"{served.base}/matches?source=outlet")
    link = page.locator("li.match h2 a", has_text="Pyongyang test-fires")
    expect(link).to_have_text(HOSTILE_TITLE)
    assert page.locator("li.match img").count() == 0
    link.click()
    expect(page.locator("article.story h1")).to_contain_text("<img src=x onerror=alert(1)>")
    expect(page.locator("article.story .text")).to_contain_text("<script>alert(3)</script>")
    assert page.locator("a[href^='javascript:']").count() == 0
    assert page.locator("article img, article script").count() == 0
    page.wait_for_timeout(300)  # give a handler that should not exist the chance to run
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_screenshots_of_matches_story_and_sources(served: ServedMonitor, page: Page, tmp_path: Path) -> None:
    shots = take_screenshots(page, served.base, tmp_path)
    assert [s.name for s in shots] == ["web-matches.png", "web-story.png", "web-sources.png"]
    for shot in shots:
        header = shot.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", header[16:24]) == (DESKTOP["width"], DESKTOP["height"])


def test_default_config_after_monitor_once_shows_the_six_seed_matches(browser: Browser, tmp_path: Path) -> None:
    from conftest import ROOT
    from webui import run_monitor, start_server

    config, db = ROOT / "config" / "monitor.toml", tmp_path / "monitor.db"
    once = run_monitor("once", "--config", str(config), "--db", str(db), cwd=tmp_path)
    assert once.returncode == 0 and "6 new matches" in once.stdout
    process, base = start_server(config, tmp_path, "--db", str(db))
    try:
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        page.goto(base)  # / leads to the matches
        expect(page.locator("li.match")).to_have_count(6)
        for watchlist in ("north_korea", "abductions", "trade"):
            expect(page.locator(f"li.match[data-watchlist={watchlist}]")).to_have_count(2)
        context.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
