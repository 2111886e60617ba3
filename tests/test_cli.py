"""The command line over a real database: matches, search, sources, alerts, classify, eval."""

import json
import re

import pytest

from conftest import ROOT, rss, seed_rss


@pytest.fixture
def polled(feed_server, make_config, cli_run):
    """A config with the seed feed and a dead source, polled once."""
    url = feed_server.serve("/seeds.xml", seed_rss())
    path = make_config('[alerts]\nnew_source_window = 0\n' f'[sources.wire]\nurl = "{url}"\n[sources.dead]\nurl = "http://127.0.0.1:9/x"\n')
    result = cli_run("once", "--config", path)
    assert result.exit_code == 0, result.output
    return path


def test_matches_lists_recent_matches_filtered_by_watchlist(polled, cli_run):
    out = cli_run("matches", "--config", polled).output
    assert len(re.findall(r"\[(north_korea|abductions|trade)\]", out)) == 6
    only = cli_run("matches", "--config", polled, "--watchlist", "trade", "--nl").output.splitlines()
    assert len(only) == 2
    assert {json.loads(line)["watchlist"] for line in only} == {"trade"}
    assert all(json.loads(line)["evidence"]["terms"] for line in only)


def test_search_is_full_text_over_stored_stories(polled, cli_run):
    out = cli_run("search", "--config", polled, "abductees").output
    assert "Kim Jong-un" in out and "[abductees]" in out
    assert cli_run("search", "--config", polled, "zeppelin").output.strip() == "No stories match."
    bad = cli_run("search", "--config", polled, '"unbalanced')
    assert bad.exit_code == 2 and "query: unclosed quote at position 0" in bad.output


def test_sources_shows_status_errors_and_counts(polled, cli_run):
    out = cli_run("sources", "--config", polled).output
    assert re.search(r"wire  ok \(HTTP 200\)  stories: 2", out)
    assert re.search(r"dead  error  stories: 0", out) and "connection refused by 127.0.0.1:9" in out
    assert "ConnectError" not in out and "Errno" not in out


def test_alerts_shows_the_outbox(polled, cli_run):
    out = cli_run("alerts", "--config", polled).output
    assert out.count("sent") >= 6 and "console" in out


def test_once_fails_when_every_source_fails(make_config, cli_run):
    path = make_config('[sources.dead]\nurl = "http://127.0.0.1:9/x"\n')
    result = cli_run("once", "--config", path)
    assert result.exit_code == 1
    assert "1 error." in result.output and "dead: http://127.0.0.1:9/x: connection refused by 127.0.0.1:9" in result.output


def test_classify_reads_json_lines_and_writes_topics_scores_evidence(cli_run, make_config):
    lines = [
        {"id": "a", "title": "North Korea test-fires missile", "summary": "Pyongyang launched a missile."},
        {"id": "b", "title": "Local bakery wins award", "text": "Bread."},
        "not json",
    ]
    stdin = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    result = cli_run("classify", "--config", make_config(""), input=stdin)
    assert result.exit_code == 1  # the bad line
    assert "line 3: not valid JSON" in result.output
    out = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [o["id"] for o in out] == ["a", "b"]
    assert out[0]["topics"] == ["north_korea"] and out[0]["scores"]["north_korea"] > 0
    assert out[0]["evidence"]["north_korea"]["terms"]
    assert out[1]["topics"] == [] and out[1]["scores"] == {}


def test_eval_prints_precision_recall_f1_and_misclassified(cli_run, make_config, tmp_path):
    labels = tmp_path / "labels.jsonl"
    rows = [
        {"id": "1", "title": "Pyongyang fires missile", "summary": "", "labels": ["north_korea"]},
        {"id": "2", "title": "Kim Jong-un meets envoy", "summary": "", "labels": ["north_korea"]},
        {"id": "3", "title": "Seoul stocks rise", "summary": "", "labels": ["north_korea"]},
        {"id": "4", "title": "Recipe of the day", "summary": "", "labels": []},
    ]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli_run("eval", "--config", make_config(""), labels, "--json")
    figures = {w["watchlist"]: w for w in json.loads(result.output)["watchlists"]}
    assert figures["north_korea"] == {"watchlist": "north_korea", "tp": 2, "fp": 0, "fn": 1,
                                      "precision": 1.0, "recall": 0.6667, "f1": 0.8}
    text = cli_run("eval", "--config", make_config(""), labels).output
    assert "north_korea: false negatives (1)" in text and "3: Seoul stocks rise" in text


def test_every_command_has_help_and_is_in_the_readme(cli_run):
    from monitor.cli import cli

    readme = (ROOT / "README.md").read_text()
    for name in cli.commands:
        assert cli_run(name, "--help").exit_code == 0
        assert f"monitor {name}" in readme, f"README does not document `monitor {name}`"


def test_eval_says_when_a_watchlist_has_no_labelled_stories(cli_run, make_config, tmp_path):
    labels = tmp_path / "labels.jsonl"
    rows = [
        {"id": "1", "title": "Pyongyang fires missile", "summary": "", "labels": ["north_korea"]},
        {"id": "2", "title": "New tariffs on steel imports", "summary": "", "labels": ["north_korea"]},
    ]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = cli_run("eval", "--config", make_config(""), labels).output
    assert f"no story in {labels} is labelled trade: nothing to score (1 story matched it)" in text
    assert "abductions" in text and "0.000  1.000" not in text
    figures = {w["watchlist"]: w for w in json.loads(cli_run("eval", "--config", make_config(""), labels, "--json").output)["watchlists"]}
    assert figures["trade"]["recall"] is None and figures["trade"]["f1"] is None and figures["trade"]["fp"] == 1
    assert figures["north_korea"]["recall"] == 0.5
