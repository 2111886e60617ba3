"""Training sets for the shipped watchlist models and their honest evaluation.

Used by ``scripts/train_shipped_models.py`` (which writes the models and their
provenance) and ``bench/eval_watchlists.py --learned`` (which only measures).

Every figure here is held out: k-fold cross-validation over the pooled sets,
and cross-corpus runs (train on one corpus, test on another), each beside the
naive floor (three regular expressions per watchlist) and the shipped query.
Synthetic examples (``scripts/training/synthetic_*.jsonl``) are trained on but
never scored.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import eval_watchlists as ev  # noqa: E402
from monitor.evaluation import LabelledStory, floor_predicts  # noqa: E402
from monitor.query import KeywordMatcher  # noqa: E402
from monitor_plugins.learned_model import Example, Figures, out_of_fold_predictions, train  # noqa: E402

NAMES = ev.NAMES
# A cross-corpus run needs this many positives in its training corpus to mean anything.
MIN_TRAIN_POSITIVES = 20
SYNTHETIC_DIR = ROOT / "scripts" / "training"
DEFAULT_LABELDATA = ROOT.parent / "labeldata"

@dataclass
class Corpus:
    """A labelled set: ``scored`` is false for synthetic data (trained on, never measured)."""

    name: str
    items: list[LabelledStory]
    scored: bool = True
    # Ids whose label is borderline for a watchlist: left out of training and of figures for it.
    borderline: dict[str, set[str]] | None = None
    # The watchlists its labels speak for (a set labelled for one topic says nothing of the others).
    topics: tuple[str, ...] = NAMES


def labeldata_corpora(directory: Path) -> list[Corpus]:
    """The blind-labelled real stories another helper writes to ``directory`` (``READY`` marks them usable).

    Labels are ``labels/*.jsonl`` rows ``{"uid", "labels", "borderline"}``; the texts are in
    ``pool.jsonl`` by ``uid``. A story two annotators disagree on, or one marked
    borderline, is left out: either answer would be right.
    """
    if not (directory / "READY").exists() or not (directory / "pool.jsonl").exists():
        return []
    verdicts: dict[str, list[tuple[frozenset[str], bool]]] = {}
    for path in sorted((directory / "labels").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    verdicts.setdefault(row["uid"], []).append((frozenset(row.get("labels") or ()),
                                                                bool(row.get("borderline"))))
    clear = {uid: v[0][0] for uid, v in verdicts.items()
             if len({labels for labels, _ in v}) == 1 and not any(b for _, b in v)}
    rows = []
    with (directory / "pool.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["uid"] in clear:
                rows.append(json.dumps({"id": row["uid"], "title": row.get("title") or "", "text": row.get("text") or "",
                                        "labels": sorted(clear[row["uid"]])}))
    return [Corpus("news_blind", ev.read_labelled(rows, str(directory)))] if rows else []


def synthetic_corpora() -> list[Corpus]:
    """Examples written for training only (rare positives); never scored."""
    out = []
    for path in sorted(SYNTHETIC_DIR.glob("synthetic_*.jsonl")):
        with path.open(encoding="utf-8") as f:
            # Written for the abductions watchlist: their labels speak for that topic alone.
            out.append(Corpus(f"synthetic/{path.stem}", ev.read_labelled(f, str(path)), scored=False,
                              topics=("abductions",)))
    return out


def corpora(shared: Path, labeldata: Path | None = DEFAULT_LABELDATA) -> list[Corpus]:
    """Every labelled set the shipped models learn from."""
    relabelled, borderline = ev.reuters_topics(shared)
    sets = [
        Corpus("reuters_topics", relabelled, borderline={"trade": borderline}),
        Corpus("ag_news_dev", ev.ag_news_dev(shared)),
        Corpus("written_long", ev.written_long()),
        Corpus("written_abductions", ev.written_abductions(), topics=("abductions",)),
        Corpus("seeds", ev.seeds()),
    ]
    if labeldata is not None:
        sets += labeldata_corpora(labeldata)
    return sets + synthetic_corpora()


def examples(name: str, sets: list[Corpus]) -> tuple[list[Example], list[bool]]:
    """Training examples for watchlist ``name`` and, for each, whether it counts in figures."""
    out, scored = [], []
    for corpus in sets:
        if name not in corpus.topics:
            continue
        skip = (corpus.borderline or {}).get(name, set())
        for item in corpus.items:
            if item.story.id in skip:
                continue
            out.append(Example(item.story.title, item.story.text, name in (item.labels or ()), source=corpus.name))
            scored.append(corpus.scored)
    return out, scored


def query_predicts(query: str, threshold: float, items: list[Example]) -> list[bool]:
    matcher = KeywordMatcher({"q": query})
    return [matcher.match(e.title, e.text).get("q", (0.0, None))[0] >= threshold for e in items]


def _figures(predicted: list[bool], items: list[Example], keep: list[bool]) -> Figures:
    figures = Figures()
    for p, e, k in zip(predicted, items, keep):
        if k:
            figures.add(p, e.positive)
    return figures


@dataclass
class Row:
    """One line of a report: the learned model, the floor and the query on the same held-out stories."""

    watchlist: str
    view: str
    stories: int
    positives: int
    learned: Figures
    floor: Figures
    query: Figures

    def to_dict(self) -> dict:
        return {"watchlist": self.watchlist, "view": self.view, "stories": self.stories, "positives": self.positives,
                "learned": self.learned.to_dict(), "floor": self.floor.to_dict(), "query": self.query.to_dict()}

    def describe(self) -> str:
        return (f"{self.watchlist:12s} {self.view:44s} n={self.stories:5d} pos={self.positives:4d}  "
                f"learned {self.learned.describe()}\n{'':58s}floor   {self.floor.describe()}\n"
                f"{'':58s}query   {self.query.describe()}")


def _rows(name: str, view: str, items: list[Example], predicted: list[bool], scored: list[bool],
          query: str, threshold: float, by_source: bool = True) -> list[Row]:
    floor = [floor_predicts(name, e.title, e.text) for e in items]
    by_query = query_predicts(query, threshold, items)
    groups = {view: scored}
    if by_source:
        for source in dict.fromkeys(e.source for e in items):
            groups[f"{view}: {source}"] = [k and e.source == source for e, k in zip(items, scored)]
    out = []
    for label, keep in groups.items():
        if not any(keep):
            continue
        out.append(Row(name, label, sum(keep), sum(e.positive for e, k in zip(items, keep) if k),
                       _figures(predicted, items, keep), _figures(floor, items, keep), _figures(by_query, items, keep)))
    return out


def cross_validated(name: str, query: str, threshold: float, sets: list[Corpus], folds: int = 5) -> list[Row]:
    """k-fold cross-validated figures over the pooled sets, overall and per corpus."""
    items, scored = examples(name, sets)
    predicted = out_of_fold_predictions(name, query, items, folds=folds)
    return _rows(name, f"{folds}-fold CV", items, predicted, scored, query, threshold)


def cross_corpus(name: str, query: str, threshold: float, train_sets: list[Corpus],
                 test_sets: list[Corpus]) -> list[Row]:
    """Train on ``train_sets`` only, test on ``test_sets`` (stories the model never saw, from elsewhere)."""
    train_items, _ = examples(name, train_sets)
    test_items, scored = examples(name, test_sets)
    if sum(e.positive for e in train_items) < MIN_TRAIN_POSITIVES or not test_items:
        return []  # a corpus with (almost) no positives of a topic cannot teach it: nothing to measure
    model = train(name, query, train_items)
    predicted = [p >= model.cutoff for p, _ in model.predict([(e.title, e.text) for e in test_items])]
    view = f"train {'+'.join(c.name for c in train_sets)} -> test"
    return _rows(name, view, test_items, predicted, scored, query, threshold)


def cross_corpus_plans(sets: list[le.Corpus]) -> list[tuple[list[le.Corpus], list[le.Corpus]]]:
    """(train, test) pairs: Reuters against the feed-sized sets, and everything else against the blind set."""
    by = {c.name: c for c in sets}
    synthetic = [c for c in sets if not c.scored]
    feed = [by[n] for n in ("ag_news_dev", "news_blind", "written_long", "written_abductions", "seeds") if n in by]
    plans = [([by["reuters_topics"], *synthetic], [c for c in feed if c.name != "seeds"]),
             ([*feed, *synthetic], [by["reuters_topics"]])]
    if "news_blind" in by:
        plans.append(([c for c in sets if c.name != "news_blind"], [by["news_blind"]]))
    return plans


def write_report(rows: list[Row], path: Path) -> None:
    path.write_text(json.dumps([r.to_dict() for r in rows], indent=1) + "\n", encoding="utf-8")


def report(shared: Path, labeldata: Path | None = DEFAULT_LABELDATA, names: tuple[str, ...] = NAMES) -> list[Row]:
    """Every held-out figure for ``names``, printed as it is measured."""
    watchlists = ev.load_watchlists()
    sets = corpora(shared, labeldata)
    rows: list[Row] = []
    for name in names:
        query, threshold = watchlists[name]["query"], watchlists[name].get("threshold", 1.0)
        found = cross_validated(name, query, threshold, sets)
        for train_sets, test_sets in cross_corpus_plans(sets):
            found += cross_corpus(name, query, threshold, train_sets, test_sets)
        for row in found:
            print(row.describe(), flush=True)
        rows += found
    return rows
