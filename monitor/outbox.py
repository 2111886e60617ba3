"""Delivering queued alerts: the outbox table is the queue, channels do the sending.

Rows are written in the same transaction as their match (see
:meth:`monitor.store.Store.save_update`), so an alert is never lost between
classification and delivery. A row goes ``pending`` -> ``sending`` (claimed,
one committed update) -> its channel is called -> ``sent`` (one committed
update). Only the process holding the database's sender lock
(:mod:`monitor.sender_lock`) dispatches, so a row found ``sending`` when a
dispatcher run starts was left by a process that died mid-send: it is put
back to ``pending`` (:func:`recover_interrupted`) and sent again. That is the
one window in which a duplicate is possible: the channel accepted the message
but the process died before the row was marked sent. Webhook receivers can
drop such a duplicate by its idempotency key (the outbox row id).

Stored times are not trusted blindly: a retry time or digest time written by
a clock that was ahead (or has been put back since) is pulled in, so one
wrong clock reading cannot park an alert for a year.

Per channel, the core applies two settings of its ``[channels.NAME]`` table:
``rate_limit`` (excess rows wait, with a later ``next_attempt_at``) and
``digest`` (rows wait for the channel's next digest time, in the
``channel_state`` table, and are then sent as one message and marked sent
together under one ``digest_id``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .config import parse_rate_limit
from .errors import DeliveryError
from .models import Alert, AlertFailed, AlertSent, RenderedAlert, Reported, Watchlist
from .normalize import canonical_url
from .polling import RETRY_AFTER_CAP
from .rendering import render_digest_plain, render_plain
from .safetext import MESSAGE_MAX, safe_line
from .storage import match_from_row, story_from_row
from .timeutil import CLOCK_SLACK, from_iso

if TYPE_CHECKING:
    from .app import Monitor

log = logging.getLogger("monitor.outbox")

BATCH = 200
DIGEST_BATCH = 1000

@dataclass(frozen=True)
class DispatchResult:
    """Counts from one dispatcher run (a digest counts each of its rows)."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    deferred: int = 0
    held_by: str | None = None  # set when another process holds the sender lock: nothing was tried
    # A channel had a whole batch due and sent it without a retry: more may be due now, and the
    # next run should not wait.
    more: bool = False


class Tally:
    """What a dispatcher run did so far, channel after channel."""

    def __init__(self) -> None:
        self.sent = self.retrying = self.failed = self.deferred = 0
        self.more = False

    def handled(self) -> int:
        """Rows sent, retried or failed so far (deferred rows are not handled: they wait)."""
        return self.sent + self.retrying + self.failed

    def result(self, held_by: str | None = None) -> DispatchResult:
        return DispatchResult(self.sent, self.retrying, self.failed, self.deferred, held_by, self.more)

    def next_round(self) -> int:
        """Start another round over the channels; returns :meth:`handled` so far, to tell whether it did anything."""
        self.more = False
        return self.handled()

    def round_was_empty(self, handled_before: int) -> bool:
        """Whether the round begun at ``handled_before`` sent, retried and failed nothing: nothing is left that
        is due (rows held back by a rate limit or a retry wait are due later)."""
        return self.handled() == handled_before


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    # Milliseconds: sub-second backoffs and Retry-After must not round to "now".
    # The text still sorts correctly against whole-second stamps.
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def dispatch_due(monitor: Monitor, limit: int = BATCH, *, until_done: bool = False) -> DispatchResult:
    """Send pending alerts whose time has come, oldest first, channel by channel: at most
    ``limit`` per channel, so that a daemon's dispatch run (and its shutdown) stays short;
    with ``until_done``, round after round until a round has nothing left to send
    (``monitor once``: a backlog of thousands goes in one run, not 200 per run).

    Call it holding the sender lock (:meth:`monitor.app.Monitor.dispatch` does).
    """
    tally = Tally()
    recover_interrupted(monitor)
    while True:
        now = _now()
        pull_in_future_retries(monitor, now)
        handled = tally.next_round()
        for name in monitor.store.due_channels(_iso(now)):
            dispatch_channel(monitor, name, tally, limit)
        if not until_done or tally.round_was_empty(handled):
            return tally.result()


def dispatch_channel(monitor: Monitor, name: str, tally: Tally, limit: int = BATCH,
                     before_send: Callable[[], None] | None = None) -> None:
    """Send ``name``'s due alerts (or its digest), counting in ``tally``.

    Call it as the only sender of that channel: the holder of the sender lock,
    or of the channel's lease on PostgreSQL (:mod:`monitor.channel_dispatch`).

    :param before_send: called right before every message goes out; it raises
        to stop (a fleet worker whose channel lease was lost sends nothing more).
    """
    if name in monitor.unavailable_channels:
        return  # its secrets are not in this process's environment: left for one that has them
    table = monitor.config.channels.get(name, {})
    if table.get("digest") and name in monitor.channels:
        _dispatch_digest(monitor, name, table["digest"], tally, before_send)
    else:
        _dispatch_each(monitor, name, limit, tally, before_send)


def longest_retry_wait(monitor: Monitor) -> float:
    """The longest wait this module ever gives a pending row: backoff with jitter,
    a receiver's ``Retry-After`` (capped) or a rate-limit period."""
    periods = [parse_rate_limit(t["rate_limit"])[1] for t in monitor.config.channels.values() if t.get("rate_limit")]
    return max([monitor.config.alerts["backoff_max"] * 1.25, RETRY_AFTER_CAP, *periods])


def iso_now() -> str:
    """Now, as the outbox's timestamps write it."""
    return _iso(_now())


def pull_in_future_retries(monitor: Monitor, now: datetime | None = None, channel: str | None = None) -> None:
    """Bring back pending rows (of ``channel``, else all) scheduled by a clock that was ahead
    (see :func:`monitor.timeutil.trusted_future`)."""
    now = now or _now()
    latest = _iso(now + timedelta(seconds=longest_retry_wait(monitor)))
    written_after = _iso(now + CLOCK_SLACK)
    # The store reads first: the common case writes nothing (and works on a full disk).
    count = monitor.store.reschedule_future_alerts(_iso(now), latest, written_after, channel=channel)
    if not count:
        return
    log.warning("%d alert(s) were scheduled by a clock that was ahead of the current time; rescheduled", count)


def _dispatch_each(monitor: Monitor, channel: str, limit: int, tally: Tally,
                   before_send: Callable[[], None] | None) -> None:
    rows = monitor.store.due_alerts(channel, _iso(_now()), limit)
    retried = False
    for index, row in enumerate(rows):
        free_at = _throttled_until(monitor, channel)
        if free_at is not None:
            _defer(monitor, [r["outbox_id"] for r in rows[index:]], free_at)
            tally.deferred += len(rows) - index
            return
        outcome = deliver(monitor, row, before_send)
        if outcome in ("sent", "retrying", "failed"):
            setattr(tally, outcome, getattr(tally, outcome) + 1)
        retried = retried or outcome == "retrying"
    # A whole batch was due: the rest waits for the next run, which should come now. Not when the
    # channel is failing: rows it just retried may be due again at once (a short backoff), and a
    # receiver that is down would be sent the whole backlog; its next run comes at the usual time.
    if len(rows) >= limit and not retried:
        tally.more = True


def _alert_from_row(monitor: Monitor, row: dict[str, Any]) -> Alert:
    match = match_from_row(row)
    story = story_from_row({**row, "id": row["story_id"]})
    # Alerts link to the story itself: tracking parameters (utm_*, fbclid...) dropped.
    story = story.replace(url=canonical_url(story.url))
    watchlist = monitor.config.watchlists.get(match.watchlist) or Watchlist(name=match.watchlist)
    return Alert(id=row["outbox_id"], channel=row["channel"], match=match, story=story,
                 watchlist=watchlist, attempts=row["attempts"], also_reported=_also_reported(monitor, story))


def _also_reported(monitor: Monitor, story: Any) -> tuple[Reported, ...]:
    """The other sources' reports of ``story`` known now (read when the alert is sent, so a pending alert gains them)."""
    seen = {story.source}
    out = []
    for row in monitor.store.cluster_reports(story.id):
        if row["source"] in seen:  # one line per outlet: a feed that reposts a story is still one source
            continue
        seen.add(row["source"])
        out.append(Reported(source=row["source"], title=row["title"], url=canonical_url(row["url"])))
    return tuple(out)


def render(monitor: Monitor, alert: Alert, channel_type: str) -> RenderedAlert:
    """The first plugin's rendering for this channel type, else plain text."""
    rendered = monitor.pm.hook.render_alert(alert=alert, channel_type=channel_type, monitor=monitor)
    return rendered or render_plain(alert)


def deliver(monitor: Monitor, row: dict[str, Any], before_send: Callable[[], None] | None = None) -> str:
    """Claim one outbox row and try it once; ``"sent"``, ``"retrying"``, ``"failed"`` or ``"skipped"``.

    ``"skipped"`` means another dispatcher claimed the row first. ``before_send``
    (see :func:`dispatch_channel`) runs after the claim, before the send.
    """
    alert = _alert_from_row(monitor, row)
    channel = monitor.channels.get(alert.channel)
    if channel is None:
        return _give_up(monitor, [alert], f"channel {alert.channel!r} is not configured any more")
    if not _claim(monitor, [alert]):
        return "skipped"
    channel_type = monitor.config.channels[alert.channel]["type"]
    if before_send is not None:
        before_send()  # raises when this process may no longer send on the channel: the row stays claimed
    try:
        channel.send(render(monitor, alert, channel_type), alert)
    except Exception as exc:
        return _after_failure(monitor, [alert], exc)
    # The duplicate window: the channel has the message, the row is not yet marked.
    _mark_sent(monitor, [alert], digest_id=None)
    return "sent"


def _dispatch_digest(monitor: Monitor, channel_name: str, spec: str, tally: Tally,
                     before_send: Callable[[], None] | None) -> None:
    from .scheduler import digest_schedule

    schedule = digest_schedule(spec)
    now = _now()
    state = monitor.store.channel_state(channel_name)
    if not state or state["digest_spec"] != spec:
        # First sight of this channel (or a new timetable): the period starts now.
        _set_next_digest(monitor, channel_name, spec, schedule.next_after(now))
        return
    next_digest = from_iso(state["next_digest_at"]) or now
    if next_digest > schedule.next_after(now):
        # Set by a clock that was ahead: no timetable is further away than its next time from now.
        next_digest = schedule.next_after(now)
        _set_next_digest(monitor, channel_name, spec, next_digest)
    rows = monitor.store.due_alerts(channel_name, _iso(now), DIGEST_BATCH)
    due_by_schedule = now >= next_digest
    retrying = any(r["attempts"] > 0 for r in rows)  # a failed digest retries on its backoff
    if not rows or not (due_by_schedule or retrying):
        return
    free_at = _throttled_until(monitor, channel_name)
    if free_at is not None:
        # The timetable is not advanced: the held-back digest goes as soon as the limit allows.
        _defer(monitor, [r["outbox_id"] for r in rows], free_at)
        tally.deferred += len(rows)
        return
    if due_by_schedule:
        _set_next_digest(monitor, channel_name, spec, schedule.next_after(now))
    alerts = _claim(monitor, [_alert_from_row(monitor, r) for r in rows])
    if not alerts:
        return
    channel = monitor.channels[channel_name]
    rendered = render_digest_plain(alerts)
    if before_send is not None:
        before_send()
    try:
        send_digest = getattr(channel, "send_digest", None)
        if send_digest is not None:
            send_digest(rendered, alerts)
        else:
            channel.send(rendered, alerts[0])
    except Exception as exc:
        outcome = _after_failure(monitor, alerts, exc)
        setattr(tally, outcome, getattr(tally, outcome) + len(alerts))
        return
    _mark_sent(monitor, alerts, digest_id=min(a.id for a in alerts))
    tally.sent += len(alerts)


def _set_next_digest(monitor: Monitor, channel: str, spec: str, when: datetime) -> None:
    monitor.store.set_channel_state(channel, spec, _iso(when), _iso(_now()))


def _throttled_until(monitor: Monitor, channel: str) -> datetime | None:
    """When the channel's rate limit lets the next message go, or ``None`` if it may go now."""
    spec = monitor.config.channels.get(channel, {}).get("rate_limit")
    if not spec:
        return None
    count, period = parse_rate_limit(spec)
    now = _now()
    # A digest is one message however many rows it carries.
    # None sent in the future counts.
    recent = monitor.store.recent_messages(channel, _iso(now - timedelta(seconds=period)), _iso(now + CLOCK_SLACK))
    if len(recent) < count:
        return None
    oldest_that_counts = from_iso(recent[len(recent) - count]["at"]) or now
    return oldest_that_counts + timedelta(seconds=period)


def _update_rows(monitor: Monitor, ids: Sequence[int], *, only_pending: bool = False, **fields: Any) -> None:
    """Set ``fields`` (and ``updated_at``) on the outbox rows ``ids``, in one transaction."""
    fields["updated_at"] = _iso(_now())
    monitor.store.update_alerts(ids, only_pending=only_pending, **fields)


def _defer(monitor: Monitor, ids: Sequence[int], until: datetime) -> None:
    _update_rows(monitor, ids, only_pending=True, next_attempt_at=_iso(until))
    log.info("%d alert(s) held back by the rate limit until %s", len(ids), _iso(until))


def _claim(monitor: Monitor, alerts: Sequence[Alert]) -> list[Alert]:
    """Mark rows ``sending`` (committed before the send); returns those this run got."""
    claimed = set(monitor.store.claim_alerts([a.id for a in alerts], _iso(_now())))
    return [a for a in alerts if a.id in claimed]


def _mark_sent(monitor: Monitor, alerts: Sequence[Alert], digest_id: int | None) -> None:
    _update_rows(monitor, [a.id for a in alerts], status="sent", sent_at=_iso(_now()), last_error=None,
                 digest_id=digest_id)
    for alert in alerts:
        monitor.emit(AlertSent(alert_id=alert.id, channel=alert.channel))


def _after_failure(monitor: Monitor, alerts: Sequence[Alert], exc: Exception) -> str:
    if isinstance(exc, DeliveryError):
        return _retry_or_fail(monitor, alerts, str(exc), permanent=exc.permanent, retry_after=exc.retry_after)
    # A channel bug is treated as transient: the alert stays safe on disk. The
    # log handler redacts the traceback (exception messages may quote secrets).
    log.error("channel %s raised while sending alert %s: %s", alerts[0].channel,
              ", ".join(str(a.id) for a in alerts), monitor.config.redact(f"{type(exc).__name__}: {exc}"),
              exc_info=exc)
    return _retry_or_fail(monitor, alerts, f"{type(exc).__name__}: {exc}", permanent=False, retry_after=None)


def _retry_or_fail(monitor: Monitor, alerts: Sequence[Alert], error: str, *, permanent: bool,
                   retry_after: float | None) -> str:
    # What receivers answered becomes last_error and a log line: one safe line, redacted.
    error = safe_line(monitor.config.redact(error), MESSAGE_MAX)
    attempts = max(a.attempts for a in alerts) + 1
    settings = monitor.config.alerts
    if permanent or attempts >= settings["max_attempts"]:
        reason = error if permanent else f"{error} (gave up after {attempts} attempts)"
        return _give_up(monitor, alerts, reason)
    delay = min(settings["backoff"] * 2 ** (attempts - 1), settings["backoff_max"])
    delay = delay * random.uniform(0.75, 1.25)
    if retry_after is not None:
        # A receiver's Retry-After is obeyed up to 6 h: "1e300" must not overflow the clock.
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    ids = [a.id for a in alerts]
    _update_rows(monitor, ids, status="pending", last_error=error,
                 next_attempt_at=_iso(_now() + timedelta(seconds=delay)))
    log.warning("alert %s to %s failed (attempt %d), retrying in %.1fs: %s", ", ".join(map(str, ids)),
                alerts[0].channel, attempts, delay, error)
    for alert in alerts:
        monitor.emit(AlertFailed(alert_id=alert.id, channel=alert.channel, error=error, final=False))
    return "retrying"


def _give_up(monitor: Monitor, alerts: Sequence[Alert], error: str) -> str:
    ids = [a.id for a in alerts]
    _update_rows(monitor, ids, status="failed", last_error=error)
    log.error("alert %s to %s failed for good: %s", ", ".join(map(str, ids)), alerts[0].channel, error)
    for alert in alerts:
        monitor.emit(AlertFailed(alert_id=alert.id, channel=alert.channel, error=error, final=True))
    return "failed"


def recover_interrupted(monitor: Monitor, channel: str | None = None) -> int:
    """Put rows (of ``channel``, else all) left ``sending`` by a run that died mid-send back in the
    queue; returns how many.

    Right only for the holder of the sender lock (or of ``channel``'s lease, just
    claimed) between two dispatcher runs: then no live process is sending any of those rows.
    """
    count = monitor.store.requeue_interrupted(
        _iso(_now()), "interrupted while sending (the process stopped); sent again, the receiver may see it twice",
        channel=channel)
    if count:
        log.warning("%d alert(s) were being sent when a previous run stopped; sending them again", count)
    return count


def requeue_failed(monitor: Monitor, channel: str | None = None) -> int:
    """Put failed alerts back in the queue (``monitor alerts --retry``); returns how many."""
    return monitor.store.requeue_failed(channel=channel)
