"""The measured side of the benchmark: each task runs in its own process.

``python -m bench.child TASK ARGS.json`` runs one task and prints its figures
as one JSON line. The parent reads the process's peak resident memory from
``os.wait4``, so every figure of memory is that of this process alone.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx


def _set_server_mode(server: str, conditional: bool) -> None:
    httpx.get(f"{server}/_mode", params={"conditional": "1" if conditional else "0"}).raise_for_status()


def _file_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


# -- news-monitor -----------------------------------------------------------------


def monitor_cycles(args: dict[str, Any]) -> dict[str, Any]:
    """A full cycle, the alert backlog drained, a 304 cycle and an unchanged-bytes cycle."""
    from monitor import Monitor, load_config

    config = load_config(args["config"])
    out: dict[str, Any] = {"max_workers": config.schedule["max_workers"]}
    with Monitor.open(config) as monitor:
        out["full"] = _cycle(monitor)
        # run_once delivered the first batch; queue every alert of the cycle again
        # so the whole outbox is drained, through the real outbox, while timed.
        with monitor.store.write() as db:
            db.execute("UPDATE outbox SET status = 'pending', next_attempt_at = '1970-01-01T00:00:00+00:00'")
        started = time.perf_counter()
        sent = failed = 0
        while True:
            result = monitor.dispatch()
            sent, failed = sent + result.sent, failed + result.failed
            if result.sent + result.failed + result.retrying == 0:
                break
        elapsed = time.perf_counter() - started
        out["alerts"] = {"sent": sent, "failed": failed, "wall_s": elapsed,
                         "alerts_per_s": sent / elapsed if elapsed else 0.0}
        out["not_modified"] = _cycle(monitor)
        _set_server_mode(args["server"], conditional=False)
        try:
            out["unchanged"] = _cycle(monitor)
        finally:
            _set_server_mode(args["server"], conditional=True)
        out["stories_stored"] = monitor.store.counts()["stories"]
    out["db_bytes"] = _file_bytes(Path(config.db_path))
    return out


def _cycle(monitor: Any) -> dict[str, Any]:
    started = time.perf_counter()
    results = monitor.run_once()
    elapsed = time.perf_counter() - started
    new = sum(r.new_stories for r in results)
    return {
        "wall_s": elapsed,
        "sources": len(results),
        "new_stories": new,
        "not_modified": sum(1 for r in results if r.not_modified),
        "errors": sum(1 for r in results if r.error),
        "matches": sum(r.matches for r in results),
        "stories_per_s": new / elapsed if elapsed else 0.0,
    }


# -- the bare lower bound -----------------------------------------------------------


def bare(args: dict[str, Any]) -> dict[str, Any]:
    """httpx + feedparser.parse + one sqlite-utils transaction: the least any monitor must do."""
    import feedparser
    from sqlite_utils import Database

    urls: list[str] = args["urls"]
    db = Database(args["db"])
    db.execute("PRAGMA journal_mode = WAL")
    db["entries"].create({"feed": str, "guid": str, "title": str, "link": str, "summary": str,
                          "content": str, "published": str}, pk=("feed", "guid"))
    validators: dict[str, str] = {}
    client = httpx.Client(timeout=20, follow_redirects=True, limits=httpx.Limits(max_connections=args["workers"] * 2))

    # With "processes", feedparser runs in that many processes fed with the fetched bytes
    # (as news-monitor's schedule.processes does), else in the fetching threads.
    processes = int(args.get("processes") or 0)
    parsers = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) if processes else None

    def fetch_parse(url: str) -> list[dict[str, Any]]:
        headers = {"If-None-Match": validators[url]} if url in validators else {}
        response = client.get(url, headers=headers)
        if response.status_code == 304:
            return []
        if "etag" in response.headers:
            validators[url] = response.headers["etag"]
        if parsers is not None:
            return parsers.submit(_bare_entries, url, response.content).result()
        return _bare_entries(url, response.content)

    def cycle() -> dict[str, Any]:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args["workers"]) as pool:
            batches = list(pool.map(fetch_parse, urls))
        before = db["entries"].count
        with db.conn:
            db["entries"].insert_all((row for batch in batches for row in batch), ignore=True, batch_size=500)
        new = db["entries"].count - before
        elapsed = time.perf_counter() - started
        return {"wall_s": elapsed, "new_stories": new, "stories_per_s": new / elapsed if elapsed else 0.0}

    out = {"full": cycle(), "not_modified": cycle(), "processes": processes}
    if parsers is not None:
        parsers.shutdown()
    client.close()
    db.close()
    out["db_bytes"] = _file_bytes(Path(args["db"]))
    return out


def _bare_entries(url: str, content: bytes) -> list[dict[str, Any]]:
    import feedparser

    parsed = feedparser.parse(content, sanitize_html=False, resolve_relative_uris=False)
    return [{"feed": url, "guid": e.get("id") or e.get("link") or e.get("title") or str(i),
             "title": e.get("title"), "link": e.get("link"), "summary": e.get("summary"),
             "content": (e.get("content") or [{}])[0].get("value"), "published": e.get("published")}
            for i, e in enumerate(parsed.entries)]


# -- lemon24/reader -----------------------------------------------------------------


def reader_baseline(args: dict[str, Any]) -> dict[str, Any]:
    """lemon24's reader updating the same feeds into its own database."""
    import reader

    r = reader.make_reader(args["db"])
    for url in args["urls"]:
        r.add_feed(url)

    def cycle() -> dict[str, Any]:
        before = r.get_entry_counts().total
        started = time.perf_counter()
        r.update_feeds(workers=args["workers"])
        elapsed = time.perf_counter() - started
        new = r.get_entry_counts().total - before
        return {"wall_s": elapsed, "new_stories": new, "stories_per_s": new / elapsed if elapsed else 0.0}

    out = {"version": reader.__version__, "full": cycle(), "not_modified": cycle()}
    r.close()
    out["db_bytes"] = _file_bytes(Path(args["db"]))
    return out


# -- keyword matching and embeddings ---------------------------------------------------


def _stories_from(db: str, limit: int) -> list[Any]:
    from monitor import Story

    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT id, source, title, text FROM stories ORDER BY rowid LIMIT ?", [limit]).fetchall()
    conn.close()
    return [Story(id=i, source=s, title=t, text=x) for i, s, t, x in rows]


def classify(args: dict[str, Any]) -> dict[str, Any]:
    """Stories per second through ``Monitor.classify`` with the given watchlists."""
    from monitor import Monitor, load_config

    stories = _stories_from(args["stories_db"], args["stories"])
    config = load_config(args["config"])
    with Monitor.open(config) as monitor:
        wanted = args.get("classifier")
        if wanted:
            if wanted not in monitor.classifiers:
                return {"skipped": f"no classifier named {wanted!r} is loaded"}
            for name in list(monitor.classifiers):
                if name != wanted:
                    del monitor.classifiers[name]
        monitor.classify(stories[:10])  # build the matcher outside the timing
        # Batches until every story is done or the time budget is spent, so a
        # slow classifier still gives a figure in bounded time.
        done = matches = 0
        per_watchlist: dict[str, int] = {}
        started = time.perf_counter()
        while done < len(stories) and time.perf_counter() - started < args.get("budget_s", 60):
            batch = stories[done:done + 50]
            found = monitor.classify(batch)
            matches += len(found)
            for match in found:
                per_watchlist[match.watchlist] = per_watchlist.get(match.watchlist, 0) + 1
            done += len(batch)
        elapsed = time.perf_counter() - started
    busiest = max(per_watchlist, key=per_watchlist.__getitem__, default=None)
    return {"watchlists": len(config.watchlists), "stories": done, "matches": matches,
            "wall_s": elapsed, "stories_per_s": done / elapsed if elapsed else 0.0,
            "busiest_watchlist": busiest, "busiest_share": per_watchlist.get(busiest, 0) / done if done else 0.0}


# -- growth -----------------------------------------------------------------------------


def prefill(args: dict[str, Any]) -> dict[str, Any]:
    """A database of ``count`` synthetic stories through the real schema (FTS rebuilt once at the end)."""
    import random

    from monitor.store import Store

    path = Path(args["db"])
    count = args["count"]
    rng = random.Random(count)
    words = ("market government minister talks border election energy court police report trade "
             "bank storm health school water power city river company workers union price data "
             "north south east west summit deal policy rise fall plan vote army fire rail port").split()
    store = Store(path)
    db = store.db
    triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'stories'").fetchall()
    started = time.perf_counter()
    with store.write():
        for name, _ in triggers:
            db.execute(f"DROP TRIGGER [{name}]")

        def rows() -> Any:
            for i in range(count):
                title = " ".join(rng.choices(words, k=8)).capitalize()
                text = " ".join(rng.choices(words, k=60))
                yield {"id": f"prefill:{i}", "source": f"prefill-{i % 1000}", "guid": str(i),
                       "url": f"http://127.0.0.1/prefill/{i}", "title": title, "text": text, "summary": "",
                       "published_at": "2026-01-01T00:00:00+00:00", "fetched_at": "2026-01-01T00:00:00+00:00",
                       "first_seen_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
                       "author": None, "language": "en", "content_hash": f"{i:064x}"}

        db["stories"].insert_all(rows(), batch_size=2000)
        db.execute("INSERT INTO stories_fts (stories_fts) VALUES ('rebuild')")
        for _, sql in triggers:
            db.execute(sql)
    store.close()
    return {"count": count, "wall_s": time.perf_counter() - started, "db_bytes": _file_bytes(path)}


def growth(args: dict[str, Any]) -> dict[str, Any]:
    """One full cycle through the real pipeline into a copy of a pre-filled database.

    ``store_s`` adds up the time the worker threads spent in store calls,
    waiting for the store's lock included: compare it between database sizes,
    not with the wall time.
    """
    from monitor import Monitor, load_config

    shutil.copyfile(args["prefilled"], args["db"])
    config = load_config(args["config"])
    with Monitor.open(config) as monitor:
        timer = _StoreTimer(monitor.store)
        cycle = _cycle(monitor)
        cycle["store_s"] = timer.seconds
        cycle["store_rows_per_s"] = cycle["new_stories"] / timer.seconds if timer.seconds else 0.0
    return cycle


class _StoreTimer:
    """Adds up the time the pipeline spends in the store's per-poll reads and writes."""

    def __init__(self, store: Any):
        self.seconds = 0.0
        for name in ("known_hashes", "save_update", "fetch_state", "record_poll"):
            setattr(store, name, self._timed(getattr(store, name)))

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds += time.perf_counter() - started
        return timed


# Where a poll's time goes, by the file the time is spent in (first match wins).
PROFILE_PARTS = (
    ("feed parsing (feedparser, fast path)", ("/feedparser/", "/sgmllib", "xml/sax", "expat", "xml/etree",
                                              "plugins/feed_parser.py", "plugins/well_formed_feed.py")),
    ("learned classifier", ("plugins/learned", "/sklearn/", "/scipy/", "/numpy/")),
    ("clustering", ("monitor/clustering.py", "monitor/cluster_stage.py")),
    ("keyword matching", ("monitor/query.py", "plugins/keywords.py", "ahocorasick")),
    ("normalisation (HTML to text)", ("monitor/normalize.py", "/ftfy/", "html/parser.py", "html/__init__.py",
                                      "_markupbase")),
    ("storage (SQLite, FTS)", ("monitor/store.py", "sqlite_utils", "sqlite3")),
    ("fetching (httpx)", ("/httpx/", "/httpcore/", "/h11/", "socket", "ssl.py", "selectors")),
)


def profile(args: dict[str, Any]) -> dict[str, Any]:
    """cProfile of polls one after another in this process: each part's share of the time."""
    import cProfile
    import pstats

    from monitor import Monitor, load_config

    config = load_config(args["config"])
    with Monitor.open(config) as monitor:
        profiler = cProfile.Profile()
        profiler.enable()
        for source in config.sources.values():
            monitor.update_source(source)
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts: dict[str, float] = {name: 0.0 for name, _ in PROFILE_PARTS}
    parts["other"] = 0.0
    for key, (_, _, tottime, _, callers) in stats.items():
        for part, seconds in _charged_parts(stats, key, tottime, callers):
            parts[part] += seconds
    total = sum(parts.values()) or 1.0
    return {"sources": len(config.sources), "total_s": total, "shares": {k: v / total for k, v in parts.items()}}


def _part_of(filename: str) -> str | None:
    return next((n for n, marks in PROFILE_PARTS if any(m in filename for m in marks)), None)


def _charged_parts(stats: dict[Any, Any], key: tuple[str, int, str], seconds: float, callers: dict[Any, Any],
                   depth: int = 0) -> list[tuple[str, float]]:
    """Whose time ``seconds`` in ``key`` is: its file's part, else (a builtin such as ``re.findall`` or
    ``str.lower``, or a stdlib helper) its callers' parts in proportion to their calls' time."""
    part = _part_of(key[0])
    if part is not None:
        return [(part, seconds)]
    total = sum(entry[2] for entry in callers.values())
    if depth >= 4 or not callers or total <= 0:
        return [("other", seconds)]
    out = []
    for caller, entry in callers.items():
        share = seconds * entry[2] / total
        caller_callers = stats[caller][4] if caller in stats else {}
        out.extend(_charged_parts(stats, caller, share, caller_callers, depth + 1))
    return out


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "monitor": monitor_cycles, "profile": profile, "bare": bare, "reader": reader_baseline,
    "classify": classify, "prefill": prefill, "growth": growth,
}


class MemorySampler:
    """The peak of the resident memory of this process and all its descendants, summed:
    ``os.wait4`` gives one process's peak, which misses worker processes."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while True:  # sample first: a short task must still be measured once
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass  # ended between the listing and the reading
            self.peak = max(self.peak, total)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    task, args_file = sys.argv[1], Path(sys.argv[2])
    with MemorySampler() as memory:
        result = TASKS[task](json.loads(args_file.read_text(encoding="utf-8")))
    result["peak_rss_sum_mb"] = memory.peak / 2**20
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
