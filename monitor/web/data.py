"""What the pages and the API show, read from the database.

Plain functions over a :class:`~monitor.store.Store` returning dicts ready
for a template or JSON. Clusters are read when the database has them
(``stories.cluster_id``); before that every story is its own cluster.
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
from ..timeutil import to_iso, utcnow
from .cursor import decode_cursor, encode_cursor

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# The time ranges the match filter offers, in seconds (None: everything).
RANGES: dict[str, int | None] = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": None}
CHART_DAYS = 30


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


def has_clusters(store: Storage) -> bool:
    """Whether stories carry a cluster id (the clustering migration has run)."""
    return "cluster_id" in store.columns("stories")


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
    clauses, params = [], []
    if flt.watchlist:
        clauses.append("m.watchlist = ?")
        params.append(flt.watchlist)
    if flt.source:
        clauses.append("s.source = ?")
        params.append(flt.source)
    seconds = RANGES.get(flt.range)
    if seconds:
        clauses.append("m.matched_at >= ?")
        params.append(to_iso(utcnow() - timedelta(seconds=seconds)))
    if flt.q:
        clauses.append("(instr(lower(s.title), ?) > 0 OR instr(lower(s.text), ?) > 0)")
        params += [flt.q.lower(), flt.q.lower()]
    if cursor:
        matched_at, match_id = decode_cursor(cursor, 2)
        clauses.append("(m.matched_at, m.id) < (?, ?)")
        params += [matched_at, match_id]
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    clustered = has_clusters(store)
    cluster = ", coalesce(s.cluster_id, s.id) AS cluster" if clustered else ", s.id AS cluster"
    rows = store.query(
        "SELECT m.id, m.watchlist, m.score, m.classifier, m.evidence, m.matched_at, "
        f"s.id AS story_id, s.title, s.url, s.source, s.published_at{cluster}, "
        "(SELECT verdict FROM feedback f WHERE f.story_id = s.id AND f.watchlist = m.watchlist) AS verdict "
        f"FROM matches m JOIN stories s ON s.id = m.story_id {where} "
        "ORDER BY m.matched_at DESC, m.id DESC LIMIT ?",
        [*params, limit + 1],
    )
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        row["evidence"] = _evidence(row["evidence"])
        row["also_reported"] = cluster_reports(store, row["story_id"], row["cluster"], clustered)
    next_cursor = encode_cursor(rows[-1]["matched_at"], rows[-1]["id"]) if more and rows else None
    return Page(rows, next_cursor)


def cluster_reports(store: Storage, story_id: str, cluster: str | None,
                    clustered: bool | None = None) -> list[dict[str, Any]]:
    """The other stories of ``story_id``'s cluster (source, title, url), earliest first.

    :param clustered: whether the database has clusters, when the caller knows already.
    """
    if not cluster or not (has_clusters(store) if clustered is None else clustered):
        return []
    return store.query(
        "SELECT id, source, title, url, published_at FROM stories "
        "WHERE (cluster_id = ? OR id = ?) AND id != ? ORDER BY first_seen_at, id LIMIT 50",
        [cluster, cluster, story_id],
    )


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
    cluster = story.get("cluster_id") or story["id"]
    return {
        "story": story,
        "title_spans": spans["title"],
        "text_spans": spans["text"],
        "decisions": decisions,
        "alerts": store.story_alerts(story_id),
        "feedback": store.story_feedback(story_id),
        "also_reported": cluster_reports(store, story["id"], cluster),
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
    counts: dict[str, dict[str, int]] = {}
    for row in store.query(
        "SELECT source, substr(first_seen_at, 1, 10) AS day, count(*) AS n FROM stories "
        "WHERE first_seen_at >= ? GROUP BY source, day", [first.isoformat()],
    ):
        counts.setdefault(row["source"], {})[row["day"]] = row["n"]
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
    clauses, params = [], []
    if status:
        clauses.append("o.status = ?")
        params.append(status)
    if cursor:
        (last_id,) = decode_cursor(cursor, 1)
        clauses.append("o.id < ?")
        params.append(last_id)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = store.query(
        "SELECT o.id, o.channel, o.status, o.attempts, o.next_attempt_at, o.sent_at, o.last_error, o.created_at, "
        "m.watchlist, s.id AS story_id, s.title FROM outbox o JOIN matches m ON m.id = o.match_id "
        f"JOIN stories s ON s.id = m.story_id {where} ORDER BY o.id DESC LIMIT ?",
        [*params, limit + 1],
    )
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
