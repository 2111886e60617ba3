"""The time one poll may spend on what it fetched, and the daemon's request to stop.

Parsing, normalising and classifying run in the poll's worker thread and
cannot be interrupted from outside, so the pipeline calls :meth:`PollBudget.check`
between steps and between entries: every step between two checks is bounded
(the fetch by ``fetch.deadline`` and ``fetch.max_bytes``, each entry by
``fetch.max_entry_bytes``, each classification by ``classify.max_text_chars``),
so a poll past ``fetch.work_deadline`` or asked to stop ends soon after.
"""

from __future__ import annotations

import threading
import time

from .errors import SourceError


class PollInterrupted(SourceError):
    """The monitor is stopping: the poll ends without storing anything (the next run repeats it)."""


class WorkDeadlineExceeded(SourceError):
    """The poll spent longer than ``fetch.work_deadline`` on what it fetched."""


class PollBudget:
    """A deadline (``fetch.work_deadline`` seconds from now) and the monitor's stop flag."""

    def __init__(self, seconds: float, stopping: threading.Event, url: str):
        self.seconds = seconds
        self.stopping = stopping
        self.url = url
        self.deadline = time.monotonic() + seconds

    def check(self, doing: str) -> None:
        """Raise if the monitor is stopping or the deadline has passed; ``doing`` names the step."""
        if self.stopping.is_set():
            raise PollInterrupted(f"interrupted while {doing}: the monitor is stopping", url=self.url)
        if time.monotonic() > self.deadline:
            raise WorkDeadlineExceeded(
                f"gave up after fetch.work_deadline ({self.seconds:g} s) while {doing}; nothing from this poll "
                "was stored (raise fetch.work_deadline, or lower fetch.max_entries or classify.max_text_chars)",
                url=self.url,
            )
