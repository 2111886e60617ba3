"""One poll of one source: fetch -> parse -> normalise -> prepare -> classify -> cluster -> store.

Expected per-source problems (a dead server, a malformed feed) come back as
an :class:`UpdateResult` with ``error`` set and are recorded on the source's
row; nothing raised by a source's plugins escapes a poll. When to poll next
is decided by :mod:`monitor.polling`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import reading
from .budget import PollInterrupted
from .errors import FetchError, LeaseLost, SourceError, StorageError
from .models import FetchResult, FetchState, Match, MatchFound, Source, SourceFailed, SourceUpdated, Story, UpdateResult
from .polling import (GONE, WEEK, NextPoll, Plan, next_poll_after_failure, next_poll_after_success, planned_interval,
                      quiet_on_first_poll)
from .safetext import MESSAGE_MAX, safe_line
from .store import SavedUpdate, SourceOutcome
from .timeutil import format_duration, utcnow
from .wording import plural
from .workers import WorkersUnavailable

if TYPE_CHECKING:
    from .app import Monitor

__all__ = ["update_source", "next_poll_after_failure"]

log = logging.getLogger("monitor.pipeline")


def update_source(monitor: Monitor, source: Source) -> UpdateResult:
    """Poll ``source`` once and store what is new. Never raises for source or database problems.

    When the database refuses the write (a full disk, a read-only or damaged
    file) nothing of the poll is kept, not even its ETag or body hash, so the
    next poll fetches and stores the same stories; the failure is recorded on
    the source's row as soon as the database takes a write again.
    """
    try:
        return _update_source(monitor, source)
    except StorageError as exc:
        return _not_stored(monitor, source, exc)


def _not_stored(monitor: Monitor, source: Source, exc: StorageError) -> UpdateResult:
    message = f"not stored: {exc}"
    log.error("%s: %s", source.name, message)
    outcome = SourceOutcome(status="error", error=message, next_poll_at=utcnow() + timedelta(seconds=source.interval))
    try:
        monitor.store.record_failure(source, outcome)
    except StorageError:
        pass  # kept by the store until a write succeeds
    monitor.emit(SourceFailed(source=source.name, url=source.url, error=message))
    return UpdateResult(source=source.name, error=message)


def _update_source(monitor: Monitor, source: Source) -> UpdateResult:
    row = monitor.store.source_row(source.name)
    if row is not None and row["status"] == "gone" and row["url"] == monitor.store.stored_url(source):
        message = f"not polled: the feed is gone (HTTP 410, {row['last_fetch_at']}); change its url to poll it again"
        return UpdateResult(source=source.name, error=message, status=410)
    state = monitor.store.fetch_state(source, row)  # one read of the source's row: a round trip on PostgreSQL
    now = utcnow()
    # After a permanent redirect the feed lives at its new address.
    target = replace(source, url=state.effective_url) if state.effective_url else source
    try:
        fetched = _fetch(monitor, target, state)
        moved = _moved_to(monitor, source, state, fetched)
        body_hash = _body_hash(fetched)
        if fetched.not_modified or (body_hash is not None and body_hash == state.body_hash):
            # Unchanged: no parsing, and no writes beyond the fetch state.
            plan = _plan(monitor, source, now, new=())
            outcome = _ok_outcome(monitor, fetched, state.body_hash, now, plan, moved, status="not_modified")
            monitor.store.record_poll(source, outcome)
            result = UpdateResult(source=source.name, not_modified=True, status=fetched.status)
            monitor.emit(SourceUpdated(result))
            return result
        read = _read(monitor, source, fetched, now)
    except PollInterrupted as exc:
        log.info("%s: %s", source.name, exc.message)
        return UpdateResult(source=source.name, error=exc.message)
    except SourceError as exc:
        return _failed(monitor, source, state, now, exc)
    except (StorageError, LeaseLost):
        raise  # update_source records a StorageError; a fleet worker's lost lease goes to the worker
    except Exception as exc:  # a plugin bug must not take the daemon down
        log.exception("%s: unexpected error while reading %s", source.name, monitor.config.redact(target.url))
        return _failed(monitor, source, state, now, SourceError(f"internal error: {type(exc).__name__}: {exc}", url=target.url))

    notes, new, changed = read.notes, read.new, read.changed
    quiet = _quiet(monitor, source, state, new, now)
    matches = reading.finish(monitor, read)
    plan = _plan(monitor, source, now, new=new)
    outcome = _ok_outcome(monitor, fetched, body_hash, now, plan, moved, status="ok",
                          note=safe_line("; ".join(notes), MESSAGE_MAX) or None)
    saved = _store(monitor, source, outcome, new, changed, matches, quiet)
    result = UpdateResult(
        source=source.name,
        new_stories=saved.new_stories,
        updated_stories=saved.updated_stories,
        seen_stories=read.seen,
        matches=saved.matches,
        alerts_queued=saved.alerts_queued,
        status=fetched.status,
    )
    log.info(
        "%s: %s, %d new, %d updated, %s%s",
        source.name, plural(read.seen, "entry"), saved.new_stories, saved.updated_stories,
        plural(saved.matches, "new match"), _quiet_words(monitor, new, quiet),
    )
    for match in matches:
        monitor.emit(MatchFound(match))
    monitor.emit(SourceUpdated(result))
    return result


def _store(monitor: Monitor, source: Source, outcome: SourceOutcome, new: list[Story], changed: list[Story],
           matches: list[Match], quiet: set[str]) -> SavedUpdate:
    """Cluster the new stories (a changed story keeps the cluster it was given) and store the poll.

    In the writer's process, after classify: assignment reads and extends the
    clusters stored so far. On a store several processes write, inside the
    store's write transaction, serialised with theirs (monitor.cluster_stage).
    """
    clusters = monitor.clusters
    watchlists = monitor.config.watchlists
    if not clusters.shared or not clusters.settings.enabled:
        return monitor.store.save_update(source, outcome, clusters.assign(new), changed, matches, watchlists,
                                         quiet=quiet)
    profiles = clusters.prepare(new)
    committed = False
    try:
        saved = monitor.store.save_update(source, outcome, new, changed, matches, watchlists, quiet=quiet,
                                          clusters=lambda stories: clusters.assign_serialised(stories, profiles))
        committed = True
        return saved
    finally:
        clusters.write_ended(committed)


def _quiet_words(monitor: Monitor, new: list[Story], quiet: set[str]) -> str:
    """What the first poll of a new source stored without alerting, in words that are true of each entry."""
    if not quiet:
        return ""
    undated = sum(1 for s in new if s.id in quiet and s.published is None)
    window = format_duration(float(monitor.config.alerts["new_source_window"]))
    parts = [part for part in (
        plural(len(quiet) - undated, "entry") + f" published more than {window} ago" if len(quiet) > undated else "",
        plural(undated, "undated entry") if undated else "",
    ) if part]
    return f" ({' and '.join(parts)} stored without alerts: first poll of a new source, alerts.new_source_window)"


def _moved_to(monitor: Monitor, source: Source, state: FetchState, fetched: FetchResult) -> str | None:
    """The new effective URL if a permanent redirect moved the feed this time."""
    new = fetched.permanent_redirect
    if new and new != (state.effective_url or source.url):
        log.warning("%s: %s moved permanently to %s; polling the new address (the configured URL is unchanged)",
                    source.name, monitor.config.redact(state.effective_url or source.url), monitor.config.redact(new))
        return new
    return None


def _quiet(monitor: Monitor, source: Source, state: FetchState, new: list[Story], now: datetime) -> set[str]:
    """On a feed's first poll, the stories too old to alert on (see ``alerts.new_source_window``)."""
    window = float(monitor.config.alerts["new_source_window"])
    if not state.first_poll or not window or source.kind != "feed":
        return set()
    return quiet_on_first_poll(new, window, now)


def _plan(monitor: Monitor, source: Source, now: datetime, new: list[Story] | tuple = ()) -> Plan:
    since = now - WEEK
    recent = monitor.store.recent_story_count(source.name, since)
    recent += sum(1 for s in new if (s.published or now) >= since)
    return planned_interval(source, monitor.config.schedule, recent)


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


def _read(monitor: Monitor, source: Source, fetched: FetchResult, now: datetime) -> reading.FeedRead:
    """Parse, normalise and classify ``fetched``: in a worker process when there are any."""
    pool = monitor.worker_pool()
    if pool is not None:
        try:
            return pool.read_feed(source, fetched, now, reading.crossing_classifiers(monitor))
        except WorkersUnavailable as exc:
            log.warning("%s", exc)  # said once: the pool stays unavailable
    return reading.read_feed(monitor, source, fetched, now, monitor.classifiers)


def _body_hash(fetched: FetchResult) -> str | None:
    if fetched.content is None:
        return None
    return hashlib.sha256(fetched.content).hexdigest()


def _ok_outcome(
    monitor: Monitor, fetched: FetchResult, body_hash: str | None, now: datetime, plan: Plan, moved: str | None, *,
    status: str, note: str | None = None,
) -> SourceOutcome:
    after = next_poll_after_success(now, plan, fetched.headers, jitter=float(monitor.config.schedule["jitter"]))
    return SourceOutcome(
        status=status,
        http_status=fetched.status,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        body_hash=body_hash,
        url=moved,
        note=note,
        **_when(after),
    )


def _when(after: NextPoll) -> dict[str, Any]:
    """The :class:`SourceOutcome` fields that say when the next poll is, and why."""
    return {"next_poll_at": after.at, "interval": after.plan.seconds,
            "poll_basis": after.plan.basis, "poll_reason": after.plan.reason}


def _failed(monitor: Monitor, source: Source, state: FetchState, now: datetime, exc: SourceError) -> UpdateResult:
    status = getattr(exc, "status", None)
    # Error text quotes servers (reason phrases, parser messages): one safe line, redacted.
    message = safe_line(monitor.config.redact(exc.message), MESSAGE_MAX)
    log.warning("%s: %s: %s", source.name, monitor.config.redact(exc.url or source.url), message)
    if status == 410:
        # Gone for good: stop polling until the configured URL changes.
        outcome = SourceOutcome(status="gone", http_status=status, error=message, **_when(GONE))
    else:
        after = next_poll_after_failure(
            source, state.error_count, now, getattr(exc, "retry_after", None),
            max_backoff=float(monitor.config.schedule["max_interval"]),
        )
        outcome = SourceOutcome(status="error", http_status=status, error=message, **_when(after))
    monitor.store.record_poll(source, outcome)
    monitor.emit(SourceFailed(source=source.name, url=monitor.store.stored_url(source), error=message))
    return UpdateResult(source=source.name, error=message, status=status)
