"""Readiness: is the database reachable, its schema current, and polling alive?

Read through a read-only store of its own (either kind), so a probe never
takes a lock the daemon needs and never creates a missing database.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .config import Config
from .errors import StorageError
from .storage import open_store
from .timeutil import from_iso, utcnow

# Polling is "recent" when the newest poll is within this many of the longest source interval.
CYCLES_ALLOWED = 2
MIN_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Readiness:
    """The result of the checks: ``ready`` only when every check passed; ``checks`` says each one in words."""

    ready: bool
    checks: dict[str, str] = field(default_factory=dict)


def poll_window(config: Config) -> timedelta:
    """How long ago the newest poll may be for polling to count as alive."""
    intervals = [s.interval for s in config.sources.values() if s.enabled] or [config.schedule["interval"]]
    return max(MIN_WINDOW, timedelta(seconds=CYCLES_ALLOWED * max(intervals)))


def readiness(config: Config, now: datetime | None = None) -> Readiness:
    """Check the database of ``config``: reachable, migrations applied, a poll within :func:`poll_window`."""
    now = now or utcnow()
    checks: dict[str, str] = {}
    try:
        # Read-only, either store: no migration runs (one the database needs is
        # reported instead), no lock the daemon needs, and a missing SQLite file stays missing.
        with closing(open_store(config.db, config.secrets, read_only=True, quick_check=False)) as store:
            checks["database"] = "ok"
            missing = store.pending_migrations()
            checks["migrations"] = "ok" if not missing else f"not applied: {', '.join(missing)}"
            newest = store.query("SELECT max(last_fetch_at) AS newest FROM sources")[0]["newest"] if not missing else None
    except StorageError as exc:
        checks["database"] = f"cannot read it: {exc}"  # the error names the database
        return Readiness(False, checks)
    return _polling(config, checks, newest, now)


def _polling(config: Config, checks: dict[str, str], newest: str | None, now: datetime) -> Readiness:
    last = from_iso(newest)
    window = poll_window(config)
    if last is None:
        checks["polling"] = "no source has been polled yet"
    elif now - last > window:
        checks["polling"] = f"the newest poll was at {newest}, more than {window} ago"
    else:
        checks["polling"] = "ok"
    return Readiness(all(v == "ok" for v in checks.values()), checks)
