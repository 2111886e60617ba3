"""The cluster stage of the pipeline: classify -> cluster -> store.

:class:`StoryClusters` keeps a :class:`~monitor.clustering.ClusterIndex` of
the window in step with the database. The index is a cache: at start it
reads the stories first seen within the window, and before every batch it
reads the stories any process stored since (by rowid), so a restart, or
``monitor once`` running beside the daemon, changes no decision. The cost of
a batch depends on the window, not on the size of the database.

On a database one process writes (SQLite) a batch is assigned before the
store's write. On one that many processes share (PostgreSQL: a fleet of
workers) two workers could each assign one outlet's copy of a story before
either had stored it, and start two clusters; there the batch is assigned
inside the store's write transaction (:meth:`StoryClusters.assign_serialised`),
after the store has serialised it with every other cluster-assigning write
(:meth:`monitor.sql_store.SQLStore._serialise_clusters`): the catch-up then
reads every story committed before, and the batch is stored before the next
writer reads. The candidates come from the database's stored clusters of the
window, whichever worker stored them.
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


def story_profile(story: Story, seen: datetime | None = None, known_words: dict[str, str] | None = None) -> Profile:
    """The clustering view of a story: dated by publication, else by when it was fetched.

    ``seen`` (default: when it was fetched) is when the story was first seen: the window keeps it by that.
    ``known_words``: see :func:`monitor.clustering.profile`.
    """
    return profile(story.id, story.source, story.title, story.text, story.published or story.fetched, story.url,
                   seen or story.fetched, known_words)


def assign_stories(index: ClusterIndex, stories: Sequence[Story]) -> list[Story]:
    """``stories`` with their ``cluster`` set, in order; the one code path of the daemon and ``monitor cluster``."""
    profiles = [story_profile(story, known_words=index.known_words) for story in stories]
    index.prepare_batch(profiles)
    out = []
    for story, item in zip(stories, profiles):
        found: Assignment = index.assign(item)
        out.append(story.replace(cluster=found.cluster))
    return out


class StoryClusters:
    """The daemon's clustering, shared by every poll of one monitor (thread-safe).

    ``shared``: the store is written by several processes, so batches go
    through :meth:`assign_serialised` inside the store's write instead of :meth:`assign`.
    """

    def __init__(self, store: Storage, settings: ClusterSettings):
        self.store = store
        self.settings = settings
        self.shared = store.dialect == "postgresql"
        self.index = ClusterIndex(settings)
        self._lock = threading.Lock()
        self._last_rowid: int | None = None
        self._expired_at: datetime | None = None
        self._unconfirmed = threading.local()  # this thread's write assigned clusters not yet committed

    def assign(self, stories: Sequence[Story]) -> list[Story]:
        """Give each new story its cluster (stories are returned unchanged when clustering is off)."""
        if not self.settings.enabled or not stories:
            return list(stories)
        with self._lock:
            self._catch_up()
            return assign_stories(self.index, stories)

    def prepare(self, stories: Sequence[Story]) -> dict[str, Profile]:
        """Before a write given :meth:`assign_serialised`: the batch's profiles, and a catch-up with
        what is committed now. Both are most of the stage's work, done here while other
        processes may be assigning, so what waits for them is only the stories stored since."""
        if not self.settings.enabled or not stories:
            return {}
        profiles = {story.id: story_profile(story) for story in stories}
        with self._lock:
            self._catch_up()
            # Embedding (with the semantic extra) is the heavy part: done here, not while others wait.
            self.index.prepare_batch(list(profiles.values()))
        return profiles

    def assign_serialised(self, stories: Sequence[Story], profiles: Mapping[str, Profile] | None = None) -> list[Story]:
        """:meth:`assign`, called by the store inside its write transaction once no other process
        assigns clusters (see the module's note); the catch-up reads through that transaction.
        ``profiles`` are :meth:`prepare`'s. Tell :meth:`write_ended` how the write ended."""
        if not self.settings.enabled or not stories:
            return list(stories)
        profiles = profiles or {}
        with self._lock:
            self._catch_up()
            assigned = [story.replace(cluster=self.index.assign(profiles.get(story.id) or story_profile(story)).cluster)
                        for story in stories]
        self._unconfirmed.pending = True
        return assigned

    def write_ended(self, committed: bool) -> None:
        """After a write given :meth:`assign_serialised`: when it was rolled back having assigned
        clusters, its stories were never stored, so the index is read back from the database at
        the next batch rather than keep clusters nobody else can see."""
        pending, self._unconfirmed.pending = getattr(self._unconfirmed, "pending", False), False
        if pending and not committed:
            with self._lock:
                self.index = ClusterIndex(self.settings, self.index.embed)  # the loaded model, not a second one
                self._last_rowid = None
                self._expired_at = None

    def _catch_up(self) -> None:
        now = utcnow()
        if self._last_rowid is None:
            since = to_iso(now - timedelta(seconds=self.settings.window))
            # The top rowid before the window: a story committed between the two reads is then
            # in the window's rows or after the rowid we count from, never in neither.
            self._last_rowid = self.store.last_story_rowid()
            rows = self.store.stories_for_clustering(first_seen_since=since)
            log.info("clustering: %d stories of the last %s read back", len(rows), timedelta(seconds=self.settings.window))
        else:
            rows = self.store.stories_for_clustering(after_rowid=self._last_rowid)
        for row in rows:
            self._last_rowid = max(self._last_rowid, row["rowid"])
            if row["id"] in self.index:
                continue  # assigned by this process, already in the index: profiling it again was a quarter of clustering's time
            item = profile(row["id"], row["source"], row["title"], row["text"],
                           from_iso(row["published_at"]) or from_iso(row["first_seen_at"]), row["url"],
                           from_iso(row["first_seen_at"]), self.index.known_words)
            self.index.remember(item, row["cluster"])
        # Forgetting costs a pass over the index: once a minute is enough.
        if self._expired_at is None or (now - self._expired_at).total_seconds() > 60:
            self.index.expire(now - timedelta(seconds=self.settings.window))
            self._expired_at = now
