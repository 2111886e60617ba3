"""The monitor's log handler: every record redacted and made safe before it is written.

Log messages quote what servers send (reason phrases, receivers' bodies,
feed notes) and where they live (source URLs that may carry a token). The
formatter is the one seam they all pass: each message is redacted with the
configuration's :class:`~monitor.secrets.Secrets` and put on one line with
no control or bidi characters, so no record can forge another line or
drive the terminal. Tracebacks keep their lines, each indented, so none of
them can pass for a record either.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from .safetext import safe_line, safe_text

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Under systemd the journal stamps every line itself; a second time would only add noise.
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"
# sd-daemon(3) priority prefixes: the journal files each line under its level.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
TRACE_INDENT = "    "


class SafeFormatter(logging.Formatter):
    """A :class:`logging.Formatter` that redacts and sanitises the message and any traceback."""

    def __init__(self, fmt: str = LOG_FORMAT, redact: Callable[[str], str] | None = None):
        super().__init__(fmt)
        self.redact = redact or (lambda text: text)

    def format(self, record: logging.LogRecord) -> str:
        # Another handler may have cached its own, unredacted, traceback text on the record.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = safe_line(self.redact(record.message))
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]  # noqa: N802
        return self._block(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return self._block(super().formatStack(stack_info))

    def _block(self, text: str) -> str:
        lines = safe_text(self.redact(text)).replace("\t", " ").split("\n")
        return "\n".join(TRACE_INDENT + line for line in lines)


class JournalFormatter(SafeFormatter):
    """A :class:`SafeFormatter` for stderr connected to the systemd journal: no timestamp, and a
    ``<N>`` priority prefix so ``journalctl -p warning`` finds the warnings."""

    def __init__(self, redact: Callable[[str], str] | None = None):
        super().__init__(JOURNAL_FORMAT, redact)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        # A traceback's lines are each a journal entry of their own: each gets the prefix.
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def logging_to_journal(stream: object = None) -> bool:
    """Whether ``stream`` (stderr) is the journal's: systemd sets JOURNAL_STREAM to its device and inode.

    Compared with the stream itself, so a program started from a service with its
    stderr sent elsewhere (a file, a pipe) keeps timestamps.
    """
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        stat = os.fstat((stream or sys.stderr).fileno())  # type: ignore[attr-defined]
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


def setup_logging(level: str, redact: Callable[[str], str] | None = None) -> None:
    """Log to stderr at ``level`` through a :class:`SafeFormatter`, replacing any handler set before.

    When stderr is the systemd journal (see :func:`logging_to_journal`) lines carry no
    timestamp and a priority prefix instead.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter(redact) if logging_to_journal() else SafeFormatter(LOG_FORMAT, redact))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    # httpx logs every request URL at INFO; alert webhook URLs are secrets.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, getattr(logging, level)))
