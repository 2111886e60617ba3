"""Story clustering measured on the story-cluster dev corpus, beside two floors.

Usage::

    python -m bench.eval_clustering [--corpus PATH] [--fit] [--json] [--half 0|1]
                                    [--embeddings auto|true|false] [--embedding-cache FILE.npz]

For each subset (allsides21, basil, neus) it streams the articles through
:class:`monitor.clustering.ClusterIndex` (the daemon's code path) in
publication order (undated ones in a fixed shuffled order) and reports
B-cubed and pairwise precision, recall and F1, beside

- every article alone (the floor any clustering must beat), and
- a plain TF-IDF cosine leader clustering at its best threshold on that subset.

Figures are cross-validated: the gold stories are split in two halves by a
hash of their id; the weights and threshold are fitted on one half and
measured on the other, then the halves swap. ``--fit`` also fits on the
whole corpus and prints the weights to ship in ``monitor/clustering.py``.

``--embeddings true`` measures the model with sentence embeddings (the
``semantic`` extra), ``false`` the one on words alone; ``auto`` (the
default) measures the first when the extra is installed. The articles are
embedded once up front (``--embedding-cache`` keeps them between runs); the
index then looks each text up, so it runs the daemon's code path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.clustering import STOPWORDS, ClusterIndex, ClusterSettings, Profile, profile
from monitor.story_embeddings import Embed, embedding_mode, sentence_embedder
from monitor.timeutil import from_iso

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "clustering" / "dev.jsonl"
SUBSETS = ("allsides21", "basil", "neus")
TARGET_PRECISION = 0.95
WORD_FEATURES = ("cosine", "long_cosine", "lead", "title", "names", "title_grams", "cosine_margin", "lead_margin")
EMBEDDING_FEATURES = (*WORD_FEATURES, "embedding", "embedding_margin")
THRESHOLDS = [step / 20 for step in range(8, 19)]  # 0.40 to 0.90


@dataclass(frozen=True)
class Article:
    id: str
    gold: str
    subset: str
    profile: Profile


@dataclass(frozen=True)
class Figures:
    bcubed_p: float
    bcubed_r: float
    bcubed_f1: float
    pair_p: float
    pair_r: float
    pair_f1: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def read_corpus(path: Path) -> list[Article]:
    """Every article of the corpus as a clustering profile."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            time = from_iso(row["date"]) if row.get("date") else None
            item = profile(row["id"], row.get("source") or "", row.get("title") or "", row.get("text") or "",
                           time, row.get("url"))
            out.append(Article(row["id"], row["cluster"], row["subset"], item))
    return out


def half_of(gold: str) -> int:
    """0 or 1, fixed per gold story."""
    return hashlib.sha256(gold.encode()).digest()[0] & 1


def stream_order(articles: Sequence[Article]) -> list[Article]:
    """Publication order; undated articles in a fixed shuffle (file order would group each story)."""
    dated = sorted((a for a in articles if a.profile.time), key=lambda a: (a.profile.time, a.id))
    undated = [a for a in articles if not a.profile.time]
    random.Random(7).shuffle(undated)
    return dated + undated


def score(predicted: dict[str, str], gold: dict[str, str]) -> Figures:
    """B-cubed and pairwise precision, recall and F1."""
    by_pred: dict[str, list[str]] = defaultdict(list)
    by_gold: dict[str, list[str]] = defaultdict(list)
    for item, cluster in predicted.items():
        by_pred[cluster].append(item)
        by_gold[gold[item]].append(item)
    overlap: Counter = Counter((predicted[i], gold[i]) for i in predicted)
    n = len(predicted)
    bp = sum(overlap[(predicted[i], gold[i])] / len(by_pred[predicted[i]]) for i in predicted) / n
    br = sum(overlap[(predicted[i], gold[i])] / len(by_gold[gold[i]]) for i in predicted) / n
    same_both = sum(c * (c - 1) / 2 for c in overlap.values())
    same_pred = sum(len(v) * (len(v) - 1) / 2 for v in by_pred.values())
    same_gold = sum(len(v) * (len(v) - 1) / 2 for v in by_gold.values())
    pp = same_both / same_pred if same_pred else 1.0
    pr = same_both / same_gold if same_gold else 1.0
    return Figures(bp, br, _f1(bp, br), pp, pr, _f1(pp, pr))


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def cluster_stream(articles: Sequence[Article], settings: ClusterSettings, embed: Embed | None = None) -> dict[str, str]:
    """Each article's cluster, by the daemon's index fed in stream order."""
    index = ClusterIndex(settings, embed)
    return {a.id: index.assign(a.profile).cluster for a in stream_order(articles)}


def singletons(articles: Sequence[Article]) -> dict[str, str]:
    return {a.id: a.id for a in articles}


# -- the TF-IDF floor -----------------------------------------------------------


def tfidf_leader(articles: Sequence[Article], threshold: float) -> dict[str, str]:
    """Leader clustering by plain TF-IDF cosine (idf over the whole subset, English stopwords dropped)."""
    ordered = stream_order(articles)
    df: Counter = Counter()
    for a in ordered:
        df.update(a.profile.terms.keys())
    n = len(ordered)
    vectors = {}
    for a in ordered:
        vec = {t: c * math.log((1 + n) / (1 + df[t])) + c for t, c in a.profile.terms.items() if t not in STOPWORDS}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        vectors[a.id] = {t: v / norm for t, v in vec.items()}
    postings: dict[str, list[str]] = defaultdict(list)
    out: dict[str, str] = {}
    for a in ordered:
        vec = vectors[a.id]
        dots: Counter = Counter()
        for term, weight in vec.items():
            for leader in postings.get(term, ()):
                dots[leader] += weight * vectors[leader][term]
        best = max(dots.items(), key=lambda kv: kv[1], default=None)
        if best and best[1] >= threshold:
            out[a.id] = best[0]
        else:
            out[a.id] = a.id
            for term in vec:
                postings[term].append(a.id)
    return out


def best_tfidf(articles: Sequence[Article], gold: dict[str, str]) -> tuple[float, Figures]:
    """The TF-IDF floor at its best threshold (by B-cubed F1) on these articles."""
    results = []
    for step in range(10, 80, 5):
        threshold = step / 100
        results.append((threshold, score(tfidf_leader(articles, threshold), gold)))
    return max(results, key=lambda r: r[1].bcubed_f1)


# -- fitting the weights --------------------------------------------------------


def training_pairs(articles: Sequence[Article], embed: Embed | None = None) -> list[tuple[dict[str, float], int]]:
    """(features, same story?) for every story against every candidate leader the index offers.

    Every story is made a leader (threshold above 1) so each is a candidate
    for the later ones, as the first story of its cluster would be.
    """
    index = ClusterIndex(ClusterSettings(threshold=2.0, embeddings="false"), embed)
    pairs = []
    gold = {a.id: a.gold for a in articles}
    for a in stream_order(articles):
        for cluster, compared in index.compared(a.profile):
            pairs.append((compared[0], int(gold[cluster] == a.gold)))
        index.assign(a.profile)
    return pairs


def fit_logistic(pairs: Sequence[tuple[dict[str, float], int]], features: Sequence[str] = WORD_FEATURES,
                 rounds: int = 25) -> dict[str, float]:
    """Logistic regression by Newton's method (a handful of features), with a little L2."""
    names = ["bias", *features]
    rows = [([1.0, *(f[name] for name in features)], y) for f, y in pairs]
    k = len(names)
    w = [0.0] * k
    for _ in range(rounds):
        grad = [0.0] * k
        hess = [[0.0] * k for _ in range(k)]
        for x, y in rows:
            z = sum(wi * xi for wi, xi in zip(w, x))
            p = 1 / (1 + math.exp(-max(min(z, 30), -30)))
            g = p - y
            s = p * (1 - p)
            for i in range(k):
                grad[i] += g * x[i]
                for j in range(i, k):
                    hess[i][j] += s * x[i] * x[j]
        for i in range(k):
            grad[i] += 0.01 * w[i]
            hess[i][i] += 0.01
            for j in range(i):
                hess[i][j] = hess[j][i]
        step = _solve(hess, grad)
        w = [wi - si for wi, si in zip(w, step)]
        if max(abs(s) for s in step) < 1e-6:
            break
    return {name: round(value, 3) for name, value in zip(names, w)}


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col and m[col][col]:
                factor = m[r][col] / m[col][col]
                m[r] = [x - factor * y for x, y in zip(m[r], m[col])]
    return [m[i][n] / m[i][i] if m[i][i] else 0.0 for i in range(n)]


def fit(articles: Sequence[Article], log: Callable[[str], None] = lambda s: None,
        embed: Embed | None = None) -> ClusterSettings:
    """Weights from the pairs of every subset, then the threshold with the best mean F1 at target precision."""
    pairs = []
    for subset in SUBSETS:
        part = [a for a in articles if a.subset == subset]
        if part:
            pairs.extend(training_pairs(part, embed))
    weights = fit_logistic(pairs, EMBEDDING_FEATURES if embed else WORD_FEATURES)
    log(f"fitted on {len(pairs)} candidate pairs: {weights}")
    best: tuple[float, float] | None = None
    for threshold in THRESHOLDS:
        settings = ClusterSettings(threshold=threshold, weights=weights, embeddings="false")
        figures = [_subset_figures(articles, subset, settings, embed) for subset in SUBSETS]
        figures = [f for f in figures if f]
        mean_f1 = sum(f.bcubed_f1 for f in figures) / len(figures)
        log(f"  on the fitting half at {threshold}: B3 P " + " ".join(f"{f.bcubed_p:.3f}" for f in figures)
            + " F1 " + " ".join(f"{f.bcubed_f1:.3f}" for f in figures))
        if min(f.bcubed_p for f in figures) < TARGET_PRECISION + 0.005:  # a margin for the unseen half
            continue
        if best is None or mean_f1 > best[1]:
            best = (threshold, mean_f1)
    threshold = best[0] if best else 0.95
    log(f"threshold {threshold}")
    return ClusterSettings(threshold=threshold, weights=weights, embeddings="false")


def _subset_figures(articles: Sequence[Article], subset: str, settings: ClusterSettings,
                    embed: Embed | None = None) -> Figures | None:
    part = [a for a in articles if a.subset == subset]
    if not part:
        return None
    return score(cluster_stream(part, settings, embed), {a.id: a.gold for a in part})


def corpus_embedder(articles: Sequence[Article], mode: str, cache: Path | None = None,
                    log: Callable[[str], None] = lambda s: None) -> Embed | None:
    """The sentence embedder for ``mode``, with every article embedded once up front (``None``: words alone).

    The index asks for texts as the daemon's does; they are looked up here, so
    a threshold search does not embed the corpus eleven times.
    """
    embed = sentence_embedder(mode)
    if embed is None:
        return None
    texts = sorted({a.profile.summary for a in articles})
    vectors = None
    if cache and cache.is_file():
        import numpy as np

        with np.load(cache, allow_pickle=False) as saved:
            if list(saved["texts"]) == texts:
                vectors = saved["vectors"]
    if vectors is None:
        log(f"embedding {len(texts)} articles (once; --embedding-cache keeps them)")
        vectors = embed(texts)
        if cache:
            import numpy as np

            np.savez(cache, texts=np.array(texts), vectors=vectors)
    table = dict(zip(texts, vectors))

    def looked_up(batch: Sequence[str]) -> list:
        missing = [t for t in batch if t not in table]
        if missing:
            table.update(zip(missing, embed(missing)))
        return [table[t] for t in batch]

    return looked_up


# -- the report -----------------------------------------------------------------


def cross_validated(articles: Sequence[Article], log: Callable[[str], None],
                    halves: Sequence[int] = (0, 1), embed: Embed | None = None) -> dict[str, dict]:
    """Per subset and held-out half: ours (fitted on the other half), the singletons and TF-IDF floors."""
    report: dict[str, dict] = {}
    for held_out in halves:
        train = [a for a in articles if half_of(a.gold) != held_out]
        test = [a for a in articles if half_of(a.gold) == held_out]
        settings = fit(train, log, embed)
        for subset in SUBSETS:
            part = [a for a in test if a.subset == subset]
            gold = {a.id: a.gold for a in part}
            threshold, floor = best_tfidf(part, gold)
            report.setdefault(subset, {})[f"half{held_out}"] = {
                "articles": len(part),
                "ours": score(cluster_stream(part, settings, embed), gold).to_dict(),
                "singletons": score(singletons(part), gold).to_dict(),
                "tfidf_best": {**floor.to_dict(), "threshold": threshold},
                "fitted": {"threshold": settings.threshold, "weights": settings.weights},
            }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--fit", action="store_true", help="also fit on the whole corpus and print the weights")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--half", type=int, choices=(0, 1), help="measure one held-out half only (two processes, one per half, finish sooner)")
    parser.add_argument("--embeddings", type=embedding_mode, default="auto",
                        help="true: the model with sentence embeddings (semantic extra); false: words alone")
    parser.add_argument("--embedding-cache", type=Path, help="an .npz file keeping the articles' embeddings between runs")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        print(f"error: {args.corpus}: not found (the shared corpora are not beside this checkout)", file=sys.stderr)
        return 2
    articles = read_corpus(args.corpus)
    log = (lambda s: print(s, file=sys.stderr))
    embed = corpus_embedder(articles, args.embeddings, args.embedding_cache, log)
    log(f"model: {'words and sentence embeddings' if embed else 'words alone'}")
    report = cross_validated(articles, log, (0, 1) if args.half is None else (args.half,), embed)
    if args.fit:
        settings = fit(articles, log, embed)
        report["fitted_on_all"] = {"threshold": settings.threshold, "weights": settings.weights}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'subset':11} {'half':5} {'method':11} {'B3 P':>6} {'B3 R':>6} {'B3 F1':>6} {'pair P':>6} {'pair R':>6} {'pair F1':>7}")
    for subset in SUBSETS:
        for half, row in report[subset].items():
            for method in ("ours", "singletons", "tfidf_best"):
                f = row[method]
                print(f"{subset:11} {half:5} {method:11} {f['bcubed_p']:6.3f} {f['bcubed_r']:6.3f} {f['bcubed_f1']:6.3f} "
                      f"{f['pair_p']:6.3f} {f['pair_r']:6.3f} {f['pair_f1']:7.3f}")
    if args.fit:
        print(f"fitted on all of dev: {report['fitted_on_all']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
