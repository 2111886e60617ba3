"""A learned watchlist model: a linear classifier over hashed word and character
n-grams plus the watchlist query's score, with calibrated probabilities.

Why hashing: the model needs no vocabulary, so a file is a few arrays of
numbers (small, and loaded without unpickling code), and the words that weighed
most in a story are found by hashing the story's own n-grams.

Why the query's score as features: the query is a user's (or our) distilled
judgement; the model learns how far to trust it and overrules it where the
words say otherwise.

The file format is NumPy's ``.npz`` with ``allow_pickle=False`` and a JSON
header: :func:`load_model` raises :class:`ModelLoadError` for a missing,
corrupt or incompatible file.

Serving a model needs NumPy only (:mod:`monitor_plugins.hashed_ngrams` counts
the n-grams, a decision is a dot product over a story's columns): scikit-learn
and SciPy are imported by the training functions alone, so a daemon or worker
process never loads them (they were most of its memory).
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor import KeywordMatcher, Scores
from monitor_plugins.hashed_ngrams import HashedCounts, NgramCounter, column, word_ngrams

if TYPE_CHECKING:  # SciPy is imported where a model is trained, never where one is served
    import scipy.sparse as sp

# Bumped whenever the features or the file layout change: an older file is refused, not misread.
FORMAT = 1
WORD_FEATURES = 2**18
CHAR_FEATURES = 2**17
# Characters of title + text the model reads: the lead says what a story is
# about, and it bounds the cost of a long article.
MAX_CHARS = 3000
# Character n-grams (word forms: abducted, abductee) read only the title and lead:
# over the whole text they cost four times the words' time for little gain.
CHAR_CHARS = 1000
# Inverse regularisations of the linear SVM tried; train() keeps the one that ranks its calibration
# folds' held-out stories best (grouped 5-fold CV on the shipped sets, docs/learned.md: trade chose 10).
C_GRID = (1.0, 10.0)
# Smoothing of the log-count ratio's counts (Wang & Manning 2012 use 1).
RATIO_ALPHA = 1.0
# The precision a ranking is judged at when choosing C (the shipped watchlists' promise).
RANKING_PRECISION = 0.95
# Fewest examples of each class a model is fitted on (calibration splits them in two);
# cross-validation needs one more, so that every training fold has that many.
MIN_PER_CLASS = 2
# The query's score (capped, reaching 1.0, hitting at all), then where it hit (hit_features).
SCORE_FEATURES = 3
HIT_FEATURES = 4
QUERY_SCALE = 3.0  # so the regulariser does not silence the query's few dense features
# Cutoffs tried on the out-of-fold probabilities (see _best_cutoff).
CUTOFF_RANGE = (0.3, 0.9)


class ModelLoadError(Exception):
    """A stored model cannot be used: missing, corrupt, or from an incompatible version."""


def sklearn_version() -> str:
    """The installed scikit-learn's version, read without importing it ("" when it is not installed)."""
    try:
        return installed_version("scikit-learn")
    except PackageNotFoundError:
        return ""


def document(title: str, text: str) -> str:
    """What the model reads: the title twice (it says what the story is about), then the text's start."""
    return f"{title}. {title}. {text}"[:MAX_CHARS]


@dataclass
class Example:
    """One labelled story for training."""

    title: str
    text: str
    positive: bool
    weight: float = 1.0
    source: str = ""
    # The story's language, as serving reads it: the query's hits (and so the hit features)
    # depend on it (a Swedish *gått* is not *GATT*, monitor.letters). None: every mark folds.
    language: str | None = None


def docs_of(examples: Sequence[Example]) -> list[tuple[str, str]]:
    """The ``(title, text)`` of each example, as :class:`Featurizer` reads stories."""
    return [(e.title, e.text) for e in examples]


def languages_of(examples: Sequence[Example]) -> list[str | None]:
    """The language of each example (``None`` where it has none)."""
    return [e.language for e in examples]


@dataclass
class Figures(Scores):
    """Precision, recall and F1 from counts (:class:`monitor.Scores` without a watchlist name)."""

    name: str = ""

    def add(self, predicted: bool, gold: bool) -> None:
        self.tp += predicted and gold
        self.fp += predicted and not gold
        self.fn += gold and not predicted

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        del out["watchlist"]
        return out

    def describe(self) -> str:
        return (f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f} "
                f"(tp={self.tp} fp={self.fp} fn={self.fn})")


@dataclass
class Raw:
    """Features before idf weighting: log term counts, and the query's dense features."""

    counts: HashedCounts
    dense: np.ndarray

    def rows(self, index: np.ndarray) -> Raw:
        return Raw(self.counts.take(index), self.dense[index])


class Featurizer:
    """Stories to a sparse matrix: tf-idf word 1-2-grams, character 3-5-grams, the query's score."""

    def __init__(self, query: str | None, idf: np.ndarray | None = None, chars: bool = True, hits: bool = True):
        self.query = query or ""
        self.idf = idf
        # Where the query hit as well as how much (hit_features); models stored before these
        # features existed read the score alone, and still load.
        self.hits = hits
        # Character n-grams catch word forms (abducted, abductee) but cost four times the
        # words' time to count; without them their columns stay empty (the same file layout).
        self.chars = chars
        self._counter = NgramCounter(WORD_FEATURES, CHAR_FEATURES)
        self._matcher: KeywordMatcher | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The matcher holds an Aho-Corasick automaton: rebuilt in each process instead of pickled.
        state = self.__dict__.copy()
        state["_matcher"] = None
        return state

    @property
    def query_width(self) -> int:
        return SCORE_FEATURES + (HIT_FEATURES if self.hits else 0)

    @property
    def width(self) -> int:
        return WORD_FEATURES + CHAR_FEATURES + self.query_width

    def counts(self, docs: Sequence[tuple[str, str]]) -> HashedCounts:
        """Hashed word n-gram counts, then character n-gram counts (their columns after the words')."""
        texts = [document(title, text) for title, text in docs]
        return self._counter.count(texts, [t[:CHAR_CHARS] for t in texts] if self.chars else None)

    def fit_idf(self, counts: HashedCounts, targets: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> None:
        """Each column's weight: its idf, and with ``targets``, times the size of its log-count ratio.

        The ratio (NBSVM, Wang & Manning 2012) is how much likelier an n-gram is in on-topic stories
        than in the others: scaling by it lets the SVM's regulariser spend less on the n-grams that
        say nothing about the topic. It is folded into the same array, so serving is unchanged.
        """
        df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
        idf = np.log((1 + counts.shape[0]) / (1 + df)) + 1.0
        if targets is not None:
            idf *= np.abs(log_count_ratio(counts, targets, weights))
        self.idf = idf.astype(np.float32)

    def query_scores(self, docs: Sequence[tuple[str, str]], languages: Sequence[str | None] | None = None
                     ) -> list[tuple[float, Any]]:
        """The query's score and evidence per story ((0, None) without a query or a hit).

        :param languages: each story's language (as the keyword classifier reads it: its own
            letters stay unfolded); none given, every story is read without one.
        """
        if not self.query:
            return [(0.0, None)] * len(docs)
        if self._matcher is None:
            self._matcher = KeywordMatcher({"q": self.query})
        out = []
        for (title, text), language in zip(docs, languages if languages is not None else [None] * len(docs)):
            found = self._matcher.match(title, text, language=language).get("q")
            out.append(found if found else (0.0, None))
        return out

    def log_counts(self, docs: Sequence[tuple[str, str]]) -> HashedCounts:
        """Sublinear term frequencies: the same for every model with the same :attr:`chars`
        (hashing has no vocabulary), so shareable."""
        counts = self.counts(docs)
        return counts.with_data(np.log1p(counts.data))

    def raw(self, docs: Sequence[tuple[str, str]], query: list[tuple[float, Any]] | None = None,
            log_counts: HashedCounts | None = None, languages: Sequence[str | None] | None = None) -> Raw:
        """The idf-free part of the features, computed once and reusable across folds.

        :param languages: each story's language, for the query's hits (:meth:`query_scores`).
        """
        counts = log_counts if log_counts is not None else self.log_counts(docs)
        query = query if query is not None else self.query_scores(docs, languages)
        dense = np.array([[min(s, 4.0) / 4.0, float(s >= 1.0), float(s > 0)]
                          + (hit_features(found, text) if self.hits else [])
                          for (s, found), (_, text) in zip(query, docs)],
                         dtype=np.float64).reshape(-1, self.query_width) * QUERY_SCALE
        return Raw(counts, dense)

    def examples_raw(self, examples: Sequence[Example]) -> Raw:
        """:meth:`raw` of labelled examples, each read in its own language: the features serving computes."""
        return self.raw(docs_of(examples), languages=languages_of(examples))

    def weigh(self, raw: Raw) -> sp.csr_matrix:
        """Tf-idf, L2-normalised, beside the query's features (a SciPy matrix: for training)."""
        import scipy.sparse as sp

        return sp.hstack([self.weighted_counts(raw.counts).to_csr(), sp.csr_matrix(raw.dense)], format="csr")

    def weighted_counts(self, counts: HashedCounts) -> HashedCounts:
        """Tf-idf of the n-gram columns, each row L2-normalised."""
        rows = counts.row_numbers()
        data, norms = self._tf_idf(counts, rows)
        return counts.with_data(data / norms[rows])

    def _tf_idf(self, counts: HashedCounts, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each stored value's tf-idf, and each row's L2 norm (1 for an empty row)."""
        assert self.idf is not None, "fit_idf first"
        data = counts.data * self.idf[counts.indices].astype(np.float64)
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=counts.shape[0]))
        norms[norms == 0] = 1.0
        return data, norms

    def transform(self, docs: Sequence[tuple[str, str]], query: list[tuple[float, Any]] | None = None,
                  languages: Sequence[str | None] | None = None) -> sp.csr_matrix:
        return self.weigh(self.raw(docs, query, languages=languages))

    def ngrams(self, title: str, text: str) -> dict[int, str]:
        """Column index -> the word n-gram of this story hashed there (for explanations)."""
        return {column(gram, WORD_FEATURES): gram for gram in set(word_ngrams(document(title, text)))}


def log_count_ratio(counts: HashedCounts, targets: np.ndarray, weights: np.ndarray | None = None,
                    alpha: float = RATIO_ALPHA) -> np.ndarray:
    """Per column, log((p / |p|) / (q / |q|)): p and q count the on- and off-topic stories holding the
    n-gram (binarised, weighted, plus ``alpha``)."""
    rows = counts.row_numbers()
    weight = (np.ones(counts.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64))[rows]
    positive = np.asarray(targets)[rows] == 1
    p = alpha + np.bincount(counts.indices[positive], weights=weight[positive], minlength=counts.shape[1])
    q = alpha + np.bincount(counts.indices[~positive], weights=weight[~positive], minlength=counts.shape[1])
    return np.log((p / p.sum()) / (q / q.sum()))


def recall_at_precision(scores: np.ndarray, gold: np.ndarray, precision: float = RANKING_PRECISION) -> float:
    """The highest recall of any cutoff on ``scores`` whose precision reaches ``precision`` (0 when none)."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(np.asarray(gold)[order])
    reaching = hits / np.arange(1, len(order) + 1) >= precision
    return float(hits[reaching].max() / max(hits[-1], 1)) if reaching.any() else 0.0


def average_precision(scores: np.ndarray, gold: np.ndarray) -> float:
    """The mean precision at each on-topic story's rank, ``scores`` ranking."""
    order = np.argsort(-scores, kind="stable")
    ranked = np.asarray(gold)[order].astype(bool)
    hits = np.cumsum(ranked)
    return float(np.sum((hits / np.arange(1, len(order) + 1))[ranked]) / max(hits[-1], 1))


_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def hit_features(evidence: Any, text: str) -> list[float]:
    """Where the query hit, beside how much: in the title; in the text's first sentence; how early in the
    text (1 / (1 + sentences before the first hit)); how many distinct terms (capped at four).

    A story is about what its title and first sentence say: "trade deficit" in a headline or the lead
    is a trade story, the same words in the ninth paragraph of a budget story an aside.
    """
    hits = getattr(evidence, "hits", ()) or ()
    if not hits:
        return [0.0] * HIT_FEATURES
    starts = [h.start for h in hits if h.field == "text"]
    sentences = len(_SENTENCE_END.findall(text[:min(starts)])) if starts else None
    return [float(any(h.field == "title" for h in hits)), float(sentences == 0),
            0.0 if sentences is None else 1.0 / (1.0 + sentences), min(len(evidence.terms), 4) / 4.0]


@dataclass
class LearnedModel:
    """A trained watchlist model. Picklable; :func:`dump_model` / :func:`load_model` for storage."""

    watchlist: str
    featurizer: Featurizer
    coef: np.ndarray
    intercept: float
    # Platt scaling of the decision value, fitted on out-of-fold decisions: calibrated probabilities.
    platt: tuple[float, float]
    cutoff: float
    meta: dict[str, Any] = field(default_factory=dict)
    base_coef: np.ndarray | None = None  # the weights before feedback adjusted them
    base_intercept: float | None = None

    @property
    def query(self) -> str:
        return self.featurizer.query

    def decisions(self, matrix: sp.csr_matrix) -> np.ndarray:
        return matrix @ self.coef.astype(np.float64) + self.intercept

    def decisions_of(self, raw: Raw) -> np.ndarray:
        """:meth:`decisions` of ``featurizer.weigh(raw)``, without building the wide matrix:
        per story, the dot product of its columns' tf-idf with their weights over its norm."""
        counts = raw.counts
        rows = counts.row_numbers()
        data, norms = self.featurizer._tf_idf(counts, rows)
        dots = np.bincount(rows, weights=data * self.coef[counts.indices].astype(np.float64),
                           minlength=counts.shape[0])
        dense = self.coef[counts.shape[1]:].astype(np.float64)
        return dots / norms + raw.dense @ dense + self.intercept

    def probabilities_of(self, decisions: np.ndarray) -> np.ndarray:
        a, b = self.platt
        return 1.0 / (1.0 + np.exp(-(a * decisions + b)))

    def predict(self, docs: Sequence[tuple[str, str]], log_counts: HashedCounts | None = None,
                query: list[tuple[float, Any]] | None = None, languages: Sequence[str | None] | None = None
                ) -> list[tuple[float, Any]]:
        """Per story: the calibrated probability of being on topic, and the query's (score, evidence).

        :param log_counts: :meth:`Featurizer.log_counts` of ``docs``, when several models share them.
        :param query: the query's (score, evidence) per story, when the caller matched it already.
        :param languages: each story's language (when ``query`` is not given).
        """
        query = query if query is not None else self.featurizer.query_scores(docs, languages)
        probabilities = self.probabilities_of(self.decisions_of(self.featurizer.raw(docs, query, log_counts)))
        return [(float(p), q) for p, q in zip(probabilities, query)]

    def top_words(self, title: str, text: str, k: int = 5) -> list[str]:
        """The word n-grams of this story that pushed hardest towards the topic."""
        grams = self.featurizer.ngrams(title, text)
        idf = self.featurizer.idf
        assert idf is not None
        weighed = sorted(((float(self.coef[col]) * float(idf[col]), gram) for col, gram in grams.items()), reverse=True)
        return [gram for weight, gram in weighed[:k] if weight > 0]


def _fit_linear(matrix: sp.csr_matrix, targets: np.ndarray, weights: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    # A linear SVM (squared hinge, liblinear's dual solver): on text it ranks stories as well as
    # logistic regression or better (Reuters ModApte train, 5-fold CV: docs/learned.md) and fits
    # several times faster. Probabilities come from Platt scaling, the cutoff from held-out F1,
    # so neither class weights nor the loss's own scale matter to the decision.
    # liblinear's time grows with the width of the matrix: fit on the columns that occur.
    from sklearn.svm import LinearSVC

    columns = np.unique(matrix.indices)
    model = LinearSVC(C=c, max_iter=20000)
    model.fit(matrix[:, columns], targets, sample_weight=weights)
    coef = np.zeros(matrix.shape[1], dtype=np.float32)
    coef[columns] = model.coef_.ravel()
    return coef, float(model.intercept_[0])


def _fit_platt(decisions: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    scaler = LogisticRegression(C=1e4)
    scaler.fit(decisions.reshape(-1, 1), targets)
    return float(scaler.coef_[0, 0]), float(scaler.intercept_[0])


def _best_cutoff(probabilities: np.ndarray, targets: np.ndarray, min_precision: float | None = None,
                 between: tuple[float, float] = CUTOFF_RANGE) -> float:
    """The probability cutoff with the best out-of-fold F1, precision breaking ties.

    :param min_precision: only cutoffs whose out-of-fold precision reaches it compete (all of them
        when none does): the operating point a watchlist promises, chosen on held-out decisions.
    :param between: the cutoffs tried, in steps of 0.025.
    """
    best = (-1, -1.0, -1.0, 0.0, 0.5)
    gold = targets.astype(bool)
    for cutoff in np.arange(between[0], between[1] + 0.01, 0.025):
        predicted = probabilities >= cutoff
        figures = Figures(tp=int(np.sum(predicted & gold)), fp=int(np.sum(predicted & ~gold)),
                          fn=int(np.sum(~predicted & gold)))
        # A cutoff that lets nothing through is not precise, only silent.
        precise = int(min_precision is None or (figures.tp > 0 and figures.precision >= min_precision))
        # Among equals, the cutoff nearest 0.5: calibrated probabilities mean what they say.
        best = max(best, (precise, round(figures.f1, 4), round(figures.precision, 4), -abs(cutoff - 0.5),
                          float(cutoff)))
    return round(best[4], 3)


def train(watchlist: str, query: str | None, examples: Sequence[Example], *, c: float | Sequence[float] = C_GRID,
          folds: int = 3, seed: int = 0, raw: Raw | None = None, chars: bool = True,
          groups: Sequence[int] | None = None, min_precision: float | None = None,
          cutoffs: tuple[float, float] = CUTOFF_RANGE) -> LearnedModel:
    """Fit a model on ``examples``; C, calibration and the cutoff come from ``folds`` out-of-fold decisions.

    :param c: the SVM's inverse regularisation, or several: the one whose out-of-fold decisions rank
        best (recall at precision ``min_precision`` or 0.95, then average precision) is kept, so C is
        chosen inside the training data, never on the stories a caller holds out.
    :param raw: the examples' features from :meth:`Featurizer.raw`, when the caller already has them.
    :param chars: whether the model reads character n-grams as well as words.
    :param groups: a group number per example (:func:`near_duplicate_groups`); a group never straddles
        the calibration folds, so the cutoff is not chosen on copies of stories the model was fitted on.
    :param min_precision: the cutoff is the best-F1 one among those that reach this out-of-fold precision
        (:func:`_best_cutoff`); ``cutoffs`` bounds the ones tried.
    """
    targets = np.array([e.positive for e in examples], dtype=int)
    if min(targets.sum(), len(targets) - targets.sum()) < MIN_PER_CLASS:
        raise ValueError(f"{watchlist}: needs at least {MIN_PER_CLASS} on-topic and {MIN_PER_CLASS} off-topic "
                         f"examples ({int(targets.sum())} of {len(targets)} are on topic)")
    weights = np.array([e.weight for e in examples], dtype=float)
    grid = (float(c),) if isinstance(c, (int, float)) else tuple(float(x) for x in c)
    if raw is None:
        raw = Featurizer(query, chars=chars).examples_raw(examples)
    out_of_fold = {x: np.zeros(len(examples)) for x in grid}
    for train_rows, test_rows in _folds(targets, folds, seed, groups):
        # The column weights read labels: each calibration fold fits its own, or its held-out
        # decisions would be judged with weights that saw them.
        inner = Featurizer(query, chars=chars)
        inner.fit_idf(raw.counts.take(train_rows), targets[train_rows], weights[train_rows])
        matrix, held_out = inner.weigh(raw.rows(train_rows)), inner.weigh(raw.rows(test_rows))
        for x in grid:
            coef, intercept = _fit_linear(matrix, targets[train_rows], weights[train_rows], x)
            out_of_fold[x][test_rows] = held_out @ coef.astype(np.float64) + intercept
    precision = min_precision if min_precision is not None else RANKING_PRECISION
    chosen = max(grid, key=lambda x: (round(recall_at_precision(out_of_fold[x], targets, precision), 4),
                                      round(average_precision(out_of_fold[x], targets), 4)))
    platt = _fit_platt(out_of_fold[chosen], targets)
    featurizer = Featurizer(query, chars=chars)
    featurizer.fit_idf(raw.counts, targets, weights)
    coef, intercept = _fit_linear(featurizer.weigh(raw), targets, weights, chosen)
    model = LearnedModel(watchlist, featurizer, coef, intercept, platt, 0.5)
    model.cutoff = _best_cutoff(model.probabilities_of(out_of_fold[chosen]), targets, min_precision, cutoffs)
    model.meta = {"examples": len(examples), "positives": int(targets.sum()), "c": chosen, "c_grid": list(grid),
                  "weighting": "tf-idf x |log-count ratio|", "chars": chars, "min_precision": min_precision,
                  "sklearn": sklearn_version()}
    return model


def _folds(targets: np.ndarray, folds: int, seed: int, groups: Sequence[int] | None = None
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None:
        k = max(2, min(folds, int(targets.sum()), int(len(targets) - targets.sum())))
    else:
        # A group goes to one fold whole: a class has as many fold-able units as it has groups.
        labelled = set(zip(np.asarray(groups).tolist(), targets.tolist()))
        k = max(2, min(folds, sum(1 for _, t in labelled if t), sum(1 for _, t in labelled if not t)))
    if groups is None:
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(targets)),
                                                                                        targets))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(targets)), targets, np.asarray(groups)))


def near_duplicate_groups(examples: Sequence[Example], words: int = 40) -> list[int]:
    """A group number per example: stories with the same normalised title or the same opening words share one.

    Wire copy is republished (the same story under two outlets, a corrected
    version, a title reused for a follow-up): a copy on each side of a fold
    boundary would let the model be judged on a story it has seen.
    """
    parent = list(range(len(examples)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, example in enumerate(examples):
        title = _WORD.findall(example.title.lower())
        opening = _WORD.findall(example.text.lower())[:words]
        keys = [f"o:{' '.join(opening)}"] if len(opening) >= min(words, 12) else []
        keys += [f"t:{' '.join(title)}"] if len(title) >= 5 else []
        for key in keys:
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    roots: dict[int, int] = {}
    return [roots.setdefault(root(i), len(roots)) for i in range(len(examples))]


_WORD = re.compile(r"\w+")


def out_of_fold_predictions(watchlist: str, query: str | None, examples: Sequence[Example], *, folds: int = 5,
                            seed: int = 0, groups: Sequence[int] | None = None, raw: Raw | None = None,
                            chars: bool = True, **kwargs: Any) -> list[bool]:
    """Each example's decision by a model trained on the other folds (k-fold cross-validation).

    :param groups: a group number per example (:func:`near_duplicate_groups`): a group stays in one fold.
    :param raw: the examples' features from :meth:`Featurizer.raw`, when the caller already has them.
    """
    targets = np.array([e.positive for e in examples], dtype=int)
    if raw is None:
        raw = Featurizer(query, chars=chars).examples_raw(examples)
    decided = [False] * len(examples)
    for train_rows, test_rows in _folds(targets, folds, seed, groups):
        inner = None if groups is None else [groups[i] for i in train_rows]
        model = train(watchlist, query, [examples[i] for i in train_rows], seed=seed, raw=raw.rows(train_rows),
                      chars=chars, groups=inner, **kwargs)
        probabilities = model.probabilities_of(model.decisions_of(raw.rows(test_rows)))
        for i, p in zip(test_rows, probabilities):
            decided[i] = bool(p >= model.cutoff)
    return decided


def cross_validate(watchlist: str, query: str | None, examples: Sequence[Example], *, folds: int = 5, seed: int = 0,
                   scored: Sequence[bool] | None = None, **kwargs: Any) -> Figures:
    """k-fold cross-validated figures: each example is judged by a model that never saw it.

    :param scored: which examples count in the figures (synthetic ones train but are never scored).
    """
    decided = out_of_fold_predictions(watchlist, query, examples, folds=folds, seed=seed, **kwargs)
    figures = Figures()
    for i, (example, predicted) in enumerate(zip(examples, decided)):
        if scored is None or scored[i]:
            figures.add(predicted, example.positive)
    return figures


def adjust(model: LearnedModel, feedback: Sequence[Example], *, strength: float = 1.0) -> LearnedModel:
    """The model with its weights moved to agree with ``feedback``, staying near its base weights.

    Minimises the logistic loss on the feedback plus ``strength`` times the squared
    distance from the base weights, so a few verdicts change the decisions they
    are about without forgetting what the base model learned from its data.
    """
    from scipy.optimize import minimize

    base = model.base_coef if model.base_coef is not None else model.coef
    base_intercept = model.base_intercept if model.base_intercept is not None else model.intercept
    if not feedback:
        return LearnedModel(model.watchlist, model.featurizer, base.copy(), base_intercept, model.platt, model.cutoff,
                            dict(model.meta, feedback=0), None, None)
    matrix = model.featurizer.transform(docs_of(feedback), languages=languages_of(feedback))
    a, b = model.platt
    # Targets on the calibrated scale: the margin is a*decision + b.
    signs = np.array([1.0 if e.positive else -1.0 for e in feedback])
    weights = np.array([e.weight for e in feedback])
    columns = np.unique(matrix.indices)
    sub = matrix[:, columns]
    start = base.astype(np.float64)[columns]
    cutoff_margin = math.log(model.cutoff / (1 - model.cutoff))

    def loss(delta: np.ndarray) -> tuple[float, np.ndarray]:
        margins = a * (sub @ (start + delta) + base_intercept) + b - cutoff_margin
        z = -signs * margins
        value = float(np.sum(weights * np.logaddexp(0, z))) + strength * float(delta @ delta)
        grad_margin = -signs * weights / (1 + np.exp(-z))
        grad = a * (sub.T @ grad_margin) + 2 * strength * delta
        return value, grad

    # Feedback should win over the base model for the stories it is about: a margin
    # that loses a verdict is pushed past the cutoff by the loss above.
    result = minimize(loss, np.zeros(len(columns)), jac=True, method="L-BFGS-B")
    coef = base.copy()
    coef[columns] = (start + result.x).astype(np.float32)
    return LearnedModel(model.watchlist, model.featurizer, coef, base_intercept, model.platt, model.cutoff,
                        dict(model.meta, feedback=len(feedback)), base.copy(), base_intercept)


# -- storage ---------------------------------------------------------------------


def dump_model(model: LearnedModel) -> bytes:
    """The model as ``.npz`` bytes (no pickled objects)."""
    header = {"format": FORMAT, "watchlist": model.watchlist, "query": model.query, "intercept": model.intercept,
              "platt": list(model.platt), "cutoff": model.cutoff, "meta": model.meta,
              "sklearn": sklearn_version(), "base_intercept": model.base_intercept,
              "word_features": WORD_FEATURES, "char_features": CHAR_FEATURES, "max_chars": MAX_CHARS,
              "char_chars": CHAR_CHARS if model.featurizer.chars else 0,
              "query_features": model.featurizer.query_width}
    arrays: dict[str, np.ndarray] = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                                     "idf": np.asarray(model.featurizer.idf, dtype=np.float32),
                                     "coef": model.coef.astype(np.float32)}
    if model.base_coef is not None:
        arrays["base_coef"] = model.base_coef.astype(np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def load_model(data: bytes) -> LearnedModel:
    """Inverse of :func:`dump_model`.

    :raises ModelLoadError: the bytes are not a model, or one written by an incompatible version.
    """
    if not data.startswith(b"PK"):
        raise ModelLoadError("not a readable model (not an .npz archive)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            header = json.loads(bytes(arrays["header"]).decode())
            if header.get("format") != FORMAT:
                raise ModelLoadError(f"model format {header.get('format')!r}, this version reads format {FORMAT} "
                                     "(retrain it)")
            if (header.get("word_features"), header.get("char_features"), header.get("max_chars")) != (
                    WORD_FEATURES, CHAR_FEATURES, MAX_CHARS) or header.get("char_chars") not in (CHAR_CHARS, 0):
                raise ModelLoadError("model built with different feature settings (retrain it)")
            if str(header.get("sklearn", "")).split(".")[0] != sklearn_version().split(".")[0]:
                raise ModelLoadError(f"model trained with scikit-learn {header.get('sklearn')}, "
                                     f"this is {sklearn_version() or 'not installed'} (retrain it)")
            idf, coef = arrays["idf"], arrays["coef"]
            base = arrays["base_coef"] if "base_coef" in arrays.files else None
            # Files written before the hit features have the score's three columns only (no key).
            query_features = header.get("query_features", SCORE_FEATURES)
            if query_features not in (SCORE_FEATURES, SCORE_FEATURES + HIT_FEATURES):
                raise ModelLoadError(f"model reads {query_features} query features, this version reads "
                                     f"{SCORE_FEATURES} or {SCORE_FEATURES + HIT_FEATURES} (retrain it)")
            featurizer = Featurizer(header["query"], idf, chars=header["char_chars"] == CHAR_CHARS,
                                    hits=query_features > SCORE_FEATURES)
            if idf.shape != (WORD_FEATURES + CHAR_FEATURES,) or coef.shape != (featurizer.width,):
                raise ModelLoadError("model arrays have the wrong shape (retrain it)")
            return LearnedModel(header["watchlist"], featurizer, coef, float(header["intercept"]),
                                tuple(header["platt"]), float(header["cutoff"]), header.get("meta", {}),
                                base, header.get("base_intercept"))
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"not a readable model ({type(exc).__name__}: {exc})") from None
