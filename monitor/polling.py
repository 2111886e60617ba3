"""Polling policy: when to poll a source next, and which first-poll entries alert.

The transport (plugins) reports what the server said; this module decides
what it means for the schedule. Nothing here does I/O.

- Adaptive interval (as Miniflux's entry-frequency scheduler): one week
  divided by the stories published in the last week, within
  ``schedule.min_interval`` and ``schedule.max_interval``; a quiet feed gets
  the maximum.
- ``Cache-Control: max-age`` and ``Retry-After`` are lower bounds on the next poll.
- Failures back off exponentially from the interval, with jitter, capped at
  ``schedule.max_interval`` (but never below what ``Retry-After`` asks).
"""

from __future__ import annotations

import email.utils
import random
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from .models import Source, Story

WEEK = timedelta(days=7)
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.I)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\b", re.I)


def interval_bounds(source: Source, schedule: Mapping[str, Any]) -> tuple[float, float]:
    """``(shortest, longest)`` interval for ``source``.

    A source configured with an interval shorter than ``schedule.min_interval``
    keeps it as its floor: the configuration asked for it explicitly.
    """
    low = min(float(schedule["min_interval"]), source.interval)
    high = max(low, float(schedule["max_interval"]))
    return low, high


def adaptive_interval(source: Source, schedule: Mapping[str, Any], stories_last_week: int) -> float:
    """Seconds until the next poll of a healthy source.

    With ``schedule.adaptive`` off, and for local sources (files, folders:
    polling them costs no one anything and a dropped-in file should be picked
    up on time), this is the source's configured interval.
    """
    if not schedule.get("adaptive", True) or not source.url.lower().startswith(("http://", "https://")):
        return source.interval
    low, high = interval_bounds(source, schedule)
    if stories_last_week <= 0:
        return high
    return min(high, max(low, WEEK.total_seconds() / stories_last_week))


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


# A server asking for more than this is ignored beyond it: a typo'd header
# must not silence a source for a year.
MAX_SERVER_DELAY = timedelta(days=7).total_seconds()


def longest_wait(source: Source, schedule: Mapping[str, Any]) -> float:
    """The longest time this module ever schedules between two polls of ``source``
    (a stored next poll further away than this was written by a clock in the future)."""
    return max(interval_bounds(source, schedule)[1], source.interval, MAX_SERVER_DELAY)


def next_poll_after_success(now: datetime, interval: float, headers: Mapping[str, str]) -> datetime:
    """The interval, stretched to honour ``Cache-Control: max-age`` and ``Retry-After``."""
    delay = interval
    for asked in (max_age(headers), parse_retry_after(_header(headers, "retry-after"), now)):
        if asked:
            delay = max(delay, min(asked, MAX_SERVER_DELAY))
    return now + timedelta(seconds=delay)


def next_poll_after_failure(
    source: Source,
    error_count: int,
    now: datetime,
    retry_after: float | None,
    max_backoff: float = 6 * 3600,
) -> datetime:
    """Exponential backoff from the source's interval with jitter, capped, honouring ``Retry-After``.

    :param error_count: failures in a row before this one.
    """
    base = source.interval
    delay = min(base * (2 ** min(error_count, 16)), max(max_backoff, base))
    # Jitter spreads sources that failed together (a shared host's outage).
    delay = max(base, delay * random.uniform(0.8, 1.0))
    if retry_after:
        delay = max(delay, min(retry_after, MAX_SERVER_DELAY))
    return now + timedelta(seconds=delay)


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
