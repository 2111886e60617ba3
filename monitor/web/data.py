"""What the pages and the API show, read from the database.

Plain functions over a :class:`~monitor.storage.Storage` returning dicts ready
for a template or JSON; every read is one of the store's named methods, the
same on SQLite and PostgreSQL. A story stored before clustering is its own
cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..config import Config
from ..models import Snippet
from ..query import KeywordMatcher
from ..storage import Storage
from ..timeutil import utcnow
from .cursor import decode_cursor, encode_cursor

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# The time ranges the match filter offers, in seconds (None: everything).
RANGES: dict[str, int | None] = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": None}
CHART_DAYS = 30
# Other reports of a story's cluster shown beside it.
ALSO_REPORTED = 50


@dataclass(frozen=True)
class MatchFilter:
    """The filters of the matches list; empty strings mean "any"."""

    watchlist: str = ""
    source: str = ""
    range: str = "all"
    q: str = ""

    def params(self) -> dict[str, str]:
        """The non-empty filters, for links that keep them."""
        return {k: v for k, v in vars(self).items() if v and not (k == "range" and v == "all")}


@dataclass(frozen=True)
class Page:
    """One page of rows and the cursor of the next one (``None`` on the last page)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def _evidence(raw: str | None) -> dict[str, Any]:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def list_matches(store: Storage, flt: MatchFilter, cursor: str | None = None, limit: int = PAGE_SIZE) -> Page:
    """Matches newest first, filtered, one page after ``cursor``.

    :raises BadCursor: ``cursor`` is not one this module made.
    """
    seconds = RANGES.get(flt.range)
    before = tuple(decode_cursor(cursor, 2)) if cursor else None
    rows = store.match_listing(flt.watchlist or None, flt.source or None,
                               since=utcnow() - timedelta(seconds=seconds) if seconds else None,
                               containing=flt.q or None, before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        row["evidence"] = _evidence(row["evidence"])
        row["also_reported"] = store.cluster_reports(row["story_id"], limit=ALSO_REPORTED)
    next_cursor = encode_cursor(rows[-1]["matched_at"], rows[-1]["id"]) if more and rows else None
    return Page(rows, next_cursor)


def watchlist_matcher(config: Config) -> KeywordMatcher | None:
    """One matcher for every enabled watchlist with a query (built once per app: compiling takes a while)."""
    queries = {w.name: w.query for w in config.watchlists.values() if w.enabled and w.query}
    return KeywordMatcher(queries) if queries else None


def story_detail(store: Storage, config: Config, story_id: str,
                 matcher: KeywordMatcher | None = None) -> dict[str, Any] | None:
    """A story with every watchlist's decision, its highlights, alerts, feedback and cluster; ``None`` if absent.

    :param matcher: :func:`watchlist_matcher` of ``config``, when the caller keeps one.
    """
    row = store.story_row(story_id)
    rows = [row] if row else []
    if not rows:
        return None
    story = rows[0]
    stored = {m["watchlist"]: m for m in store.story_matches(story_id)}
    matcher = matcher or watchlist_matcher(config)
    found = matcher.match(story["title"], story["text"], language=story.get("language")) if matcher else {}
    spans: dict[str, list[tuple[int, int]]] = {"title": [], "text": []}
    decisions = []
    for watchlist in config.watchlists.values():
        match = stored.get(watchlist.name)
        keyword_score, evidence = found.get(watchlist.name, (0.0, None))
        hits = list(evidence.hits) if evidence else []
        if match:
            stored_evidence = _evidence(match["evidence"])
            hits += [h for h in _hit_objects(stored_evidence) if h not in hits]
        for hit in hits:
            if hit.field in spans:
                spans[hit.field].append((hit.start, hit.end))
        decisions.append({
            "watchlist": watchlist.name, "enabled": watchlist.enabled, "threshold": watchlist.threshold,
            "matched": match is not None, "score": match["score"] if match else keyword_score,
            "classifier": match["classifier"] if match else ("keywords" if watchlist.query else ""),
            "terms": sorted({h.term for h in hits}), "match_id": match["id"] if match else None,
        })
    for watchlist in stored.keys() - {w.name for w in config.watchlists.values()}:
        match = stored[watchlist]
        decisions.append({"watchlist": watchlist, "enabled": False, "threshold": None, "matched": True,
                          "score": match["score"], "classifier": match["classifier"], "terms": [],
                          "match_id": match["id"]})
    return {
        "story": story,
        "title_spans": spans["title"],
        "text_spans": spans["text"],
        "decisions": decisions,
        "alerts": store.story_alerts(story_id),
        "feedback": store.story_feedback(story_id),
        "also_reported": store.cluster_reports(story["id"], limit=ALSO_REPORTED),
    }


def _hit_objects(evidence: dict[str, Any]) -> list:
    from ..models import Hit

    out = []
    for hit in evidence.get("hits", ()):
        try:
            out.append(Hit(**hit))
        except TypeError:
            continue
    return out


def snippet_of(evidence: dict[str, Any]) -> Snippet:
    """The stored evidence snippet with its highlight offsets."""
    spans = tuple(tuple(h) for h in evidence.get("highlights", ()) if isinstance(h, list) and len(h) == 2)
    return Snippet(str(evidence.get("snippet", "")), spans)  # type: ignore[arg-type]


def sources_overview(store: Storage, config: Config, days: int = CHART_DAYS) -> list[dict[str, Any]]:
    """Every source row with its stories per day over the last ``days`` days (oldest first)."""
    today = utcnow().date()
    first = today - timedelta(days=days - 1)
    counts = store.daily_story_counts(first.isoformat())
    out = []
    for row in store.sources():
        per_day = counts.get(row["name"], {})
        row["configured"] = row["name"] in config.sources
        row["daily"] = [((first + timedelta(days=i)).isoformat(), per_day.get((first + timedelta(days=i)).isoformat(), 0))
                        for i in range(days)]
        out.append(row)
    return out


def list_alerts(store: Storage, status: str = "", cursor: str | None = None, limit: int = PAGE_SIZE) -> Page:
    """Outbox rows newest first, with their watchlist, story and last error.

    :raises BadCursor: ``cursor`` is not one this module made.
    """
    before_id = decode_cursor(cursor, 1)[0] if cursor else None
    rows = store.outbox(status or None, limit=limit + 1, before_id=before_id)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]["id"]) if more and rows else None)


def requeue_one(store: Storage, alert_id: int) -> int:
    """Queue failed alert ``alert_id`` again; 0 when it is not failed or cannot exist (beyond SQLite's integers)."""
    if not 0 <= alert_id < 2**63:
        return 0
    return store.requeue_failed(alert_id=alert_id)


def outbox_counts(store: Storage) -> dict[str, int]:
    """Outbox rows per status."""
    return store.outbox_counts()


def source_names(store: Storage) -> list[str]:
    """Every source that has stories or a row, by name."""
    return store.source_names()
