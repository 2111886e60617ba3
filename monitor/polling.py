"""Polling policy: when to poll a source next, why, and which first-poll entries alert.

The transport (plugins) reports what the server said; this module decides
what it means for the schedule. Nothing here does I/O.

The configured interval is a promise to the user, who picked it to be told
in time:

- A healthy source is polled every configured ``interval`` plus a little
  jitter (at most ``schedule.jitter``, at most a tenth of the interval).
- Adaptive polling (``schedule.adaptive``, as Miniflux's entry-frequency
  scheduler: one week divided by the stories published in the last week)
  may poll a busy feed *more* often, down to ``schedule.min_interval``. It
  makes a quiet feed's interval longer only up to an ``adaptive_max`` the
  user set (per source or in ``[schedule]``); without one, never.
- Slower than promised only when the server asks (``Retry-After``,
  ``Cache-Control: max-age``, each bounded below) or the source is failing
  (exponential backoff, capped at ``schedule.max_interval``).

Every decision carries its reason, stored with the source and shown by
``monitor sources``.
"""

from __future__ import annotations

import email.utils
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .models import Source, Story
from .timeutil import format_duration
from .wording import plural

WEEK = timedelta(days=7)
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.I)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\b", re.I)

# How far a server's wishes may push a poll out. max-age is a caching hint
# (CDNs often send a day by default), not a request to stay away: an hour at
# most. Retry-After is an explicit request (rate limits, maintenance): six
# hours at most, so a typo'd header cannot silence an alerting source for days.
MAX_AGE_CAP = 3600.0
RETRY_AFTER_CAP = 6 * 3600.0
# Jitter never exceeds this share of a source's interval: a 1-minute source
# stays a 1-minute source whatever schedule.jitter says.
JITTER_SHARE = 0.1


@dataclass(frozen=True)
class Plan:
    """The interval a source gets and why.

    :param seconds: time from one poll to the next, before jitter.
    :param basis: ``"interval"`` (as configured), ``"adaptive"``, ``"max_age"``,
        ``"retry_after"``, ``"backoff"`` or ``"gone"``.
    :param reason: the same in words, as ``monitor sources`` shows it
        (``"every 1m"``, ``"server asked: Retry-After 3600s"``).
    """

    seconds: float | None
    basis: str
    reason: str


@dataclass(frozen=True)
class NextPoll:
    """When to poll next (``None``: never, the feed is gone) and the plan behind it."""

    at: datetime | None
    plan: Plan


def is_remote(source: Source) -> bool:
    """Adaptive polling applies to http(s) sources; polling a local file costs no one anything."""
    return source.url.lower().startswith(("http://", "https://"))


def adaptive_bounds(source: Source, schedule: Mapping[str, Any]) -> tuple[float, float]:
    """``(shortest, longest)`` interval adaptive polling may give ``source``.

    The shortest is ``schedule.min_interval`` unless the configured interval is
    shorter already; the longest is the configured interval unless the user
    allowed more with ``adaptive_max`` (the source's own, else the schedule's;
    0 means never longer).
    """
    configured = source.interval
    ceiling = source.adaptive_max if source.adaptive_max is not None else schedule.get("adaptive_max")
    return min(configured, float(schedule["min_interval"])), max(configured, float(ceiling or 0))


def planned_interval(source: Source, schedule: Mapping[str, Any], stories_last_week: int) -> Plan:
    """The interval of a healthy source, before the server's wishes and jitter."""
    configured = source.interval
    as_configured = Plan(configured, "interval", f"every {format_duration(configured)}")
    if not schedule.get("adaptive", True) or not is_remote(source):
        return as_configured
    low, high = adaptive_bounds(source, schedule)
    rate = WEEK.total_seconds() / stories_last_week if stories_last_week > 0 else high
    seconds = min(high, max(low, rate))
    if seconds == configured:
        return as_configured
    stories = f"{plural(stories_last_week, 'story')} in the last week"
    return Plan(seconds, "adaptive",
                f"every {format_duration(seconds)}: adaptive, {stories} (configured {format_duration(configured)})")


def adaptive_interval(source: Source, schedule: Mapping[str, Any], stories_last_week: int) -> float:
    """Seconds until the next poll of a healthy source (see :func:`planned_interval`)."""
    seconds = planned_interval(source, schedule, stories_last_week).seconds
    assert seconds is not None
    return seconds


def jitter_for(interval: float, jitter: float) -> float:
    """Random seconds added to one poll: up to ``jitter``, and at most a tenth of ``interval``."""
    return random.uniform(0, min(float(jitter), interval * JITTER_SHARE))


def max_age(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``Cache-Control: max-age`` (``None`` when absent or no-cache)."""
    value = _header(headers, "cache-control")
    if not value or _NO_CACHE.search(value):
        return None
    m = _MAX_AGE.search(value)
    return float(m.group(1)) if m else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def server_plan(kind: str, asked: float | None) -> Plan | None:
    """What a server's ``Retry-After`` (``kind="retry_after"``) or ``max-age`` asks for, bounded."""
    if not asked:
        return None
    cap = RETRY_AFTER_CAP if kind == "retry_after" else MAX_AGE_CAP
    what = f"Retry-After {asked:g}s" if kind == "retry_after" else f"Cache-Control max-age={asked:g}"
    capped = f", capped at {format_duration(cap)}" if asked > cap else ""
    return Plan(min(asked, cap), kind, f"server asked: {what}{capped}")


def next_poll_after_success(
    now: datetime, plan: Plan | float, headers: Mapping[str, str], jitter: float = 0.0,
) -> NextPoll:
    """The planned interval plus jitter, longer only where the server asks (bounded).

    :param plan: from :func:`planned_interval` (a number of seconds stands for a configured interval).
    :param jitter: ``schedule.jitter``.
    """
    if not isinstance(plan, Plan):
        plan = Plan(float(plan), "interval", f"every {format_duration(float(plan))}")
    chosen = plan
    for asked in (server_plan("max_age", max_age(headers)),
                  server_plan("retry_after", parse_retry_after(_header(headers, "retry-after"), now))):
        if asked and asked.seconds is not None and chosen.seconds is not None and asked.seconds > chosen.seconds:
            chosen = asked
    assert chosen.seconds is not None
    return NextPoll(now + timedelta(seconds=chosen.seconds + jitter_for(chosen.seconds, jitter)), chosen)


def longest_wait(source: Source, schedule: Mapping[str, Any]) -> float:
    """The longest time this module ever schedules between two polls of ``source``
    (a stored next poll further away than this was written by a clock in the future)."""
    longest = max(adaptive_bounds(source, schedule)[1], source.interval, float(schedule["max_interval"]),
                  RETRY_AFTER_CAP, MAX_AGE_CAP)
    return longest + min(float(schedule.get("jitter", 0)), longest * JITTER_SHARE)


def next_poll_after_failure(
    source: Source,
    error_count: int,
    now: datetime,
    retry_after: float | None,
    max_backoff: float = 6 * 3600,
) -> NextPoll:
    """Exponential backoff from the source's interval with jitter, capped, honouring ``Retry-After`` (bounded).

    :param error_count: failures in a row before this one.
    """
    base = source.interval
    delay = min(base * (2 ** min(error_count, 16)), max(max_backoff, base))
    # Jitter spreads sources that failed together (a shared host's outage).
    delay = max(base, delay * random.uniform(0.8, 1.0))
    failures = error_count + 1
    plan = Plan(delay, "backoff", f"backing off after {plural(failures, 'failure')}")
    asked = server_plan("retry_after", retry_after)
    if asked and asked.seconds is not None and asked.seconds >= delay:
        plan = asked
    assert plan.seconds is not None
    return NextPoll(now + timedelta(seconds=plan.seconds), plan)


GONE = NextPoll(None, Plan(None, "gone", "never: the feed is gone (HTTP 410)"))


def describe_policy(source: Source, schedule: Mapping[str, Any]) -> str:
    """What ``monitor check`` says ``source`` will get, in one line."""
    configured = source.interval
    jitter = min(float(schedule["jitter"]), configured * JITTER_SHARE)
    text = f"every {format_duration(configured)}"
    if jitter:
        text += f" (+ up to {format_duration(jitter)} jitter)"
    if not is_remote(source):
        return text + "; a local source, never adaptive"
    if not schedule.get("adaptive", True):
        return text + "; adaptive polling is off"
    low, high = adaptive_bounds(source, schedule)
    if low < configured:
        text += f"; busy feeds down to every {format_duration(low)} (schedule.min_interval)"
    if high > configured:
        key = f"sources.{source.name}.adaptive_max" if source.adaptive_max else "schedule.adaptive_max"
        text += f"; quiet feeds up to every {format_duration(high)} ({key})"
    else:
        text += "; never longer unless the server asks or the source fails"
    return text


def quiet_on_first_poll(stories: list[Story], window: float, now: datetime) -> set[str]:
    """Ids of the stories a source's first poll stores without alerting.

    Only entries published within ``window`` seconds alert; undated ones do not.
    """
    since = now - timedelta(seconds=window)
    return {s.id for s in stories if s.published is None or s.published < since}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
