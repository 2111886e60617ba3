"""The cluster stage's read-back on a store several processes write.

PostgreSQL with a fleet of workers, or SQLite with `monitor once` beside the daemon.

A worker's index is a cache of the database's clusters: it reads the window
once, then every story stored after the last rowid it has seen. A story
committed while a worker starts must be either in what it read or after the
rowid it counts from; one that falls between is never read, and its outlets'
copies start clusters of their own on that worker.
"""

from __future__ import annotations

import threading

from monitor.cluster_stage import StoryClusters
from monitor.clustering import ClusterSettings
from monitor.models import Source, Story
from monitor.storage import SourceOutcome, open_store
from monitor.timeutil import utcnow

FEED = Source(name="feed", url="http://127.0.0.1:9/feed.xml")


def story(n: int, prefix: str = "w") -> Story:
    words = " ".join(f"term{n}x{k}" for k in range(12))
    return Story(id=f"{prefix}{n}", source="feed", title=f"Story {n} {words}", text=words,
                 url=f"http://news.test/{prefix}/{n}", published=utcnow(), content_hash=f"h{prefix}{n}")


def test_a_worker_starting_while_another_commits_misses_no_committed_story(monitor_db: str) -> None:
    writer_store, reader_store = open_store(monitor_db), open_store(monitor_db)
    settings = ClusterSettings(enabled=True)
    writer = StoryClusters(writer_store, settings)
    writer_store.sync_sources([FEED])
    stop = threading.Event()
    written = [0]

    def write() -> None:
        n = 0
        while not stop.is_set():
            new = [story(n)]
            profiles = writer.prepare(new)
            writer_store.save_update(FEED, SourceOutcome(status="ok"), new, [], [], {},
                                     clusters=lambda stories: writer.assign_serialised(stories, profiles))
            writer.write_ended(True)
            n += 1
            written[0] = n

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        workers = []
        # Workers start (their first read-back) one after another while the writer commits.
        while (written[0] < 100 or len(workers) < 20) and thread.is_alive():
            worker = StoryClusters(reader_store, settings)
            worker.prepare([story(len(workers), prefix="probe")])
            workers.append(worker)
    finally:
        stop.set()
        thread.join(timeout=30)
    stored = {row["id"] for row in reader_store.query("SELECT id FROM stories")}
    assert len(stored) >= 100 and len(workers) >= 20, (len(stored), len(workers))
    missed = {}
    for number, worker in enumerate(workers):
        worker.prepare([story(100000 + number, prefix="probe")])  # a catch-up after the writer stopped
        lost = sorted(stored - set(worker.index.members))
        if lost:
            missed[number] = lost
    writer_store.close()
    reader_store.close()
    assert not missed, f"stories committed but never read back, by worker: {missed}"
