"""Delivering queued alerts: the outbox table is the queue, channels do the sending.

Rows are written in the same transaction as their match (see
:meth:`monitor.store.Store.save_update`), so an alert is never lost between
classification and delivery. A row is marked sent right after its channel
returns; the only window in which a duplicate is possible is a crash between
the channel accepting the message and that one-row update.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .errors import DeliveryError
from .models import Alert, AlertFailed, AlertSent, RenderedAlert, Watchlist
from .rendering import render_plain
from .store import match_from_row, story_from_row
from .timeutil import to_iso, utcnow

if TYPE_CHECKING:
    from .app import Monitor

log = logging.getLogger("monitor.outbox")

BATCH = 200


@dataclass(frozen=True)
class DispatchResult:
    """Counts from one dispatcher run."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0


def dispatch_due(monitor: Monitor, limit: int = BATCH) -> DispatchResult:
    """Send every pending alert whose time has come, oldest first."""
    sent = retrying = failed = 0
    now = to_iso(utcnow())
    rows = monitor.store.query(
        "SELECT o.id AS outbox_id, o.channel, o.attempts, "
        "m.story_id, m.watchlist, m.score, m.classifier, m.evidence, "
        "s.source, s.title, s.text, s.url, s.summary, s.guid, s.published_at, s.fetched_at, "
        "s.author, s.language, s.content_hash "
        "FROM outbox o JOIN matches m ON m.id = o.match_id JOIN stories s ON s.id = m.story_id "
        "WHERE o.status = 'pending' AND o.next_attempt_at <= ? ORDER BY o.id LIMIT ?",
        [now, limit],
    )
    for row in rows:
        outcome = deliver(monitor, row)
        if outcome == "sent":
            sent += 1
        elif outcome == "retrying":
            retrying += 1
        else:
            failed += 1
    return DispatchResult(sent, retrying, failed)


def _alert_from_row(monitor: Monitor, row: dict[str, Any]) -> Alert:
    match = match_from_row(row)
    story = story_from_row({**row, "id": row["story_id"]})
    watchlist = monitor.config.watchlists.get(match.watchlist) or Watchlist(name=match.watchlist)
    return Alert(id=row["outbox_id"], channel=row["channel"], match=match, story=story,
                 watchlist=watchlist, attempts=row["attempts"])


def render(monitor: Monitor, alert: Alert, channel_type: str) -> RenderedAlert:
    """The first plugin's rendering for this channel type, else plain text."""
    rendered = monitor.pm.hook.render_alert(alert=alert, channel_type=channel_type, monitor=monitor)
    return rendered or render_plain(alert)


def deliver(monitor: Monitor, row: dict[str, Any]) -> str:
    """Try one outbox row once; returns ``"sent"``, ``"retrying"`` or ``"failed"``."""
    alert = _alert_from_row(monitor, row)
    channel = monitor.channels.get(alert.channel)
    if channel is None:
        return _give_up(monitor, alert, f"channel {alert.channel!r} is not configured any more")
    channel_type = monitor.config.channels[alert.channel]["type"]
    try:
        channel.send(render(monitor, alert, channel_type), alert)
    except DeliveryError as exc:
        return _retry_or_fail(monitor, alert, str(exc), permanent=exc.permanent, retry_after=exc.retry_after)
    except Exception as exc:  # a channel bug is treated as transient: the alert stays safe on disk
        log.exception("channel %s raised while sending alert %d", alert.channel, alert.id)
        return _retry_or_fail(monitor, alert, f"{type(exc).__name__}: {exc}", permanent=False, retry_after=None)
    now = to_iso(utcnow())
    with monitor.store.write() as db:
        db.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, updated_at = ?, attempts = attempts + 1, last_error = NULL "
            "WHERE id = ?",
            [now, now, alert.id],
        )
    monitor.emit(AlertSent(alert_id=alert.id, channel=alert.channel))
    return "sent"


def _retry_or_fail(monitor: Monitor, alert: Alert, error: str, *, permanent: bool, retry_after: float | None) -> str:
    error = monitor.config.redact(error)
    attempts = alert.attempts + 1
    settings = monitor.config.alerts
    if permanent or attempts >= settings["max_attempts"]:
        reason = error if permanent else f"{error} (gave up after {attempts} attempts)"
        return _give_up(monitor, alert, reason, attempts=attempts)
    delay = min(settings["backoff"] * 2 ** (attempts - 1), settings["backoff_max"])
    delay = delay * random.uniform(0.75, 1.25)
    if retry_after is not None:
        delay = max(delay, retry_after)
    now = utcnow()
    with monitor.store.write() as db:
        db.execute(
            "UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?",
            [attempts, error, to_iso(now + timedelta(seconds=delay)), to_iso(now), alert.id],
        )
    log.warning("alert %d to %s failed (attempt %d), retrying in %.0fs: %s", alert.id, alert.channel, attempts, delay, error)
    monitor.emit(AlertFailed(alert_id=alert.id, channel=alert.channel, error=error, final=False))
    return "retrying"


def _give_up(monitor: Monitor, alert: Alert, error: str, attempts: int | None = None) -> str:
    now = to_iso(utcnow())
    with monitor.store.write() as db:
        db.execute(
            "UPDATE outbox SET status = 'failed', attempts = ?, last_error = ?, updated_at = ? WHERE id = ?",
            [attempts if attempts is not None else alert.attempts, error, now, alert.id],
        )
    log.error("alert %d to %s failed for good: %s", alert.id, alert.channel, error)
    monitor.emit(AlertFailed(alert_id=alert.id, channel=alert.channel, error=error, final=True))
    return "failed"


def requeue_failed(monitor: Monitor, channel: str | None = None) -> int:
    """Put failed alerts back in the queue (``monitor alerts --retry``); returns how many."""
    now = to_iso(utcnow())
    where, params = ("AND channel = ?", [channel]) if channel else ("", [])
    with monitor.store.write() as db:
        cursor = db.execute(
            f"UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ? "
            f"WHERE status = 'failed' {where}",
            [now, now, *params],
        )
        return cursor.rowcount
