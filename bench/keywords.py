"""Keyword matching at 3 and at 100 realistic watchlists, in CPU seconds, and their ratio.

    python -m bench.keywords [--stories 3000] [--repeat 5] [--adversarial]

Reads the stories of the shared corpus feeds once (parsed and normalised as the
monitor does), then times the keyword classifier alone over the same stories
with the 3 shipped watchlists and with 97 more (``bench/watchlists.py``):
process CPU time, best of ``--repeat``, the two sides interleaved in the same
process after one untimed warm-up pass each. A wall-clock figure on a shared
machine swung from 0.27 x to 1.02 x between runs; this one holds within a few
hundredths.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace

from bench.watchlists import extra_watchlists, realistic_watchlists
from bench.workload import CORPUS, corpus_files
from monitor import EntryLimits, FetchResult, Source, Story, Watchlist, load_config
from monitor.normalize import normalize_entry
from monitor.timeutil import utcnow
from monitor_plugins import feed_parser
from monitor_plugins.well_formed_feed import read_entries
from plugins.keywords import KeywordClassifier

SERVED_AS = "application/xml; charset=utf-8"


def corpus_stories(limit: int | None = None) -> list[Story]:
    """The corpus feeds' entries as stories (ids ``s00000``...), in the index's order."""
    warnings.simplefilter("ignore")
    now = utcnow()
    stories: list[Story] = []
    for path in corpus_files():
        source = Source(path.stem, str(path))
        body = feed_parser._prepare(path.read_bytes(), str(path))
        entries = read_entries(body, SERVED_AS)
        if entries is None:
            try:
                entries = feed_parser._parse_with_feedparser(
                    body, {"content-type": SERVED_AS}, FetchResult(url=str(path), content=body, media_type="application/xml"))
            except Exception:
                continue  # a file the monitor rejects gives no stories
        for entry in entries[:EntryLimits().max_entries]:
            story = normalize_entry(entry, source, now)
            stories.append(replace(story, id=f"s{len(stories):05d}"))
            if limit is not None and len(stories) >= limit:
                return stories
    return stories


def watchlist_sets() -> dict[str, list[Watchlist]]:
    """The shipped watchlists, and them with the realistic and the adversarial 97 more."""
    shipped = list(load_config(None).watchlists.values())

    def with_extra(extra: dict[str, str]) -> list[Watchlist]:
        return shipped + [Watchlist(name=name, query=query) for name, query in extra.items()]

    return {"3": shipped, "100 realistic": with_extra(realistic_watchlists()),
            "100 adversarial": with_extra(extra_watchlists())}


def _classify_all(classifier: KeywordClassifier, stories: Sequence[Story], watchlists: Sequence[Watchlist]) -> int:
    # Batches of 50, as the bench's Monitor.classify loop passes them.
    return sum(1 for i in range(0, len(stories), 50) for _ in classifier.classify(stories[i:i + 50], watchlists))


def best_cpu_seconds(runs: dict[str, Callable[[], int]], repeat: int) -> dict[str, tuple[float, int]]:
    """``{label: (best CPU seconds, matches)}``, the runs interleaved ``repeat`` times after one warm-up each."""
    for run in runs.values():
        run()
    best = {label: (float("inf"), 0) for label in runs}
    for _ in range(repeat):
        for label, run in runs.items():
            started = time.process_time()
            matches = run()
            best[label] = (min(best[label][0], time.process_time() - started), matches)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--adversarial", action="store_true", help="also time the 100 adversarial watchlists")
    opts = parser.parse_args()
    stories = corpus_stories(opts.stories)
    if not stories:
        raise SystemExit(f"bench.keywords: no stories in the corpus feeds at {CORPUS} (the shared corpora belong beside the checkout)")
    sets = watchlist_sets()
    if not opts.adversarial:
        del sets["100 adversarial"]
    # One classifier per set, so each keeps its compiled matcher as the monitor does.
    runs = {label: (lambda c=KeywordClassifier(), w=chosen: _classify_all(c, stories, w))
            for label, chosen in sets.items()}
    timings = best_cpu_seconds(runs, opts.repeat)
    for label, (seconds, matches) in timings.items():
        print(f"keyword matching, {label:<15} {len(stories) / seconds:8,.0f} stories per CPU s "
              f"({len(stories)} stories, {matches} matches, best of {opts.repeat})")
    base = timings["3"][0]
    for label in timings:
        if label != "3":
            print(f"{label} vs 3: {base / timings[label][0]:.2f} x (want >= 0.8 for realistic)")


if __name__ == "__main__":
    main()
