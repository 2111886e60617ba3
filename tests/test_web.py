"""The web UI, its JSON API, /metrics and health, against a real `monitor serve` over a database
filled by a real `monitor once` from loopback feeds."""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from conftest import monitor_process, seed_rss, wait_for
from monitor import load_config
from monitor.health import readiness
from monitor.timeutil import utcnow
from webui import HOSTILE_LINK, ServedMonitor, db_rows, run_monitor, start_server
from webui import served  # noqa: F401 (the fixture)

PAGES = ["/matches", "/search?q=pyongyang", "/sources", "/alerts", "/feedback"]


@pytest.fixture
def client(served: ServedMonitor) -> Iterator[httpx.Client]:
    with served.client() as c:
        yield c


def csrf_of(client: httpx.Client) -> str:
    client.get("/matches")
    return client.cookies["monitor_csrf"]


# -- pages ------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_with_strict_headers_and_no_inline_script(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    # The only script is the static file; story text never becomes markup.
    assert re.findall(r"<script[^>]*>", response.text) == ['<script src="/static/app.js" defer>']
    assert "<img src=x" not in response.text


def test_matches_newest_first_with_snippet_highlights_and_filters(client: httpx.Client) -> None:
    page = client.get("/matches").text
    assert page.count('class="match"') == 8
    assert "<mark>" in page
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+\+00:00">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>', page)
    trade = client.get("/matches", params={"watchlist": "trade"}).text
    assert trade.count('class="match"') == trade.count('data-watchlist="trade"') == 3
    outlet = client.get("/matches", params={"source": "outlet"}).text
    assert outlet.count('class="match"') == 2
    words = client.get("/matches", params={"q": "geneva"}).text
    assert words.count('class="match"') == 1 and "Ministers resume trade talks" in words
    assert "No matches with these filters yet." in client.get("/matches", params={"q": "zzzz-nothing"}).text


def test_hostile_story_is_text_and_its_javascript_link_is_not_a_link(client: httpx.Client) -> None:
    page = client.get("/matches", params={"source": "outlet"}).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="javascript:' not in page
    story_id = re.search(r'href="/stories/([^"]+)">&lt;img', page).group(1)
    story = client.get(f"/stories/{story_id}").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in story
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in story and "<script>alert(3)" not in story
    assert 'href="javascript:' not in story
    assert f'<span class="url">{HOSTILE_LINK}</span>' in story


def test_links_to_stories_open_without_referrer_or_opener(client: httpx.Client) -> None:
    page = client.get("/matches", params={"source": "wire"}).text
    links = re.findall(r'<a href="http[^"]+"[^>]*>', page)
    assert links and all('rel="noopener noreferrer"' in link for link in links)


def test_story_page_highlights_every_hit_and_shows_each_watchlist_and_its_alerts(client: httpx.Client) -> None:
    page = client.get("/matches", params={"watchlist": "abductions"}).text
    story_id = re.search(r'href="/stories/([^"]+)"', page).group(1)
    story = client.get(f"/stories/{story_id}")
    assert story.status_code == 200
    marks = re.findall(r"<mark>(.*?)</mark>", story.text)
    assert len(marks) >= 5 and any("abduct" in m.lower() for m in marks)
    for watchlist in ("north_korea", "abductions", "trade"):
        assert f'data-watchlist="{watchlist}"' in story.text
    # Alerts per channel: the console sent, the webhook failed with its reason.
    assert "status-sent" in story.text and "status-failed" in story.text and "receiver down" in story.text


def test_unknown_story_is_a_404_page_in_words(client: httpx.Client) -> None:
    response = client.get("/stories/no-such-story")
    assert response.status_code == 404
    assert "No stored story has this id" in response.text


def test_search_uses_the_query_language_and_offers_the_watchlist_toml(client: httpx.Client) -> None:
    page = client.get("/search", params={"q": '"kim jong*" NEAR/5 trump', "name": "summits"}).text
    assert "1 match among 2 candidate stories" in page
    assert "<mark>Kim Jong</mark>-un" in page and "<mark>Trump</mark>" in page
    assert "[watchlists.summits]" in page and "query = &#39;&#39;&#39;" in page
    # NOT is decided by the matcher, as a watchlist would decide it.
    assert "0 matches among" in client.get("/search", params={"q": "pyongyang NOT (abe OR korea)"}).text
    bad = client.get("/search", params={"q": "(pyongyang"}).text
    assert 'class="error"' in bad


def test_search_finds_prefixes_the_stemmed_index_shortens(client: httpx.Client) -> None:
    # The index holds "kidnapped" as the stem "kidnap": a prefix longer than the stem still finds it.
    page = client.get("/search", params={"q": "kidnapp*"}).text
    assert "2 matches among" in page and "<mark>kidnapped</mark>" in page


def test_sources_page_shows_status_last_success_next_poll_and_a_chart(served: ServedMonitor,
                                                                      client: httpx.Client) -> None:
    page = client.get("/sources").text
    for name in ("wire", "outlet", "moved"):
        assert f'data-source="{name}"' in page
    assert page.count('<svg class="chart"') == 3
    assert "2 stories in the last 30 days" in page
    reason = db_rows(served, "SELECT poll_reason FROM sources WHERE name = 'wire'")[0][0]
    assert reason and html.escape(reason, quote=False) in page
    moved = page.split('data-source="moved"')[1].split("</tr>")[0]
    assert "error (HTTP 404)" in moved and '<span class="error">' in moved and "404" in moved
    assert "never" in moved  # no success yet


def test_alerts_page_lists_failed_alerts_with_their_reason(client: httpx.Client) -> None:
    page = client.get("/alerts", params={"status": "failed"}).text
    assert page.count('class="status-failed"') == 8
    assert "HTTP 500" in page and page.count('class="retry"') == 8


# -- state changes: POST with a CSRF token ------------------------------------------


def test_feedback_needs_the_csrf_token_and_is_stored(served: ServedMonitor, client: httpx.Client) -> None:
    story_id = db_rows(served, "SELECT story_id FROM matches WHERE watchlist = 'trade' ORDER BY id LIMIT 1")[0][0]
    form = {"story_id": story_id, "watchlist": "trade", "verdict": "wrong", "next": "/matches"}
    refused = client.post("/feedback", data=form)
    assert refused.status_code == 403 and "security token" in refused.text
    assert not db_rows(served, "SELECT 1 FROM feedback WHERE story_id = ?", (story_id,))
    token = csrf_of(client)
    foreign = client.post("/feedback", data={**form, "csrf": token}, headers={"Origin": "http://evil.test"})
    assert foreign.status_code == 403
    saved = client.post("/feedback", data={**form, "csrf": token})
    assert saved.status_code == 303 and saved.headers["location"].startswith("/matches?notice=")
    assert db_rows(served, "SELECT verdict, origin FROM feedback WHERE story_id = ? AND watchlist = 'trade'",
                   (story_id,)) == [("wrong", "web")]
    # A redirect never leaves this server.
    elsewhere = client.post("/feedback", data={**form, "verdict": "right", "csrf": token, "next": "//evil.test/x"})
    assert elsewhere.headers["location"].startswith("/matches?")


def test_feedback_on_a_story_that_did_not_match_is_missed_only(served: ServedMonitor, client: httpx.Client) -> None:
    story_id = db_rows(served, "SELECT id FROM stories WHERE title LIKE 'Ministers%'")[0][0]
    token = csrf_of(client)
    wrong = client.post("/feedback", data={"story_id": story_id, "watchlist": "abductions", "verdict": "wrong",
                                           "csrf": token})
    assert wrong.status_code == 400 and "say &#39;missed&#39;" in wrong.text
    missed = client.post("/api/feedback", json={"story_id": story_id, "watchlist": "abductions", "verdict": "missed"},
                         headers={"X-CSRF-Token": token})
    assert missed.status_code == 201
    assert db_rows(served, "SELECT verdict, origin FROM feedback WHERE story_id = ? AND watchlist = 'abductions'",
                   (story_id,)) == [("missed", "api")]


def test_retry_requeues_one_failed_alert(served: ServedMonitor, client: httpx.Client) -> None:
    alert_id = db_rows(served, "SELECT max(id) FROM outbox WHERE status = 'failed'")[0][0]
    assert client.post(f"/alerts/{alert_id}/retry", data={}).status_code == 403
    token = csrf_of(client)
    done = client.post(f"/alerts/{alert_id}/retry", data={"csrf": token, "next": "/alerts?status=failed"})
    assert done.status_code == 303
    assert db_rows(served, "SELECT status, attempts FROM outbox WHERE id = ?", (alert_id,)) == [("pending", 0)]
    again = client.post(f"/alerts/{alert_id}/retry", data={"csrf": token})
    assert again.status_code == 409 and "is not failed" in again.text


# -- the JSON API ---------------------------------------------------------------------


def test_api_matches_pages_with_cursors_through_every_match(client: httpx.Client) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        body = client.get("/api/matches", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [m["id"] for m in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 8
    assert seen == sorted(seen, reverse=True)  # one `monitor once`: same second, newest id first
    bad = client.get("/api/matches", params={"cursor": "not-ours"})
    assert bad.status_code == 400 and "not a cursor" in bad.json()["error"]
    assert client.get("/api/matches", params={"limit": 0}).status_code == 400


def test_api_endpoints_answer_json(client: httpx.Client) -> None:
    match = client.get("/api/matches", params={"watchlist": "abductions"}).json()["items"][0]
    assert match["evidence"]["terms"] and match["url"].startswith("http://127.0.0.1:")
    story = client.get(f"/api/stories/{match['story_id']}").json()
    assert {d["watchlist"] for d in story["decisions"]} == {"north_korea", "abductions", "trade"}
    assert story["highlights"]["text"] and story["alerts"]
    hostile = client.get("/api/matches", params={"q": "onerror"}).json()["items"][0]
    assert hostile["url"] is None  # a javascript: link is never handed out as a URL
    found = client.get("/api/search", params={"q": "naruhito"}).json()
    assert found["items"] and "[watchlists.my_search]" in found["watchlist_toml"]
    assert client.get("/api/search", params={"q": "(naruhito"}).status_code == 400
    sources = client.get("/api/sources").json()["items"]
    assert {s["name"] for s in sources} == {"wire", "outlet", "moved"} and len(sources[0]["daily"]) == 30
    alerts = client.get("/api/alerts", params={"status": "sent", "limit": 2}).json()
    assert len(alerts["items"]) == 2 and alerts["next_cursor"]
    assert client.get("/api/feedback").json()["items"] is not None
    assert client.get("/api/stories/nope").status_code == 404


def test_openapi_document_is_valid_and_lists_every_endpoint(client: httpx.Client) -> None:
    document = client.get("/api/openapi.json").json()
    validate(document)
    assert set(document["paths"]) == {"/api/matches", "/api/stories/{story_id}", "/api/search", "/api/sources",
                                      "/api/alerts", "/api/alerts/{alert_id}/retry", "/api/feedback"}


# -- metrics and health -----------------------------------------------------------------


def metrics_of(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_read_the_database_on_scrape(client: httpx.Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    metrics = metrics_of(response.text)
    assert metrics[("monitor_database_up", ())] == 1
    assert metrics[("monitor_stories_stored", ())] == 4
    assert metrics[("monitor_matches_stored", (("watchlist", "trade"),))] == 3
    assert metrics[("monitor_alerts", (("channel", "console"), ("status", "sent")))] == 8
    assert ("monitor_outbox_depth", ()) in metrics
    assert 0 <= metrics[("monitor_source_last_success_age_seconds", (("source", "wire"),))] < 3600
    assert metrics[("monitor_oldest_due_poll_age_seconds", ())] == 0


def test_health_and_readiness(served: ServedMonitor, client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "migrations": "ok", "polling": "ok"}
    config = load_config(served.config)
    stale = readiness(config, now=utcnow() + timedelta(days=1))
    assert not stale.ready and "newest poll" in stale.checks["polling"]


def test_readiness_without_a_database_says_why(tmp_path: Path) -> None:
    config = load_config(None, db=tmp_path / "missing.db")
    state = readiness(config)
    assert not state.ready and "cannot read" in state.checks["database"]
    assert not (tmp_path / "missing.db").exists()


# -- safe by default --------------------------------------------------------------------


def test_serve_refuses_to_listen_beyond_loopback_without_credentials(served: ServedMonitor) -> None:
    result = run_monitor("serve", "--config", str(served.config), "--host", "0.0.0.0", "--port", "0",
                         cwd=served.config.parent)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "will not listen on 0.0.0.0 without credentials" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_says_which_variable_is_unset(served: ServedMonitor, tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(served.config.read_text() + '\n[web]\ntoken = "${WEB_TOKEN_UNSET_HERE}"\n')
    result = run_monitor("serve", "--config", str(config), "--port", "0", cwd=tmp_path)
    assert result.returncode == 2 and "web.token: environment variable WEB_TOKEN_UNSET_HERE is not set" in result.stderr


def test_credentials_are_required_when_configured(served: ServedMonitor, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(served.config.read_text() + '\n[web]\ntoken = "${WEB_TEST_TOKEN}"\n')
    monkeypatch.setenv("WEB_TEST_TOKEN", "s3cret-token")
    process, base = start_server(config, tmp_path)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/matches").status_code == 401
            assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.get("/matches", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
            assert c.get("/matches", auth=("anyone", "s3cret-token")).status_code == 200
            assert c.get("/healthz").status_code == 200
            # A bearer token is not sent by browsers on their own: no CSRF token needed with it.
            alert_id = db_rows(served, "SELECT min(id) FROM outbox WHERE status = 'failed'")[0][0]
            retried = c.post(f"/api/alerts/{alert_id}/retry", headers={"Authorization": "Bearer s3cret-token"})
            assert retried.status_code == 200 and retried.json()["status"] == "pending"
    finally:
        process.terminate()
        process.wait(timeout=20)


# -- the daemon's own metrics server -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_daemon_serves_metrics_counting_its_polls(feed_server, make_config, tmp_path: Path) -> None:
    feed_server.serve("/feed.xml", seed_rss(feed_server.base))
    port = free_port()
    config = make_config(f"""
[alerts]
new_source_window = 0
[metrics]
port = {port}
[sources.wire]
url = "{feed_server.url('/feed.xml')}"
interval = "1h"
""")
    daemon = monitor_process("run", "--config", str(config), cwd=tmp_path)
    try:
        def scraped() -> dict | None:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.TransportError:
                return None
            metrics = metrics_of(text)
            return metrics if metrics.get(("monitor_polls_total", (("outcome", "ok"),)), 0) >= 1 else None

        metrics = wait_for(scraped, timeout=60)
        assert metrics[("monitor_fetch_duration_seconds_count", ())] >= 1
        assert metrics[("monitor_matches_found_total", (("watchlist", "north_korea"),))] == 2
        assert metrics[("monitor_alert_deliveries_total", (("channel", "console"), ("result", "sent")))] >= 1
        assert metrics[("monitor_stories_stored", ())] == 2
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert daemon.returncode == 0


def test_daemon_refuses_a_metrics_host_beyond_loopback_without_credentials(make_config, tmp_path: Path) -> None:
    config = make_config(f"[metrics]\nport = {free_port()}\nhost = \"0.0.0.0\"\n")
    result = run_monitor("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "will not listen on 0.0.0.0 without credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_form_as_served_carries_the_token_of_its_cookie(served: ServedMonitor) -> None:
    with served.client() as c:
        page = c.get("/matches", params={"watchlist": "north_korea"}).text
        form = re.search(r'<form method="post" action="/feedback".*?</form>', page, re.S).group(0)
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
        assert fields["csrf"] == c.cookies["monitor_csrf"]
        assert c.post("/feedback", data=fields).status_code == 303


# -- configuration of [web] and [metrics] ---------------------------------------------


def test_web_and_metrics_settings_are_checked_with_file_and_key(make_config, cli_run) -> None:
    config = make_config('[web]\ntokn = "x"\n[metrics]\nport = 70000\n')
    result = cli_run("check", "--config", config)
    assert result.exit_code == 1
    assert f"{config}: web.tokn: unknown key (known keys: password, token, username)" in result.output
    assert f"{config}: metrics.port: must be at least 0 and at most 65,535, got 70000" in result.output


def test_basic_credentials_need_both_user_and_password() -> None:
    import base64

    from monitor.access import Credentials

    credentials = Credentials(username="ana", password="pw")
    basic = lambda user, pw: "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()  # noqa: E731
    assert credentials.allows(basic("ana", "pw"))
    assert not credentials.allows(basic("ana", "nope")) and not credentials.allows(basic("bob", "pw"))
    assert not credentials.allows("Basic %%%") and not credentials.allows(None)
    assert not credentials.allows("Bearer pw")  # no token configured: a bearer proves nothing
    assert Credentials().allows(None)  # loopback without credentials: open


def test_serve_on_a_port_in_use_says_so_in_one_line(served: ServedMonitor) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_monitor("serve", "--config", str(served.config), "--port", str(port), cwd=served.config.parent)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_bearer_header_without_a_configured_token_does_not_skip_csrf(served: ServedMonitor,
                                                                       client: httpx.Client) -> None:
    alert_id = db_rows(served, "SELECT max(id) FROM outbox WHERE status = 'failed'")[0][0]
    response = client.post(f"/api/alerts/{alert_id}/retry", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    assert db_rows(served, "SELECT status FROM outbox WHERE id = ?", (alert_id,)) == [("failed",)]


def test_retry_of_an_alert_id_beyond_sqlite_integers_is_a_409_not_a_crash(client: httpx.Client) -> None:
    token = csrf_of(client)
    response = client.post(f"/api/alerts/{2**70}/retry", headers={"X-CSRF-Token": token})
    assert response.status_code == 409 and "is not failed" in response.json()["error"]


def test_web_credentials_are_needed_only_by_what_serves(make_config, cli_run, feed_server) -> None:
    feed_server.serve("/feed.xml", seed_rss(feed_server.base))
    config = make_config(f'[web]\ntoken = "${{WEB_TOKEN_NOT_SET}}"\n'
                         f'[sources.wire]\nurl = "{feed_server.url("/feed.xml")}"\n')
    once = cli_run("once", "--config", config)
    assert once.exit_code == 0, once.output
    check = cli_run("check", "--config", config)
    assert check.exit_code == 0
    assert "web.token: environment variable WEB_TOKEN_NOT_SET is not set (only monitor serve" in check.output
