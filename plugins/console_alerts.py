"""The ``console`` channel type: prints each alert to standard output.

It is the default channel, so an out-of-the-box run shows its matches.
Whatever a renderer returns is made safe for a terminal first: the subject
on one line, the text with its lines kept and no other control or bidi
characters.
Options: ``stream`` = ``"stdout"`` (default) or ``"stderr"``.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from monitor import Alert, ConfigError, Monitor, RenderedAlert, hookimpl, safe_line, safe_text


class ConsoleChannel:
    """Writes rendered alerts, one block each, to a stream."""

    def __init__(self, name: str, stream_name: str):
        self.name = name
        self.stream_name = stream_name
        self._lock = threading.Lock()

    def send(self, rendered: RenderedAlert, alert: Alert) -> None:
        stream = sys.stdout if self.stream_name == "stdout" else sys.stderr
        block = f"=== {safe_line(rendered.subject)}\n{safe_text(rendered.text)}\n"
        with self._lock:
            stream.write(block + "\n")
            stream.flush()


def make_console_channel(name: str, options: dict[str, Any], monitor: Monitor) -> ConsoleChannel:
    unknown = set(options) - {"stream"}
    if unknown:
        raise ConfigError("unknown option (console channels take only 'stream')", key=sorted(unknown)[0])
    stream = options.get("stream", "stdout")
    if stream not in ("stdout", "stderr"):
        raise ConfigError("must be \"stdout\" or \"stderr\"", key="stream")
    return ConsoleChannel(name, stream)


@hookimpl
def register_channel_types(register, monitor: Monitor) -> None:
    register("console", make_console_channel)
