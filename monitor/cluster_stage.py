"""The cluster stage of the pipeline: classify -> cluster -> store.

:class:`StoryClusters` keeps a :class:`~monitor.clustering.ClusterIndex` of
the window in step with the database. The index is a cache: at start it
reads the stories first seen within the window, and before every batch it
reads the stories any process stored since (by rowid), so a restart, or
``monitor once`` running beside the daemon, changes no decision. The cost of
a batch depends on the window, not on the size of the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .clustering import Assignment, ClusterIndex, ClusterSettings, Profile, profile
from .models import Story
from .story_embeddings import embedding_mode
from .storage import Storage
from .timeutil import from_iso, to_iso, utcnow

log = logging.getLogger("monitor.clusters")



def settings_from_config(table: Mapping[str, Any]) -> ClusterSettings:
    """:class:`ClusterSettings` from the validated ``[clustering]`` table."""
    defaults = ClusterSettings()
    return ClusterSettings(
        enabled=bool(table.get("enabled", defaults.enabled)),
        window=float(table.get("window", defaults.window)),
        threshold=None if table.get("threshold") is None else float(table["threshold"]),
        embeddings=embedding_mode(table.get("embeddings", defaults.embeddings)),
    )


def story_profile(story: Story) -> Profile:
    """The clustering view of a story: dated by publication, else by when it was fetched."""
    return profile(story.id, story.source, story.title, story.text, story.published or story.fetched, story.url)


def assign_stories(index: ClusterIndex, stories: Sequence[Story]) -> list[Story]:
    """``stories`` with their ``cluster`` set, in order; the one code path of the daemon and ``monitor cluster``."""
    profiles = [story_profile(story) for story in stories]
    index.prepare_batch(profiles)
    out = []
    for story, item in zip(stories, profiles):
        found: Assignment = index.assign(item)
        out.append(story.replace(cluster=found.cluster))
    return out


class StoryClusters:
    """The daemon's clustering, shared by every poll of one monitor (thread-safe)."""

    def __init__(self, store: Storage, settings: ClusterSettings):
        self.store = store
        self.settings = settings
        self.index = ClusterIndex(settings)
        self._lock = threading.Lock()
        self._last_rowid: int | None = None
        self._expired_at: datetime | None = None

    def assign(self, stories: Sequence[Story]) -> list[Story]:
        """Give each new story its cluster (stories are returned unchanged when clustering is off)."""
        if not self.settings.enabled or not stories:
            return list(stories)
        with self._lock:
            self._catch_up()
            return assign_stories(self.index, stories)

    def _catch_up(self) -> None:
        now = utcnow()
        if self._last_rowid is None:
            since = to_iso(now - timedelta(seconds=self.settings.window))
            rows = self.store.stories_for_clustering(first_seen_since=since)
            self._last_rowid = self.store.last_story_rowid()
            log.info("clustering: %d stories of the last %s read back", len(rows), timedelta(seconds=self.settings.window))
        else:
            rows = self.store.stories_for_clustering(after_rowid=self._last_rowid)
        for row in rows:
            self._last_rowid = max(self._last_rowid, row["rowid"])
            if row["id"] in self.index:
                continue  # assigned by this process, already in the index: profiling it again was a quarter of clustering's time
            item = profile(row["id"], row["source"], row["title"], row["text"],
                           from_iso(row["published_at"]) or from_iso(row["first_seen_at"]), row["url"])
            self.index.remember(item, row["cluster"])
        # Forgetting costs a pass over the index: once a minute is enough.
        if self._expired_at is None or (now - self._expired_at).total_seconds() > 60:
            self.index.expire(now - timedelta(seconds=self.settings.window))
            self._expired_at = now
