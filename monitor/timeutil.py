"""UTC timestamps as stored in the database (ISO 8601, seconds, ``+00:00``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, whole seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def to_iso(value: datetime | None) -> str | None:
    """``datetime`` to the stored text form; ``None`` stays ``None``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def from_iso(value: str | None) -> datetime | None:
    """The stored text form back to an aware ``datetime``."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_duration(seconds: float) -> str:
    """A duration as people write it: ``"1m"``, ``"12h"``, ``"2d"``, ``"90s"``, ``"3.4h"``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        # A day reads better as 24h; two days and more in days.
        if seconds >= (2 * size if unit == "d" else size) and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 120:
        return f"{seconds / 60:.1f}m"
    return f"{seconds:.3g}s"
# A clock stepped back by less than this (NTP corrections) is not treated as a jump.
CLOCK_SLACK = timedelta(seconds=60)


def trusted_future(when: datetime, now: datetime, longest: float, written_at: datetime | None = None) -> datetime:
    """A stored time-to-act-at (next poll, retry, digest) as far as it can be trusted.

    A value written "in the future" (``written_at`` after ``now``: the clock
    was ahead then, or has been put back since) is pulled in to ``now``; any
    value is at most ``longest`` seconds away, the longest wait the code ever
    chooses.
    """
    if written_at is not None and written_at > now + CLOCK_SLACK:
        return now
    return min(when, now + timedelta(seconds=longest))
