"""The storage contract: every test here runs on the SQLite store and on the PostgreSQL store.

``monitor_db`` (monitor/testing.py) is a SQLite file, then a fresh PostgreSQL
schema on the server of MONITOR_TEST_POSTGRES_URL (skipped, saying why,
without one). The end-to-end tests run the real CLI and a real monitor on
the same two databases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitor import Monitor, load_config
from monitor.errors import SchemaTooNewError, StorageError
from monitor.models import Evidence, Match, Source, Story, Watchlist
from monitor.storage import SourceOutcome, open_store, redact_url
from monitor.testing import Response, rss, write_config
from monitor.timeutil import to_iso, utcnow

ROOT = Path(__file__).resolve().parents[1]
FEED = Source(name="feed", url="http://127.0.0.1:9/feed.xml")
WATCH = {"korea": Watchlist(name="korea", query="pyongyang", channels=("hook", "mail"))}


@pytest.fixture
def store(monitor_db):
    opened = open_store(monitor_db)
    yield opened
    opened.close()


def story(n: int, title: str = "Pyongyang talks", text: str = "Officials met in Pyongyang.", **kw) -> Story:
    kw.setdefault("content_hash", f"h{n}")
    return Story(id=f"s{n}", source="feed", title=f"{title} {n}", text=text, url=f"http://news.test/{n}", **kw)


def match(n: int, watchlist: str = "korea") -> Match:
    return Match(story_id=f"s{n}", watchlist=watchlist, score=0.9, classifier="keywords",
                 evidence=Evidence(terms=("pyongyang",)))


def save(store, stories, matches=(), outcome=SourceOutcome(status="ok", etag='"e1"')):
    store.sync_sources([FEED])
    return store.save_update(FEED, outcome, stories, [], list(matches), WATCH)


# -- sources --------------------------------------------------------------------------


def test_fetch_state_round_trips_and_failures_count(store):
    store.sync_sources([FEED])
    assert store.fetch_state(FEED).first_poll
    store.record_poll(FEED, SourceOutcome(status="ok", etag='"v1"', body_hash="b", interval=600.0))
    state = store.fetch_state(FEED)
    assert (state.etag, state.body_hash, state.interval, state.first_poll) == ('"v1"', "b", 600.0, False)
    store.record_failure(FEED, SourceOutcome(status="error", error="HTTP 500"))
    store.record_failure(FEED, SourceOutcome(status="error", error="HTTP 502"))
    row = store.source_row("feed")
    assert row["error_count"] == 2 and row["last_error"] == "HTTP 502" and row["status"] == "error"
    assert store.never_polled(["feed", "other"]) == ["other"]
    assert [r["name"] for r in store.sources()] == ["feed"]


def test_environment_values_never_reach_the_sources_table(monitor_db):
    from monitor.secrets import Secrets

    secrets = Secrets({"TOKEN": "tok-123456"})
    source = Source(name="feed", url="http://127.0.0.1:9/feed?key=tok-123456")
    with _opened(monitor_db, secrets) as store:
        store.sync_sources([source])
        store.record_failure(source, SourceOutcome(status="error", error="GET http://127.0.0.1:9/feed?key=tok-123456: 500"))
        row = store.source_row("feed")
    assert "tok-123456" not in row["url"] + row["last_error"]
    assert "${TOKEN}" in row["url"] and "${TOKEN}" in row["last_error"]


class _opened:
    def __init__(self, location, secrets=None):
        self.store = open_store(location, secrets)

    def __enter__(self):
        return self.store

    def __exit__(self, *exc):
        self.store.close()


# -- stories, matches, the outbox ------------------------------------------------------


def test_one_poll_is_stored_once_and_a_match_alerts_once_per_channel(store):
    saved = save(store, [story(1), story(2)], [match(1)])
    assert (saved.new_stories, saved.matches, saved.alerts_queued) == (2, 1, 2)
    again = save(store, [story(1), story(2)], [match(1)])  # the same poll again: nothing new
    assert (again.new_stories, again.matches, again.alerts_queued) == (0, 0, 0)
    assert store.counts() == {"sources": 1, "stories": 2, "matches": 1, "outbox": 2}
    assert store.outbox_counts() == {"pending": 2}
    assert store.known_hashes(["s1", "s3"]) == {"s1": "h1"}
    assert store.story("s1").title == "Pyongyang talks 1"
    assert store.source_row("feed")["stories_count"] == 2


def test_a_changed_story_is_updated_and_keeps_its_cluster(store):
    save(store, [story(1, cluster="s1"), story(2, cluster="s1")])
    changed = story(2, title="Pyongyang talks, updated", cluster="other", content_hash="h2b")
    store.sync_sources([FEED])
    result = store.save_update(FEED, SourceOutcome(status="ok"), [], [changed], [], WATCH)
    assert result.updated_stories == 1
    assert store.story("s2").title.startswith("Pyongyang talks, updated") and store.story("s2").cluster == "s1"


def test_one_alert_per_cluster_and_the_others_are_reported_with_it(store):
    save(store, [story(1, cluster="s1"), story(2, cluster="s1")], [match(1)])
    more = store.save_matches([match(2)], WATCH, alert=True)
    assert more.matches == 1 and more.alerts_queued == 0  # the cluster already alerted on both channels
    assert [r["id"] for r in store.cluster_reports("s1")] == ["s2"]
    [grouped] = store.matches_by_cluster("korea")
    assert grouped["stories"] == 2 and grouped["sources"] == 1 and grouped["source_names"] == "feed"
    assert [r["story_id"] for r in store.cluster_matches("korea", "s1")] == ["s1", "s2"]


def test_the_web_uis_listings_page_and_filter_alike_on_both_stores(store):
    # What the web UI's matches, alerts and sources pages read, through the store's named methods.
    save(store, [story(1, title="Pyongyang talks", text="Officials met."),
                 story(2, title="Seoul reply", text="PYONGYANG officials answered.", cluster="s1"),
                 story(3, title="Weather", text="Sunny.")], [match(1), match(2)])
    store.add_feedback("korea", "wrong", story_id="s2")
    listed = store.match_listing(limit=10)
    assert [(r["story_id"], r["cluster"], r["verdict"]) for r in listed] == [("s2", "s1", "wrong"), ("s1", "s1", None)]
    assert [r["story_id"] for r in store.match_listing(containing="Officials MET")] == ["s1"]
    assert [r["story_id"] for r in store.match_listing(before=(listed[0]["matched_at"], listed[0]["id"]))] == ["s1"]
    assert store.match_listing("other") == [] and store.match_listing(since=utcnow() + timedelta(days=1)) == []
    assert [r["id"] for r in store.cluster_reports("s2", limit=50)] == ["s1"]
    today = utcnow().date().isoformat()
    assert store.daily_story_counts(today) == {"feed": {today: 3}}
    alerts = store.outbox(limit=10)
    assert len(alerts) == 2 and {r["story_id"] for r in alerts} == {"s1"}  # one alert per cluster and channel
    assert [r["id"] for r in store.outbox(before_id=alerts[0]["id"])] == [alerts[1]["id"]]


def test_the_claim_protocol_gives_a_row_to_one_dispatcher(store):
    save(store, [story(1)], [match(1)])
    now = to_iso(utcnow())
    assert store.due_channels(now) == ["hook", "mail"]
    [row] = store.due_alerts("hook", now, 10)
    assert row["title"] == "Pyongyang talks 1" and row["watchlist"] == "korea"
    assert store.claim_alerts([row["outbox_id"]], now) == [row["outbox_id"]]
    assert store.claim_alerts([row["outbox_id"]], now) == []  # taken: a second dispatcher gets nothing
    assert store.requeue_interrupted(now, "interrupted") == 1
    assert store.claim_alerts([row["outbox_id"]], now) == [row["outbox_id"]]
    store.update_alerts([row["outbox_id"]], status="failed", last_error="HTTP 404")
    assert store.requeue_failed(channel="hook") == 1
    store.update_alerts([row["outbox_id"]], status="sent", sent_at=now)
    assert [r["message"] for r in store.recent_messages("hook", "2000-01-01", "2999-01-01")] == [row["outbox_id"]]
    store.set_channel_state("mail", "0 8 * * *", "2030-01-01T08:00:00+00:00", now)
    store.set_channel_state("mail", "0 9 * * *", "2030-01-01T09:00:00+00:00", now)
    assert store.channel_state("mail")["digest_spec"] == "0 9 * * *"


def test_pruning_keeps_matched_stories_and_leaves_tombstones(store):
    save(store, [story(1), story(2), story(3)], [match(1)])
    later = utcnow() + timedelta(days=1)
    assert store.count_prunable(later) == 2
    assert store.prune(later) == 2
    assert store.pruned_ids(["s1", "s2", "s3"]) == {"s2", "s3"}
    assert store.counts()["stories"] == 1
    assert store.prune(later, matched_older_than=later) == 1
    assert store.counts() == {"sources": 1, "stories": 0, "matches": 0, "outbox": 0}
    assert store.expire_tombstones(later) == 3
    assert store.reclaim_space() is not None


def test_candidate_search_finds_words_prefixes_and_cjk_runs(store):
    save(store, [story(1, title="Elections in Seoul", text="Voters went to the polls."),
                 story(2, title="北朝鮮のミサイル", text="ミサイルの発射が確認された。"),
                 story(3, title="Weather", text="Sunny.")])
    found = {r["id"] for r in store.search_candidates('("elections")')}
    assert found == {"s1"}
    assert {r["id"] for r in store.search_candidates('("elect"*)')} == {"s1"}
    assert {r["id"] for r in store.search_candidates(None, [("ミサイル",)])} == {"s2"}
    assert {r["id"] for r in store.search_candidates('("weather") OR ("voters" AND "polls")')} == {"s1", "s3"}
    [hit] = store.search("voters")
    assert hit["id"] == "s1" and "[" in hit["snippet"]
    [cjk] = store.search("ミサイル")
    assert cjk["id"] == "s2" and "[ミサイル]" in cjk["snippet"]
    assert {r["id"] for r in store.newest_found('("sunny")', 10)} == {"s3"}


def test_search_folds_accents_on_both_stores(store):
    # SQLite's FTS5 always folded them; PostgreSQL's 'simple' search did not, so
    # `monitor search cafe` missed "Café" there.
    save(store, [story(1, title="Café society in Zürich", text="Élections à São Paulo."),
                 story(2, title="Cafeteria menu", text="Soup.")])
    assert {r["id"] for r in store.search_candidates('("cafe")')} == {"s1"}
    assert {r["id"] for r in store.search_candidates('("zurich") AND ("elections")')} == {"s1"}
    assert {r["id"] for r in store.search_candidates('("café")')} == {"s1"}
    assert [r["id"] for r in store.search("sao paulo")] == ["s1"]
    from monitor.search import search

    assert [f.row["id"] for f in search(store, "cafe", limit=10).found] == ["s1"]


def test_search_takes_dotted_and_dotless_i_as_one_letter_on_both_stores(store):
    # The matcher folds ı with i; FTS5 keeps ı apart, so search asks for the dotless spelling too.
    save(store, [story(1, title="IŞIK KESİLDİ", text="İSTANBUL", language="tr"),
                 story(2, title="Işık kesildi", text="Istanbul"),
                 story(3, title="ışık kesildi", text="ılık hava", language="tr"),
                 story(4, title="Hava güzel", text="Ankara")])
    from monitor.search import search

    for query, expected in (("ışık", {"s1", "s2", "s3"}), ("isik", {"s1", "s2", "s3"}), ("istanbul", {"s1", "s2"}),
                            ("ilik", {"s3"}), ('"ışık kesildi"', {"s1", "s2", "s3"})):
        assert {f.row["id"] for f in search(store, query, limit=10).found} == expected, query


def test_search_finds_a_turkish_word_spelled_as_the_story_spells_it_with_both_is(store):
    # Words with dotted and dotless i at once (Diyarbakır, Balıkesir, silahlı): searching their exact
    # spelling must find them, as it did before ı and i became one letter; and so must the spelling
    # with the other i, since the matcher takes them as one.
    save(store, [story(1, title="Diyarbakır'da patlama", text="Ankara", language="tr"),
                 story(2, title="Balıkesir depremi", text="Silahlı saldırı", language="tr"),
                 story(3, title="Diyarbakir blast", text="Reuters")])
    from monitor.search import search

    for query, expected in (("diyarbakır", {"s1", "s3"}), ("Diyarbakir", {"s1", "s3"}), ("balıkesir", {"s2"}),
                            ("balikesir", {"s2"}), ("silahlı", {"s2"}), ('"silahli saldiri"', {"s2"})):
        assert {f.row["id"] for f in search(store, query, limit=10).found} == expected, query


def test_feedback_and_models_round_trip(store):
    save(store, [story(1), story(2)], [match(1)])
    right = store.add_feedback("korea", "right", story_id="s2")
    assert right.verdict == "missed"  # it had no match: it should have
    wrong = store.add_feedback("korea", "wrong", match_id=store.matches()[0]["id"])
    assert wrong.story_id == "s1"
    assert [f.verdict for f in store.feedback("korea")] == ["missed", "wrong"]
    assert [r["verdict"] for r in store.feedback_rows(watchlist="korea")] == ["wrong", "missed"]
    with pytest.raises(StorageError, match="no match with id 999"):
        store.add_feedback("korea", "right", match_id=999)
    blob = bytes(range(256)) * 10
    store.save_learned_model("korea", blob, format=1, cv_f1=0.8, origin="test")
    assert bytes(store.learned_models()["korea"]["model"]) == blob
    assert store.model_versions("learned").keys() == {"korea"}
    store.save_model("semantic", "korea", embedder="e", dim=2, weights="[1, 2]", bias=0.5, cutoff=0.4)
    assert store.models("semantic")["korea"]["weights"] == "[1, 2]"
    assert store.forget_model("semantic", "korea") and not store.forget_model("semantic", "korea")
    with pytest.raises(StorageError, match="no stored model kind"):
        store.models("nope")


def test_a_verdict_keeps_its_storys_language_and_older_ones_gain_it_on_upgrade(monitor_db):
    # `monitor train` reads a verdict in the language its story was classified in.
    with _opened(monitor_db) as store:
        save(store, [story(1, language="sv"), story(2)])
        store.add_feedback("korea", "right", story_id="s1")
        store.add_feedback("korea", "right", story_id="s2")
        assert [(f.story_id, f.language) for f in store.feedback("korea")] == [("s1", "sv"), ("s2", None)]
        # A database from before verdicts kept the language: the upgrade fills it in from the story.
        with store.write() as db:
            db.execute("ALTER TABLE feedback DROP COLUMN language")
            if store.dialect == "postgresql":
                db.execute("DELETE FROM news_monitor_migrations WHERE name = 'm015_feedback_language'")
            else:
                db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm015_feedback_language'")
    with _opened(monitor_db) as store:
        assert [(f.story_id, f.language) for f in store.feedback("korea")] == [("s1", "sv"), ("s2", None)]


def test_stories_after_pages_in_storage_order(store):
    save(store, [story(n) for n in range(1, 8)])
    first = store.stories_after(0, 3)
    rest = store.stories_after(first[-1]["rowid"], 10)
    assert [r["id"] for r in first + rest] == [f"s{n}" for n in range(1, 8)]
    assert store.last_story_rowid() == rest[-1]["rowid"]


def test_a_database_from_a_newer_release_is_refused(monitor_db):
    with _opened(monitor_db) as store:
        with store.write() as db:
            if store.dialect == "postgresql":
                db.execute("INSERT INTO news_monitor_migrations (name, applied_at) VALUES ('m099_future', 'x')")
            else:
                db.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                           "VALUES ('news_monitor', 'm099_future', 'x')")
    with pytest.raises(SchemaTooNewError, match=r"version 99 \(m099_future\), newer than this news-monitor"):
        open_store(monitor_db)


# -- end to end: the CLI and a monitor on both stores ----------------------------------------


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def test_every_read_command_works_after_a_poll(monitor_db, tmp_path):
    config = write_config(tmp_path, f'[alerts]\nnew_source_window = 0\n[sources.seeds]\nurl = "{ROOT / "seeds"}"\n'
                          'kind = "directory"\n[watchlists.korea]\nquery = "pyongyang OR \\"north korea\\""\n',
                          db=monitor_db)
    once = cli("once", "-c", config, cwd=tmp_path)
    assert once.returncode == 0, once.stderr[-3000:]
    assert "new stories" in once.stdout
    for args in (["matches"], ["sources"], ["alerts"], ["search", "korea"], ["prune", "--dry-run"]):
        result = cli(*args, "-c", config, cwd=tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stderr[-2000:])
    assert "seeds" in cli("sources", "-c", config, cwd=tmp_path).stdout
    # --db names the same database whatever the configuration says.
    text = config.read_text().replace(monitor_db, str(tmp_path / "unused.db"))
    other = tmp_path / "other.toml"
    other.write_text(text)
    direct = cli("matches", "-c", config, cwd=tmp_path)
    via_flag = cli("matches", "-c", other, "--db", monitor_db, cwd=tmp_path)
    assert via_flag.returncode == 0 and "[korea]" in direct.stdout and via_flag.stdout == direct.stdout
    assert not (tmp_path / "unused.db").exists()


def test_alerts_go_out_once_to_a_real_receiver(monitor_db, tmp_path, monitor_feed_server):
    server = monitor_feed_server
    url = server.serve("/feed.xml", rss([{"title": f"Pyongyang talks {n}", "guid": f"g{n}",
                                          "link": f"http://news.test/{n}"} for n in range(3)]))
    server.routes["/hook"] = Response(status=204, etag=False)
    config = load_config(write_config(
        tmp_path, f'[alerts]\nnew_source_window = 0\n[channels.hook]\ntype = "webhook"\nurl = "{server.url("/hook")}"\n'
        f'[sources.feed]\nurl = "{url}"\n[watchlists.korea]\nquery = "pyongyang"\nchannels = ["hook"]\n',
        db=monitor_db), env={})
    with Monitor.open(config) as monitor:
        monitor.run_once()
        monitor.run_once()
        rows = monitor.store.outbox(channel="hook")
        assert len(rows) == 3 and {r["status"] for r in rows} == {"sent"}
    keys = [h.headers.get("Idempotency-Key") for h in server.hits("/hook")]
    assert len(keys) == 3 and len(set(keys)) == 3


def _backlog_config(tmp_path, monitor_db, server, extra: str = "", alerts: str = "") -> Path:
    """A feed of one batch and a half of matching stories, each its own cluster, alerting a real receiver."""
    from monitor.outbox import BATCH

    url = server.serve("/feed.xml", rss([{"title": f"Pyongyang talks {n}", "guid": f"g{n}",
                                          "link": f"http://news.test/{n}"} for n in range(BATCH + BATCH // 2)]))
    return write_config(
        tmp_path, f'[alerts]\nnew_source_window = 0\n{alerts}[clustering]\nenabled = false\n{extra}'
        f'[channels.hook]\ntype = "webhook"\nurl = "{server.url("/hook")}"\n'
        f'[sources.feed]\nurl = "{url}"\n[watchlists.korea]\nquery = "pyongyang"\nchannels = ["hook"]\n', db=monitor_db)


def test_alerts_retry_delivers_a_failed_backlog_larger_than_one_batch(monitor_db, tmp_path, monitor_feed_server):
    # `alerts --retry` used to send one batch (200) per channel and leave the rest pending.
    from monitor.outbox import BATCH

    server = monitor_feed_server
    config = _backlog_config(tmp_path, monitor_db, server)
    server.routes["/hook"] = Response(status=400, etag=False)  # refused for good: every alert fails
    assert cli("once", "-c", config, cwd=tmp_path).returncode == 0
    server.routes["/hook"] = Response(status=204, etag=False)
    retried = cli("alerts", "--retry", "-c", config, cwd=tmp_path)
    backlog = BATCH + BATCH // 2
    assert retried.returncode == 0, retried.stderr[-2000:]
    assert f"Requeued {backlog} failed alerts." in retried.stdout and f"Sent {backlog}," in retried.stdout
    with _opened(monitor_db) as store:
        assert {r["status"] for r in store.outbox(channel="hook", limit=10 * BATCH)} == {"sent"}
    keys = [h.headers.get("Idempotency-Key") for h in server.hits("/hook") if h.headers.get("Idempotency-Key")]
    assert len(set(keys)) == backlog


def test_run_once_delivers_the_whole_backlog_its_poll_queued(monitor_db, tmp_path, monitor_feed_server):
    # Monitor.run_once(), the library's `monitor once`, sent one batch (200) per channel and left the rest.
    from monitor.outbox import BATCH

    server = monitor_feed_server
    server.routes["/hook"] = Response(status=204, etag=False)
    config = load_config(_backlog_config(tmp_path, monitor_db, server), env={})
    with Monitor.open(config) as monitor:
        monitor.run_once()
        rows = monitor.store.outbox(channel="hook", limit=10 * BATCH)
    assert len(rows) == BATCH + BATCH // 2 and {r["status"] for r in rows} == {"sent"}


def test_a_failing_channel_with_a_whole_batch_due_does_not_call_the_next_run_at_once(monitor_db, tmp_path,
                                                                                    monitor_feed_server):
    # The daemon and fleet workers go again at once after a run that had a whole batch due (`more`).
    # Rows a failing channel has just retried can be due again at once (a short backoff): going again
    # sent them attempt after attempt with no pause, and a receiver that is down the whole backlog.
    from monitor.outbox import BATCH

    server = monitor_feed_server
    server.routes["/hook"] = Response(status=503, etag=False)
    config = load_config(_backlog_config(tmp_path, monitor_db, server,
                                         "[watchlists.north_korea]\nenabled = false\n",  # the hook's alone
                                         alerts="backoff = 0\nbackoff_max = 0\nmax_attempts = 100\n"), env={})
    with Monitor.open(config) as monitor:
        monitor.run_once(deliver=False)
        failing = monitor.dispatch()  # one run of the daemon's dispatcher
        assert (failing.retrying, failing.more) == (BATCH, False)
        server.routes["/hook"] = Response(status=204, etag=False)
        healthy = monitor.dispatch()
        assert (healthy.sent, healthy.more) == (BATCH, True)  # a channel that sends: the next run comes at once
    assert len(server.hits("/hook")) == 2 * BATCH


def test_the_daemon_sends_a_backlog_batch_after_batch_without_waiting_an_interval(monitor_db, tmp_path,
                                                                                  monitor_feed_server):
    # A poll that queues more than one batch: the rest used to wait a whole dispatch_interval (here an hour).
    from conftest import wait_for
    from monitor.outbox import BATCH
    from monitor.scheduler import build_scheduler

    server = monitor_feed_server
    server.routes["/hook"] = Response(status=204, etag=False)
    config = load_config(_backlog_config(tmp_path, monitor_db, server, '[schedule]\ndispatch_interval = "1h"\n'),
                         env={})
    with Monitor.open(config) as monitor:
        scheduler = build_scheduler(monitor)
        scheduler.start()
        try:
            wait_for(lambda: len(server.hits("/hook")) >= BATCH + BATCH // 2, timeout=60)
        finally:
            scheduler.shutdown(wait=True)
        rows = monitor.store.outbox(channel="hook", limit=10 * BATCH)
        assert len(rows) == BATCH + BATCH // 2 and {r["status"] for r in rows} == {"sent"}


def test_a_fleet_worker_sends_a_backlog_batch_after_batch_without_waiting_dispatch_every(
        monitor_postgres_url, tmp_path, monitor_feed_server):
    # `monitor run` on PostgreSQL is a fleet worker: it looked at the outbox once per dispatch_every,
    # one batch per channel each time, and its first look came a dispatch_every after it started.
    import threading

    from conftest import wait_for
    from monitor.fleet import FleetSettings, FleetWorker
    from monitor.outbox import BATCH

    server = monitor_feed_server
    config = load_config(_backlog_config(tmp_path, monitor_postgres_url, server), env={})
    server.routes["/hook"] = Response(status=400, etag=False)
    with Monitor.open(config) as monitor:
        monitor.run_once()
        monitor.dispatch(until_done=True)  # refused for good: a backlog of failed alerts, then queued again
        assert monitor.store.requeue_failed() == BATCH + BATCH // 2
    server.routes["/hook"] = Response(status=204, etag=False)
    with Monitor.open(config) as monitor:
        worker = FleetWorker(monitor, config.db, FleetSettings(dispatch_every=3600.0), worker_id="w1")
        running = threading.Thread(target=worker.run)
        running.start()
        try:
            wait_for(lambda: len(server.hits("/hook")) >= 2 * (BATCH + BATCH // 2), timeout=60)
        finally:
            monitor.stopping.set()
            running.join(timeout=60)
        rows = monitor.store.outbox(channel="hook", limit=10 * BATCH)
        assert len(rows) == BATCH + BATCH // 2 and {r["status"] for r in rows} == {"sent"}


def test_reclassify_alert_delivers_every_alert_it_queues(monitor_db, tmp_path, monitor_feed_server):
    # A backfill is what queues a backlog: `reclassify --alert` sent one batch (200) per channel and
    # left the rest pending, as `alerts --retry` did.
    from monitor.outbox import BATCH

    backlog = BATCH + BATCH // 2
    server = monitor_feed_server
    server.routes["/hook"] = Response(status=204, etag=False)
    with _opened(monitor_db) as store:
        save(store, [story(n) for n in range(backlog)])  # stored before the watchlist existed: no matches
    config = write_config(
        tmp_path, '[alerts]\nnew_source_window = 0\n[clustering]\nenabled = false\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{server.url("/hook")}"\n'
        '[watchlists.korea]\nquery = "pyongyang"\nchannels = ["hook"]\n', db=monitor_db)
    done = cli("reclassify", "--alert", "--watchlist", "korea", "-c", config, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{backlog} alerts queued, {backlog} sent." in done.stdout, done.stdout
    with _opened(monitor_db) as store:
        assert {r["status"] for r in store.outbox(channel="hook", limit=10 * BATCH)} == {"sent"}
    assert len({h.headers.get("Idempotency-Key") for h in server.hits("/hook")}) == backlog


def test_reclassify_and_feedback_commands(monitor_db, tmp_path):
    text = (f'[alerts]\nnew_source_window = 0\n[sources.seeds]\nurl = "{ROOT / "seeds"}"\nkind = "directory"\n'
            '[watchlists.korea]\nquery = "pyongyang"\n')
    config = write_config(tmp_path, text, db=monitor_db)
    assert cli("once", "-c", config, cwd=tmp_path).returncode == 0
    wider = write_config(tmp_path, text + '[watchlists.any]\nquery = "the"\n', name="wider.toml", db=monitor_db)
    result = cli("reclassify", "-c", wider, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    with _opened(monitor_db) as store:
        assert "any" in store.watchlist_names()
        story_id = store.matches("any", limit=1)[0]["story_id"]
    given = cli("feedback", "-c", wider, "wrong", "--story", story_id, "--watchlist", "any", cwd=tmp_path)
    assert given.returncode == 0, given.stderr[-2000:]
    with _opened(monitor_db) as store:
        assert [f.verdict for f in store.feedback("any")] == ["wrong"]


def test_train_classify_eval_and_serve_work_on_the_database(monitor_db, tmp_path):
    from urllib.request import urlopen

    from webui import start_server

    on_topic = ["fires missile over sea", "talks stall again", "Kim meets envoys in", "test draws sanctions",
                "parade marks anniversary in", "rejects offer from", "envoy flies to", "warns Seoul from"]
    off_topic = ["Bakery wins award", "Local team wins final", "Rain expected at weekend", "Stocks close higher",
                 "New library opens", "Festival draws crowds", "Bridge repairs begin", "School year starts"]
    examples = tmp_path / "korea.jsonl"
    examples.write_text("".join(json.dumps({"title": f"Pyongyang {t}", "summary": "Report.", "labels": ["korea"]}) + "\n"
                                for t in on_topic)
                        + "".join(json.dumps({"title": t, "summary": "Report.", "labels": []}) + "\n"
                                  for t in off_topic), encoding="utf-8")
    config = write_config(tmp_path, f'[alerts]\nnew_source_window = 0\n[sources.seeds]\nurl = "{ROOT / "seeds"}"\n'
                          'kind = "directory"\n[watchlists.korea]\nquery = "pyongyang"\n', db=monitor_db)
    assert cli("once", "-c", config, cwd=tmp_path).returncode == 0
    trained = cli("train", "korea", "--examples", examples, "-c", config, cwd=tmp_path)
    assert trained.returncode == 0 and "Stored the korea model" in trained.stdout, trained.stderr[-2000:]
    classified = subprocess.run([sys.executable, "-m", "monitor", "classify", "-c", str(config)], cwd=tmp_path,
                                input='{"id": "1", "title": "Pyongyang fires again", "summary": "Report."}\n',
                                capture_output=True, text=True, timeout=300)
    assert classified.returncode == 0, classified.stderr[-2000:]
    assert "trained model" in json.loads(classified.stdout)["evidence"]["korea"]["note"]
    evaluated = cli("eval", examples, "-c", config, "--folds", "2", "--show", "0", cwd=tmp_path)
    assert evaluated.returncode == 0 and "korea" in evaluated.stdout, evaluated.stderr[-2000:]
    process, base = start_server(config, tmp_path)
    try:
        with urlopen(f"{base}/api/matches?watchlist=korea", timeout=30) as response:
            items = json.loads(response.read())["items"]
        assert items and all(item["watchlist"] == "korea" for item in items)
        with urlopen(f"{base}/readyz", timeout=30) as response:
            assert response.status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- PostgreSQL only ---------------------------------------------------------------------


def test_an_unreachable_server_is_one_line_naming_it_without_the_password(tmp_path):
    url = "postgresql://monitor:hunter2-secret@127.0.0.1:1/news"
    config = write_config(tmp_path, "", db=url)
    result = cli("once", "-c", config, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "hunter2-secret" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if "127.0.0.1:1/news" in line]
    assert lines and "cannot be reached" in lines[-1], result.stderr[-2000:]


def test_a_password_from_the_environment_is_redacted(monitor_postgres_url, tmp_path):
    assert redact_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    config = load_config(write_config(tmp_path, "", db="postgresql://u:${PGPW}@127.0.0.1:1/x"), env={"PGPW": "s3cret"})
    assert config.db.startswith("postgresql://u:s3cret@") and "s3cret" not in config.database


def test_reclassify_waits_for_the_fleets_cluster_lock_before_it_writes_clusters(monitor_postgres_url, tmp_path):
    # A fleet worker assigns clusters under a transaction-level advisory lock; reclassify clustered
    # stored stories without it, in the middle of a worker's assignment.
    import psycopg

    from conftest import wait_for
    from monitor.postgres_store import CLUSTER_LOCK_KEY

    with _opened(monitor_postgres_url) as store:
        save(store, [story(1), story(2, title="Weather", text="Sunny.")])
        assert {r["cluster_id"] for r in store.query("SELECT cluster_id FROM stories")} == {None}
    config = write_config(tmp_path, '[watchlists.korea]\nquery = "pyongyang"\n', db=monitor_postgres_url)
    with psycopg.connect(monitor_postgres_url) as fleet, psycopg.connect(monitor_postgres_url,
                                                                          autocommit=True) as watcher:
        fleet.execute("SELECT pg_advisory_xact_lock(%s)", [CLUSTER_LOCK_KEY])  # a worker in its cluster stage
        holder = fleet.execute("SELECT pg_backend_pid()").fetchone()[0]
        process = subprocess.Popen([sys.executable, "-m", "monitor", "reclassify", "-c", str(config)], cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def waiting_behind_the_worker() -> bool:
            return watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                                   [holder]).fetchone()[0] > 0

        try:
            # Seen waiting for the lock, not merely slow to start: without the lock it finishes instead.
            wait_for(lambda: process.poll() is not None or waiting_behind_the_worker(), timeout=120)
            assert process.poll() is None, process.communicate()[1][-2000:]
            with _opened(monitor_postgres_url) as store:
                assert {r["cluster_id"] for r in store.query("SELECT cluster_id FROM stories")} == {None}
        finally:
            fleet.commit()  # the worker's write ends: its lock goes with its transaction
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    with _opened(monitor_postgres_url) as store:
        assert {r["id"]: r["cluster_id"] for r in store.query("SELECT id, cluster_id FROM stories")} == {
            "s1": "s1", "s2": "s2"}


def test_migrate_db_copies_everything_into_an_empty_postgresql_and_refuses_a_full_one(monitor_postgres_url, tmp_path):
    config = write_config(tmp_path, f'[alerts]\nnew_source_window = 0\n[sources.seeds]\nurl = "{ROOT / "seeds"}"\n'
                          'kind = "directory"\n[watchlists.korea]\nquery = "pyongyang OR korea"\n')
    assert cli("once", "-c", config, cwd=tmp_path).returncode == 0
    with _opened(tmp_path / "monitor.db") as sqlite:
        first = sqlite.matches("korea", limit=1)[0]
        sqlite.add_feedback("korea", "wrong", match_id=first["id"])
        sqlite.save_learned_model("korea", b"\x00model\xff", format=1, origin="test")
        expected = {t: sqlite.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in
                    ("sources", "stories", "matches", "outbox", "feedback", "learned_models")}
    assert expected["stories"] >= 2 and expected["matches"] > 0

    moved = cli("migrate-db", "-c", config, "--to", monitor_postgres_url, cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr[-3000:]
    for table, count in expected.items():
        assert f"  {table}: {count:,} rows" in moved.stdout
    before = cli("matches", "-c", config, cwd=tmp_path).stdout
    after = cli("matches", "-c", config, "--db", monitor_postgres_url, cwd=tmp_path).stdout
    assert after == before and "[korea]" in after
    with _opened(monitor_postgres_url) as pg:
        assert bytes(pg.learned_models()["korea"]["model"]) == b"\x00model\xff"
        assert [f.verdict for f in pg.feedback("korea")] == ["wrong"]
        # New rows continue after the copied ids.
        pg.sync_sources([FEED])
        saved = pg.save_update(FEED, SourceOutcome(status="ok"), [story(900)], [], [match(900)], WATCH)
        assert saved.new_match_ids[0] > first["id"]

    again = cli("migrate-db", "-c", config, "--to", monitor_postgres_url, cwd=tmp_path)
    assert again.returncode != 0 and "Traceback" not in again.stderr
    assert "is not empty" in again.stderr and "migrate-db copies into an empty database only" in again.stderr


def test_a_connection_the_server_dropped_is_replaced_and_nothing_committed_is_lost(monitor_postgres_url):
    import psycopg

    with _opened(monitor_postgres_url) as store:
        save(store, [story(1)])
        with psycopg.connect(monitor_postgres_url, autocommit=True) as admin:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid != pg_backend_pid()").fetchone()[0]
        assert killed >= 1  # the store's pooled connection was among them
        assert store.story("s1") is not None
        save(store, [story(2)])
        assert store.counts()["stories"] == 2


def test_one_wire_story_from_three_outlets_alerts_once_across_a_restart(monitor_db, tmp_path, monitor_feed_server):
    from test_clusters import OUTLETS, config_text, posted, serve_outlets

    server = monitor_feed_server
    urls = serve_outlets(server, OUTLETS, farm_in=None)
    path = write_config(tmp_path, config_text(server, urls), db=monitor_db)
    config = load_config(path, env={})
    with Monitor.open(config) as monitor:
        monitor.run_once([config.sources["reuters"], config.sources["ap"]])
    assert len(posted(server)) == 2  # korea and missiles, once each
    # A new process: the clustering index is read back from the database.
    with Monitor.open(load_config(path, env={})) as monitor:
        monitor.run_once([config.sources["afp"]])
        assert len(posted(server)) == 2
        assert len({r["cluster"] for r in monitor.store.matches("korea")}) == 1
        assert len(monitor.store.matches("korea")) == 3


def test_search_without_unaccent_says_so_still_finds_own_spellings_and_folds_once_it_is_installed(caplog):
    # A user who may not create extensions (PostgreSQL 15 grants no CREATE on a database to others).
    import uuid
    from urllib.parse import urlsplit

    import psycopg

    from monitor.testing import postgres_server_url, with_database

    server = postgres_server_url()
    suffix = uuid.uuid4().hex[:10]
    name, role = f"monitor_plain_{suffix}", f"monitor_plain_{suffix}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        with psycopg.connect(with_database(server, name), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA news AUTHORIZATION "{role}"')
        plain = with_database(urlsplit(server)._replace(netloc=f"{role}@{urlsplit(server).hostname}:"
                                                          f"{urlsplit(server).port or 5432}").geturl(), name, "news")
        with caplog.at_level("WARNING", logger="monitor.postgres"):
            store = open_store(plain)
        try:
            assert "search does not fold accents" in caplog.text and "CREATE EXTENSION unaccent" in caplog.text
            save(store, [story(1, title="Priserna växer i Malmö", text="Hamnen växer.")])
            from monitor.search import search

            # The query's own spelling still finds the story (the index keeps växer as written).
            assert [f.row["id"] for f in search(store, "växer", limit=5).found] == ["s1"]
            assert [r["id"] for r in store.search_candidates('("vaxer")')] == []
        finally:
            store.close()
        with psycopg.connect(with_database(server, name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION unaccent SCHEMA public")
        caplog.clear()
        with caplog.at_level("WARNING", logger="monitor.postgres"):
            store = open_store(plain)
        try:
            assert "fold accents" not in caplog.text
            assert [r["id"] for r in store.search_candidates('("vaxer")')] == ["s1"]
        finally:
            store.close()
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
