"""The cost of the cluster stage per story as the database grows.

Usage::

    python -m bench.cluster_scale [--sizes 10000,1000000] [--per-day 1000] [--dir DIR] [--embeddings auto|true|false]

For each size it builds a real database of that many stored stories, arriving
at ``--per-day`` stories a day (so the 3-day window always holds the same
number, whatever the size), opens a real :class:`monitor.Monitor` on it, and
measures

- ``startup_s``: reading the window back into the clustering index (first batch);
- ``embed_window_s``: with embeddings, embedding the stories read back (else
  done lazily, each the first time it is a candidate; once per start);
- ``per_story_ms``: clustering plus storing (with the one-alert-per-cluster
  check) for batches of new stories, some of them copies of stored ones;
- ``peak_rss_mb``: the process's peak resident memory so far (with
  ``--embeddings true`` it includes torch and the model).

``--embeddings`` sets ``[clustering] embeddings`` (``false`` by default here:
the words-alone model; ``true`` measures the sentence-embedding signal, which
needs the ``semantic`` extra). Run one process per setting: the peak memory
is the process's.

The per-story figure should not grow with the size. Bulk loading drops the
full-text triggers (they cost most of the load and clustering never reads
the full-text index) and puts them back afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from monitor import Match, Monitor, Story, load_config
from monitor.store import SourceOutcome
from monitor.story_embeddings import embedding_mode
from monitor.timeutil import to_iso, utcnow

WORDS = [f"w{i}" for i in range(20000)]  # a Zipf-like vocabulary of made-up words
SOURCES = [f"outlet{i}" for i in range(40)]
BATCHES = 20
BATCH = 25


def _text(rng: random.Random, n: int) -> str:
    return " ".join(WORDS[min(int(rng.paretovariate(0.8)) - 1, len(WORDS) - 1)] for _ in range(n))


def build(path: Path, size: int, per_day: int, rng: random.Random, embeddings: str = "false") -> None:
    """A database with ``size`` stories, the newest first seen now, ``per_day`` a day before that."""
    config = _config(path, embeddings)
    Monitor.open(config).close()  # the schema, by the real migrations
    conn = sqlite3.connect(path)
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'stories'").fetchall()
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    now = utcnow()
    step = 86400 / per_day
    rows = []
    for i in range(size):
        when = to_iso(now - timedelta(seconds=(size - i) * step))
        story_id = f"s{i}"
        rows.append((story_id, SOURCES[i % len(SOURCES)], _text(rng, 8), _text(rng, 40), f"https://n.test/{i}",
                     when, when, when, story_id))
        if len(rows) == 10000:
            _insert(conn, rows)
            rows = []
    if rows:
        _insert(conn, rows)
    for _, sql in triggers:
        conn.execute(sql)
    conn.commit()
    conn.close()


def _insert(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    conn.executemany(
        "INSERT INTO stories (id, source, title, text, url, published_at, first_seen_at, updated_at, cluster_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()


def _config(path: Path, embeddings: str):
    """The built-in defaults (their watchlists and console channel), on the database at ``path``."""
    toml = path.with_suffix(".toml")
    value = embeddings if embeddings in ("true", "false") else f'"{embeddings}"'
    toml.write_text(f"[clustering]\nembeddings = {value}\n", encoding="utf-8")
    return load_config(toml, db=path)


def measure(path: Path, rng: random.Random, embeddings: str = "false") -> dict[str, float]:
    config = _config(path, embeddings)
    with Monitor.open(config) as monitor:
        source = next(iter(config.sources.values()), None)
        watchlist = next(iter(config.watchlists))
        recent = monitor.store.query("SELECT title, text FROM stories ORDER BY rowid DESC LIMIT 200")
        started = time.perf_counter()
        monitor.clusters.assign([_story(rng, "warm", 0, None)])
        startup = time.perf_counter() - started
        window = len(monitor.clusters.index)
        # With embeddings, the stories read back are embedded lazily, the first time they are a
        # candidate: a one-off cost after each start, measured apart from the steady per-story cost.
        index = monitor.clusters.index
        started = time.perf_counter()
        index.prepare([*index.leaders.values(), *(m for kept in index.followers.values() for m in kept)])
        warmup = time.perf_counter() - started
        spent = 0.0
        for b in range(BATCHES):
            # A third of the new stories are other outlets' copies of stored ones.
            stories = [_story(rng, f"b{b}-{i}", i, recent[rng.randrange(len(recent))] if i % 3 == 0 else None)
                       for i in range(BATCH)]
            matches = [Match(story_id=s.id, watchlist=watchlist, score=1.0, classifier="bench") for s in stories]
            started = time.perf_counter()
            clustered = monitor.clusters.assign(stories)
            monitor.store.save_update(source or _bench_source(), SourceOutcome(status="ok"), clustered, [], matches,
                                      dict(config.watchlists), alert=True)
            spent += time.perf_counter() - started
    # ru_maxrss is in KiB on Linux.
    return {"startup_s": round(startup, 3), "window_stories": window, "embed_window_s": round(warmup, 3),
            "per_story_ms": round(1000 * spent / (BATCHES * BATCH), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _bench_source():
    from monitor import Source

    return Source(name="bench", url="file:///dev/null")


def _story(rng: random.Random, key: str, i: int, copy_of: dict | None) -> Story:
    now = utcnow()
    title = copy_of["title"] if copy_of else _text(rng, 8)
    text = copy_of["text"] if copy_of else _text(rng, 40)
    return Story(id=f"new-{key}", source=f"fresh{i % 5}", title=title, text=text, url=f"https://fresh.test/{key}",
                 published=now, fetched=now)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--per-day", type=int, default=1000)
    parser.add_argument("--dir", type=Path, help="where to build the databases (default: a temporary folder)")
    parser.add_argument("--embeddings", type=embedding_mode, default="false",
                        help="[clustering] embeddings: true measures the sentence-embedding signal (semantic extra)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size in sizes:
            rng = random.Random(size)
            path = Path(tmp) / f"scale-{size}.db"
            started = time.perf_counter()
            build(path, size, args.per_day, rng, args.embeddings)
            print(f"{size} stories stored in {time.perf_counter() - started:.0f}s", file=sys.stderr)
            results[size] = measure(path, rng, args.embeddings)
            print(json.dumps({"stored": size, "embeddings": args.embeddings, **results[size]}))
            path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
