"""Database faults, each on a real SQLite file through the real ``monitor`` command:
a full disk, a read-only file, garbled bytes, a schema from a newer release.

Every one must end in one line naming the database file, no traceback, and
lose nothing: a poll that could not be stored is fetched and stored again.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from email.utils import format_datetime
from pathlib import Path

import pytest

from sqlite_utils import Database

from monitor.migrations import known_version, migrations

from conftest import ROOT, rss
from monitor import Monitor, load_config
from monitor.timeutil import utcnow

def stories(n: int) -> bytes:
    when = format_datetime(utcnow())
    return rss([{"title": f"Pyongyang story {i}", "guid": f"g{i}", "link": f"http://news.test/{i}",
                 "description": f"Officials in Pyongyang said thing number {i}. " * 30, "pubDate": when}
                for i in range(n)])


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m monitor ARGS`` as a real process."""
    return subprocess.run([sys.executable, "-m", "monitor", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def one_line_about(db: Path, err: str, words: str) -> str:
    """The last line of ``err`` naming ``db``, which must say ``words``; fails on a traceback.
    (The log and the summary may both name the failure: each says it in one line.)"""
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if str(db) in line]
    assert lines, err[-3000:]
    assert words in lines[-1], lines[-1]
    return lines[-1]


def feed_config(make_config, url: str, extra: str = "") -> Path:
    return make_config(f'[alerts]\nnew_source_window = 0\n[sources.feed]\nurl = "{url}"\n' + extra)


# -- a full disk ------------------------------------------------------------------------


LIMIT_PLUGIN = '''
from monitor import hookimpl

@hookimpl
def startup(monitor):
    # The database may grow by two pages: as good as a full disk for a poll of 200 stories.
    db = monitor.store.db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 2}")
'''


def test_a_full_disk_fails_the_poll_in_one_line_and_the_next_poll_stores_every_story(
        feed_server, make_config, tmp_path):
    url = feed_server.serve("/feed.xml", stories(200))  # answers 304 to a matching If-None-Match
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "size_limit.py").write_text(LIMIT_PLUGIN, encoding="utf-8")
    db = tmp_path / "monitor.db"
    text = f'[alerts]\nnew_source_window = 0\n[sources.feed]\nurl = "{url}"\n'
    roomy = make_config(text)
    full = make_config(f'[monitor]\nplugins_dir = "{plugins}"\n' + text, name="full.toml")

    failed = run_cli("once", "-c", full, cwd=tmp_path)
    assert failed.returncode == 1
    line = one_line_about(db, failed.stderr, "the disk is full")
    assert line.strip().startswith("feed: not stored:")
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT status, last_error, etag, body_hash FROM sources WHERE name = 'feed'").fetchone()
    assert conn.execute("SELECT count(*) FROM stories").fetchone()[0] == 0
    conn.close()
    assert row[0] == "error" and "the disk is full" in row[1]  # the failure is on record
    assert row[2] is None and row[3] is None  # and nothing that would make the next poll skip the stories

    stored = run_cli("once", "-c", roomy, cwd=tmp_path)
    assert stored.returncode == 0, stored.stderr[-2000:]
    assert "200 new stories" in stored.stdout and "0 errors" in stored.stdout
    second = feed_server.hits("/feed.xml")[-1]
    assert "If-None-Match" not in second.headers  # fetched in full, not answered 304


def test_a_failed_poll_that_cannot_be_recorded_is_recorded_by_the_next_write(feed_server, make_config):
    big = feed_server.serve("/big.xml", stories(200))
    small = feed_server.serve("/small.xml", rss([{"title": "Weather", "guid": "w1"}]))
    config = load_config(make_config(f'[sources.big]\nurl = "{big}"\n[sources.small]\nurl = "{small}"\n'), env={})
    with Monitor.open(config) as monitor:
        db = monitor.store.db
        # The sources' page nearly full, so that even the record of a failure needs a new page.
        db.execute("UPDATE sources SET last_note = ? WHERE name = 'small'", ["x" * 3600])
        db.conn.commit()
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        result = monitor.update_source("big")
        assert result.error and "the disk is full" in result.error
        assert monitor.store.source_row("big")["status"] == "new"  # even the record of it did not fit
        db.execute("PRAGMA max_page_count = 1073741823")
        assert monitor.update_source("small").new_stories == 1
        row = monitor.store.source_row("big")
        assert row["status"] == "error" and "the disk is full" in row["last_error"]
        assert monitor.update_source("big").new_stories == 200


# -- a read-only file -------------------------------------------------------------------


@pytest.fixture
def immutable():
    """``chattr +i`` on files, taken off again after the test. Root writes any file whatever
    its mode, but not an immutable one: SQLite then opens it read-only, as it does a
    read-only file of another user or a file on a read-only mount."""
    marked: list[Path] = []

    def mark(path: Path) -> None:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
        marked.append(path)

    yield mark
    for path in marked:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_a_read_only_database_is_refused_in_one_line_and_still_read(make_config, tmp_path, immutable):
    config = make_config(f'[alerts]\nnew_source_window = 0\n[sources.seeds]\nurl = "{ROOT / "seeds"}"\n'
                         'kind = "directory"\n')
    db = tmp_path / "monitor.db"
    first = run_cli("once", "-c", config, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    immutable(db)
    before = db.read_bytes()

    once = run_cli("once", "-c", config, cwd=tmp_path)
    assert once.returncode == 1
    one_line_about(db, once.stderr, "cannot be written (read-only file, folder or mount)")
    assert db.read_bytes() == before

    for command in ("matches", "sources", "alerts"):
        result = run_cli(command, "-c", config, cwd=tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "[north_korea]" in run_cli("matches", "-c", config, cwd=tmp_path).stdout  # read commands still read
    assert db.read_bytes() == before


# -- garbled bytes ----------------------------------------------------------------------


def garble(db: Path, pages: int = 4, seed: int = 7) -> None:
    """Overwrite ``pages`` pages in the middle of the file with random bytes (the header stays)."""
    size = db.stat().st_size
    page = 4096
    rng = random.Random(seed)
    with open(db, "r+b") as fh:
        for index in range(size // page // 2, size // page // 2 + pages):
            fh.seek(index * page)
            fh.write(rng.randbytes(page))


def test_a_damaged_database_is_never_written_and_says_how_to_recover(feed_server, make_config, tmp_path):
    url = feed_server.serve("/feed.xml", stories(300), etag=False)
    config = feed_config(make_config, url)
    db = tmp_path / "monitor.db"
    first = run_cli("once", "-c", config, cwd=tmp_path)
    assert first.returncode == 0 and "300 new stories" in first.stdout
    garble(db)
    damaged = db.read_bytes()

    once = run_cli("once", "-c", config, cwd=tmp_path)
    assert once.returncode == 1
    line = one_line_about(db, once.stderr, "the database file is damaged")
    assert f"sqlite3 {db} .recover | sqlite3 fixed.db" in line
    assert "new stories" not in once.stdout  # no poll ran against the damaged file
    assert db.read_bytes() == damaged
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0

    matches = run_cli("matches", "-c", config, cwd=tmp_path)
    one_line_about(db, matches.stderr, "damaged")
    assert db.read_bytes() == damaged



# -- a newer schema ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["migration", "user_version"])
def test_a_database_from_a_newer_release_is_refused_naming_both_versions(make_config, tmp_path, how):
    config = make_config('[sources.seeds]\nurl = "%s"\nkind = "directory"\n' % (ROOT / "seeds"))
    db = tmp_path / "monitor.db"
    assert run_cli("once", "-c", config, cwd=tmp_path).returncode == 0
    conn = sqlite3.connect(db)
    if how == "migration":
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES ('news_monitor', 'm999_from_a_later_release', '2030-01-01')")
    else:
        conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    for command in ("once", "matches", "run"):
        result = run_cli(command, "-c", config, cwd=tmp_path)
        assert result.returncode != 0
        line = one_line_about(db, result.stderr, "newer than this news-monitor knows")
        assert "version 999" in line and f"version {known_version()[0]}" in line
    assert db.read_bytes() == before


def test_processes_opening_a_new_database_together_all_get_it(tmp_path):
    # Three `monitor train` beside each other once failed with "database is
    # locked": each process's migrations read the schema, then one could not
    # turn its read transaction into a write after another had written.
    # Each process imports first, then all open at one signal: the race is on the open, not on import times.
    opener = ("import sys; from monitor.sqlite_store import SQLiteStore; print('ready', flush=True); "
              "sys.stdin.readline(); SQLiteStore(sys.argv[1]).close(); print('opened')")
    for attempt in range(2):
        db = tmp_path / f"new-{attempt}.db"
        procs = [subprocess.Popen([sys.executable, "-c", opener, str(db)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(6)]
        assert all(p.stdout.readline().strip() == "ready" for p in procs)
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=60)[0] for p in procs]
        assert all(out.strip() == "opened" for out in outputs), outputs
        assert migrations.pending(Database(db)) == []
        version = sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0]
        assert version == known_version()[0]
