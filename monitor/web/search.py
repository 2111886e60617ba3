"""Search stored stories with the watchlist query language.

Full-text search finds candidates (any term of the query, a superset: FTS
stems words); :class:`~monitor.query.KeywordMatcher` then decides and
highlights exactly as a watchlist would, so what the search shows is what
the query would match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import QuerySyntaxError, StorageError
from ..query import KeywordMatcher, parse_query, terms_of
from ..storage import Storage

MAX_CANDIDATES = 2000
NAME = "search"


@dataclass(frozen=True)
class SearchResult:
    """The stories a query matched, best first, and how many candidates were read."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    candidates: int = 0
    truncated: bool = False


# The FTS index stems words (porter), and a stem can be shorter than a prefix
# the query gives: "kidnapped" is indexed as "kidnap", which "kidnapp*" would
# miss. A prefix is therefore shortened by the most a stemmer removes before
# it goes to FTS; the matcher then decides on the real prefix.
STEM_SLACK = 5
MIN_PREFIX = 3


def fts_candidates(query: str) -> str:
    """An FTS5 expression matching every story that holds any term of ``query`` (a superset)."""
    parts = []
    for term in terms_of(parse_query(query)):
        words = []
        for word, is_prefix in term.words:
            if is_prefix:
                word = word[:max(MIN_PREFIX, len(word) - STEM_SLACK)]
            words.append(f'"{word}"' + ("*" if is_prefix else ""))
        parts.append(words[0] if len(words) == 1 else "(" + " ".join(words) + ")")
    return " OR ".join(dict.fromkeys(parts))


def search(store: Storage, query: str, threshold: float = 0.0, limit: int = 50) -> SearchResult:
    """Stories ``query`` matches (score at or above ``threshold``), best first.

    :raises QuerySyntaxError: the query does not parse.
    """
    matcher = KeywordMatcher({NAME: query})
    expression = fts_candidates(query)
    if not expression:
        return SearchResult()
    try:
        rows = store.newest_found(expression, MAX_CANDIDATES + 1)
    except StorageError as exc:
        raise QuerySyntaxError(f"cannot search for {query!r}: {exc}") from exc
    truncated = len(rows) > MAX_CANDIDATES
    found = []
    for row in rows[:MAX_CANDIDATES]:
        result = matcher.match(row["title"], row["text"]).get(NAME)
        if result is None or result[0] < threshold:
            continue
        score, evidence = result
        row = {k: v for k, v in row.items() if k != "text"}
        row.update(score=score, evidence=evidence.to_dict())
        found.append(row)
    found.sort(key=lambda r: (-r["score"], r["first_seen_at"] or ""), reverse=False)
    return SearchResult(found[:limit], min(len(rows), MAX_CANDIDATES), truncated)


def watchlist_toml(name: str, query: str, threshold: float = 1.0) -> str:
    """The ``[watchlists.NAME]`` table that saves ``query`` as a watchlist."""
    body = query.replace("'''", "' ' '")  # a TOML multi-line literal cannot hold its own delimiter
    return f"[watchlists.{name}]\nquery = '''\n{body}\n'''\nthreshold = {threshold:g}\nchannels = [\"console\"]\n"
