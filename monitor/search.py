"""Searching stored stories with the watchlist query language.

``monitor search`` and the watchlists speak one language (monitor/query.py).
SQLite's FTS5 index only narrows the stories down: the query's positive terms
become a safe FTS5 query that finds every story that *could* match (a
superset), and the watchlist matcher then decides, scores and highlights each
candidate exactly as the daemon would.

Why a superset: FTS5 indexes Porter stems, and a stem can be shorter than a
prefix the user typed (*university* is indexed as *univers*, so ``universit*``
would find nothing in FTS5). A prefix therefore asks FTS5 for its first three
letters only (or the whole word), and a phrase for all its words anywhere;
the matcher puts back the precision. A term in Chinese, Japanese or Korean
is looked for as a substring: FTS5 indexes a whole run of those characters
as one token.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .letters import dotless_spellings
from .models import Evidence
from .query import And, KeywordMatcher, Near, Node, Not, Or, Term, is_cjk, parse_query
from .storage import Storage as Store

# Letters of a prefix sent to FTS5 (see the module docstring).
FTS_PREFIX_LETTERS = 3
_QUERY = "q"


@dataclass(frozen=True)
class Found:
    """One stored story the query matched."""

    row: dict[str, Any]
    score: float
    evidence: Evidence

    @property
    def terms(self) -> tuple[str, ...]:
        """The distinct terms that matched, strongest first."""
        return self.evidence.terms

    @property
    def snippet(self) -> str:
        """The excerpt with the matched words in [brackets]."""
        return self.evidence.snippet.marked()

    def to_dict(self) -> dict[str, Any]:
        """The row shown by ``monitor search`` (JSON, CSV...)."""
        return {
            "id": self.row["id"], "title": self.row["title"], "url": self.row["url"], "source": self.row["source"],
            "published_at": self.row["published_at"], "score": self.score, "terms": list(self.terms),
            "snippet": self.snippet,
        }


@dataclass(frozen=True)
class Results:
    """What a search found, best first, and how many candidate stories the matcher read.

    :param truncated: there were more candidates than the search was allowed to read
        (the newest were read); a narrower query reads them all.
    """

    found: list[Found]
    candidates: int
    truncated: bool = False


def positive_terms(node: Node) -> list[Term]:
    """The terms whose presence can make ``node`` match (none under a NOT)."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, (And, Or)):
        return [t for child in node.children for t in positive_terms(child)]
    if isinstance(node, Near):
        return positive_terms(node.left) + positive_terms(node.right)
    assert isinstance(node, Not)
    return []


@dataclass(frozen=True)
class Candidates:
    """How to find every story a query could match: an FTS5 query OR any group of substrings.

    Runs of Chinese, Japanese or Korean characters are one token to FTS5 (it
    cannot split them into words), so a term written in them is looked for as
    a substring instead; ``substrings`` holds one group per such term, each
    substring of a group required.
    """

    fts: str | None
    substrings: tuple[tuple[str, ...], ...] = ()


def candidates(node: Node) -> Candidates:
    """The candidate search for ``node``: its positive terms OR-ed. Every FTS5 word is quoted, so
    nothing in the user's text is FTS5 syntax."""
    alternatives: list[str] = []
    substrings: list[tuple[str, ...]] = []
    for term in positive_terms(node):
        if any(is_cjk(word) for word, _ in term.words):
            substrings.append(tuple(_cjk_runs(term)))
            continue
        words = []
        for k, (_, is_prefix) in enumerate(term.words):
            # Every spelling the word takes (växer, vaxer): an index that does not fold accents has only one;
            # and its dotless-ı ones (ışık, Işık), which FTS5 keeps apart from isik.
            spelled = term.spelled(k)
            dotless = [d for form in spelled for d in dotless_spellings(form)]
            forms = [_fts_word(form, is_prefix) for form in dict.fromkeys([*spelled, *dotless])]
            words.append(forms[0] if len(forms) == 1 else "(" + " OR ".join(forms) + ")")
        alternatives.append("(" + " AND ".join(words) + ")")
    return Candidates(" OR ".join(dict.fromkeys(alternatives)) or None, tuple(dict.fromkeys(substrings)))


def _fts_word(word: str, is_prefix: bool) -> str:
    if is_prefix and len(word) > FTS_PREFIX_LETTERS:
        return f'("{word[:FTS_PREFIX_LETTERS]}"* OR "{word}")'
    return f'"{word}"' + ("*" if is_prefix else "")


def _cjk_runs(term: Term) -> list[str]:
    """The runs of adjacent CJK characters in a term (its other words are left to the matcher)."""
    runs, current = [], ""
    for word, _ in term.words:
        if is_cjk(word):
            current += word
        elif current:
            runs.append(current)
            current = ""
    return runs + ([current] if current else [])


def search(store: Store, query: str, limit: int, threshold: float = 0.0,
           max_candidates: int | None = None) -> Results:
    """The stored stories ``query`` matches with at least ``threshold``, best score first, then newest.

    :param max_candidates: read at most this many candidate stories, the newest
        (the web UI answers in bounded time); ``None`` reads them all.
    :raises QuerySyntaxError: the query does not parse.
    """
    node = parse_query(query)
    matcher = KeywordMatcher({_QUERY: query})
    found_by = candidates(node)
    rows: Iterable[dict[str, Any]] = store.search_candidates(found_by.fts, found_by.substrings)
    truncated = False
    if max_candidates is not None:
        # Candidates come oldest first: keep the newest, holding no more than that many at once.
        newest: deque[dict[str, Any]] = deque(maxlen=max_candidates + 1)
        newest.extend(rows)
        truncated = len(newest) > max_candidates
        rows = list(newest)[-max_candidates:] if max_candidates else []
    found, read = [], 0
    for row in rows:
        read += 1
        result = matcher.match(row["title"] or "", row["text"] or "", language=row.get("language")).get(_QUERY)
        if result is None or result[0] < threshold:
            continue
        score, evidence = result
        found.append(Found(row, score, evidence))
    found.sort(key=lambda f: f.row["published_at"] or "", reverse=True)
    found.sort(key=lambda f: -f.score)  # stable: newest first among equal scores
    return Results(found[:limit], read, truncated)
