"""Running watchlists over stories already stored (``monitor reclassify``).

A watchlist added today finds the stories stored last week. Stories are read
in storage order, a batch at a time (memory stays flat on a large database);
stories stored before clustering existed get their clusters on the way, from
an index of the window like the daemon's. New matches are stored without
alerting unless asked; with alerts they go through the outbox under the same
rule as the daemon's: one alert per cluster, watchlist and channel. Matches
and clusters already stored are left alone, so a second run adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .cluster_stage import story_profile
from .clustering import ClusterIndex
from .models import Watchlist
from .store import story_from_row
from .timeutil import from_iso, utcnow

if TYPE_CHECKING:
    from .app import Monitor

BATCH = 500


@dataclass(frozen=True)
class BackfillResult:
    """What one run did."""

    stories: int = 0
    clustered: int = 0
    matches: int = 0
    alerts_queued: int = 0


def reclassify(
    monitor: Monitor,
    watchlists: Sequence[Watchlist],
    *,
    since: float | None = None,
    alert: bool = False,
    progress: Callable[[BackfillResult], None] = lambda r: None,
    batch: int = BATCH,
) -> BackfillResult:
    """Classify stored stories (published, or first seen, within ``since`` seconds when given) and store new matches.

    :param alert: queue alerts for the new matches (one per cluster, watchlist and channel).
    :param progress: called after every batch with the running totals.
    """
    settings = monitor.clusters.settings
    index = ClusterIndex(settings)
    cutoff = utcnow() - timedelta(seconds=since) if since else None
    done = BackfillResult()
    rowid = 0
    newest: datetime | None = None
    while True:
        rows = monitor.store.stories_after(rowid, batch, cutoff)
        if not rows:
            return done
        rowid = rows[-1]["rowid"]
        stories = []
        assigned: dict[str, str] = {}
        for row in rows:
            story = story_from_row(row)
            if story.fetched is None:
                story = story.replace(fetched=from_iso(row["first_seen_at"]))
            item = story_profile(story, from_iso(row["first_seen_at"]), index.known_words)
            if story.cluster or not settings.enabled:
                index.remember(item, story.cluster or story.id)
            else:
                assigned[story.id] = index.assign(item).cluster
                story = story.replace(cluster=assigned[story.id])
            if item.kept_since and (newest is None or item.kept_since > newest):
                newest = item.kept_since
            stories.append(story)
        clustered = monitor.store.set_clusters(assigned) if assigned else 0
        if newest is not None:
            index.expire(newest - timedelta(seconds=settings.window))
        matches = monitor.classify(stories, watchlists)
        saved = monitor.store.save_matches(matches, dict(monitor.config.watchlists), alert=alert)
        done = BackfillResult(done.stories + len(stories), done.clustered + clustered,
                              done.matches + saved.matches, done.alerts_queued + saved.alerts_queued)
        progress(done)
