"""Store throughput: one poll's write (stories, matches, outbox rows) and common reads, per store.

    python -m bench.store_write                      # SQLite
    python -m bench.store_write --postgres URL       # and PostgreSQL (an empty database or schema)
    python -m bench.store_write --baseline DIR       # and SQLite (and PostgreSQL, with --postgres) as
                                                     # another checkout stores it
                                                     # (e.g. `git archive main | tar -x -C DIR`)

Each store runs in a process of its own, the runs interleaved ``--rounds``
times; medians are printed. Figures from a loaded machine are noisy: compare
only figures of the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORIES, BATCH, READS = 3000, 50, 300


def measure(location: str) -> tuple[float, float]:
    """(stories stored per second, read rounds per second) of the store at ``location``, as this tree has it."""
    from monitor.models import Evidence, Match, Source, Story, Watchlist

    try:
        from monitor.storage import SourceOutcome, open_store
    except ImportError:  # a checkout from before the storage interface
        from monitor.store import SourceOutcome, Store

        def open_store(path: str):  # type: ignore[no-redef]
            return Store(path)

    watchlists = {"k": Watchlist(name="k", query="x", channels=("c",))}
    source = Source(name="f", url="http://127.0.0.1:9/f")
    text = "Officials said the talks would resume next week after a pause over the summer. " * 12
    store = open_store(location)
    store.sync_sources([source])
    start = time.perf_counter()
    for first in range(0, STORIES, BATCH):
        stories = [Story(id=f"s{i}", source="f", title=f"Talks {i}", text=text, url=f"http://n/{i}",
                         content_hash=f"h{i}") for i in range(first, first + BATCH)]
        matches = [Match(story_id=s.id, watchlist="k", score=1.0, classifier="kw", evidence=Evidence(terms=("x",)))
                   for s in stories[::5]]
        store.save_update(source, SourceOutcome(status="ok"), stories, [], matches, watchlists)
    write = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(READS):
        store.matches("k", limit=20)
        store.source_row("f")
        store.known_hashes([f"s{j}" for j in range(i, i + 50)])
    read = time.perf_counter() - start
    store.close()
    return STORIES / write, READS / read


def _child(tree: str, location: str) -> tuple[float, float]:
    """:func:`measure` in a fresh process importing ``monitor`` from ``tree``."""
    code = (f"import sys, importlib.util; sys.path.insert(0, {tree!r}); import monitor; "
            f"assert monitor.__file__.startswith({tree!r}), monitor.__file__; "
            f"spec = importlib.util.spec_from_file_location('store_write', {__file__!r}); "
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
            f"print(*module.measure({location!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tree)
    if out.returncode:
        raise SystemExit(f"store_write: measuring {location} with {tree} failed:\n{out.stderr[-2000:]}")
    write, read = out.stdout.split()
    return float(write), float(read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", help="an empty PostgreSQL database (or schema) to measure too")
    parser.add_argument("--baseline", help="another checkout whose stores to measure in the same run")
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for n in range(opts.rounds):
            cases = [("sqlite", str(ROOT), f"{folder}/this-{n}.db")]
            if opts.baseline:
                cases.append(("sqlite (baseline)", str(Path(opts.baseline).resolve()), f"{folder}/base-{n}.db"))
            if opts.postgres:
                cases.append(("postgresql", str(ROOT), opts.postgres))
                if opts.baseline:
                    cases.append(("postgresql (baseline)", str(Path(opts.baseline).resolve()), opts.postgres))
            for label, tree, location in cases:
                if label.startswith("postgresql"):
                    _empty_postgres(opts.postgres)
                runs.setdefault(label, []).append(_child(tree, location))
    print(f"{STORIES} stories in polls of {BATCH} (a match per 5), then {READS} read rounds; medians of {opts.rounds}")
    for label, figures in runs.items():
        write = statistics.median(w for w, _ in figures)
        read = statistics.median(r for _, r in figures)
        print(f"  {label:<21} {write:8,.0f} stories/s stored   {read:8,.0f} read rounds/s")


def _empty_postgres(url: str) -> None:
    """Empty the database's schema: tables, functions, aggregates, text search configurations, whatever a
    checkout's migrations made."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
