"""When things run. The only module that knows APScheduler.

One job per enabled source that ticks at the source's shortest allowed
interval (with jitter, never two runs of the same source at once) and polls
only when the source's ``next_poll_at`` has passed: that one column carries
the adaptive interval, backoff after failures and the servers' own
``max-age`` / ``Retry-After``, all decided in :mod:`monitor.polling`. A
source that is gone (HTTP 410) is not polled. Plus the outbox dispatcher,
one job per digest channel that runs the dispatcher when the channel's
digest falls due (the digest timetables, cron lines or intervals, are
computed here too) and, when ``retention.max_age`` is set, the pruner.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import parse_duration
from .errors import StorageError
from .models import Source
from .polling import interval_bounds, longest_wait
from .timeutil import from_iso, trusted_future, utcnow

if TYPE_CHECKING:
    from .app import Monitor

log = logging.getLogger("monitor.scheduler")


def build_scheduler(monitor: Monitor) -> BackgroundScheduler:
    """A scheduler with a job per enabled source and the dispatcher; not started."""
    schedule = monitor.config.schedule
    workers = int(schedule["max_workers"])
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=workers), "outbox": ThreadPoolExecutor(max_workers=1)},
        timezone=timezone.utc,
    )
    start = datetime.now(timezone.utc)
    for index, source in enumerate(s for s in monitor.config.sources.values() if s.enabled):
        tick = interval_bounds(source, schedule)[0]
        scheduler.add_job(
            poll_if_due,
            IntervalTrigger(seconds=tick, jitter=min(schedule["jitter"], tick / 2) or None, timezone=timezone.utc),
            args=[monitor, source],
            id=f"source:{source.name}",
            name=f"poll {source.name}",
            # A tiny stagger spreads the first polls instead of firing all at once.
            next_run_time=start + timedelta(milliseconds=50 * index),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(tick)),
        )
    _add_housekeeping(scheduler, monitor.dispatch,
                      IntervalTrigger(seconds=schedule["dispatch_interval"], timezone=timezone.utc),
                      "outbox", "deliver alerts")
    for name, options in monitor.config.channels.items():
        if options.get("digest") and name in monitor.channels:
            # The dispatcher decides what is due (the timetable lives in the
            # database); this job only makes it run on time.
            _add_housekeeping(scheduler, monitor.dispatch, digest_schedule(options["digest"]).trigger,
                              f"digest:{name}", f"digest {name}")
    retention = monitor.config.retention
    if retention.get("max_age"):
        _add_housekeeping(scheduler, monitor.prune,
                          IntervalTrigger(seconds=retention["prune_interval"], timezone=timezone.utc),
                          "prune", "prune old stories", next_run_time=start + timedelta(seconds=1))
    scheduler.add_listener(_on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    return scheduler


class DigestSchedule:
    """When a digest channel sends: a five-field cron line (UTC) or a fixed interval."""

    def __init__(self, spec: str):
        self.spec = spec
        self.interval: float | None = None
        self.trigger: BaseTrigger
        if len(spec.split()) == 5:
            try:
                self.trigger = CronTrigger.from_crontab(spec, timezone=timezone.utc)
            except ValueError as exc:
                raise ValueError(f"not a valid cron line {spec!r}: {exc}") from None
        else:
            try:
                self.interval = parse_duration(spec)
            except ValueError:
                raise ValueError(
                    f"expected a cron line such as \"0 8 * * *\" or an interval such as \"1h\", got {spec!r}"
                ) from None
            if self.interval <= 0:
                raise ValueError("a digest interval must be more than zero")
            self.trigger = IntervalTrigger(seconds=self.interval, timezone=timezone.utc)

    def next_after(self, moment: datetime) -> datetime:
        """The first digest time strictly after ``moment``."""
        if self.interval is not None:
            return moment + timedelta(seconds=self.interval)
        fire = self.trigger.get_next_fire_time(None, moment.replace(microsecond=0) + timedelta(seconds=1))
        assert fire is not None  # a five-field cron line always fires again
        return fire


def digest_schedule(spec: str) -> DigestSchedule:
    """Parse a channel's ``digest`` value; raises ``ValueError`` saying what is wrong."""
    return DigestSchedule(spec)


def _add_housekeeping(scheduler: BackgroundScheduler, func: Any, trigger: BaseTrigger, job_id: str, name: str,
                      **kwargs: Any) -> None:
    """A job on the single-thread ``outbox`` executor: one run at a time, late runs
    coalesced and never skipped (a delivery or prune that is late is still due)."""
    scheduler.add_job(_logging_errors(func), trigger, id=job_id, name=name, executor="outbox", max_instances=1,
                      coalesce=True, misfire_grace_time=None, **kwargs)


def poll_if_due(monitor: Monitor, source: Source) -> None:
    """The job of one source: poll when it is due, then deliver what it queued."""
    try:
        row = monitor.store.source_row(source.name)
    except StorageError as exc:
        log.error("%s: not polled: %s", source.name, exc)
        return
    if row is not None:
        if row["status"] == "gone" and row["url"] == source.url:
            return
        now = utcnow()
        due = from_iso(row["next_poll_at"])
        if due is not None:
            due = trusted_future(due, now, longest_wait(source, monitor.config.schedule), from_iso(row["last_fetch_at"]))
        if due is not None and due > now:
            log.debug("%s: not due until %s", source.name, due.isoformat())
            return
    result = monitor.update_source(source)
    if result.alerts_queued:
        _logging_errors(monitor.dispatch)()


def _logging_errors(func: Any) -> Any:
    """``func`` with a database error logged as one line instead of a job traceback (the next run tries again)."""

    def run() -> Any:
        try:
            return func()
        except StorageError as exc:
            log.error("%s: %s", getattr(func, "__name__", "job"), exc)
            return None

    return run


def _on_job_event(event: JobExecutionEvent) -> None:
    if event.exception is not None:
        log.error("job %s crashed: %r", event.job_id, event.exception, exc_info=event.exception)
    else:
        log.warning("job %s missed its run time", event.job_id)
