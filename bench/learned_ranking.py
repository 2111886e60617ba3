"""How well a learner *ranks* a watchlist's stories, on the training script's grouped folds, fast.

Usage: python bench/learned_ranking.py --news FILE [--only trade] [--variant NAME ...] [--jobs 2]

The shipped recipe's measurement (``scripts/train_shipped_models.py --measure-only``) fits four
models per outer fold (three calibration folds and the final fit) and takes 7-16 minutes a
watchlist on a shared machine. To compare feature and learner ideas this fits one model per outer
fold (the same grouped 5 folds, the same features) and reports, per view (all, feed-sized,
long-form, the blind set):

- **R@P.95**: recall at precision 0.95 over the pooled out-of-fold decisions (the ranking: what
  any cutoff could reach at the promised precision);
- **AP**: average precision of the same ranking;
- **P / R / F1 at a held-out cutoff**: each fold's cutoff is the best-F1 one with precision >= 0.95
  on the *other* folds' decisions, so no fold chooses its own cutoff (a cheap stand-in for the
  calibration folds; the end-to-end figures come from the training script).

A variant is a function of (training rows, test rows) -> test decisions; they share the prepared
features. Nothing here is tuned on a test split: the corpora are bench/learned_eval.py's.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import learned_eval as le  # noqa: E402
import numpy as np  # noqa: E402
from eval_watchlists import DEFAULT_SHARED, load_watchlists  # noqa: E402

from monitor_plugins.learned_model import (  # noqa: E402
    Featurizer,
    Raw,
    _fit_linear,
    _folds,
    average_precision,
    log_count_ratio,
    train,
    recall_at_precision,
)

if TYPE_CHECKING:
    import scipy.sparse as sp

PRECISION = 0.95


def precise_cutoff(scores: np.ndarray, gold: np.ndarray, precision: float = PRECISION) -> float:
    """The best-F1 cutoff among those reaching ``precision`` (the best F1 when none does)."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(gold[order])
    taken = np.arange(1, len(order) + 1)
    f1 = 2 * hits / (taken + gold.sum())
    ok = hits / taken >= precision
    pick = int(np.argmax(np.where(ok, f1, -1.0))) if ok.any() else int(np.argmax(f1))
    return float(scores[order][pick])


Variant = Callable[[le.Prepared, np.ndarray, np.ndarray], np.ndarray]


def scaled(raw: Raw, scale: np.ndarray, binary: bool) -> sp.csr_matrix:
    """Each n-gram's value (1 if ``binary`` else its log count) times ``scale``, rows L2-normalised, beside
    the query's features."""
    import scipy.sparse as sp

    counts = raw.counts
    rows = counts.row_numbers()
    data = (np.ones_like(counts.data) if binary else counts.data) * scale[counts.indices]
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=counts.shape[0]))
    norms[norms == 0] = 1.0
    return sp.hstack([counts.with_data(data / norms[rows]).to_csr(), sp.csr_matrix(raw.dense)], format="csr")


def features(kind: str, train_raw: Raw, targets: np.ndarray) -> Callable[[Raw], sp.csr_matrix]:
    """The matrix builder of a feature kind, fitted on the training rows."""
    featurizer = Featurizer(None)
    featurizer.fit_idf(train_raw.counts)
    idf = featurizer.idf.astype(np.float64)
    if kind == "tfidf":
        return lambda raw: scaled(raw, idf, False)
    ratio = log_count_ratio(train_raw.counts, targets)
    if kind == "nb":  # NBSVM: binarised n-grams scaled by the log-count ratio
        return lambda raw: scaled(raw, ratio, True)
    if kind == "nb-abs":  # the ratio's size only: the SVM keeps the sign to learn
        return lambda raw: scaled(raw, np.abs(ratio), True)
    if kind == "nb-tf":  # log counts scaled by the ratio
        return lambda raw: scaled(raw, ratio, False)
    if kind == "tfidf-nb":  # tf-idf scaled by the ratio's size
        return lambda raw: scaled(raw, idf * np.abs(ratio), False)
    raise ValueError(kind)


def _fit_logistic(matrix: sp.csr_matrix, targets: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    columns = np.unique(matrix.indices)
    model = LogisticRegression(C=c, solver="liblinear")
    model.fit(matrix[:, columns], targets)
    coef = np.zeros(matrix.shape[1])
    coef[columns] = model.coef_.ravel()
    return coef, float(model.intercept_[0])


def learner(kind: str = "tfidf", c: float = 1.0, positive_weight: float = 1.0, logistic: float = 0.0,
            lr_c: float = 10.0) -> Variant:
    """Features of ``kind``, a linear SVM; with ``logistic`` > 0, plus that share of a logistic regression's
    decision (each standardised on the training rows)."""
    def run(prepared: le.Prepared, train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        train_raw = prepared.raw.rows(train_rows)
        targets = np.array([prepared.items[i].positive for i in train_rows], dtype=int)
        build = features(kind, train_raw, targets)
        matrix, test = build(train_raw), build(prepared.raw.rows(test_rows))
        weights = np.where(targets == 1, positive_weight, 1.0)
        coef, intercept = _fit_linear(matrix, targets, weights, c)
        decided = test @ coef.astype(np.float64) + intercept
        if not logistic:
            return decided
        spread = np.std(matrix @ coef.astype(np.float64) + intercept)
        lr_coef, lr_intercept = _fit_logistic(matrix, targets, lr_c)
        lr_spread = np.std(matrix @ lr_coef + lr_intercept)
        return (1 - logistic) * decided / spread + logistic * (test @ lr_coef + lr_intercept) / lr_spread
    return run


def recipe(**kwargs: object) -> Variant:
    """The shipped recipe itself (``train``: C chosen on its calibration folds), its decision values."""
    def run(prepared: le.Prepared, train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        model = train(prepared.name, prepared.query, [prepared.items[i] for i in train_rows],
                      raw=prepared.raw.rows(train_rows), groups=[prepared.groups[i] for i in train_rows],
                      **{**le.OPERATING_POINT, **kwargs})
        print(f"  fold: C={model.meta['c']}", flush=True)
        return model.decisions_of(prepared.raw.rows(test_rows))
    return run


VARIANTS: dict[str, Variant] = {
    "recipe": recipe(),
    "recipe-c1": recipe(c=1.0),
    "svm": learner(),
    "svm-c0.3": learner(c=0.3),
    "svm-c3": learner(c=3.0),
    "svm-pos2": learner(positive_weight=2.0),
    "nbsvm": learner("nb"),
    "nbsvm-c0.3": learner("nb", c=0.3),
    "nbsvm-c3": learner("nb", c=3.0),
    "nb-abs": learner("nb-abs"),
    "nb-tf": learner("nb-tf"),
    "tfidf-nb": learner("tfidf-nb"),
    "tfidf-nb-c0.3": learner("tfidf-nb", c=0.3),
    "tfidf-nb-c3": learner("tfidf-nb", c=3.0),
    "tfidf-nb-pos2": learner("tfidf-nb", positive_weight=2.0),
    "tfidf-nb+lr": learner("tfidf-nb", logistic=0.5),
    "tfidf-nb-c10": learner("tfidf-nb", c=10.0),
    "tfidf-nb-c30": learner("tfidf-nb", c=30.0),
    "tfidf-nb-c3-pos2": learner("tfidf-nb", c=3.0, positive_weight=2.0),
    "svm+lr": learner(logistic=0.5),
    "nbsvm+lr": learner("nb", logistic=0.5),
}


def measure(prepared: le.Prepared, variant: Variant, jobs: int) -> np.ndarray:
    """Out-of-fold decisions of ``variant`` on the training script's grouped folds, and per-fold cutoffs."""
    targets = np.array([e.positive for e in prepared.items], dtype=int)
    splits = _folds(targets, 5, 0, prepared.groups)
    scores = np.zeros(len(targets))
    fold_of = np.zeros(len(targets), dtype=int)
    if jobs > 1:
        import multiprocessing

        _STATE.update(prepared=prepared, variant=variant)
        try:
            with multiprocessing.get_context("fork").Pool(min(jobs, len(splits))) as pool:
                found = pool.map(_run, splits, chunksize=1)
        finally:
            _STATE.clear()
    else:
        found = [variant(prepared, a, b) for a, b in splits]
    for k, ((_, test_rows), decided) in enumerate(zip(splits, found)):
        scores[test_rows] = decided
        fold_of[test_rows] = k
    return scores, fold_of


_STATE: dict = {}


def _run(split: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return _STATE["variant"](_STATE["prepared"], *split)


def views(prepared: le.Prepared, scores: np.ndarray, fold_of: np.ndarray) -> list[tuple[str, str]]:
    gold = np.array([e.positive for e in prepared.items], dtype=int)
    scored = np.array(prepared.scored)
    decided = np.zeros(len(gold), dtype=bool)
    for k in np.unique(fold_of):
        other = (fold_of != k) & scored
        decided[fold_of == k] = scores[fold_of == k] >= precise_cutoff(scores[other], gold[other])
    size = np.array([le.feed_sized(e) for e in prepared.items])
    blind = np.array([e.source == "news_blind" for e in prepared.items])
    out = []
    for label, keep in (("all", scored), ("feed", scored & size), ("long", scored & ~size), ("blind", scored & blind)):
        g, s, d = gold[keep], scores[keep], decided[keep]
        tp, fp, fn = int(np.sum(d & (g == 1))), int(np.sum(d & (g == 0))), int(np.sum(~d & (g == 1)))
        p = tp / max(tp + fp, 1)
        r = tp / max(tp + fn, 1)
        f1 = 2 * p * r / max(p + r, 1e-9)
        out.append((label, f"R@P.95 {recall_at_precision(s, g):.3f} AP {average_precision(s, g):.3f} "
                           f"P/R/F1 {p:.3f}/{r:.3f}/{f1:.3f} (fp={fp} fn={fn})"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--mirrors", type=Path, default=le.DEFAULT_MIRRORS)
    parser.add_argument("--news", type=Path, metavar="FILE")
    parser.add_argument("--only", action="append", choices=le.NAMES)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--max-chars", type=int, help="read this many characters of title and text (an experiment: "
                                                        "the model files record the shipped value)")
    args = parser.parse_args(argv)
    if args.max_chars:
        import monitor_plugins.learned_model as learned_model

        learned_model.MAX_CHARS = args.max_chars
    watchlists = load_watchlists()
    sets = le.corpora(args.shared, args.mirrors, args.news)
    for name in args.only or le.NAMES:
        started = time.perf_counter()
        prepared = le.prepare(name, watchlists[name]["query"], watchlists[name].get("threshold", 1.0), sets)
        print(f"{name}: {len(prepared.items)} stories prepared in {time.perf_counter() - started:.0f}s", flush=True)
        for label in args.variant or ["svm"]:
            started = time.perf_counter()
            scores, fold_of = measure(prepared, VARIANTS[label], args.jobs)
            for view, line in views(prepared, scores, fold_of):
                print(f"{name:11s} {label:24s} {view:5s} {line}", flush=True)
            print(f"{name:11s} {label:24s} ({time.perf_counter() - started:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
