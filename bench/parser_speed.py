"""Parse-only speed: the well-formed fast path against feedparser, on the real feeds of the corpus.

    python bench/parser_speed.py [--repeat 3]

Reads every file of ../shared/corpora/feeds/INDEX.tsv into memory, then times
(CPU seconds of this process, best of ``--repeat``) the ``feed_parser`` plugin's
two roads on the same bytes, served as ``application/xml; charset=utf-8`` like
the bench's server: feedparser alone, and the plugin as it runs (the fast path,
falling back to feedparser where it steps aside).
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from pathlib import Path

from monitor import FetchResult
from monitor_plugins import feed_parser
from monitor_plugins.well_formed_feed import read_entries

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "feeds"
SERVED_AS = "application/xml; charset=utf-8"


def _bodies() -> list[bytes]:
    with open(CORPUS / "INDEX.tsv", encoding="utf-8", newline="") as fh:
        paths = [CORPUS / row["path"] for row in csv.DictReader(fh, delimiter="\t")]
    return [feed_parser._prepare(path.read_bytes(), str(path)) for path in paths]


def _feedparser(body: bytes) -> int:
    fetched = FetchResult(url="http://127.0.0.1/feed", content=body, media_type="application/xml")
    try:
        return len(feed_parser._parse_with_feedparser(body, {"content-type": SERVED_AS}, fetched))
    except Exception:
        return 0


def _plugin(body: bytes) -> int:
    entries = read_entries(body, SERVED_AS)
    return len(entries) if entries is not None else _feedparser(body)


def _best(parse, bodies: list[bytes], repeat: int) -> tuple[float, int]:
    best, entries = float("inf"), 0
    for _ in range(repeat):
        started = time.process_time()
        entries = sum(parse(body) for body in bodies)
        best = min(best, time.process_time() - started)
    return best, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    warnings.simplefilter("ignore")
    bodies = _bodies()
    fast_only = [body for body in bodies if read_entries(body, SERVED_AS) is not None]
    rows = [
        ("every file", bodies, [("feedparser", _feedparser), ("feed_parser plugin", _plugin)]),
        ("files the fast path reads", fast_only, [("feedparser", _feedparser), ("fast path", _plugin)]),
    ]
    for label, chosen, roads in rows:
        print(f"{label}: {len(chosen)} files")
        timings = {}
        for road, parse in roads:
            seconds, entries = _best(parse, chosen, repeat)
            timings[road] = seconds
            print(f"  {road:<20} {seconds:6.2f} CPU s  {entries / seconds:8,.0f} entries per CPU s ({entries} entries)")
        first, second = timings.values()
        print(f"  speed-up {first / second:.1f} x")


if __name__ == "__main__":
    main()
