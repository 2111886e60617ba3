"""Growth that stops: pruning gives the space back, tombstones expire, `once` prunes too."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from conftest import ROOT
from monitor import Monitor, load_config
from monitor.errors import ConfigErrors
from monitor.store import Store
from monitor.timeutil import to_iso, utcnow

LONG_AGO = "2000-01-01T00:00:00+00:00"


def insert_stories(store: Store, count: int, first_seen: str, prefix: str = "bulk") -> None:
    """``count`` news-sized stories, written as the pipeline writes them (FTS triggers included)."""
    text = "Officials said the talks would resume next week after a pause over the summer. " * 12
    with store.write() as db:
        db.execute("INSERT OR IGNORE INTO sources (name, url, kind, status) VALUES ('bulk', 'http://127.0.0.1/', 'feed', 'ok')")
        db.executemany(
            "INSERT INTO stories (id, source, guid, url, title, text, summary, first_seen_at, updated_at, content_hash) "
            "VALUES (?, 'bulk', ?, ?, ?, ?, '', ?, ?, 'h')",
            ((f"{prefix}-{i}", f"{prefix}{i}", f"http://news.test/{i}", f"Story number {i} about the talks", text,
              first_seen, first_seen) for i in range(count)),
        )


@pytest.mark.slow
def test_pruning_100k_stories_shrinks_the_file_and_tombstones_expire(make_config, tmp_path, capsys):
    config = load_config(make_config('[retention]\nmax_age = "30d"\ntombstone_max_age = "400d"\n'), env={})
    with Monitor.open(config) as monitor:
        store = monitor.store
        insert_stories(store, 100_000, LONG_AGO)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = store.file_size()
        assert monitor.prune() == 100_000
        after = store.file_size()
        tombstones = store.query("SELECT count(*) AS n FROM pruned_stories")[0]["n"]
        assert tombstones == 100_000
        with capsys.disabled():
            print(f"\n100k stories: {before / 1e6:.1f} MB before pruning, {after / 1e6:.1f} MB after")
        assert after < before * 0.2

        # A year and more later the ids are forgotten, and their pages given back too.
        with store.write() as db:
            db.execute("UPDATE pruned_stories SET pruned_at = ?", [to_iso(utcnow() - timedelta(days=401))])
        insert_stories(store, 1, LONG_AGO, prefix="late")
        monitor.prune()
        assert store.query("SELECT count(*) AS n FROM pruned_stories")[0]["n"] == 1
        assert store.file_size() < after * 0.3


def test_an_existing_database_without_auto_vacuum_is_converted_on_open(tmp_path):
    db = tmp_path / "old.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA auto_vacuum = NONE")
    conn.execute("VACUUM")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name LIKE 'm005_%'")
    conn.commit()
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0  # as every database made before
    conn.close()
    store = Store(db)
    try:
        assert store.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    finally:
        store.close()


def test_once_applies_retention_like_the_daemon(make_config, tmp_path, cli_run):
    config = make_config(f'[retention]\nmax_age = "2d"\n[sources.seeds]\nurl = "{ROOT / "seeds"}"\n'
                         'kind = "directory"\n[watchlists.north_korea]\nenabled = false\n'
                         '[watchlists.abductions]\nenabled = false\n[watchlists.trade]\nenabled = false\n')
    assert cli_run("once", "-c", config).exit_code == 0
    db = tmp_path / "monitor.db"
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT count(*) FROM stories").fetchone()[0]
    conn.execute("UPDATE stories SET first_seen_at = ?", [LONG_AGO])
    conn.commit()
    conn.close()
    assert stored > 0
    assert cli_run("once", "-c", config).exit_code == 0
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM stories").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pruned_stories").fetchone()[0] == stored
    conn.close()


def test_tombstones_must_outlive_the_stories(make_config):
    with pytest.raises(ConfigErrors) as caught:
        load_config(make_config('[retention]\nmax_age = "30d"\nmatched_max_age = "500d"\n'), env={})
    assert "retention.tombstone_max_age" in str(caught.value) and "longer than" in str(caught.value)
