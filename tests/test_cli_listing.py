"""Listing commands for people and scripts: one query language, shared output formats, names checked, exit codes."""

import csv
import io
import json
import sqlite3
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from conftest import rss

WHEN = format_datetime(datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc))
ITEMS = [
    ("n1", "Korea and Japan hold talks", "Officials from Korea discussed a missile launched last week."),
    ("n2", "South Korea elects a president", "Voters in South Korea chose a new leader on Sunday."),
    ("n3", "Korea missile test alarms region", "The missile flew over the sea; Korea said nothing for a long time after."),
    ("n4", "Universities reopen", "The university of Seoul reopened its campus."),
    ("n5", "Weather", "Rain and wind across the region."),
]


@pytest.fixture
def polled(feed_server, make_config, cli_run):
    items = [{"title": t, "link": f"http://news.test/{g}", "guid": g, "description": d, "pubDate": WHEN}
             for g, t, d in ITEMS]
    url = feed_server.serve("/news.xml", rss(items))
    path = make_config('[alerts]\nnew_source_window = 0\n'
                       '[watchlists.korea]\nquery = "korea NEAR/3 missile"\nchannels = ["console"]\n'
                       f'[sources.wire]\nurl = "{url}"\n[sources.idle]\nurl = "{url}?idle"\nenabled = false\n')
    result = cli_run("once", "--config", path)
    assert result.exit_code == 0, result.output
    return path


def titles(output: str) -> list[str]:
    return [row["title"] for row in json.loads(output)]


# -- one query language ------------------------------------------------------------


def test_search_takes_the_watchlist_language_not_raw_fts(polled, cli_run):
    minus = cli_run("search", "--config", polled, "korea -south", "--json")
    assert minus.exit_code == 0, minus.output
    assert set(titles(minus.output)) == {"Korea and Japan hold talks", "Korea missile test alarms region"}
    near = cli_run("search", "--config", polled, "korea NEAR/5 missile", "--json")
    assert near.exit_code == 0, near.output
    # n1 has "Korea" and "missile" two words apart, n3 side by side in its title.
    assert set(titles(near.output)) == {"Korea and Japan hold talks", "Korea missile test alarms region"}
    assert titles(cli_run("search", "--config", polled, "korea NEAR/1 missile", "--json").output) == \
        ["Korea missile test alarms region"]
    assert titles(cli_run("search", "--config", polled, 'title:"south korea"', "--json").output) == \
        ["South Korea elects a president"]


def test_search_prefixes_find_what_porter_stems_hide(polled, cli_run):
    # FTS5 indexes "university" as "univers": a raw "universit"* finds nothing.
    assert cli_run("search", "--config", polled, "--fts", '"universit"*', "--json").output.strip() == "[]"
    found = cli_run("search", "--config", polled, "universit*")
    assert "Universities reopen" in found.output and "[university]" in found.output


def test_search_highlights_and_scores_like_the_watchlist(polled, cli_run):
    out = cli_run("search", "--config", polled, "missile").output
    assert "[missile]" in out and "(score " in out
    row = json.loads(cli_run("search", "--config", polled, "missile", "--nl").output.splitlines()[0])
    assert row["terms"] == ["missile"] and row["score"] > 0 and row["published_at"].endswith("+00:00")


def test_query_errors_are_one_line_with_the_position(polled, cli_run):
    bad = cli_run("search", "--config", polled, "korea AND (")
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: query: AND at the end of the query needs an operand at position 6" or \
        ("position" in bad.output and len(bad.output.strip().splitlines()) == 1)
    assert "Traceback" not in bad.output


def test_search_watchlist_shows_what_it_would_match(polled, cli_run):
    out = cli_run("search", "--config", polled, "--watchlist", "korea", "--json")
    assert out.exit_code == 0, out.output
    assert set(titles(out.output)) == {"Korea and Japan hold talks", "Korea missile test alarms region"}
    unknown = cli_run("search", "--config", polled, "--watchlist", "nope")
    assert unknown.exit_code == 2 and "no watchlist named 'nope'" in unknown.output


def test_raw_fts_stays_available(polled, cli_run):
    out = cli_run("search", "--config", polled, "--fts", "korea NOT south", "--json")
    assert set(titles(out.output)) == {"Korea and Japan hold talks", "Korea missile test alarms region"}
    bad = cli_run("search", "--config", polled, "--fts", "korea -south")
    assert bad.exit_code == 1 and "cannot search" in bad.output and len(bad.output.strip().splitlines()) == 1


# -- output formats ------------------------------------------------------------------


@pytest.mark.parametrize("command", [("sources",), ("matches",), ("search", "korea"), ("alerts",), ("plugins",)])
def test_every_listing_prints_json_nl_csv_and_tsv(polled, cli_run, command):
    as_json = json.loads(cli_run(*command, "--config", polled, "--json").output)
    assert isinstance(as_json, list) and as_json
    lines = [json.loads(line) for line in cli_run(*command, "--config", polled, "--nl").output.splitlines()]
    assert lines == as_json
    for flag, delimiter in (("--csv", ","), ("--tsv", "\t")):
        rows = list(csv.DictReader(io.StringIO(cli_run(*command, "--config", polled, flag).output), delimiter=delimiter))
        assert len(rows) == len(as_json) and set(rows[0]) == set(as_json[0])


def test_booleans_are_booleans_and_times_carry_their_offset(polled, cli_run):
    rows = {r["name"]: r for r in json.loads(cli_run("sources", "--config", polled, "--json").output)}
    assert rows["wire"]["enabled"] is True and rows["idle"]["enabled"] is False
    assert rows["wire"]["last_fetch_at"].endswith("+00:00")
    csv_rows = {r["name"]: r for r in csv.DictReader(io.StringIO(cli_run("sources", "--config", polled, "--csv").output))}
    assert csv_rows["idle"]["enabled"] == "false"


def test_matches_since_and_source(polled, cli_run):
    assert len(json.loads(cli_run("matches", "--config", polled, "--since", "1h", "--json").output)) == 2
    assert json.loads(cli_run("matches", "--config", polled, "--since", "2999-01-01", "--json").output) == []
    assert len(json.loads(cli_run("matches", "--config", polled, "--source", "wire", "--json").output)) == 2
    assert "No matches from idle yet." in cli_run("matches", "--config", polled, "--source", "idle").output
    bad = cli_run("matches", "--config", polled, "--since", "yesterdayish")
    assert bad.exit_code == 2 and "expected a duration" in bad.output


# -- names and paths that do not exist -------------------------------------------------


def test_unknown_names_exit_2_with_a_sentence(polled, cli_run):
    for args, words in (
        (("matches", "-w", "nope"), "no watchlist named 'nope' (watchlists: "),
        (("matches", "--source", "nope"), "no source named 'nope' (sources: "),
        (("alerts", "--channel", "nope"), "no channel named 'nope' (channels: console)"),
        (("alerts", "--status", "nope"), "'nope' is not one of"),
    ):
        result = cli_run(*args, "--config", polled)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output, result.output


def test_alerts_says_what_the_outbox_holds_when_a_filter_finds_nothing(polled, cli_run):
    out = cli_run("alerts", "--config", polled, "--status", "failed").output
    assert "The outbox is empty" not in out
    assert out.strip() == "No failed alerts (the outbox holds 2 sent)."


def test_read_commands_refuse_a_database_that_does_not_exist(polled, cli_run, tmp_path):
    missing = tmp_path / "typo.db"
    for command in (("matches",), ("search", "korea"), ("sources",), ("alerts",), ("prune",)):
        result = cli_run(*command, "--config", polled, "--db", missing)
        assert result.exit_code == 2, (command, result.output)
        assert f"no database at {missing}" in result.output
    assert not missing.exists()


# -- prune ----------------------------------------------------------------------------


def _age_stories(db_path, days: int = 30) -> None:
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE stories SET first_seen_at = datetime('now', ?)", [f"-{days} days"])
    conn.close()


def test_prune_dry_run_says_what_would_go_and_deletes_nothing(polled, cli_run, make_config, tmp_path):
    path = make_config(polled.read_text().replace("[alerts]", "[retention]\nmax_age = \"7d\"\n[alerts]", 1))
    _age_stories(tmp_path / "monitor.db")
    out = cli_run("prune", "--config", path, "--dry-run")
    # Five stories, two of them matched (kept): three would go.
    assert out.exit_code == 0 and "Would prune 3 stories first seen more than 7d ago" in out.output
    assert json.loads(cli_run("search", "--config", path, "weather", "--json").output)
    assert "Pruned 3 stories" in cli_run("prune", "--config", path).output


def test_prune_asks_before_deleting_many_and_refuses_without_a_terminal(feed_server, make_config, cli_run, tmp_path):
    items = [{"title": f"Story {i}", "guid": f"g{i}", "description": "Nothing to see.", "pubDate": WHEN} for i in range(25)]
    url = feed_server.serve("/many.xml", rss(items))
    path = make_config(f'[retention]\nmax_age = "7d"\n[sources.many]\nurl = "{url}"\n')
    assert cli_run("once", "--config", path).exit_code == 0
    _age_stories(tmp_path / "monitor.db")
    refused = cli_run("prune", "--config", path)  # CliRunner's stdin is not a terminal
    assert refused.exit_code == 2
    assert "would delete 25 stories first seen more than 7d ago: refused without --yes" in refused.output
    assert "Would prune 25 stories" in cli_run("prune", "--config", path, "--dry-run").output
    assert "Pruned 25 stories" in cli_run("prune", "--config", path, "--yes").output


# -- words -----------------------------------------------------------------------------


def test_counts_are_in_the_right_number(feed_server, make_config, cli_run):
    item = {"title": "Pyongyang fires a missile", "guid": "one", "description": "North Korea fired.", "pubDate": WHEN}
    url = feed_server.serve("/one.xml", rss([item]))
    path = make_config(f'[alerts]\nnew_source_window = 0\n[sources.one]\nurl = "{url}"\n')
    out = cli_run("once", "--config", path).output
    assert "Polled 1 source: 1 new story, 0 updated, 1 new match, 1 alert queued, 0 errors." in out


def test_the_first_poll_says_undated_entries_are_undated(feed_server, make_config, cli_run):
    items = [{"title": f"Undated {i}", "guid": f"u{i}", "description": "No date here."} for i in range(2)]
    items.append({"title": "Old", "guid": "old", "description": "Long ago.",
                  "pubDate": format_datetime(datetime(2019, 5, 27, 9, 0, tzinfo=timezone.utc))})
    url = feed_server.serve("/undated.xml", rss(items))
    path = make_config(f'[sources.new]\nurl = "{url}"\n')
    out = cli_run("once", "--config", path).output
    assert ("new: 3 entries, 3 new, 0 updated, 0 new matches (1 entry published more than 24h ago and "
            "2 undated entries stored without alerts: first poll of a new source") in out, out
    assert "older entries" not in out
