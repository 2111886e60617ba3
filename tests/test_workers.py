"""Worker processes (schedule.processes): same results as in-process, one feed's failure per crash or hang,
a clean stop. Every test runs real worker processes over feeds from a loopback server."""

from __future__ import annotations

import os
import signal
import threading
import sqlite3
from pathlib import Path

from conftest import monitor_process, rss, seed_rss, shared_corpus, wait_for

# Loaded by path in the daemon and in every worker: says which process did what.
PROBE_PLUGIN = '''
import os
import signal
import threading
import time

from monitor import Match, hookimpl


class Everywhere:
    """Crosses into workers: its matches name the process that made them."""

    def classify(self, stories, watchlists):
        for story in stories:
            if "MARKER" in story.title:
                yield Match(story_id=story.id, watchlist="marked", score=5.0, classifier=f"crossing-{os.getpid()}")


class HomeOnly:
    runs_in_workers = False

    def classify(self, stories, watchlists):
        for story in stories:
            if "MARKER" in story.title:
                yield Match(story_id=story.id, watchlist="home", score=5.0, classifier=f"home-{os.getpid()}")


@hookimpl
def register_classifiers(register):
    register("everywhere", Everywhere())
    register("home_only", HomeOnly())


@hookimpl
def prepare_story(story):
    return {"author": f"pid {os.getpid()}"}


@hookimpl
def parse_feed(source, fetched):
    if "/crash" in fetched.url:
        os.kill(os.getpid(), signal.SIGKILL)
    if "/hang" in fetched.url:
        time.sleep(600)
    return None
'''

WATCHLISTS = '''
[watchlists.marked]
query = "zzzunused"
[watchlists.home]
query = "zzzunused"
'''


def _config(make_config, tmp_path: Path, sources: dict[str, str], processes: int, extra: str = "") -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "probe.py").write_text(PROBE_PLUGIN, encoding="utf-8")
    tables = "".join(f'[sources.{name}]\nurl = "{url}"\n' for name, url in sources.items())
    return make_config(
        f'[monitor]\nplugins_dir = "{plugins}"\n[schedule]\nprocesses = {processes}\nprocess_timeout = 5\n'
        f'interval = 3600\njitter = 0\n{extra}[alerts]\nnew_source_window = 0\n{WATCHLISTS}{tables}',
        name=f"monitor-{processes}.toml",
    )


def _rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _feeds(feed_server) -> dict[str, str]:
    sources = {
        "wire": feed_server.serve("/seeds.xml", seed_rss()),
        "marked": feed_server.serve("/marked.xml", rss([
            {"title": "MARKER one", "guid": "m1", "description": "North Korea fired a missile."},
            {"title": "Weather", "guid": "m2", "description": "Rain."},
        ])),
    }
    corpus = shared_corpus("feeds")
    for index, name in enumerate(("arminreiter__FeedReader/AtomTheVerge.xml",
                                  "arminreiter__FeedReader/AtomAdobe.xml")):
        sources[f"corpus{index}"] = feed_server.serve(f"/corpus{index}.xml", (corpus / name).read_bytes(),
                                                      headers={"Content-Type": "application/atom+xml"})
    return sources


STORIES = ("SELECT id, source, title, text, summary, url, published_at, language, content_hash, cluster_id "
           "FROM stories ORDER BY id")
MATCHES = "SELECT story_id, watchlist, score, evidence FROM matches ORDER BY story_id, watchlist"


def test_once_in_worker_processes_stores_what_in_process_stores(feed_server, make_config, tmp_path, cli_run):
    sources = _feeds(feed_server)
    results = {}
    for processes in (0, 2):
        db = tmp_path / f"p{processes}.db"
        config = _config(make_config, tmp_path, sources, processes)
        result = cli_run("once", "--config", config, "--db", db)
        assert result.exit_code == 0, result.output
        authors = {a for (a,) in _rows(db, "SELECT DISTINCT author FROM stories")}
        classifiers = {c for (c,) in _rows(db, "SELECT classifier FROM matches WHERE watchlist IN ('marked', 'home')")}
        results[processes] = (_rows(db, STORIES), _rows(db, MATCHES), authors, classifiers)
    (stories0, matches0, authors0, classifiers0), (stories2, matches2, authors2, classifiers2) = results[0], results[2]
    assert len(stories0) > 20 and stories2 == stories0
    # Clustering runs in the writer after classify either way: every new story has a cluster.
    assert all(row[-1] for row in stories0)
    assert any(w not in ("marked", "home") for _, w, _, _ in matches0) and matches2 == matches0
    # In-process everything ran here; with workers, normalising and crossing classifiers ran elsewhere,
    # and the classifier that asked to stay home still ran here.
    assert authors0 == {f"pid {os.getpid()}"}
    assert authors2 and f"pid {os.getpid()}" not in authors2 and len(authors2) <= 2
    assert classifiers0 == {f"crossing-{os.getpid()}", f"home-{os.getpid()}"}
    crossing = {c for c in classifiers2 if c.startswith("crossing-")}
    assert crossing and f"crossing-{os.getpid()}" not in crossing
    assert f"home-{os.getpid()}" in classifiers2


def test_a_worker_killed_or_hanging_costs_only_that_feed(feed_server, make_config, tmp_path, cli_run):
    sources = {
        "crash": feed_server.serve("/crash.xml", rss([{"title": "Never read", "guid": "c1"}])),
        "hang": feed_server.serve("/hang.xml", rss([{"title": "Never read either", "guid": "h1"}])),
        "wire": feed_server.serve("/seeds.xml", seed_rss()),
    }
    config = _config(make_config, tmp_path, sources, processes=2)
    db = tmp_path / "monitor.db"
    result = cli_run("once", "--config", config)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    errors = dict(_rows(db, "SELECT name, last_error FROM sources"))
    assert errors["crash"] == "the worker process died while reading this feed (killed by signal 9); " \
                              "a new one takes its place"
    assert errors["hang"] == "the worker process reading this feed took longer than 5s (process_timeout); " \
                             "it was stopped"
    assert errors["wire"] is None
    assert _rows(db, "SELECT source, count(*) FROM stories GROUP BY source") == [("wire", 2)]
    # The workers that replaced the lost ones read the next poll.
    feed_server.serve("/seeds.xml", seed_rss("http://other.test"))
    result = cli_run("once", "--config", config, "--source", "wire")
    assert result.exit_code == 0, result.output
    assert _rows(db, "SELECT count(*) FROM stories WHERE source = 'wire'") == [(4,)]


def test_sigterm_stops_the_daemon_and_its_workers(feed_server, make_config, tmp_path):
    sources = _feeds(feed_server)
    config = _config(make_config, tmp_path, sources, processes=2, extra="dispatch_interval = 1\n")
    db = tmp_path / "monitor.db"
    proc = monitor_process("run", "--config", str(config), cwd=tmp_path)
    try:
        wait_for(lambda: db.exists() and _count_polled(db) == len(sources), timeout=60)
        workers = {int(a.split()[1]) for (a,) in _rows(db, "SELECT DISTINCT author FROM stories")}
        assert workers and proc.pid not in workers and all(_alive(pid) for pid in workers)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10)


def _count_polled(db: Path) -> int:
    try:
        return _rows(db, "SELECT count(*) FROM sources WHERE last_fetch_at IS NOT NULL")[0][0]
    except sqlite3.OperationalError:
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie no longer runs anything: it only waits for its parent to read its exit status.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_reads_from_other_threads_do_not_wait_for_a_write_in_progress(tmp_path):
    from monitor.models import Source, Story
    from monitor.store import SourceOutcome, Store

    store = Store(tmp_path / "monitor.db")
    source = Source(name="wire", url="http://news.test/feed.xml")
    store.sync_sources([source])
    store.save_update(source, SourceOutcome(status="ok"), [Story(id="a", source="wire", title="A", text="a",
                                                                 content_hash="h1")], [], [], {})
    inside, release, read = threading.Event(), threading.Event(), {}

    def writer():
        with store.write() as db:
            db.execute("UPDATE stories SET content_hash = 'uncommitted' WHERE id = 'a'")
            inside.set()
            release.wait(30)

    def reader():
        read["hashes"] = store.known_hashes(["a", "b"])

    holding = threading.Thread(target=writer)
    holding.start()
    try:
        assert inside.wait(30)
        reading = threading.Thread(target=reader)
        reading.start()
        reading.join(20)
        # The read finished while the write transaction was still open, and saw only what was committed.
        assert not reading.is_alive() and read["hashes"] == {"a": "h1"}
    finally:
        release.set()
        holding.join(30)
        store.close()
