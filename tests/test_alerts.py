"""Alert channels end to end: a real SMTP server, a real HTTP server, the real outbox."""

from __future__ import annotations

import email
import email.utils
import re
import email.policy
import hashlib
import hmac
import json
import logging
import signal
import socket
import threading
import time
from datetime import datetime, timezone
from email.message import Message
from pathlib import Path

import pytest
import sqlite_utils
from aiosmtpd.controller import Controller

from conftest import ROOT, FeedServer, Response, monitor_process, rss, wait_for
from monitor import Monitor, load_config

SCRIPT_TITLE = "&lt;script&gt;alert(1)&lt;/script&gt; Pyongyang & Seoul talks"  # stored as "<script>..."
SLACK_SECRET_PATH = "/services/T000/B000/XsecretXtokenX42"


# -- a real SMTP server ---------------------------------------------------------


class Mailbox:
    """aiosmtpd handler keeping every message; ``refuse`` makes RCPT answer 550."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default))
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.port = port  # type: ignore[attr-defined]
    try:
        yield mailbox
    finally:
        controller.stop()


def email_channel(port: int, name: str = "mail") -> str:
    return (f'[channels.{name}]\ntype = "email"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
            f'from = "monitor@example.org"\nto = ["analyst@example.org"]\ntimeout = "5s"\n')


def feed_config(feed_url: str, channels: str, watch: str = '"pyongyang"', extra: str = "") -> str:
    """One HTTP feed, one watchlist alerting ``channels``; the shipped watchlists switched off."""
    return (
        '[alerts]\nbackoff = "50ms"\nbackoff_max = "200ms"\nmax_attempts = 5\n'
        f'[sources.feed]\nurl = "{feed_url}"\n'
        f'[watchlists.korea]\nquery = \'{watch}\'\nchannels = {channels}\n'
        '[watchlists.north_korea]\nenabled = false\n[watchlists.abductions]\nenabled = false\n'
        '[watchlists.trade]\nenabled = false\n' + extra
    )


def story(n: int, title: str = "Pyongyang story") -> dict[str, str]:
    # Dated now: a new source's first poll alerts only on recent entries.
    return {"title": f"{title} {n}", "link": f"http://news.test/{n}", "guid": f"g{n}",
            "description": f"Officials in Pyongyang said thing number {n}.",
            "pubDate": email.utils.format_datetime(datetime.now(timezone.utc))}


def outbox(db: Path) -> list[dict]:
    return list(sqlite_utils.Database(db).query("SELECT * FROM outbox ORDER BY id"))


def dispatch_until(monitor: Monitor, done, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        monitor.dispatch()
        if done():
            return
        time.sleep(0.05)
    raise AssertionError("alerts not delivered in time")


# -- email -----------------------------------------------------------------------


def test_email_arrives_with_subject_both_parts_and_escaped_html(smtp_server, feed_server, make_config, cli_run, tmp_path):
    url = feed_server.serve("/feed.xml", rss([story(1, SCRIPT_TITLE)]))
    config = make_config(email_channel(smtp_server.port) + feed_config(url, '["mail"]'))

    result = cli_run("once", "--config", config)
    assert result.exit_code == 0, result.output

    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["Subject"] == "[korea] <script>alert(1)</script> Pyongyang & Seoul talks 1"
    assert message["To"] == "analyst@example.org"
    parts = {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.walk()
             if not part.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "<script>alert(1)</script> Pyongyang" in parts["text/plain"]
    assert "Watchlist: korea" in parts["text/plain"]
    html = parts["text/html"]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Pyongyang &amp; Seoul" in html
    assert '<a href="http://news.test/1">' in html and "<mark>Pyongyang</mark>" in html
    assert [r["status"] for r in outbox(tmp_path / "monitor.db")] == ["sent"]


def test_refused_recipient_fails_the_alert_at_once(smtp_server, feed_server, make_config, cli_run, tmp_path):
    smtp_server.refuse = True
    url = feed_server.serve("/feed.xml", rss([story(1)]))
    config = make_config(email_channel(smtp_server.port) + feed_config(url, '["mail"]'))

    assert cli_run("once", "--config", config).exit_code == 0
    [row] = outbox(tmp_path / "monitor.db")
    assert row["status"] == "failed" and row["attempts"] == 1
    assert "550" in row["last_error"] and "refused" in row["last_error"]
    shown = cli_run("alerts", "--config", config).output
    assert "failed" in shown and "550" in shown

    smtp_server.refuse = False
    again = cli_run("alerts", "--config", config, "--retry")
    assert "Requeued 1 failed alert" in again.output and "Sent 1" in again.output
    assert len(smtp_server.messages) == 1


def test_smtp_server_down_is_retried_until_it_is_up(feed_server, make_config, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens yet: connection refused
    url = feed_server.serve("/feed.xml", rss([story(1), story(2)]))
    config = load_config(make_config(email_channel(port) + feed_config(url, '["mail"]')))
    with Monitor.open(config) as monitor:
        monitor.run_once()
        rows = outbox(config.db_path)
        assert [r["status"] for r in rows] == ["pending", "pending"]
        assert all(r["last_error"].endswith(f"connection refused by 127.0.0.1:{port}") for r in rows), rows
        mailbox = Mailbox()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            dispatch_until(monitor, lambda: len(mailbox.messages) == 2)
            monitor.dispatch()
        finally:
            controller.stop()
    assert sorted(m["Subject"] for m in mailbox.messages) == ["[korea] Pyongyang story 1", "[korea] Pyongyang story 2"]
    assert [r["status"] for r in outbox(config.db_path)] == ["sent", "sent"]


# -- Slack -----------------------------------------------------------------------


def slack_channel(server: FeedServer, name: str = "newsroom") -> str:
    return f'[channels.{name}]\ntype = "slack"\nwebhook_url = "{server.url(SLACK_SECRET_PATH)}"\ntimeout = "2s"\n'


def test_slack_message_shape_escaping_and_retries_honouring_retry_after(feed_server, make_config, cli_run, caplog):
    caplog.set_level(logging.DEBUG)
    url = feed_server.serve("/feed.xml", rss([story(1, SCRIPT_TITLE)]))
    feed_server.routes[SLACK_SECRET_PATH] = [
        Response(status=500, body=b"oops", headers={"Content-Type": "text/plain"}),
        Response(status=429, body=b"slow down", headers={"Retry-After": "1", "Content-Type": "text/plain"}),
        Response(status=200, body=b"ok", headers={"Content-Type": "text/plain"}, etag=False),
    ]
    path = make_config(slack_channel(feed_server) + feed_config(url, '["newsroom"]'))
    config = load_config(path)
    with Monitor.open(config) as monitor:
        monitor.run_once()
        dispatch_until(monitor, lambda: len(feed_server.hits(SLACK_SECRET_PATH)) == 3)
        monitor.dispatch()

    hits = feed_server.hits(SLACK_SECRET_PATH)
    assert len(hits) == 3
    assert hits[2].at - hits[1].at >= 0.95, "the retry after 429 must wait for Retry-After"
    assert hits[1].at - hits[0].at < 0.9, "a 500 is retried on the (tiny) backoff"
    payload = json.loads(hits[2].body)
    assert payload == json.loads(hits[0].body)
    assert "<script>" not in hits[2].body.decode()
    assert payload["text"].startswith("[korea] &lt;script&gt;alert(1)&lt;/script&gt; Pyongyang &amp; Seoul")
    title_block, details = payload["blocks"][0]["text"]["text"], payload["blocks"][1]["text"]["text"]
    assert title_block == "*<http://news.test/1|&lt;script&gt;alert(1)&lt;/script&gt; Pyongyang &amp; Seoul talks 1>*"
    assert "Watchlist *korea*" in details and re.search(r"score \d+\.\d\d", details) and "`pyongyang`" in details
    assert "*Pyongyang*" in details  # the matched evidence, highlighted
    [row] = outbox(config.db_path)
    assert row["status"] == "sent" and row["attempts"] == 3

    # The webhook URL is a secret: not in logs, errors, `monitor alerts` or `monitor check`.
    secret = "XsecretXtokenX42"
    assert "HTTP 500" in caplog.text and "HTTP 429" in caplog.text
    assert secret not in caplog.text
    for args in (("alerts", "--config", path), ("check", "--config", path)):
        out = cli_run(*args)
        assert secret not in out.output and secret not in (out.stderr_bytes or b"").decode()


def test_slack_permanent_4xx_fails_without_retry_and_without_leaking(feed_server, make_config, cli_run, tmp_path):
    url = feed_server.serve("/feed.xml", rss([story(1)]))
    feed_server.routes[SLACK_SECRET_PATH] = Response(status=404, body=b"no_service", headers={"Content-Type": "text/plain"})
    path = make_config(slack_channel(feed_server) + feed_config(url, '["newsroom"]'))
    result = cli_run("once", "--config", path)
    assert result.exit_code == 0 and "Alerts: 0 waiting to retry, 1 failed" in result.output
    [row] = outbox(tmp_path / "monitor.db")
    assert row["status"] == "failed" and row["attempts"] == 1 and "HTTP 404" in row["last_error"]
    assert "XsecretXtokenX42" not in row["last_error"]
    assert len(feed_server.hits(SLACK_SECRET_PATH)) == 1


# -- webhook -----------------------------------------------------------------------


def webhook_channel(server: FeedServer, name: str = "hook", extra: str = "") -> str:
    return f'[channels.{name}]\ntype = "webhook"\nurl = "{server.url("/hook")}"\nsecret = "${{HOOK_SECRET}}"\n' + extra


def test_webhook_json_signature_and_idempotency_key(feed_server, make_config, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cr3t-shared")
    url = feed_server.serve("/feed.xml", rss([story(1, SCRIPT_TITLE)]))
    feed_server.routes["/hook"] = Response(status=204, etag=False)
    config = load_config(make_config(webhook_channel(feed_server) + feed_config(url, '["hook"]')))
    with Monitor.open(config) as monitor:
        monitor.run_once()
    [hit] = feed_server.hits("/hook")
    headers = {k.lower(): v for k, v in hit.headers.items()}
    expected = hmac.new(b"s3cr3t-shared", headers["x-news-monitor-timestamp"].encode() + b"." + hit.body,
                        hashlib.sha256).hexdigest()
    assert headers["x-news-monitor-signature"] == f"sha256={expected}"
    assert abs(int(headers["x-news-monitor-timestamp"]) - time.time()) < 30
    [row] = outbox(config.db_path)
    assert headers["idempotency-key"] == str(row["id"])
    body = json.loads(hit.body)
    assert body["schema_version"] == 2 and body["type"] == "alert" and body["idempotency_key"] == str(row["id"])
    assert body["cluster"] == {"id": body["story"]["id"], "also_reported_by": []}  # a story of its own
    assert body["watchlist"]["name"] == "korea"
    assert body["story"]["title"] == "<script>alert(1)</script> Pyongyang & Seoul talks 1"  # JSON carries raw text
    assert body["story"]["url"] == "http://news.test/1"
    assert body["match"]["terms"] == ["pyongyang"] and body["match"]["score"] > 0
    assert row["status"] == "sent"


def test_channel_down_during_a_cycle_then_up_delivers_each_alert_exactly_once(feed_server, make_config, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "x")
    url = feed_server.serve("/feed.xml", rss([story(n) for n in range(1, 5)]))
    feed_server.routes["/hook"] = Response(status=503, etag=False)
    config = load_config(make_config(webhook_channel(feed_server) + feed_config(url, '["hook"]')))
    with Monitor.open(config) as monitor:
        monitor.run_once()
        assert {r["status"] for r in outbox(config.db_path)} == {"pending"}
        down_hits = len(feed_server.hits("/hook"))
        assert down_hits >= 4
        feed_server.routes["/hook"] = Response(status=200, etag=False)
        dispatch_until(monitor, lambda: all(r["status"] == "sent" for r in outbox(config.db_path)))
        for _ in range(3):
            monitor.dispatch()
    delivered = [h.headers["Idempotency-Key"] for h in feed_server.hits("/hook")[down_hits:]]
    assert sorted(delivered) == sorted(str(r["id"]) for r in outbox(config.db_path))
    assert len(delivered) == 4


def test_digest_sends_one_message_listing_every_story_of_the_period(feed_server, make_config, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "x")
    url = feed_server.serve("/feed.xml", rss([story(n) for n in range(1, 4)]))
    feed_server.routes["/hook"] = Response(status=200, etag=False)
    text = webhook_channel(feed_server, extra='digest = "1500ms"\n') + feed_config(url, '["hook"]')
    config = load_config(make_config(text))
    with Monitor.open(config) as monitor:
        monitor.run_once()
        assert feed_server.hits("/hook") == []  # the period has only started
        dispatch_until(monitor, lambda: feed_server.hits("/hook"), timeout=5)
        monitor.dispatch()
    [hit] = feed_server.hits("/hook")
    body = json.loads(hit.body)
    assert body["type"] == "digest" and body["subject"] == "3 new matches: korea"
    assert [a["story"]["title"] for a in body["alerts"]] == [f"Pyongyang story {n}" for n in (1, 2, 3)]
    rows = outbox(config.db_path)
    assert {r["status"] for r in rows} == {"sent"} and {r["digest_id"] for r in rows} == {rows[0]["id"]}
    assert hit.headers["Idempotency-Key"] == f"digest-{rows[0]['id']}"


def test_email_digest_groups_by_watchlist(smtp_server, feed_server, make_config):
    url = feed_server.serve("/feed.xml", rss([story(n) for n in range(1, 4)]))
    text = email_channel(smtp_server.port) + 'digest = "1s"\n' + feed_config(url, '["mail"]')
    config = load_config(make_config(text))
    with Monitor.open(config) as monitor:
        monitor.run_once()
        dispatch_until(monitor, lambda: smtp_server.messages, timeout=5)
    [message] = smtp_server.messages
    assert message["Subject"] == "3 new matches: korea"
    plain = message.get_body(("plain",)).get_content()
    assert all(f"- Pyongyang story {n}" in plain for n in (1, 2, 3))
    assert "<h2>korea (3)</h2>" in message.get_body(("html",)).get_content()


def test_rate_limit_delays_the_excess_instead_of_dropping_it(feed_server, make_config, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "x")
    url = feed_server.serve("/feed.xml", rss([story(n) for n in range(1, 4)]))
    feed_server.routes["/hook"] = Response(status=200, etag=False)
    text = webhook_channel(feed_server, extra='rate_limit = "2/minute"\n') + feed_config(url, '["hook"]')
    config = load_config(make_config(text))
    with Monitor.open(config) as monitor:
        monitor.run_once()
        result = monitor.dispatch()
    assert len(feed_server.hits("/hook")) == 2 and result.sent == 0
    rows = outbox(config.db_path)
    assert [r["status"] for r in rows] == ["sent", "sent", "pending"]
    from monitor.timeutil import from_iso

    wait = (from_iso(rows[2]["next_attempt_at"]) - from_iso(rows[0]["sent_at"])).total_seconds()
    assert 59 <= wait <= 61 and rows[2]["attempts"] == 0 and rows[2]["last_error"] is None


def test_rate_limit_and_digest_are_checked_once_their_variables_are_filled(feed_server, make_config, cli_run,
                                                                           monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "x")
    monkeypatch.setenv("HOOK_RATE", "2/minute")
    url = feed_server.serve("/feed.xml", rss([story(n) for n in range(1, 4)]))
    feed_server.routes["/hook"] = Response(status=200, etag=False)
    text = webhook_channel(feed_server, extra='rate_limit = "${HOOK_RATE}"\n') + feed_config(url, '["hook"]')
    path = make_config(text)
    assert cli_run("check", "--config", path).exit_code == 0
    with Monitor.open(load_config(path)) as monitor:
        monitor.run_once()
        monitor.dispatch()
    assert [r["status"] for r in outbox(load_config(path).db_path)] == ["sent", "sent", "pending"]

    # A variable the core reads for every channel cannot wait for the channel's first message.
    monkeypatch.delenv("HOOK_RATE")
    unset = cli_run("check", "--no-env", "--config", path)
    assert unset.exit_code == 1
    assert f"{path}: channels.hook.rate_limit: environment variable HOOK_RATE is not set" in unset.output
    monkeypatch.setenv("HOOK_RATE", "lots")
    bad = cli_run("check", "--config", path)
    assert bad.exit_code == 1 and f"{path}: channels.hook.rate_limit:" in bad.output and "10/minute" in bad.output

    monkeypatch.setenv("HOOK_DIGEST", "0 8 * * *")
    digest = make_config(webhook_channel(feed_server, extra='digest = "${HOOK_DIGEST}"\n'), name="digest.toml")
    assert cli_run("check", "--config", digest).exit_code == 0
    monkeypatch.setenv("HOOK_DIGEST", "every morning")
    late = cli_run("check", "--config", digest)
    assert late.exit_code == 1 and f"{digest}: channels.hook.digest:" in late.output and "cron" in late.output


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize("options, key, words", [
    ('type = "slack"\n', "channels.bad.webhook_url", "missing"),
    ('type = "slack"\nwebhook_url = "http://h/x"\nchannel = "#news"\n', "channels.bad.channel", "unknown option"),
    ('type = "email"\nhost = "h"\nfrom = "a@b"\nto = "c@d"\nport = "25"\n', "channels.bad.port", "whole number"),
    ('type = "email"\nhost = "h"\nfrom = "a@b"\nto = "c@d"\nsecurity = "ssl"\n', "channels.bad.security", "starttls"),
    ('type = "webhook"\nurl = 5\n', "channels.bad.url", "a secret value"),
    ('type = "slack"\nwebhook_url = "hooks/XsecretX"\n', "channels.bad.webhook_url", "https:// URL, got str (a secret value)"),
    ('type = "webhook"\nurl = "http://h/"\ndigest = "every morning"\n', "channels.bad.digest", "cron"),
    ('type = "webhook"\nurl = "http://h/"\ndigest = "0 25 * * *"\n', "channels.bad.digest", "cron"),
    ('type = "webhook"\nurl = "http://h/"\nrate_limit = "lots"\n', "channels.bad.rate_limit", "10/minute"),
])
def test_channel_options_are_checked_with_file_and_key(options, key, words, make_config, cli_run):
    path = make_config(f"[channels.bad]\n{options}")
    result = cli_run("check", "--config", path)
    assert result.exit_code == 1
    assert f"{path}: {key}:" in result.output and words in result.output


def test_good_channels_pass_check_without_showing_secrets(make_config, cli_run, monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", "pw-very-secret")
    path = make_config(
        '[channels.analysts]\ntype = "email"\nhost = "127.0.0.1"\nfrom = "a@b"\nto = ["c@d", "e@f"]\n'
        'username = "u"\npassword = "${SMTP_PASSWORD}"\ndigest = "0 8 * * *"\nrate_limit = "10/minute"\n'
        '[channels.newsroom]\ntype = "slack"\nwebhook_url = "http://127.0.0.1:9/XsecretX"\n'
        '[watchlists.trade]\nchannels = ["analysts", "newsroom"]\n'
    )
    result = cli_run("check", "--config", path)
    assert result.exit_code == 0, result.output
    assert "analysts, newsroom" in result.output
    assert "pw-very-secret" not in result.output and "XsecretX" not in result.output


# -- the done criterion: seeds, default watchlists, email + Slack -----------------


def test_seeds_with_email_and_slack_deliver_exactly_one_message_per_match_per_channel(
        smtp_server, feed_server, make_config, cli_run, tmp_path):
    feed_server.routes[SLACK_SECRET_PATH] = Response(status=200, body=b"ok", etag=False)
    lists = "".join(f'[watchlists.{w}]\nchannels = ["analysts", "newsroom"]\n' for w in ("north_korea", "abductions", "trade"))
    path = make_config(
        email_channel(smtp_server.port, "analysts") + slack_channel(feed_server)
        + f'[sources.seeds]\nurl = "{ROOT / "seeds"}"\nkind = "directory"\n' + lists
    )
    first = cli_run("once", "--config", path)
    assert first.exit_code == 0 and "6 new matches" in first.output and "12 alerts queued" in first.output
    second = cli_run("once", "--config", path)
    assert "0 new matches" in second.output

    subjects = sorted(m["Subject"] for m in smtp_server.messages)
    assert len(subjects) == 6 and len(set(subjects)) == 6
    assert {s.split("]")[0] + "]" for s in subjects} == {"[north_korea]", "[abductions]", "[trade]"}
    posts = [json.loads(h.body)["text"] for h in feed_server.hits(SLACK_SECRET_PATH)]
    assert len(posts) == 6 and len(set(posts)) == 6
    assert {r["status"] for r in outbox(tmp_path / "monitor.db")} == {"sent"}


# -- a daemon killed mid-send ------------------------------------------------------------


@pytest.mark.slow
def test_daemon_killed_mid_send_loses_nothing_and_duplicates_only_the_inflight_alert(feed_server, make_config, tmp_path):
    in_flight = threading.Event()

    def slow(handler) -> bytes:
        in_flight.set()
        time.sleep(5)  # the daemon dies while this request is open
        return b""

    feed_server.routes["/hook"] = [Response(body=slow, etag=False), Response(status=200, etag=False)]
    lists = "".join(f'[watchlists.{w}]\nchannels = ["hook"]\n' for w in ("north_korea", "abductions", "trade"))
    path = make_config(
        f'[schedule]\ndispatch_interval = "200ms"\njitter = 0\n[channels.hook]\ntype = "webhook"\n'
        f'url = "{feed_server.url("/hook")}"\ntimeout = "10s"\n'
        f'[sources.seeds]\nurl = "{ROOT / "seeds"}"\nkind = "directory"\ninterval = "1h"\n' + lists
    )
    db = tmp_path / "monitor.db"
    first = monitor_process("run", "--config", str(path), cwd=tmp_path)
    try:
        # Generous: the daemon loads scikit-learn and the shipped models before its first poll.
        assert in_flight.wait(90), "the daemon never sent an alert"
        first.send_signal(signal.SIGKILL)
        first.wait(5)
    finally:
        if first.poll() is None:
            first.kill()
    stuck = [r for r in outbox(db) if r["status"] == "sending"]
    assert len(stuck) == 1 and len(outbox(db)) == 6
    in_flight_key = str(stuck[0]["id"])

    second = monitor_process("run", "--config", str(path), cwd=tmp_path)
    try:
        wait_for(lambda: all(r["status"] == "sent" for r in outbox(db)), timeout=90)
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=10)
    assert second.returncode == 0, err
    assert "being sent when a previous run stopped" in err

    keys = [h.headers["Idempotency-Key"] for h in feed_server.hits("/hook")]
    assert sorted(set(keys)) == sorted(str(r["id"]) for r in outbox(db))  # every alert at least once
    # The one duplicate: the request in flight when the daemon died (the receiver saw it).
    assert {k for k in keys if keys.count(k) > 1} == {in_flight_key} and keys.count(in_flight_key) == 2
    assert len(keys) == 7


# -- more failure paths ---------------------------------------------------------------


def test_smtp_login_and_rejected_password_fail_at_once_without_leaking_it(feed_server, make_config, cli_run, monkeypatch, caplog, tmp_path):
    from aiosmtpd.smtp import AuthResult

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"right-pw-123", handled=False)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        monkeypatch.setenv("SMTP_PASSWORD", "wrong-pw-456")
        url = feed_server.serve("/feed.xml", rss([story(1)]))
        text = email_channel(port) + 'username = "monitor"\npassword = "${SMTP_PASSWORD}"\n' + feed_config(url, '["mail"]')
        path = make_config(text)
        caplog.set_level(logging.DEBUG)
        result = cli_run("once", "--config", path)
        [row] = outbox(tmp_path / "monitor.db")
        assert row["status"] == "failed" and "535" in row["last_error"], row["last_error"]  # a rejected login is permanent
        assert "wrong-pw-456" not in result.output + caplog.text + cli_run("alerts", "--config", path).output

        monkeypatch.setenv("SMTP_PASSWORD", "right-pw-123")
        assert "Sent 1" in cli_run("alerts", "--config", path, "--retry").output
    finally:
        controller.stop()
    assert logins[-1] == (b"monitor", b"right-pw-123") and len(mailbox.messages) == 1


def test_transient_failures_give_up_after_max_attempts_and_retry_requeues(feed_server, make_config, cli_run, monkeypatch, tmp_path):
    monkeypatch.setenv("HOOK_SECRET", "x")
    url = feed_server.serve("/feed.xml", rss([story(1)]))
    feed_server.routes["/hook"] = Response(status=502, etag=False)
    text = webhook_channel(feed_server) + feed_config(url, '["hook"]').replace("max_attempts = 5", "max_attempts = 3")
    config = load_config(make_config(text))
    with Monitor.open(config) as monitor:
        monitor.run_once()
        dispatch_until(monitor, lambda: outbox(config.db_path)[0]["status"] == "failed", timeout=5)
    [row] = outbox(config.db_path)
    assert row["attempts"] == 3 and "HTTP 502" in row["last_error"] and "gave up after 3 attempts" in row["last_error"]
    assert len(feed_server.hits("/hook")) == 3
    shown = cli_run("alerts", "--config", config.file, "--status", "failed").output
    assert "failed" in shown and "gave up after 3 attempts" in shown

    feed_server.routes["/hook"] = Response(status=200, etag=False)
    assert "Sent 1" in cli_run("alerts", "--config", config.file, "--retry").output
    assert outbox(config.db_path)[0]["status"] == "sent"


def test_throttled_digest_goes_when_the_limit_allows_not_a_period_later(feed_server, make_config, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "x")
    feed_server.routes["/hook"] = Response(status=200, etag=False)
    feed = [story(1)]
    feed_server.routes["/feed.xml"] = Response(body=lambda handler: rss(feed))
    text = (webhook_channel(feed_server, extra='digest = "1s"\nrate_limit = "1/2s"\n')
            + feed_config(feed_server.url("/feed.xml"), '["hook"]'))
    config = load_config(make_config(text))
    with Monitor.open(config) as monitor:
        monitor.run_once()
        dispatch_until(monitor, lambda: len(feed_server.hits("/hook")) == 1, timeout=5)
        feed.append(story(2))
        monitor.run_once()
        dispatch_until(monitor, lambda: len(feed_server.hits("/hook")) == 2, timeout=6)
    first, second = feed_server.hits("/hook")
    assert second.at - first.at >= 1.9  # the limit held it back
    assert [a["story"]["title"] for a in json.loads(second.body)["alerts"]] == ["Pyongyang story 2"]


def test_apprise_channel_delivers_through_a_real_apprise_url(feed_server, make_config, monkeypatch):
    pytest.importorskip("apprise")
    monkeypatch.setenv("APPRISE_URL", feed_server.url("/apprise/tok3n").replace("http://", "json://"))
    feed_server.routes["/apprise/tok3n"] = Response(status=200, etag=False)
    url = feed_server.serve("/feed.xml", rss([story(1)]))
    text = '[channels.chat]\ntype = "apprise"\nurls = "${APPRISE_URL}"\n' + feed_config(url, '["chat"]')
    config = load_config(make_config(text))
    with Monitor.open(config) as monitor:
        monitor.run_once()
    [hit] = feed_server.hits("/apprise/tok3n")
    body = json.loads(hit.body)
    assert body["title"] == "[korea] Pyongyang story 1" and "Watchlist: korea" in body["message"]
    assert outbox(config.db_path)[0]["status"] == "sent"


def test_email_over_starttls_with_login(feed_server, make_config, tmp_path, monkeypatch):
    import shutil
    import ssl
    import subprocess

    from aiosmtpd.smtp import AuthResult

    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True,
                            authenticator=lambda *a: AuthResult(success=a[-1].password == b"pw", handled=False))
    controller.start()
    try:
        monkeypatch.setenv("SMTP_PASSWORD", "pw")
        url = feed_server.serve("/feed.xml", rss([story(1)]))
        channel = email_channel(port).replace('security = "none"', 'security = "starttls"')
        channel += f'username = "monitor"\npassword = "${{SMTP_PASSWORD}}"\nca_file = "{cert}"\n'
        config = load_config(make_config(channel + feed_config(url, '["mail"]')))
        with Monitor.open(config) as monitor:
            monitor.run_once()
    finally:
        controller.stop()
    assert [m["Subject"] for m in mailbox.messages] == ["[korea] Pyongyang story 1"]


def test_monitor_once_delivers_a_backlog_larger_than_one_dispatch_batch(feed_server, make_config, cli_run,
                                                                         monkeypatch, tmp_path):
    # `monitor once` used to send at most one batch (200) per channel and leave the rest pending
    # until the next run; a cron user with a backlog waited runs for it.
    from monitor.outbox import BATCH

    monkeypatch.setenv("HOOK_SECRET", "s3cr3t-shared")
    half = BATCH // 2 + 30
    first = feed_server.serve("/a.xml", rss([story(n) for n in range(half)]))
    second = feed_server.serve("/b.xml", rss([story(n) for n in range(half, 2 * half)]))
    feed_server.routes["/hook"] = Response(status=204, etag=False)
    config = make_config(webhook_channel(feed_server) + feed_config(first, '["hook"]')
                         + f'[sources.second]\nurl = "{second}"\n[clustering]\nenabled = false\n')
    result = cli_run("once", "--config", config)
    assert result.exit_code == 0, result.output
    rows = outbox(tmp_path / "monitor.db")
    assert len(rows) == 2 * half > BATCH
    assert {r["status"] for r in rows} == {"sent"}
    keys = [h.headers.get("Idempotency-Key") for h in feed_server.hits("/hook")]
    assert len(keys) == len(set(keys)) == 2 * half
