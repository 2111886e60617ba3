"""The keyword matcher's decisions against the query language's semantics, evaluated naively.

The matcher skips work (queries none of whose positive terms occurred, OR branches whose
first word is absent, offsets of matches under threshold); here every query is evaluated
term by term over every word of every story, so a skip that drops a real match fails.
"""

from __future__ import annotations

import bisect

from conftest import shared_corpus
from monitor.letters import own_letters
from monitor.query import And, KeywordMatcher, Near, Node, Not, Or, Term, folded_words, parse_query

from bench.keywords import corpus_stories, watchlist_sets

# A span of words: (field, first word, word after the last).
Span = tuple[str, int, int]


def _occurrences(term: Term, story: Story) -> list[Span]:
    found = []
    for fld, seq in story.seqs.items():
        if term.field not in (None, fld):
            continue
        at = story.at[fld]
        firsts = sorted(i for word in story.words_as(fld, term, 0) for i in at[word])
        for i in firsts:
            if i + len(term.words) <= len(seq) and all(_is(seq[i + k], term, k) for k in range(1, len(term.words))):
                found.append((fld, i, i + len(term.words)))
    return found


def _is(word: str, term: Term, k: int) -> bool:
    """Whether ``word`` is word ``k`` of ``term`` in one of its spellings."""
    is_prefix = term.words[k][1]
    return any(word.startswith(w) if is_prefix else word == w for w in term.spelled(k))


class Story:
    """A story's folded words per field, where each word stands, and its distinct words in order."""

    def __init__(self, seqs: dict[str, list[str]]):
        self.seqs = seqs
        self.at: dict[str, dict[str, list[int]]] = {fld: {} for fld in seqs}
        for fld, seq in seqs.items():
            for i, word in enumerate(seq):
                self.at[fld].setdefault(word, []).append(i)
        self.ordered = {fld: sorted(at) for fld, at in self.at.items()}

    def words_as(self, fld: str, term: Term, k: int) -> list[str]:
        """The distinct words of ``fld`` that are word ``k`` of ``term``."""
        if not term.words[k][1]:
            return [w for w in term.spelled(k) if w in self.at[fld]]
        ordered, out = self.ordered[fld], []
        for prefix in term.spelled(k):  # the words a prefix starts lie together in sorted order
            j = bisect.bisect_left(ordered, prefix)
            while j < len(ordered) and ordered[j].startswith(prefix):
                out.append(ordered[j])
                j += 1
        return out


def naive(node: Node, words: Story) -> list[Span] | None:
    """``None`` when ``node`` does not hold; else the spans that support it (empty for a NOT)."""
    if isinstance(node, Term):
        return _occurrences(node, words) or None
    if isinstance(node, And):
        parts = [naive(child, words) for child in node.children]
        return None if any(p is None for p in parts) else [s for p in parts for s in p]
    if isinstance(node, Or):
        parts = [p for child in node.children if (p := naive(child, words)) is not None]
        return [s for p in parts for s in p] if parts else None
    if isinstance(node, Not):
        return [] if naive(node.child, words) is None else None
    if isinstance(node, Near):
        left, right = naive(node.left, words) or [], naive(node.right, words) or []
        pairs = [(lf, min(ls, rs), max(le, re_)) for lf, ls, le in left for rf, rs, re_ in right
                 if lf == rf and not max(ls, rs) < min(le, re_) and (rs - le if rs >= le else ls - re_) <= node.distance]
        return pairs or None
    raise TypeError(node)


def test_the_matcher_decides_as_the_query_semantics_on_the_corpus_stories():
    shared_corpus("feeds")
    stories = corpus_stories(1500)
    for label, watchlists in watchlist_sets().items():
        queries = {w.name: w.query for w in watchlists if w.query}
        parsed = {name: parse_query(query) for name, query in queries.items()}
        matcher = KeywordMatcher(queries)
        expected, got = set(), set()
        for story in stories:
            own = own_letters(story.language)
            words = Story({"title": folded_words(story.title, own), "text": folded_words(story.text, own)})
            expected |= {(story.id, name) for name, node in parsed.items() if naive(node, words)}
            got |= {(story.id, name) for name in matcher.match(story.title, story.text, language=story.language)}
        assert got == expected, label
        assert len(expected) > (10 if label == "3" else 300), label  # the stories exercise the watchlists


def test_a_query_is_evaluated_where_only_a_later_word_or_a_negated_word_occurred():
    # Candidates come from the first words of positive terms: these must still decide right.
    matcher = KeywordMatcher({"phrase": '"central bank"', "not": "bank NOT central", "and": "rates AND bank"})
    assert set(matcher.match("The central bank", "")) == {"phrase"}
    assert set(matcher.match("A bank", "")) == {"not"}
    assert set(matcher.match("Bank rates", "")) == {"not", "and"}
    assert matcher.match("Central heating", "") == {}
