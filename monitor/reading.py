"""The CPU part of one poll: parse, normalise, key, tell new from known, classify.

It runs in a worker process (see :mod:`monitor.workers`) or, with
``schedule.processes = 0``, in the polling thread; either way it reads the
database but never writes, and returns plain data for the one writer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import classify as classify_mod
from .budget import PollBudget
from .errors import ParseError
from .limits import bound_entries
from .models import FetchResult, Match, Source, Story
from .normalize import default_story_key, normalize_entry
from .safetext import MESSAGE_MAX, safe_line
from .wording import plural

if TYPE_CHECKING:
    from .app import Monitor

__all__ = ["FeedRead", "read_feed", "crossing_classifiers", "finish"]

log = logging.getLogger("monitor.pipeline")

# Stories classified between two budget checks: small enough that a stop
# request is heeded within a second or two, large enough to keep batching.
CLASSIFY_CHUNK = 50


@dataclass
class FeedRead:
    """What one fetched body holds, as plain data.

    :param seen: stories in the feed (after duplicates within it were dropped).
    :param new: stories not stored yet (and not pruned).
    :param changed: stored stories whose content changed.
    :param notes: what reading went around (malformed XML, duplicate ids), one safe line each.
    :param found: what the classifiers named in ``ran`` returned for ``new + changed``.
    """

    seen: int
    new: list[Story]
    changed: list[Story]
    notes: list[str] = field(default_factory=list)
    found: classify_mod.Found = field(default_factory=classify_mod.Found)
    ran: tuple[str, ...] = ()


def crossing_classifiers(monitor: Monitor) -> tuple[str, ...]:
    """The classifiers a worker process may run: all but those saying ``runs_in_workers = False``."""
    return tuple(name for name, c in monitor.classifiers.items() if getattr(c, "runs_in_workers", True))


def read_feed(monitor: Monitor, source: Source, fetched: FetchResult, now: datetime,
              classifiers: Mapping[str, Any]) -> FeedRead:
    """Parse ``fetched``, keep what is new or changed and run ``classifiers`` over it.

    :raises ParseError: no loaded parser reads the body.
    """
    budget = PollBudget(float(monitor.config.fetch["work_deadline"]), monitor.stopping, fetched.url)
    entries = monitor.pm.hook.parse_feed(source=source, fetched=fetched, limits=monitor.entry_limits)
    if entries is None:
        kind = fetched.media_type or "unknown media type"
        raise ParseError(f"not a feed any loaded parser can read ({kind})", url=fetched.url)
    budget.check("parsing")
    notes = [safe_line(str(note), MESSAGE_MAX) for note in getattr(entries, "notes", ())]
    entries, limit_notes = bound_entries(entries, monitor.entry_limits)
    notes += limit_notes
    stories = _stories(monitor, source, entries, now, notes, budget)
    del entries  # the raw entries can be large; the stories are all that is needed now
    known = monitor.store.known_hashes([s.id for s in stories])
    fresh = [s for s in stories if s.id not in known]
    # A pruned story still in its feed is old news, not new.
    pruned = monitor.store.pruned_ids([s.id for s in fresh]) if fresh else set()
    new = [s for s in fresh if s.id not in pruned]
    changed = [s for s in stories if s.id in known and known[s.id] != s.content_hash]
    found = classify_mod.Found()
    todo = new + changed
    limit = int(monitor.config.classify["max_text_chars"])
    for start in range(0, len(todo), CLASSIFY_CHUNK):
        found.add_batch(classify_mod.run_classifiers(classifiers, todo[start:start + CLASSIFY_CHUNK],
                                                     monitor.watchlists, limit))
        # After each chunk, the last one too: a stop asked for while it ran ends the poll before anything is stored.
        budget.check("classifying")
    return FeedRead(len(stories), new, changed, notes, found, tuple(classifiers))


def finish(monitor: Monitor, read: FeedRead) -> list[Match]:
    """Run the classifiers ``read`` did not run (those that stay in this process), report every
    classifier failure and combine all matches (see :func:`monitor.classify.classify`)."""
    stories = read.new + read.changed
    found = classify_mod.Found(dict(read.found.by_classifier), set(read.found.replaced), list(read.found.failures),
                               dict(read.found.cut))
    rest = {name: c for name, c in monitor.classifiers.items() if name not in read.ran}
    if rest:
        found.add(classify_mod.run_classifiers(rest, stories, monitor.watchlists,
                                               int(monitor.config.classify["max_text_chars"])))
    for failure in found.failures:
        monitor.emit(failure)
    if not stories or not monitor.watchlists:
        return []
    return classify_mod.combine(found, stories, monitor.watchlists)


def _stories(monitor: Monitor, source: Source, entries: list, now: datetime, notes: list[str],
             budget: PollBudget) -> list[Story]:
    """Normalise, filter, enrich and key every entry; one bad entry costs only itself."""
    hook = monitor.pm.hook
    seen: set[str] = set()
    stories = []
    skipped = duplicates = 0
    for index, entry in enumerate(entries):
        budget.check("reading entries")
        try:
            story = normalize_entry(entry, source, now)
            if hook.skip_story(story=story, source=source):
                continue
            for updates in hook.prepare_story(story=story, source=source, monitor=monitor):
                if updates:
                    story = replace(story, **updates)
            key = hook.story_key(story=story, source=source) or default_story_key(story, source)
        except Exception:
            log.exception("%s: entry %d skipped: it could not be prepared", source.name, index)
            skipped += 1
            continue
        if key in seen:  # duplicate GUIDs within one feed: the first one wins
            duplicates += 1
            continue
        seen.add(key)
        stories.append(replace(story, id=key))
    if duplicates:
        notes.append(f"{plural(duplicates, 'entry')} with a duplicate id ignored (the first one kept)")
    if skipped:
        notes.append(f"{plural(skipped, 'entry')} skipped: could not be read (see the log)")
    return stories
