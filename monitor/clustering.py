"""Story clusters: the same story reported by several outlets, found as stories arrive.

A cluster is led by its FIRST story. A new story joins the cluster it
resembles most, if the resemblance to the leader or to one of the next
:data:`MEMBERS_COMPARED` members clears the threshold, the resemblance to
the leader itself stays above ``leader_floor``, and the leader is at most
``window`` older; otherwise it leads a new cluster. The floor bounds
chaining: a cluster cannot drift (A like B, B like C, C a different event).

Resemblance is a logistic score over a few measured signals (see
docs/clustering.md for the figures and how they were fitted):

- the same canonical link (tracking parameters removed) is the same story;
- TF-IDF cosine of the title and lead, with document frequencies counted over
  the stories in the window (so the weights follow the news of the day);
- the same cosine scaled up for long texts (full articles, not excerpts);
- TF-IDF cosine of the titles alone;
- overlap of the names (capitalised words and numbers) of the two stories;
- with the ``semantic`` extra (``[clustering] embeddings``), the cosine of
  the sentence embeddings of title and lead, and its margin over the other
  candidates: one model with them, one without, each with its own fitted
  weights and threshold. A story is embedded only when it has candidates.

Time only bounds the window: the dev corpus's dates are roundup times, and a
model that weighs them learns "same timestamp, same story" (docs/clustering.md).

Two stories of the same source never join by text (a feed's follow-up is a
new story), only by link: a cluster holds one report per outlet.

Candidates come from an inverted index over each leader's most distinctive
terms, and the index holds only the window: the cost of one story does not
grow with the database, only with how much news the window holds.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from sys import intern
from typing import Any

from .normalize import canonical_url
from .story_embeddings import Embed, embedded_text, sentence_embedder

# Fitted on half 0 of the dev corpus's gold stories (bench/eval_clustering.py);
# half 1 measures them (the guard test). See docs/clustering.md.
WEIGHTS = {"bias": -5.612, "cosine": 11.552, "long_cosine": 20.974, "lead": -1.539, "title": -2.637, "names": 0.801,
           "title_grams": 2.967, "cosine_margin": 2.961, "lead_margin": 5.226}
DEFAULT_THRESHOLD = 0.85
# The same model with sentence embeddings (the ``semantic`` extra), fitted the same way on the same half.
EMBEDDING_WEIGHTS = {"bias": -6.276, "cosine": 9.874, "long_cosine": 11.438, "lead": -2.428, "title": -0.768,
                     "names": 0.655, "title_grams": 0.412, "cosine_margin": -0.52, "lead_margin": 3.25,
                     "embedding": 4.021, "embedding_margin": 5.945}
EMBEDDING_THRESHOLD = 0.9
# A story may join through any member of a cluster, but only while it stays this
# close to the cluster's first story: a bounded chain, never a drift (docs/clustering.md).
DEFAULT_LEADER_FLOOR = 0.2
DEFAULT_WINDOW = 3 * 86400.0

LEAD_SENTENCE_WORDS = 40  # the opening sentence or two: who did what, where
LEAD_WORDS = 600  # long articles are read this far: enough for the event, bounded cost
INDEX_TERMS = 12  # the terms of a leader that candidates are looked up by
CANDIDATES = 20  # leaders scored in full per story
COMMON_SHARE = 0.2  # terms in more than this share of the window never key a lookup
MIN_WINDOW_DOCS = 50  # document frequencies are smoothed as if the window held at least this many
# Postings read per story at most, the rarest key terms first: a term shared by thousands of clusters
# in a large window (25,000 stories) adds little to the ranking and would make a lookup cost grow
# with the window. A 3,000-story window rarely reaches it.
LOOKUP_BUDGET = 2000
LONG_TERMS = 100  # distinct terms at which a text starts to count as long (a lead excerpt has about 50)
TITLE_GRAMS = (3, 4, 5)  # character n-gram lengths of the title similarity
MEMBERS_COMPARED = 4  # the first story and up to this many later members are compared: flat cost per cluster
WORD_MEMORY = 50_000  # distinct words whose terms a ClusterIndex remembers; past it the memory starts afresh
# 1 + log(count), the sublinear weight of a term's count, for the counts a profile holds (a lead has 600 words).
_SUBLINEAR = tuple(1 + math.log(count) if count else 0.0 for count in range(2048))

_WORD = re.compile(r"[^\W_][\w'’&.-]*[^\W_]|[^\W_]")  # any script: names are not all ASCII
_SENTENCE_END_CHARS = frozenset('.!?:"“”')  # a word ending so closes a sentence: the next capital is not a name
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself yourselves said says say new news report reports reported according amid one
two three first last year years day days week weeks monday tuesday wednesday thursday friday saturday sunday today
yesterday tomorrow mr mrs ms may might must us via per get got make made many much still even back like well
""".split())


@dataclass(frozen=True)
class Profile:
    """What clustering keeps of one story: its terms, names, time and link."""

    story_id: str
    source: str
    time: datetime | None
    url: str | None
    terms: Counter
    title_terms: Counter
    names: frozenset[str]
    lead_terms: Counter = field(default_factory=Counter)
    title_grams: Counter = field(default_factory=Counter)
    summary: str = ""  # the title and lead, embedded when clustering uses sentence embeddings
    # When the story was first seen (fetched, or stored): the window keeps it by this, as the index is read
    # back from the database by it. ``time`` (publication) may be years old for a republished item.
    seen: datetime | None = None

    @property
    def kept_since(self) -> datetime | None:
        """The time the window's expiry counts from: first seen, else publication."""
        return self.seen or self.time


@dataclass(frozen=True)
class Assignment:
    """Where a story went: ``cluster`` is the id of the cluster's first story.

    :param score: the resemblance to that first story (1.0 for the same link; 0 for a new cluster).
    :param reason: ``"new"``, ``"link"`` or ``"text"``.
    """

    story_id: str
    cluster: str
    score: float = 0.0
    reason: str = "new"


@dataclass(frozen=True)
class ClusterSettings:
    """``[clustering]`` settings: ``window`` in seconds, ``threshold`` a probability.

    ``embeddings`` is ``"auto"``, ``"true"`` or ``"false"`` (see
    :mod:`monitor.story_embeddings`). ``threshold`` and ``weights`` left at
    ``None`` are those fitted for the model in use: with embeddings or without.
    """

    enabled: bool = True
    window: float = DEFAULT_WINDOW
    threshold: float | None = None
    leader_floor: float = DEFAULT_LEADER_FLOOR
    weights: dict[str, float] | None = None
    embeddings: str = "false"


def _stem(word: str) -> str:
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _terms(words: Iterable[str], known: dict[str, str]) -> Counter:
    return Counter(_term_list(words, known))


def _term_list(words: Iterable[str], known: dict[str, str]) -> list[str]:
    """The terms of ``words`` in order (stopwords and one-letter words left out).

    ``known`` remembers each word's term ("" for none) across calls: texts repeat their words.
    """
    if len(known) > WORD_MEMORY:
        known.clear()
    out = []
    for word in words:
        term = known.get(word)
        if term is None:
            low = word.lower().replace("’", "'").strip(".'-&")
            # Interned: a window holds thousands of profiles repeating the same words, and one
            # copy of each word halves the index's memory (21 -> 10 KB per story on the dev set).
            term = known[word] = "" if len(low) < 2 or low in STOPWORDS else intern(_stem(low))
        if term:
            out.append(term)
    return out


def _names(title_words: list[str], text_words: list[str]) -> frozenset[str]:
    """Capitalised words not opening a sentence, and numbers: the who, where and how many."""
    out = set()
    for words in (title_words, text_words):
        previous = "."
        for word in words:
            if len(word) < 2:
                pass
            elif word[0].isdigit():
                out.add(intern(word.lower()))
            elif word[0].isupper() and previous[-1] not in _SENTENCE_END_CHARS:
                low = word.lower()
                if low not in STOPWORDS:
                    out.add(intern(_stem(low.replace("’", "'").strip(".'"))))
            previous = word
    return frozenset(out)


def profile(story_id: str, source: str, title: str, text: str, time: datetime | None, url: str | None,
            seen: datetime | None = None, known_words: dict[str, str] | None = None) -> Profile:
    """The clustering view of one story: ``time`` its publication, ``seen`` when it was first seen.

    ``known_words`` is a memory of each word's term to share between calls (``ClusterIndex.known_words``);
    it changes only the cost.
    """
    known = {} if known_words is None else known_words
    title_words = _words(title)
    # Only the lead is read: a long article's words past it are never split out.
    text_words = [m.group() for m in islice(_WORD.finditer(text), LEAD_WORDS)]
    title_terms = _terms(title_words, known)
    # The lead's words are the text's first ones: their terms are worked out once, for both.
    lead_list = _term_list(text_words[:LEAD_SENTENCE_WORDS], known)
    terms = Counter(lead_list)
    terms.update(_term_list(text_words[LEAD_SENTENCE_WORDS:], known))
    # The headline says what the story is about: it counts as much as a short lead.
    lead_terms = Counter(lead_list)
    for term, count in title_terms.items():
        terms[term] += 2 * count
        lead_terms[term] += count
    return Profile(story_id, source, time, canonical_url(url), terms, title_terms, _names(title_words, text_words),
                   lead_terms, _grams(title_terms), embedded_text(title, text), seen)


def _grams(terms: Iterable[str]) -> Counter:
    """Character 3- to 5-grams of the title's words: "sanction" meets "sanctions", "Pyongyang's" meets "Pyongyang"."""
    grams: list[str] = []
    for term in terms:
        padded = f" {term} "
        for n in TITLE_GRAMS:
            grams.extend([padded[start:start + n] for start in range(len(padded) - n + 1)])
    # Counted in C in one call; the grams' first-seen order is unchanged.
    return Counter(map(intern, grams))


class ClusterIndex:
    """The clusters of the window, in memory; not thread-safe (the caller serialises).

    :meth:`assign` decides and remembers a story's cluster; :meth:`remember`
    loads an already-decided story (from the database); :meth:`expire` drops
    what left the window.
    """

    def __init__(self, settings: ClusterSettings | None = None, embed: Embed | None = None):
        """``embed`` overrides the embedder chosen by ``settings.embeddings`` (the evaluation passes a cached one)."""
        self.settings = settings or ClusterSettings()
        self.embed = embed if embed is not None else sentence_embedder(self.settings.embeddings)
        fitted_weights, fitted_threshold = ((EMBEDDING_WEIGHTS, EMBEDDING_THRESHOLD) if self.embed
                                            else (WEIGHTS, DEFAULT_THRESHOLD))
        self.weights = self.settings.weights or dict(fitted_weights)
        self.threshold = self.settings.threshold if self.settings.threshold is not None else fitted_threshold
        self.vectors: dict[str, Any] = {}  # story id -> its embedding, computed when first compared
        self.df: Counter = Counter()  # in how many window stories each term occurs
        self.docs = 0
        self.leaders: dict[str, Profile] = {}  # cluster id -> its first story
        self.followers: dict[str, list[Profile]] = {}  # cluster id -> its next members, at most MEMBERS_COMPARED
        self.postings: dict[str, set[str]] = {}  # term -> cluster ids whose leader is keyed by it
        self.by_url: dict[str, str] = {}  # canonical link -> cluster id
        self.outlets: dict[str, Counter] = {}  # cluster id -> the sources of its members, with how many each
        self.members: dict[str, tuple[str, datetime | None, tuple[str, ...], str | None, str]] = {}
        self._keys: dict[str, tuple[str, ...]] = {}  # cluster id -> the terms keying it (first story and followers)
        # Idf weights and profile norms computed since the window last changed: one story is
        # compared with dozens of members, and each comparison needs the same norms again.
        self._idfs: dict[str, float] = {}
        self._norms: dict[int, tuple[Counter, float]] = {}  # id(terms) -> (terms, kept alive; norm)
        self.known_words: dict[str, str] = {}  # word -> term, for profile(): a speed-up only

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, story_id: str) -> bool:
        return story_id in self.members

    # -- deciding -----------------------------------------------------------------

    def assign(self, item: Profile) -> Assignment:
        """Choose ``item``'s cluster (an existing one or its own) and remember it."""
        if item.story_id in self.members:
            return Assignment(item.story_id, self.members[item.story_id][0], 0.0, "known")
        found = self.best(item)
        cluster = found.cluster if found else item.story_id
        self.remember(item, cluster)
        return found or Assignment(item.story_id, item.story_id)

    def best(self, item: Profile) -> Assignment | None:
        """The cluster ``item`` belongs to, or ``None`` when it is a story of its own."""
        if item.url and item.url in self.by_url:
            cluster = self.by_url[item.url]
            if cluster in self.leaders and self._in_window(self.leaders[cluster], item):
                return Assignment(item.story_id, cluster, 1.0, "link")
        best: Assignment | None = None
        for cluster, compared in self.compared(item):
            score = self._probability(compared[0])
            if score < self.settings.leader_floor:
                continue
            score = max([score, *(self._probability(features) for features in compared[1:])])
            if score >= self.threshold and (best is None or score > best.score):
                best = Assignment(item.story_id, cluster, score, "text")
        return best

    def compared(self, item: Profile) -> list[tuple[str, list[dict[str, float]]]]:
        """The candidate clusters ``item`` may join, each with the signals against its first story and next members.

        The first entry of each list is against the first story. Besides the
        pairwise signals, each carries a *margin*: how much closer ``item`` is
        to this cluster than to the closest other candidate. In a window full
        of stories on one subject (every Trump story of a week), a cosine of
        0.3 means little when a dozen others reach 0.25, and much when none
        passes 0.1.
        """
        out: list[tuple[str, list[dict[str, float]]]] = []
        for cluster in self.candidates(item):
            leader = self.leaders[cluster]
            # Two items of one feed are two stories (an update, a follow-up): a cluster joins outlets,
            # one report of each, so a feed's second story never joins its first through another outlet.
            if (item.source and item.source in self.outlets.get(cluster, ())) or not self._in_window(leader, item):
                continue
            out.append((cluster, [leader, *self.followers.get(cluster, ())]))
        if self.embed and out:
            # A story with no candidate costs no embedding (nor a model loaded): one call for the rest.
            self.prepare([item, *(m for _, members in out for m in members)])
        compared = [(cluster, [self.features(item, member) for member in members]) for cluster, members in out]
        _add_margins(compared)
        return compared

    def prepare_batch(self, items: Sequence[Profile]) -> None:
        """Embed, in one call, those of a batch of new stories that have candidate clusters.

        One call for a batch costs a fraction of one call per story; stories
        with nothing to compare are left out (a quiet batch loads no model).
        Stories whose only candidates arrive in the same batch are embedded
        when compared, as usual.
        """
        if self.embed:
            self.prepare([item for item in items if self.candidates(item)])

    def prepare(self, items: Iterable[Profile]) -> None:
        """Embed, in one call, those of ``items`` not embedded yet (no-op without embeddings)."""
        if not self.embed:
            return
        missing = {p.story_id: p for p in items if p.story_id not in self.vectors}
        if not missing:
            return
        for story_id, vector in zip(missing, self.embed([p.summary for p in missing.values()])):
            self.vectors[story_id] = vector

    def _probability(self, features: dict[str, float]) -> float:
        return _logistic(features, self.weights)

    def features(self, a: Profile, b: Profile) -> dict[str, float]:
        """The signals :meth:`score` combines (the evaluation fits their weights)."""
        shared = sum(self._idf(n) for n in a.names & b.names)
        smaller = min(self._names_weight(a.names), self._names_weight(b.names))
        cosine = self._cosine(a.terms, b.terms)
        # Two full articles sharing a third of their weighted words is strong evidence; two
        # 60-word excerpts doing so is not: the same cosine means more the longer the texts.
        length = math.log1p(min(len(a.terms), len(b.terms)) / LONG_TERMS)
        signals = {
            "cosine": cosine,
            "long_cosine": cosine * length,
            "lead": self._cosine(a.lead_terms, b.lead_terms),
            "title": self._cosine(a.title_terms, b.title_terms),
            "names": shared / smaller if smaller else 0.0,
            "title_grams": _plain_cosine(a.title_grams, b.title_grams),
        }
        if self.embed:
            self.prepare([a, b])  # already done by compared() for a whole candidate list
            # Unit-length vectors: the dot product is the cosine.
            signals["embedding"] = float(self.vectors[a.story_id] @ self.vectors[b.story_id])
        return signals

    def _idf(self, term: str) -> float:
        found = self._idfs.get(term)
        if found is None:
            n = max(self.docs, MIN_WINDOW_DOCS)
            found = self._idfs[term] = math.log((n + 1) / (self.df.get(term, 0) + 1)) + 1.0
        return found

    def _idfs_of(self, terms: Iterable[str]) -> dict[str, float]:
        """The idf weights, ``terms``' among them: :meth:`_idf` for many terms at a time (the same values)."""
        idfs = self._idfs
        missing = [term for term in terms if term not in idfs]
        if missing:
            n1, df, log = max(self.docs, MIN_WINDOW_DOCS) + 1, self.df.get, math.log
            for term in missing:
                idfs[term] = log(n1 / (df(term, 0) + 1)) + 1.0
        return idfs

    def _names_weight(self, names: frozenset[str]) -> float:
        """The summed idf of a profile's names, kept until the window changes (like the norms)."""
        found = self._norms.get(id(names))
        if found is None:
            found = self._norms[id(names)] = (names, sum(self._idf(n) for n in names))
        return found[1]

    def _window_changed(self) -> None:
        self._idfs.clear()
        self._norms.clear()

    def _cosine(self, a: Counter, b: Counter) -> float:
        if not a or not b:
            return 0.0
        if len(a) > len(b):
            a, b = b, a
        idfs = self._idfs
        dot = 0.0
        for term, count in a.items():
            if term in b:
                dot += _sublinear(count) * _sublinear(b[term]) * ((idfs.get(term) or self._idf(term)) ** 2)
        if not dot:
            return 0.0
        return dot / (self._norm(a) * self._norm(b))

    def _norm(self, terms: Counter) -> float:
        found = self._norms.get(id(terms))
        if found is None:
            idfs = self._idfs_of(terms)
            norm = math.sqrt(sum((_sublinear(c) * idfs[t]) ** 2 for t, c in terms.items()))
            found = self._norms[id(terms)] = (terms, norm)
        return found[1]

    def _in_window(self, leader: Profile, item: Profile) -> bool:
        if leader.time is None or item.time is None:
            return True
        return abs((item.time - leader.time).total_seconds()) <= self.settings.window

    def _key_terms(self, item: Profile) -> tuple[str, ...]:
        idfs = self._idfs_of(item.terms)
        ranked = heapq.nsmallest(INDEX_TERMS, ((-_sublinear(c) * idfs[t], t) for t, c in item.terms.items()))
        return tuple(t for _, t in ranked)

    def candidates(self, item: Profile) -> list[str]:
        """The clusters whose leaders share the most distinctive terms with ``item``, best first.

        At most :data:`CANDIDATES`: the full score is computed only for them.
        """
        common = max(self.docs, MIN_WINDOW_DOCS) * COMMON_SHARE
        keyed = [(term, self.postings.get(term, ())) for term in self._key_terms(item)
                 if self.df.get(term, 0) <= common]
        keyed.sort(key=lambda kv: (len(kv[1]), kv[0]))
        shared: Counter = Counter()
        budget = LOOKUP_BUDGET
        for term, clusters in keyed:
            if len(clusters) > budget:
                break
            budget -= len(clusters)
            weight = self._idf(term)
            for cluster in clusters:
                shared[cluster] += weight
        # Ties broken by id: the same input gives the same clusters whatever the hash seed.
        ranked = sorted(shared.items(), key=lambda kv: (-kv[1], kv[0]))
        return [cluster for cluster, _ in ranked[:CANDIDATES]]

    # -- remembering and forgetting ------------------------------------------------

    def remember(self, item: Profile, cluster: str) -> None:
        """Add a story whose cluster is decided (by :meth:`assign`, or read back from the database)."""
        if item.story_id in self.members:
            return
        self.docs += 1
        self.df.update(item.terms.keys())
        self._window_changed()
        keys: tuple[str, ...] = ()
        if cluster == item.story_id:
            self.leaders[cluster] = item
            keys = self._key_terms(item)
            if item.url:
                self.by_url.setdefault(item.url, cluster)
        elif cluster in self.leaders and len(self.followers.setdefault(cluster, [])) < MEMBERS_COMPARED:
            # A later report words the story its own way: its terms find the cluster too.
            self.followers[cluster].append(item)
            keys = self._key_terms(item)
        for term in keys:
            self.postings.setdefault(term, set()).add(cluster)
        self.members[item.story_id] = (cluster, item.kept_since, tuple(item.terms), item.url, item.source)
        self.outlets.setdefault(cluster, Counter())[item.source] += 1
        if keys:
            self._keys[cluster] = self._keys.get(cluster, ()) + keys

    def expire(self, before: datetime) -> int:
        """Forget stories first seen before ``before`` (by publication when not known; undated ones stay).

        First seen, not published: the window is read back from the database by
        first-seen time, and a feed republishing old-dated items (or a wire
        story dated last year) must keep the first copy until its siblings arrive.
        Returns how many were forgotten.
        """
        gone = [sid for sid, (_, time, *_) in self.members.items() if time is not None and time < before]
        for story_id in gone:
            cluster, _, terms, url, source = self.members.pop(story_id)
            outlets = self.outlets.get(cluster)
            if outlets is not None:
                outlets[source] -= 1
                if outlets[source] <= 0:
                    del outlets[source]
                if not outlets:
                    del self.outlets[cluster]
            self.docs -= 1
            self.df.subtract(terms)
            self._window_changed()
            for term in terms:
                if self.df[term] <= 0:
                    del self.df[term]
            self.vectors.pop(story_id, None)
            if cluster != story_id and cluster in self.followers:
                self.followers[cluster] = [m for m in self.followers[cluster] if m.story_id != story_id]
            if cluster == story_id:
                self.leaders.pop(story_id, None)
                self.followers.pop(story_id, None)
                for term in self._keys.pop(story_id, ()):
                    keyed = self.postings.get(term)
                    if keyed is not None:
                        keyed.discard(story_id)
                        if not keyed:
                            del self.postings[term]
                if url and self.by_url.get(url) == story_id:
                    del self.by_url[url]
        return len(gone)


MARGINS = {"cosine": "cosine_margin", "lead": "lead_margin", "embedding": "embedding_margin"}


def _add_margins(compared: list[tuple[str, list[dict[str, float]]]]) -> None:
    """Set each signal's margin over the closest *other* candidate cluster (see ``ClusterIndex.compared``)."""
    for signal, margin in MARGINS.items():
        if not compared or signal not in compared[0][1][0]:
            continue
        closest = [max(f[signal] for f in features) for _, features in compared]
        ranked = sorted(closest, reverse=True)
        for (_, features), own in zip(compared, closest):
            rival = ranked[1] if own == ranked[0] and len(ranked) > 1 else (ranked[0] if own != ranked[0] else 0.0)
            for f in features:
                f[margin] = f[signal] - rival


def _plain_cosine(a: Counter, b: Counter) -> float:
    if not a or not b:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    # Sublinear counts, no idf: the grams come from the title's terms, stopwords already gone.
    dot = sum(_sublinear(count) * _sublinear(b[key]) for key, count in a.items() if key in b)
    if not dot:
        return 0.0
    return dot / math.sqrt(sum(_sublinear(c) ** 2 for c in a.values()) * sum(_sublinear(c) ** 2 for c in b.values()))


def _sublinear(count: int) -> float:
    """1 + log(count), looked up for the counts a profile holds."""
    return _SUBLINEAR[count] if count < 2048 else 1 + math.log(count)


def _logistic(features: dict[str, float], weights: dict[str, float]) -> float:
    z = weights.get("bias", 0.0) + sum(weights.get(name, 0.0) * value for name, value in features.items())
    if z < -30:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))
