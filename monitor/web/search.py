"""The web UI's search: :mod:`monitor.search`, the one search ``monitor search`` runs too, shaped for
the page and the API, and the TOML that saves a query as a watchlist."""

from __future__ import annotations

from typing import Any

from ..search import Found, Results, search
from ..storage import Storage

# The web answers in bounded time: the matcher reads at most this many candidates, the newest.
MAX_CANDIDATES = 2000
PAGE_LIMIT = 50


def search_stored(store: Storage, query: str, limit: int = PAGE_LIMIT) -> Results:
    """What ``monitor search QUERY`` finds, best first, among the newest :data:`MAX_CANDIDATES` candidates.

    :raises QuerySyntaxError: the query does not parse.
    """
    return search(store, query, limit, max_candidates=MAX_CANDIDATES)


def found_row(found: Found) -> dict[str, Any]:
    """One result as the page and the API show it: the story, its score and the evidence with its offsets."""
    row = found.row
    return {"id": row["id"], "title": row["title"], "url": row["url"], "source": row["source"],
            "published_at": row["published_at"], "first_seen_at": row.get("first_seen_at"),
            "score": found.score, "evidence": found.evidence.to_dict()}


def watchlist_toml(name: str, query: str, threshold: float = 1.0) -> str:
    """The ``[watchlists.NAME]`` table that saves ``query`` as a watchlist."""
    body = query.replace("'''", "' ' '")  # a TOML multi-line literal cannot hold its own delimiter
    return f"[watchlists.{name}]\nquery = '''\n{body}\n'''\nthreshold = {threshold:g}\nchannels = [\"console\"]\n"
