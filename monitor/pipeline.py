"""One poll of one source: fetch -> parse -> normalise -> prepare -> classify -> store.

Expected per-source problems (a dead server, a malformed feed) come back as
an :class:`UpdateResult` with ``error`` set and are recorded on the source's
row; nothing raised by a source's plugins escapes a poll.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .errors import FetchError, ParseError, SourceError
from .models import FetchResult, FetchState, MatchFound, Source, SourceFailed, SourceUpdated, Story, UpdateResult
from .normalize import default_story_key, normalize_entry
from .store import SourceOutcome
from .timeutil import utcnow

if TYPE_CHECKING:
    from .app import Monitor

log = logging.getLogger("monitor.pipeline")

# Failing sources back off exponentially from their interval up to this cap.
MAX_BACKOFF = timedelta(hours=6)


def update_source(monitor: Monitor, source: Source) -> UpdateResult:
    """Poll ``source`` once and store what is new. Never raises for source problems."""
    state = monitor.store.fetch_state(source)
    now = utcnow()
    try:
        fetched = _fetch(monitor, source, state)
        body_hash = _body_hash(fetched)
        if fetched.not_modified or (body_hash is not None and body_hash == state.body_hash):
            outcome = _ok_outcome(source, fetched, state.body_hash, now, status="not_modified")
            monitor.store.record_poll(source, outcome)
            result = UpdateResult(source=source.name, not_modified=True, status=fetched.status)
            monitor.emit(SourceUpdated(result))
            return result
        entries = _parse(monitor, source, fetched)
    except SourceError as exc:
        return _failed(monitor, source, state, now, exc)
    except Exception as exc:  # a plugin bug must not take the daemon down
        log.exception("%s: unexpected error while reading %s", source.name, source.url)
        return _failed(monitor, source, state, now, SourceError(f"internal error: {type(exc).__name__}: {exc}", url=source.url))

    stories = _stories(monitor, source, entries, now)
    known = monitor.store.known_hashes([s.id for s in stories])
    new = [s for s in stories if s.id not in known]
    changed = [s for s in stories if s.id in known and known[s.id] != s.content_hash]
    matches = monitor.classify(new + changed)
    outcome = _ok_outcome(source, fetched, body_hash, now, status="ok")
    saved = monitor.store.save_update(source, outcome, new, changed, matches, monitor.config.watchlists)
    result = UpdateResult(
        source=source.name,
        new_stories=saved.new_stories,
        updated_stories=saved.updated_stories,
        seen_stories=len(stories),
        matches=saved.matches,
        alerts_queued=saved.alerts_queued,
        status=fetched.status,
    )
    log.info(
        "%s: %d entries, %d new, %d updated, %d new matches",
        source.name, len(stories), saved.new_stories, saved.updated_stories, saved.matches,
    )
    for match in matches:
        monitor.emit(MatchFound(match))
    monitor.emit(SourceUpdated(result))
    return result


def _fetch(monitor: Monitor, source: Source, state: FetchState) -> FetchResult:
    fetched = monitor.pm.hook.fetch_source(source=source, state=state, monitor=monitor)
    if fetched is None:
        raise FetchError(
            f"no loaded plugin can read a source of kind {source.kind!r} at this address "
            "(is a source plugin disabled?)",
            url=source.url,
            permanent=True,
        )
    return fetched


def _parse(monitor: Monitor, source: Source, fetched: FetchResult) -> list:
    entries = monitor.pm.hook.parse_feed(source=source, fetched=fetched)
    if entries is None:
        kind = fetched.media_type or "unknown media type"
        raise ParseError(f"not a feed any loaded parser can read ({kind})", url=fetched.url)
    return entries


def _stories(monitor: Monitor, source: Source, entries: list, now: datetime) -> list[Story]:
    """Normalise, filter, enrich and key every entry; one bad entry costs only itself."""
    hook = monitor.pm.hook
    seen: set[str] = set()
    stories = []
    for index, entry in enumerate(entries):
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
            continue
        if key in seen:  # duplicate GUIDs within one feed: the first one wins
            continue
        seen.add(key)
        stories.append(replace(story, id=key))
    return stories


def _body_hash(fetched: FetchResult) -> str | None:
    if fetched.content is None:
        return None
    return hashlib.sha256(fetched.content).hexdigest()


def _ok_outcome(source: Source, fetched: FetchResult, body_hash: str | None, now: datetime, *, status: str) -> SourceOutcome:
    return SourceOutcome(
        status=status,
        http_status=fetched.status,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        body_hash=body_hash,
        next_poll_at=now + timedelta(seconds=source.interval),
    )


def next_poll_after_failure(source: Source, error_count: int, now: datetime, retry_after: float | None) -> datetime:
    """Exponential backoff from the source's interval, capped, with jitter, honouring Retry-After."""
    delay = min(source.interval * (2 ** min(error_count, 16)), MAX_BACKOFF.total_seconds())
    delay = max(source.interval, delay * random.uniform(0.8, 1.0))
    if retry_after:
        delay = max(delay, retry_after)
    return now + timedelta(seconds=delay)


def _failed(monitor: Monitor, source: Source, state: FetchState, now: datetime, exc: SourceError) -> UpdateResult:
    status = getattr(exc, "status", None)
    message = monitor.config.redact(exc.message)
    log.warning("%s: %s: %s", source.name, exc.url or source.url, message)
    outcome = SourceOutcome(
        status="error",
        http_status=status,
        error=message,
        next_poll_at=next_poll_after_failure(source, state.error_count, now, getattr(exc, "retry_after", None)),
    )
    monitor.store.record_poll(source, outcome)
    monitor.emit(SourceFailed(source=source.name, url=source.url, error=message))
    return UpdateResult(source=source.name, error=message, status=status)
