"""Precision, recall and F1 of the shipped watchlists on the labelled corpora.

Usage: python bench/eval_watchlists.py [--shared DIR] [--show-errors WATCHLIST]

Reads the watchlists from monitor/defaults.toml, builds one KeywordMatcher and
reports, per watchlist, figures on the AG News dev set (the main figure), on
Reuters-21578 train (trade only), on the hand-written abductions set (written
for tests, reported apart from the real data) and on the two seed articles.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.query import KeywordMatcher  # noqa: E402

DEFAULT_SHARED = ROOT.parent / "shared"


@dataclass(frozen=True)
class Doc:
    id: str
    title: str
    text: str
    labels: frozenset[str]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __str__(self) -> str:
        return (f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f} "
                f"(tp={self.tp} fp={self.fp} fn={self.fn})")


def load_watchlists(path: Path = ROOT / "monitor" / "defaults.toml") -> dict:
    with path.open("rb") as f:
        return tomllib.load(f)["watchlists"]


def build_matcher(watchlists: dict) -> KeywordMatcher:
    return KeywordMatcher(
        {name: wl["query"] for name, wl in watchlists.items()},
        title_weights={n: wl["title_weight"] for n, wl in watchlists.items() if "title_weight" in wl},
    )


def classify(matcher: KeywordMatcher, watchlists: dict, doc: Doc) -> set[str]:
    """The watchlists whose score reaches their threshold, as the daemon decides."""
    return {name for name, (score, _) in matcher.match(doc.title, doc.text).items()
            if score >= watchlists[name].get("threshold", 1.0)}


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def ag_news_dev(shared: Path) -> list[Doc]:
    return [Doc(r["id"], r["title"], r["summary"], frozenset(r["labels"]))
            for r in read_jsonl(shared / "corpora" / "ag_news" / "dev.jsonl")]


def reuters_train(shared: Path) -> list[Doc]:
    # Reuters' own topic 'trade' is the gold for our trade watchlist.
    return [Doc(str(r["newid"]), r.get("title", ""), r.get("body", ""),
                frozenset({"trade"} if "trade" in r.get("topics", []) else ()))
            for r in read_jsonl(shared / "corpora" / "reuters21578" / "train.jsonl")]


def written_abductions(root: Path = ROOT) -> list[Doc]:
    return [Doc(r["id"], r["title"], r["text"], frozenset(r["labels"]))
            for r in read_jsonl(root / "tests" / "data" / "abductions_written.jsonl")]


def seeds(root: Path = ROOT) -> list[Doc]:
    docs = []
    for path in sorted((root / "seeds").glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        while lines and not lines[0].strip():
            lines.pop(0)
        docs.append(Doc(path.stem, lines[0].strip(), "\n".join(lines[1:]),
                        frozenset({"north_korea", "abductions", "trade"})))
    return docs


def evaluate(matcher: KeywordMatcher, watchlists: dict, docs: Iterable[Doc],
             names: Iterable[str]) -> tuple[dict[str, Counts], dict[str, list[tuple[str, Doc]]]]:
    names = list(names)
    counts = {n: Counts() for n in names}
    errors: dict[str, list[tuple[str, Doc]]] = {n: [] for n in names}
    for doc in docs:
        got = classify(matcher, watchlists, doc)
        for n in names:
            if n in got and n in doc.labels:
                counts[n].tp += 1
            elif n in got:
                counts[n].fp += 1
                errors[n].append(("FP", doc))
            elif n in doc.labels:
                counts[n].fn += 1
                errors[n].append(("FN", doc))
    return counts, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--show-errors", metavar="WATCHLIST", action="append", default=[])
    args = parser.parse_args(argv)
    watchlists = load_watchlists()
    matcher = build_matcher(watchlists)
    suites = [
        ("AG News dev", ag_news_dev(args.shared), list(watchlists)),
        ("Reuters-21578 train", reuters_train(args.shared), ["trade"]),
        ("written abductions (for tests, not real data)", written_abductions(), ["abductions"]),
        ("seed articles", seeds(), list(watchlists)),
    ]
    for title, docs, names in suites:
        counts, errors = evaluate(matcher, watchlists, docs, names)
        print(f"== {title}: {len(docs)} docs")
        for n in names:
            print(f"  {n:12s} {counts[n]}")
            if n in args.show_errors:
                for kind, doc in errors[n]:
                    print(f"     {kind} {doc.id}: {doc.title[:100]} | {doc.text[:200]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
