"""``python -m bench``: run the whole benchmark, print the table, write the JSON.

The feed server runs in its own process; every measured side (news-monitor,
the bare lower bound, reader, the classifiers, the growth runs) runs in a
child process of its own so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from . import report, workload
from .watchlists import extra_watchlists, realistic_watchlists

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
WORKERS = 4  # the monitor's default schedule.max_workers; the baselines get the same
PROCESSES = os.cpu_count() or 1  # the process-pool bare loop parses in one process per core (--processes sets the monitor's)
EMBEDDING_CLASSIFIERS = ("semantic", "embeddings", "embedding")


class FeedServer:
    """The benchmark's HTTP server process (see :mod:`bench.server`)."""

    def __init__(self, folder: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.server", str(folder)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def stats(self) -> dict[str, float]:
        return httpx.get(f"{self.url}/_stats").json()

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_child(task: str, args: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run ``bench.child TASK`` and add its peak RSS and CPU time (from ``os.wait4``)."""
    args_file = work / f"{task}-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps(args), encoding="utf-8")
    log = work / f"{task}.log"
    with log.open("a", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bench.child", task, str(args_file)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8")[-3000:]
        raise RuntimeError(f"bench child {task!r} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    # All processes together never used less than the child alone at its peak (sampling can miss that moment).
    result["peak_rss_sum_mb"] = max(result.get("peak_rss_sum_mb", 0.0), result["peak_rss_mb"])
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def write_config(path: Path, *, db: Path, urls: list[str], hook: str, extra: dict[str, str] | None = None,
                 processes: int | None = None) -> Path:
    """A monitor configuration: the given feeds, every watchlist alerting the loopback webhook."""
    from monitor import load_config

    defaults = load_config(None).watchlists
    lines = ["[monitor]", f"db = {json.dumps(str(db))}", 'log_level = "WARNING"',
             f"plugins_dir = {json.dumps(str(BENCH / 'plugins'))}", "",
             "[channels.hook]", 'type = "bench_webhook"', f"url = {json.dumps(hook)}", "",
             # The workload is a full cycle of new entries, all alerting: a
             # first poll's alert window would leave the dispatcher idle.
             "[alerts]", "new_source_window = 0", "",
             # The feeds are served on loopback, which the network policy refuses by default.
             "[fetch]", 'allow_networks = ["127.0.0.1"]', ""]
    if processes is not None:
        lines += ["[schedule]", f"processes = {processes}", ""]
    for name in defaults:
        lines += [f"[watchlists.{name}]", 'channels = ["hook"]', ""]
    for name, query in (extra or {}).items():
        lines += [f"[watchlists.{name}]", f"query = {json.dumps(query)}", 'channels = ["hook"]', ""]
    for i, url in enumerate(urls):
        lines += [f"[sources.s{i:05d}]", f"url = {json.dumps(url)}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _with_server_cost(server: FeedServer, fn: Any) -> tuple[dict[str, Any], dict[str, float]]:
    before, started = server.stats(), time.perf_counter()
    result = fn()
    after, wall = server.stats(), time.perf_counter() - started
    cpu = after["cpu_s"] - before["cpu_s"]
    return result, {"cpu_s": cpu, "wall_s": wall, "cpu_share": cpu / wall if wall else 0.0,
                    "requests": after["feeds"] + after["not_modified"] - before["feeds"] - before["not_modified"]}


def run(opts: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in opts.sizes.split(",")]
    growth_counts = [int(s) for s in opts.growth.split(",")] if opts.growth else []
    work = Path(tempfile.mkdtemp(prefix="news-monitor-bench-"))
    cache = opts.cache
    results: dict[str, Any] = {"meta": _meta(opts, sizes), "sizes": {}}
    try:
        started = time.perf_counter()
        wl = workload.build(work / "feeds", max(sizes))
        results["meta"]["workload"] = {"origin": wl.origin, "templates": wl.templates,
                                       "build_s": time.perf_counter() - started}
        _say(f"workload: {max(sizes)} feeds from {wl.templates} {wl.origin} files in {work / 'feeds'}")
        server = FeedServer(work / "feeds")
        try:
            for size in sizes:
                results["sizes"][str(size)] = _run_size(size, server, work, opts)
            biggest = work / f"monitor-{max(sizes)}.db"
            results["keywords"] = _keywords(biggest, server, work, opts)
            results["embeddings"] = _embeddings(biggest, server, work)
            results["growth"] = _growth(growth_counts, min(100, max(sizes)), server, work, cache)
            results["profile"] = _profile(min(100, max(sizes)), server, work)
        finally:
            server.stop()
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            _say(f"kept {work}")
    results["meta"]["loadavg_end"] = os.getloadavg()[0]
    results["derived"] = report.derive(results)
    return results


def _run_size(size: int, server: FeedServer, work: Path, opts: argparse.Namespace) -> dict[str, Any]:
    urls = [f"{server.url}/{workload.feed_name(i)}" for i in range(size)]
    config = write_config(work / f"monitor-{size}.toml", db=work / f"monitor-{size}.db", urls=urls, hook=f"{server.url}/hook",
                          processes=opts.processes)
    _say(f"{size} sources: news-monitor")
    mon, cost = _with_server_cost(server, lambda: run_child("monitor", {"config": str(config), "server": server.url}, work))
    out: dict[str, Any] = {"monitor": mon, "server": {"monitor_cpu_s": cost["cpu_s"], "monitor_cpu_share": cost["cpu_share"],
                                                      "requests": cost["requests"]}}
    _say(f"{size} sources: bare lower bound")
    out["bare"] = run_child("bare", {"urls": urls, "db": str(work / f"bare-{size}.db"), "workers": WORKERS}, work)
    _say(f"{size} sources: bare lower bound with {PROCESSES} parser processes")
    out["bare_pool"] = run_child("bare", {"urls": urls, "db": str(work / f"bare-pool-{size}.db"), "workers": WORKERS,
                                          "processes": PROCESSES}, work)
    if not opts.no_reader:
        _say(f"{size} sources: reader")
        out["reader"] = run_child("reader", {"urls": urls, "db": str(work / f"reader-{size}.db"), "workers": WORKERS}, work)
    return out


def _keywords(stories_db: Path, server: FeedServer, work: Path, opts: argparse.Namespace) -> dict[str, Any]:
    out = {}
    sets = (("watchlists_3", None), ("watchlists_100", realistic_watchlists()),
            ("watchlists_100_adversarial", extra_watchlists()))
    for label, extra in sets:
        _say(f"keyword matching: {label}")
        config = write_config(work / f"{label}.toml", db=work / f"{label}.db", urls=[], hook=f"{server.url}/hook", extra=extra)
        out[label] = run_child("classify", {"config": str(config), "stories_db": str(stories_db),
                                            "stories": opts.classify_stories, "classifier": "keywords",
                                            "budget_s": opts.classify_budget}, work)
    return out


def _embeddings(stories_db: Path, server: FeedServer, work: Path) -> dict[str, Any]:
    if importlib.util.find_spec("sentence_transformers") is None:
        return {"skipped": "sentence-transformers is not installed (pip install -e '.[semantic]')"}
    config = write_config(work / "embeddings.toml", db=work / "embeddings.db", urls=[], hook=f"{server.url}/hook")
    for name in EMBEDDING_CLASSIFIERS:
        _say(f"embedding classifier: trying {name}")
        result = run_child("classify", {"config": str(config), "stories_db": str(stories_db), "stories": 200,
                                        "classifier": name}, work)
        if "skipped" not in result:
            return {"classifier": name, **result}
    return {"skipped": "sentence-transformers is installed but no embedding classifier plugin is loaded"}


def _growth(counts: list[int], sources: int, server: FeedServer, work: Path, cache: Path) -> dict[str, Any]:
    out = {}
    cache.mkdir(exist_ok=True)
    urls = [f"{server.url}/{workload.feed_name(i)}" for i in range(sources)]
    for count in counts:
        prefilled = cache / f"prefill-{count}.db"
        if not prefilled.exists():
            _say(f"growth: pre-filling a database with {count:,} stories (cached in {cache})")
            partial = prefilled.with_suffix(".partial")
            for stale in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
                stale.unlink(missing_ok=True)
            run_child("prefill", {"db": str(partial), "count": count}, work)
            partial.rename(prefilled)
        _say(f"growth: one cycle of {sources} sources into {count:,} stored stories")
        db = work / f"growth-{count}.db"
        config = write_config(work / f"growth-{count}.toml", db=db, urls=urls, hook=f"{server.url}/hook")
        out[str(count)] = run_child("growth", {"config": str(config), "prefilled": str(prefilled), "db": str(db)}, work)
        db.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    return out


def _profile(sources: int, server: FeedServer, work: Path) -> dict[str, Any]:
    """Where a poll's time goes (cProfile, in-process, one poll after another): printed for what misses."""
    _say(f"profile: {sources} sources polled one after another")
    urls = [f"{server.url}/{workload.feed_name(i)}" for i in range(sources)]
    config = write_config(work / "profile.toml", db=work / "profile.db", urls=urls, hook=f"{server.url}/hook", processes=0)
    return run_child("profile", {"config": str(config)}, work)


def _meta(opts: argparse.Namespace, sizes: list[int]) -> dict[str, Any]:
    import feedparser
    import sqlite3

    try:
        import psutil
        memory = psutil.virtual_memory().total
    except ImportError:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python -m bench", *(shlex.quote(a) for a in sys.argv[1:])]),
        "python": platform.python_version(), "platform": platform.platform(),
        "cores": os.cpu_count(), "memory_gib": round(memory / 2**30, 1),
        "sqlite": sqlite3.sqlite_version, "feedparser": feedparser.__version__,
        "sizes": sizes, "workers": WORKERS, "processes": PROCESSES,
        # Other work on the machine skews every figure: the load average says how busy it was.
        "loadavg_start": os.getloadavg()[0],
    }


def _say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="comma-separated numbers of sources (default 100,1000,5000; --quick: 100)")
    parser.add_argument("--quick", action="store_true", help="100 sources, small growth run, fewer stories to classify")
    parser.add_argument("--no-reader", action="store_true", help="skip the reader baseline")
    parser.add_argument("--processes", type=int,
                        help="news-monitor's schedule.processes (default: its default, 0: in-process)")
    parser.add_argument("--growth", help="stored-story counts to insert into (default 10000,1000000; --quick: 10000,100000; '' skips)")
    parser.add_argument("--classify-stories", type=int, help="stories for the keyword figures (default 3000; --quick 1000)")
    parser.add_argument("--classify-budget", type=float, default=60.0,
                        help="stop classifying after this many seconds and report what was done (default 60)")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="folder for the JSON (default bench/results)")
    parser.add_argument("--compare", type=Path, metavar="OLD.json", help="print new/old ratios against an earlier run")
    parser.add_argument("--report", type=Path, metavar="RUN.json", help="print the table of an earlier run (no new run)")
    parser.add_argument("--cache", type=Path, default=BENCH / "cache",
                        help="folder for the pre-filled growth databases, reused across runs (default bench/cache)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (feeds, databases, logs)")
    opts = parser.parse_args(argv)
    opts.sizes = opts.sizes or ("100" if opts.quick else "100,1000,5000")
    if opts.growth is None:
        opts.growth = "10000,100000" if opts.quick else "10000,1000000"
    opts.classify_stories = opts.classify_stories or (1000 if opts.quick else 3000)
    return opts


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    if opts.report:
        results = json.loads(opts.report.read_text(encoding="utf-8"))
    else:
        results = run(opts)
        opts.out.mkdir(parents=True, exist_ok=True)
        path = opts.out / f"{results['meta']['timestamp'].replace(':', '')}.json"
        path.write_text(json.dumps(results, indent=2), encoding="utf-8")
        _say(f"figures written to {path}")
    print(report.table(results))
    if opts.compare:
        print()
        print(report.compare(opts.compare, results))
