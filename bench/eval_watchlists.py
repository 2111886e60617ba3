"""Precision, recall and F1 of the shipped watchlists on the labelled corpora.

Usage: python bench/eval_watchlists.py [--shared DIR] [--show-errors WATCHLIST] [--halves]
                                        [--export-topics-jsonl PATH] [--learned [--mirrors DIR | --news FILE]]

Reads the watchlists from monitor/defaults.toml, builds one KeywordMatcher with
the shipped settings and reports, per watchlist, figures on:

- the AG News dev set (feed-sized stories labelled to TOPICS.md);
- Reuters-21578 train (full-length articles) twice: against Reuters' own
  ``trade`` topic, and against our TOPICS.md labels of the same articles
  (``tests/data/reuters_topics_labels.jsonl``, see ``tests/data/README.md``),
  with and without the cases the annotators marked borderline;
- the full-length articles and the abduction stories written for the tests
  (reported apart from the real data);
- the two seed articles.

``--halves`` adds the Reuters figures on odd and even ``newid`` halves, a
held-out view: tune on one half, check the other. ``--export-topics-jsonl``
writes the TOPICS.md-labelled Reuters set as JSON lines for ``monitor eval``.

Stories are read and scored with ``monitor.evaluation``, as ``monitor eval`` does.
These are the queries' figures; ``--learned`` reports the learned models'
held-out figures (k-fold cross-validated and cross-corpus) beside the naive
floor and the query, as ``scripts/train_shipped_models.py`` records them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.evaluation import InputError, LabelledStory, Scores, read_stories, score  # noqa: E402
from monitor.query import KeywordMatcher  # noqa: E402

DEFAULT_SHARED = ROOT.parent / "shared"
NAMES = ("north_korea", "abductions", "trade")


def load_watchlists(path: Path = ROOT / "monitor" / "defaults.toml") -> dict:
    with path.open("rb") as f:
        return tomllib.load(f)["watchlists"]


def build_matcher(watchlists: dict) -> KeywordMatcher:
    return KeywordMatcher(
        {name: wl["query"] for name, wl in watchlists.items()},
        title_weights={n: wl["title_weight"] for n, wl in watchlists.items() if "title_weight" in wl},
    )


def classify(matcher: KeywordMatcher, watchlists: dict, item: LabelledStory) -> set[str]:
    """The watchlists whose score reaches their threshold, as the daemon decides."""
    return {name for name, (value, _) in matcher.match(item.story.title, item.story.text).items()
            if value >= watchlists[name].get("threshold", 1.0)}


def read_labelled(lines: Iterable[str], where: str) -> list[LabelledStory]:
    out = []
    for item in read_stories(lines, source=where):
        if isinstance(item, InputError):
            raise SystemExit(f"{where}: {item}")
        if item.labels is None:
            raise SystemExit(f"{where}: line {item.line}: no \"labels\" list")
        out.append(item)
    return out


def ag_news_dev(shared: Path) -> list[LabelledStory]:
    path = shared / "corpora" / "ag_news" / "dev.jsonl"
    with path.open(encoding="utf-8") as f:
        return read_labelled(f, str(path))


def _reuters_lines(path: Path, labels_of: Callable[[dict], list[str]]) -> Iterator[str]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                row["labels"] = labels_of(row)
                yield json.dumps(row)


def reuters_train(shared: Path) -> list[LabelledStory]:
    """Reuters-21578 train; Reuters' own topic 'trade' is the gold for our trade watchlist."""
    path = shared / "corpora" / "reuters21578" / "train.jsonl"
    return read_labelled(_reuters_lines(path, lambda row: ["trade"] if "trade" in row.get("topics", []) else []),
                         str(path))


TOPICS_LABELS = ROOT / "tests" / "data" / "reuters_topics_labels.jsonl"


def reuters_topics(shared: Path, labels: Path = TOPICS_LABELS) -> tuple[list[LabelledStory], set[str]]:
    """Reuters-21578 train with our TOPICS.md labels in place of Reuters' topics.

    Returns the stories and the ids whose label the annotators marked borderline.
    Articles outside the labelled pool (none of the pool's trade words) are
    negatives for every topic.
    """
    ours = {}
    with labels.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                ours[str(row["newid"])] = row
    path = shared / "corpora" / "reuters21578" / "train.jsonl"
    lines = _reuters_lines(path, lambda row: ours.get(str(row["newid"]), {}).get("labels", []))
    borderline = {newid for newid, row in ours.items() if row.get("borderline")}
    return read_labelled(lines, f"{path} + {labels}"), borderline


def written_abductions(root: Path = ROOT) -> list[LabelledStory]:
    path = root / "tests" / "data" / "abductions_written.jsonl"
    with path.open(encoding="utf-8") as f:
        return read_labelled(f, str(path))


def written_long(root: Path = ROOT) -> list[LabelledStory]:
    path = root / "tests" / "data" / "long_articles_written.jsonl"
    with path.open(encoding="utf-8") as f:
        return read_labelled(f, str(path))


def seeds(root: Path = ROOT) -> list[LabelledStory]:
    """The seed articles, read as the directory source reads them; each carries all three labels."""
    rows = []
    for path in sorted((root / "seeds").glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        while lines and not lines[0].strip():
            lines.pop(0)
        rows.append(json.dumps({"id": path.stem, "title": lines[0].strip(), "text": "\n".join(lines[1:]),
                                "labels": list(NAMES)}))
    return read_labelled(rows, str(root / "seeds"))


def evaluate(matcher: KeywordMatcher, watchlists: dict, items: Iterable[LabelledStory],
             names: Iterable[str]) -> dict[str, Scores]:
    items = list(items)
    predicted = {item.story.id: classify(matcher, watchlists, item) for item in items}
    gold = {item.story.id: item.labels or frozenset() for item in items}
    return score(names, predicted, gold)


def describe(s: Scores) -> str:
    return f"P={s.precision:.3f} R={s.recall:.3f} F1={s.f1:.3f} (tp={s.tp} fp={s.fp} fn={s.fn})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--show-errors", metavar="WATCHLIST", action="append", default=[])
    parser.add_argument("--halves", action="store_true", help="also report Reuters on its odd and even newid halves")
    parser.add_argument("--learned", action="store_true",
                        help="report the learned models' held-out figures instead: k-fold cross-validated and "
                             "cross-corpus, beside the naive floor and the query (bench/learned_eval.py)")
    parser.add_argument("--mirrors", type=Path, default=ROOT.parent / ".mirror",
                        help="with --learned: git mirrors of the blind-labelled stories' repositories")
    parser.add_argument("--news", type=Path, metavar="FILE",
                        help="with --learned: the blind-labelled stories rebuilt by scripts/labelled_news.py --out")
    parser.add_argument("--export-topics-jsonl", type=Path, metavar="PATH",
                        help="write Reuters train with our TOPICS.md labels as JSON lines for 'monitor eval', then stop")
    args = parser.parse_args(argv)
    if args.learned:
        import learned_eval

        try:
            learned_eval.report(args.shared, args.mirrors, args.news)
        except (learned_eval.labelled_news.SourceError, OSError) as exc:
            print(f"error: the blind-labelled stories cannot be read: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.export_topics_jsonl:
        relabelled, borderline = reuters_topics(args.shared)
        with args.export_topics_jsonl.open("w", encoding="utf-8") as out:
            for item in relabelled:
                out.write(json.dumps({"id": item.story.id, "title": item.story.title, "text": item.story.text,
                                      "labels": sorted(item.labels or ()),
                                      "borderline": item.story.id in borderline}) + "\n")
        print(f"wrote {len(relabelled)} stories to {args.export_topics_jsonl}")
        return 0
    watchlists = load_watchlists()
    matcher = build_matcher(watchlists)
    reuters = reuters_train(args.shared)
    relabelled, borderline = reuters_topics(args.shared)
    clear = [i for i in relabelled if i.story.id not in borderline]
    suites = [
        ("AG News dev", ag_news_dev(args.shared), list(watchlists)),
        ("Reuters-21578 train, Reuters' own 'trade' topic", reuters, ["trade"]),
        ("Reuters-21578 train, labelled to TOPICS.md", relabelled, ["trade"]),
        ("Reuters-21578 train, labelled to TOPICS.md, borderline cases left out", clear, ["trade"]),
        ("full-length articles written for the tests (not real data)", written_long(), list(watchlists)),
        ("abduction stories written for the tests (not real data)", written_abductions(), ["abductions"]),
        ("seed articles", seeds(), list(watchlists)),
    ]
    if args.halves:
        suites[4:4] = [(f"{what}, {half} newids", [i for i in items if int(i.story.id) % 2 == rest], ["trade"])
                       for what, items in (("Reuters-21578 train, Reuters' topic", reuters),
                                           ("Reuters-21578 train, TOPICS.md, borderline left out", clear))
                       for half, rest in (("odd", 1), ("even", 0))]
    for title, items, names in suites:
        results = evaluate(matcher, watchlists, items, names)
        print(f"== {title}: {len(items)} docs")
        by_id = {item.story.id: item.story for item in items}
        for n in names:
            print(f"  {n:12s} {describe(results[n])}")
            if n in args.show_errors:
                for kind, ids in (("FP", results[n].false_positives), ("FN", results[n].false_negatives)):
                    for sid in ids:
                        story = by_id[sid]
                        print(f"     {kind} {sid}: {story.title[:100]} | {story.text[:200]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
