"""Secrets, hostile text and configuration that cannot crash later.

Everything runs through the real CLI on a real database, with loopback
servers serving the hostile bytes: a token from the environment must not
leave the fetch, text from servers must not drive the terminal or forge a
log line, and a configuration ``monitor check`` accepts must not crash a
later command.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from conftest import rss, seed_rss
from monitor import Monitor, load_config
from monitor.models import Source
from monitor.scheduler import build_scheduler
from monitor.safetext import json_safe, safe_line, safe_text
from monitor.store import Store

TOKEN = "tok-9f8e7d6c5b4a3210"
# What must never reach a terminal or a log: C0 (but \n, \t) and C1 controls, DEL, bidi controls.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def outputs(result) -> str:
    return result.output  # stdout and stderr, mixed as a terminal shows them


def run_all(cli_run, path, *commands):
    """Each command's combined output, by command."""
    return {" ".join(c): outputs(cli_run(*c, "--config", path)) for c in commands}


# -- a token from the environment ------------------------------------------------


def test_a_token_in_a_source_url_never_leaves_the_fetch(feed_server, make_config, cli_run, monkeypatch, tmp_path):
    monkeypatch.setenv("FEED_TOKEN", TOKEN)
    monkeypatch.setenv("MONITOR_TRACE_PLUGINS", "1")
    feed_server.serve("/feed", seed_rss())
    feed_server.serve("/broken", b"down for maintenance", status=500, headers={"Content-Type": "text/plain"})
    # A permanent redirect to an address that carries the token too: the effective URL is stored redacted.
    feed_server.serve("/old", b"", status=301, headers={"Location": f"/moved?token={TOKEN}"})
    feed_server.serve("/moved", rss([{"title": "Moved feed item", "link": "http://news.test/m", "guid": "m1"}]))
    base = feed_server.base
    path = make_config(
        "[alerts]\nnew_source_window = 0\n"
        f'[sources.wire]\nurl = "{base}/feed?token=${{FEED_TOKEN}}"\n'
        f'[sources.broken]\nurl = "{base}/broken?token=${{FEED_TOKEN}}"\n'
        f'[sources.moved]\nurl = "{base}/old?token=${{FEED_TOKEN}}"\n'
    )
    shown = {}
    for attempt in ("first", "second"):
        result = cli_run("once", "--config", path)
        assert result.exit_code == 0, outputs(result)
        shown[f"once ({attempt})"] = outputs(result)
    shown.update(run_all(cli_run, path, ("sources",), ("sources", "--nl"), ("check",), ("alerts",),
                         ("matches",), ("matches", "--nl")))

    # Fetching used the real token, the second poll of the moved feed went straight to its new address.
    assert all(TOKEN in r.path for r in feed_server.hits("/feed") + feed_server.hits("/broken"))
    assert len(feed_server.hits("/old")) == 1 and len(feed_server.hits("/moved")) == 2
    assert all(TOKEN in r.path for r in feed_server.hits("/moved"))
    # ... and nothing shows it: not the log, the trace, the errors, the tables or the JSON.
    for command, text in shown.items():
        assert TOKEN not in text, f"`monitor {command}` shows the token"
    assert "HTTP 500" in shown["once (first)"] and "fetch_source" in shown["once (first)"]  # the log and trace ran
    assert "url: " + f"{base}/feed?token=${{FEED_TOKEN}}" in shown["sources"]
    moved = next(json.loads(line) for line in shown["sources --nl"].splitlines() if '"moved"' in line)
    assert moved["effective_url"] == f"{base}/moved?token=${{FEED_TOKEN}}"
    for name in ("monitor.db", "monitor.db-wal"):
        if (tmp_path / name).exists():
            assert TOKEN.encode() not in (tmp_path / name).read_bytes(), f"{name} holds the token"


def test_rows_stored_before_redaction_are_redacted_when_opened(feed_server, make_config, cli_run, monkeypatch, tmp_path):
    url = f"{feed_server.base}/feed?token=${{FEED_TOKEN}}"
    path = make_config(f'[sources.wire]\nurl = "{url}"\n')
    # What an earlier version left behind: the resolved URL in the row, and in an error.
    old = Store(tmp_path / "monitor.db")
    resolved = url.replace("${FEED_TOKEN}", TOKEN)
    old.sync_sources([Source(name="wire", url=resolved), Source(name="removed", url=resolved)])
    old.db.execute("UPDATE sources SET last_error = ?, effective_url = ?", [f"{resolved}: HTTP 500", resolved])
    old.db.conn.commit()
    old.close()
    assert TOKEN.encode() in (tmp_path / "monitor.db").read_bytes()

    monkeypatch.setenv("FEED_TOKEN", TOKEN)
    out = outputs(cli_run("sources", "--config", path, "--nl"))
    assert TOKEN not in out and "${FEED_TOKEN}" in out
    assert TOKEN.encode() not in (tmp_path / "monitor.db").read_bytes()
    rows = sqlite3.connect(tmp_path / "monitor.db").execute("SELECT url, effective_url, last_error FROM sources").fetchall()
    assert len(rows) == 2 and all(TOKEN not in (value or "") for row in rows for value in row)


# -- hostile text ------------------------------------------------------------------

EVIL_TITLE = "North Korea \x1b[2J\x1b]0;owned\x07fires missile \u202egnirts\u202c \x9b31m\x85near Pyongyang"
EVIL_LINK = "http://news.test/a\x1b]8;;http://evil.test/\x07click\x1b]8;;\x07\x1b[8m"
EVIL_TEXT = "Pyongyang launched a missile \u2066over\u2069 the sea \x1b[31mtoday\x1b[0m.\x9d"


def hostile_feed() -> bytes:
    now = datetime.now(timezone.utc).isoformat()
    return json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "hostile",
        "items": [{"id": "evil-1", "url": EVIL_LINK, "title": EVIL_TITLE, "content_text": EVIL_TEXT,
                   "date_published": now}],
    }).encode()


def assert_clean(shown: dict[str, str]) -> None:
    for command, text in shown.items():
        bad = sorted({hex(ord(c)) for c in UNSAFE.findall(text)})
        assert not bad, f"`monitor {command}` wrote {bad} to the terminal"


def test_titles_and_links_from_a_feed_reach_the_terminal_clean(feed_server, make_config, cli_run):
    url = feed_server.serve("/evil.json", hostile_feed(), headers={"Content-Type": "application/feed+json"})
    path = make_config(f'[alerts]\nnew_source_window = 0\n[sources.evil]\nurl = "{url}"\n')
    once = cli_run("once", "--config", path)
    assert once.exit_code == 0, outputs(once)
    shown = {"once (console channel)": outputs(once)}
    shown.update(run_all(cli_run, path, ("matches",), ("matches", "--nl"), ("search", "pyongyang"),
                         ("search", "pyongyang", "--nl"), ("sources",), ("alerts",)))
    assert_clean(shown)
    assert "=== [north_korea] North Korea" in shown["once (console channel)"]  # the alert was printed
    assert "gnirts" in shown["matches"] and "http://news.test/a" in shown["matches"]
    # JSON keeps every character, escaped: nothing is lost to the reader of the JSON. (A C1
    # control such as \x9b never stands for itself in a feed: ingest repairs it as the
    # Windows-1252 character it was, see repair_mojibake.)
    row = json.loads(shown["matches --nl"].splitlines()[0])
    assert "\u202egnirts\u202c \u203a31m" in row["title"] and row["url"] == EVIL_LINK


def test_a_reason_phrase_with_escapes_is_logged_and_shown_clean(feed_server, make_config, cli_run):
    url = feed_server.serve("/busy", b"busy", status=503, reason="Busy \x1b[2J\x1b]0;pwned\x07now",
                            headers={"Content-Type": "text/plain"})
    path = make_config(f'[sources.busy]\nurl = "{url}"\n')
    shown = run_all(cli_run, path, ("once",), ("sources",), ("sources", "--nl"))
    assert_clean(shown)
    assert "HTTP 503 Busy now" in shown["once"] and "HTTP 503 Busy now" in shown["sources"]


FORGED = "INFO monitor.outbox: alert 1 to hook sent"


def test_a_receivers_error_body_becomes_one_short_clean_line(feed_server, make_config, cli_run, tmp_path):
    feed = feed_server.serve("/seeds.xml", seed_rss())
    body = f"oops \x1b[31mred\x1b[0m\x07 \u202eeulav\n{FORGED}\n" + "x" * 5000
    hook = feed_server.serve("/hook", body.encode(), status=500, headers={"Content-Type": "text/plain"})
    path = make_config(
        "[alerts]\nnew_source_window = 0\n"
        f'[sources.wire]\nurl = "{feed}"\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{hook}"\n'
        '[watchlists.north_korea]\nchannels = ["hook"]\n'
    )
    shown = run_all(cli_run, path, ("once",), ("alerts",), ("alerts", "--status", "pending"))
    assert_clean(shown)
    assert "HTTP 500" in shown["once"]
    for command, text in shown.items():
        assert not any(line.lstrip().startswith(FORGED) for line in text.splitlines()), f"{command}: a forged log line"
    errors = [r[0] for r in sqlite3.connect(tmp_path / "monitor.db").execute(
        "SELECT last_error FROM outbox WHERE channel = 'hook'")]
    assert errors and all("\n" not in e and not UNSAFE.search(e) for e in errors)
    quoted = errors[0].split("HTTP 500 Internal Server Error (", 1)[1]
    assert quoted.startswith("oops red") and len(quoted) <= 201


def test_a_huge_retry_after_from_a_receiver_does_not_stop_dispatch(feed_server, make_config, cli_run, tmp_path):
    feed = feed_server.serve("/seeds.xml", seed_rss())
    hook = feed_server.serve("/hook", b"slow down", status=429,
                             headers={"Content-Type": "text/plain", "Retry-After": "1e300"})
    path = make_config(
        "[alerts]\nnew_source_window = 0\n"
        f'[sources.wire]\nurl = "{feed}"\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{hook}"\n'
        '[watchlists.north_korea]\nchannels = ["hook"]\n'
    )
    result = cli_run("once", "--config", path)
    assert result.exit_code == 0 and "Traceback" not in outputs(result), outputs(result)
    rows = sqlite3.connect(tmp_path / "monitor.db").execute(
        "SELECT status, next_attempt_at FROM outbox WHERE channel = 'hook'").fetchall()
    assert rows and all(status == "pending" for status, _ in rows)
    latest = max(datetime.fromisoformat(at) for _, at in rows)
    assert latest <= datetime.now(timezone.utc) + timedelta(days=8)


# -- configuration that cannot crash later -------------------------------------------


def test_a_config_file_that_is_not_utf8_is_one_line_naming_the_file(tmp_path, cli_run):
    path = tmp_path / "monitor.toml"
    path.write_bytes(b'[schedule]\ninterval = "15m"\n# caf\xe9 in Latin-1\n')
    for command in ("check", "once", "sources"):
        result = cli_run(command, "--config", path)
        assert result.exit_code in (1, 2), outputs(result)
        lines = outputs(result).strip().splitlines()
        assert lines == [f"error: {path}: not UTF-8 text (byte 0xe9 on line 3); save the file as UTF-8"]


BAD_VALUES = [
    ("schedule.interval", '[schedule]\ninterval = "99999999999d"\n'),
    ("schedule.dispatch_interval", "[schedule]\ndispatch_interval = 0\n"),
    ("schedule.max_workers", "[schedule]\nmax_workers = 0\n"),
    ("retention.max_age", '[retention]\nmax_age = "99999999999d"\n'),
    ("retention.max_age", "[retention]\nmax_age = 1e300\n"),
    ("retention.matched_max_age", "[retention]\nmax_age = 60\nmatched_max_age = inf\n"),
    ("alerts.claim_timeout", '[alerts]\nclaim_timeout = "99999999999d"\n'),
    ("alerts.backoff", "[alerts]\nbackoff = nan\n"),
    ("alerts.max_attempts", "[alerts]\nmax_attempts = 1000000\n"),
    ("alerts.new_source_window", "[alerts]\nnew_source_window = 123456789012345678901234567890\n"),
    ("fetch.timeout", "[fetch]\ntimeout = 0\n"),
    ("fetch.timeout", "[fetch]\ntimeout = -5\n"),
    ("fetch.deadline", "[fetch]\ndeadline = inf\n"),
    ("fetch.max_bytes", "[fetch]\nmax_bytes = 0\n"),
    ("watchlists.trade.threshold", "[watchlists.trade]\nthreshold = nan\n"),
    ("watchlists.trade.threshold", "[watchlists.trade]\nthreshold = inf\n"),
    ("sources.s.url", '[sources.s]\nurl = ""\n'),
    ("sources.s.url", '[sources.s]\nurl = "http://[::1"\n'),
    ("sources.s.url", '[sources.s]\nurl = "htp://example.org/feed"\n'),
    ("sources.s.url", '[sources.s]\nurl = "http://127.0.0.1:99999/feed"\n'),
    ("sources.s.interval", '[sources.s]\nurl = "http://127.0.0.1:9/x"\ninterval = "0s"\n'),
    ("channels.console.rate_limit", '[channels.console]\ntype = "console"\nrate_limit = "1/99999999999d"\n'),
    ("channels.console.digest", '[channels.console]\ntype = "console"\ndigest = "99999999999d"\n'),
    ("channels.hook.timeout", '[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/h"\ntimeout = 1e300\n'),
]


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ [\w.]+: ")


@pytest.mark.parametrize("key, text", BAD_VALUES, ids=[f"{k}={t.split('=', 1)[-1].strip()}" for k, t in BAD_VALUES])
def test_check_refuses_what_would_crash_a_later_command(key, text, make_config, cli_run):
    # Retention on, so that `prune` opens the monitor (and its channels) too.
    path = make_config(text if "[retention]" in text else '[retention]\nmax_age = "1d"\n' + text)
    for command, code in (("check", 1), ("once", 2), ("prune", 2), ("alerts", 2)):
        args = (command, "--config", path) + (("--retry",) if command == "alerts" else ())
        result = cli_run(*args)  # an exception here (a traceback for the user) fails the test
        out = outputs(result)
        assert result.exit_code == code, f"`monitor {command}` on {key}: {out}"
        assert "Traceback" not in out and "internal error" not in out
        lines = [line for line in out.strip().splitlines() if not LOG_LINE.match(line)]
        assert lines and all(line.startswith("error: ") for line in lines), out
        assert any(line.startswith(f"error: {path}: {key}: ") for line in lines), out


def test_what_check_accepts_at_the_limits_runs(feed_server, make_config, cli_run, tmp_path):
    feed = feed_server.serve("/seeds.xml", seed_rss())
    hook = feed_server.serve("/hook", b"down", status=503, headers={"Content-Type": "text/plain"})
    path = make_config(
        '[schedule]\ninterval = "3650d"\njitter = "3650d"\nmin_interval = "3650d"\nmax_interval = "3650d"\n'
        'dispatch_interval = "3650d"\nmax_workers = 256\n'
        '[fetch]\ntimeout = "3650d"\ndeadline = "3650d"\nmax_redirects = 100\n'
        '[alerts]\nmax_attempts = 1000\nclaim_timeout = "3650d"\nbackoff = "3650d"\nbackoff_max = "3650d"\n'
        "new_source_window = \"3650d\"\n"
        '[retention]\nmax_age = "3650d"\nmatched_max_age = "3650d"\nprune_interval = "3650d"\ntombstone_max_age = 0\n'
        f'[sources.wire]\nurl = "{feed}"\ninterval = "3650d"\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{hook}"\ntimeout = "3650d"\nrate_limit = "1000/3650d"\n'
        '[watchlists.north_korea]\nchannels = ["hook"]\nthreshold = 1e300\n'
        '[watchlists.trade]\nchannels = ["hook"]\n'
    )
    check = cli_run("check", "--config", path)
    assert check.exit_code == 0 and check.output.startswith("OK:"), outputs(check)
    once = cli_run("once", "--config", path)
    assert once.exit_code == 0 and "waiting to retry" in once.output, outputs(once)
    # The retry arithmetic at the last attempts: backoff doubled 998 times, capped.
    db = sqlite3.connect(tmp_path / "monitor.db")
    db.execute("UPDATE outbox SET attempts = 997, next_attempt_at = '2000-01-01T00:00:00+00:00' WHERE channel = 'hook'")
    db.commit()
    for args in (("once",), ("prune",), ("alerts", "--retry")):
        result = cli_run(*args, "--config", path)
        assert result.exit_code == 0 and "Traceback" not in outputs(result), (args, outputs(result))
    assert set(db.execute("SELECT attempts, status FROM outbox WHERE channel = 'hook'")) == {(998, "pending")}
    # The daemon's scheduler takes the same values: every job gets a next run time.
    with Monitor.open(load_config(path, env={})) as monitor:
        scheduler = build_scheduler(monitor)
        scheduler.start(paused=True)
        try:
            assert all(job.next_run_time is not None for job in scheduler.get_jobs())
        finally:
            scheduler.shutdown(wait=False)


def test_an_unknown_plugin_in_disable_plugins_is_a_stated_warning(make_config, cli_run):
    path = make_config('[monitor]\ndisable_plugins = ["apprise_alerts", "no_such_plugin"]\n')
    check = cli_run("check", "--config", path)
    assert check.exit_code == 0, outputs(check)
    warnings = [line for line in outputs(check).splitlines() if "disable_plugins" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "monitor.disable_plugins: no installed plugin is named 'no_such_plugin'" in warnings[0]
    once = cli_run("once", "--config", path)
    assert once.exit_code == 0 and "no installed plugin is named 'no_such_plugin'" in outputs(once)


# -- the functions behind it ------------------------------------------------------------


def test_safe_line_and_safe_text():
    assert safe_line("a\x1b[31mb\x1b[0m\x07c\u202ed\u2066e\x9b2Jf\x85g\nh\ti\rj") == "abcdefg h i j"
    assert safe_line("\x1b]8;;http://evil/\x07link\x1b]8;;\x1b\\ text") == "link text"
    assert safe_line("x" * 300, 200) == "x" * 199 + "…"
    assert safe_text("line 1\r\n\tline 2\x1b[2J\x0c\u202e") == "line 1\n\tline 2"
    assert json_safe(json.dumps("a\u202eb\x85", ensure_ascii=False)) == '"a\\u202eb\\u0085"'
    assert json.loads(json_safe(json.dumps(EVIL_TITLE, ensure_ascii=False))) == EVIL_TITLE


def test_the_log_formatter_redacts_flattens_and_indents_tracebacks():
    import logging

    from monitor.logs import SafeFormatter
    from monitor.secrets import Secrets

    formatter = SafeFormatter(redact=Secrets({"FEED_TOKEN": TOKEN}).redact)
    try:
        raise ValueError(f"bad answer from ?token={TOKEN}\n{FORGED}\x1b[2J")
    except ValueError as exc:
        record = logging.LogRecord("monitor.pipeline", logging.WARNING, __file__, 1,
                                   "%s: %s", ("wire", f"?token={TOKEN}\n{FORGED}\u202e"), (type(exc), exc, exc.__traceback__))
    lines = formatter.format(record).splitlines()
    assert lines[0].endswith(f"wire: ?token=${{FEED_TOKEN}} {FORGED}")
    assert all(line.startswith("    ") for line in lines[1:]) and len(lines) > 3
    assert TOKEN not in "\n".join(lines) and not UNSAFE.search("\n".join(lines))
