"""When things run. The only module that knows APScheduler.

One job per enabled source. It polls the source when the source's
``next_poll_at`` has come (the interval, jitter, the servers' own
``max-age`` / ``Retry-After`` and backoff after failures, all decided in
:mod:`monitor.polling`), then re-arms itself for the new ``next_poll_at``:
a source is polled at the time its last poll chose, not at the next tick of
a coarser clock. Never two runs of the same source at once; a source that is
gone (HTTP 410) is not polled. Plus the outbox dispatcher (every
``dispatch_interval``, and again at once after a run that had a whole batch
due on some channel that is not failing, so a backlog goes out batch after
batch), one job per
digest channel that runs the dispatcher when the channel's digest falls due
(the digest timetables, cron lines or intervals, are computed here too) and,
when ``retention.max_age`` is set, the pruner.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import parse_duration
from .errors import StorageError
from .models import Source
from .outbox import DispatchResult
from .polling import longest_wait
from .timeutil import from_iso, trusted_future, utcnow

if TYPE_CHECKING:
    from .app import Monitor

log = logging.getLogger("monitor.scheduler")

OUTBOX_JOB = "outbox"


class MonitorScheduler(BackgroundScheduler):
    """APScheduler's background scheduler, plus a shutdown that is safe for jobs that re-arm themselves.

    A source's job calls ``modify_job`` when its poll ends, and a dispatch run
    that left a full batch due re-arms the outbox job. APScheduler's
    ``shutdown(wait=True)`` holds the job-store lock while it waits for running
    jobs, so a job re-arming then would wait for it forever: shutdown first
    lets the re-arms in flight finish (while the scheduler is still up) and
    turns later ones, and later polls, into no-ops.
    """

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._rearming = threading.Condition()
        self._rearming_count = 0
        self._stopping = False

    def enter_rearming(self) -> bool:
        """Count in a job (or listener) that will re-arm a job; ``False`` when the scheduler is stopping
        (then do nothing)."""
        with self._rearming:
            if self._stopping:
                return False
            self._rearming_count += 1
            return True

    def leave_rearming(self) -> None:
        with self._rearming:
            self._rearming_count -= 1
            self._rearming.notify_all()

    def shutdown(self, wait: bool = True) -> None:
        with self._rearming:
            self._stopping = True
            if wait:
                self._rearming.wait_for(lambda: self._rearming_count == 0)
        super().shutdown(wait)


def build_scheduler(monitor: Monitor) -> MonitorScheduler:
    """A scheduler with a job per enabled source and the dispatcher; not started."""
    # APScheduler logs every run of every job at INFO ("Running job ...",
    # "... executed successfully"): noise in a daemon log. Its warnings stay.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    schedule = monitor.config.schedule
    workers = int(schedule["max_workers"])
    scheduler = MonitorScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=workers), "outbox": ThreadPoolExecutor(max_workers=1)},
        timezone=timezone.utc,
    )
    start = datetime.now(timezone.utc)
    for index, source in enumerate(s for s in monitor.config.sources.values() if s.enabled):
        scheduler.add_job(
            poll_and_rearm,
            # Only a backstop: every run re-arms the job for the source's next_poll_at.
            IntervalTrigger(seconds=_backstop(source, schedule), timezone=timezone.utc),
            args=[scheduler, monitor, source],
            id=_job_id(source),
            name=f"poll {source.name}",
            # A tiny stagger spreads the first polls instead of firing all at once.
            next_run_time=start + timedelta(milliseconds=50 * index),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,  # a late poll is still due
        )
    _add_housekeeping(scheduler, monitor.dispatch,
                      IntervalTrigger(seconds=schedule["dispatch_interval"], timezone=timezone.utc),
                      OUTBOX_JOB, "deliver alerts")
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
    scheduler.add_listener(lambda event: _deliver_the_rest_now(scheduler, event), EVENT_JOB_EXECUTED)
    return scheduler


def _deliver_the_rest_now(scheduler: MonitorScheduler, event: JobExecutionEvent) -> None:
    """After a dispatch run (the outbox's, a digest's, a poll's) that had a whole batch due on a
    channel: the outbox job runs again now instead of a ``dispatch_interval`` later.

    Each run still sends at most one batch per channel, so a run (and the
    shutdown that waits for it) stays short; a backlog goes out batch after
    batch. A listener runs once the job's instance is counted out, so the
    re-armed run is not refused as a second instance of a running one.
    """
    if not isinstance(event.retval, DispatchResult) or not event.retval.more:
        return
    if not scheduler.enter_rearming():
        return  # stopping: the daemon's last delivery run follows the shutdown
    try:
        scheduler.modify_job(OUTBOX_JOB, next_run_time=datetime.now(timezone.utc))
    except JobLookupError:
        pass
    finally:
        scheduler.leave_rearming()


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


def poll_if_due(monitor: Monitor, source: Source) -> DispatchResult | None:
    """The job of one source: poll when it is due, then deliver what it queued (what that delivery
    did, or ``None`` when nothing was queued)."""
    try:
        row = monitor.store.source_row(source.name)
    except StorageError as exc:
        log.error("%s: not polled: %s", source.name, exc)
        return None
    if row is not None:
        if row["status"] == "gone" and row["url"] == monitor.store.stored_url(source):
            return
        now = utcnow()
        due = from_iso(row["next_poll_at"])
        if due is not None:
            due = trusted_future(due, now, longest_wait(source, monitor.config.schedule), from_iso(row["last_fetch_at"]))
        if due is not None and due > now:
            log.debug("%s: not due until %s", source.name, due.isoformat())
            return None
    result = monitor.update_source(source)
    if result.alerts_queued:
        return _logging_errors(monitor.dispatch)()
    return None


def _logging_errors(func: Any) -> Any:
    """``func`` with a database error logged as one line instead of a job traceback (the next run tries again)."""

    def run() -> Any:
        try:
            return func()
        except StorageError as exc:
            log.error("%s: %s", getattr(func, "__name__", "job"), exc)
            return None

    return run


def poll_and_rearm(scheduler: MonitorScheduler, monitor: Monitor, source: Source) -> DispatchResult | None:
    """The job of one source: :func:`poll_if_due`, then run again at its ``next_poll_at``."""
    if not scheduler.enter_rearming():
        return None
    try:
        try:
            return poll_if_due(monitor, source)
        finally:
            _rearm(scheduler, monitor, source)
    finally:
        scheduler.leave_rearming()


def _rearm(scheduler: MonitorScheduler, monitor: Monitor, source: Source) -> None:
    now = datetime.now(timezone.utc)
    try:
        # None: gone (HTTP 410), or the poll could not be recorded; then look
        # again after the configured interval (a gone source costs no request).
        row = monitor.store.source_row(source.name)
        due = from_iso(row["next_poll_at"]) if row else None
    except Exception:
        # The database is unreadable for now: try again after the configured interval.
        log.exception("%s: cannot read when to poll next; trying again in %gs", source.name, source.interval)
        due = None
    when = max(now, due) if due is not None else now + timedelta(seconds=source.interval)
    try:
        scheduler.modify_job(_job_id(source), next_run_time=when)
    except JobLookupError:
        pass  # the job is gone (the scheduler is shutting down)


def _job_id(source: Source) -> str:
    return f"source:{source.name}"


def _backstop(source: Source, schedule: Any) -> float:
    """The period of a source job's own trigger, which only matters if a re-arm was lost."""
    return max(source.interval, float(schedule["max_interval"]))


def _on_job_event(event: JobExecutionEvent) -> None:
    if event.exception is not None:
        log.error("job %s crashed: %r", event.job_id, event.exception, exc_info=event.exception)
    else:
        log.warning("job %s missed its run time", event.job_id)
