"""The out-of-the-box run: the default configuration over seeds/."""

import sqlite_utils

from conftest import ROOT


def test_default_config_matches_both_seeds_on_all_three_watchlists(tmp_path, cli_run, monkeypatch):
    monkeypatch.chdir(ROOT)
    db = tmp_path / "monitor.db"

    first = cli_run("once", "--db", db)
    assert first.exit_code == 0, first.output
    assert "2 new stories" in first.output and "6 new matches" in first.output

    rows = sqlite_utils.Database(db).query(
        "SELECT s.title, group_concat(m.watchlist) AS lists FROM stories s JOIN matches m ON m.story_id = s.id GROUP BY s.id"
    )
    found = {row["title"]: set(row["lists"].split(",")) for row in rows}
    assert len(found) == 2
    assert all(lists == {"north_korea", "abductions", "trade"} for lists in found.values())
    # The console channel printed one alert per match.
    assert first.output.count("=== [") == 6

    second = cli_run("once", "--db", db)
    assert second.exit_code == 0
    assert "0 new stories" in second.output and "0 new matches" in second.output
    assert "=== [" not in second.output
    outbox = list(sqlite_utils.Database(db).query("SELECT status, count(*) AS n FROM outbox GROUP BY status"))
    assert outbox == [{"status": "sent", "n": 6}]
