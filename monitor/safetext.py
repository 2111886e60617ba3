"""Text from the outside made safe to print and log.

Titles, links, HTTP reason phrases, receivers' bodies, error messages and
feed notes come from servers we do not control. Written raw to a terminal,
an escape sequence can clear the screen, retitle the window or hide a link;
a bidi override (U+202E) makes text read backwards; a newline in a log
message forges a log line. Everything printed or logged goes through one of
these functions first:

- :func:`safe_line` for one-line fields and log messages: no control
  characters at all (newlines and tabs become spaces);
- :func:`safe_text` for bodies meant to span lines (an email's text):
  newlines and tabs kept, every other control character removed;
- :func:`json_safe` for JSON written to a terminal: the same characters
  escaped as ``\\uXXXX``, so nothing is lost.
"""

from __future__ import annotations

import re

# Whole terminal escape sequences (CSI, OSC such as hyperlinks and window
# titles, two-byte ESC sequences, the one-byte C1 CSI): removing only the
# ESC byte would leave their visible tails behind.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# C0 and C1 controls, DEL, and the invisible characters that reorder text:
# bidi embeddings, overrides and isolates, directional marks, and the Unicode
# line and paragraph separators (a line break to some terminals and viewers).
_INVISIBLE = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")  # all but \t and \n
_LINE_BREAKS = re.compile(r"[\t\n\r\v\f]")
_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_INVISIBLE}]")

ELLIPSIS = "…"
# The longest error or note kept on a row and printed: a server's whole page is not an error message.
MESSAGE_MAX = 1000


def safe_line(text: str | None, limit: int | None = None) -> str:
    """``text`` on one line with no control or bidi characters, cut to ``limit`` characters."""
    if not text:
        return ""
    text = _ESCAPE_SEQUENCE.sub("", str(text))
    text = _LINE_BREAKS.sub(" ", text)
    text = _UNSAFE.sub("", text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)].rstrip() + ELLIPSIS
    return text


def safe_text(text: str | None) -> str:
    """``text`` with its lines and tabs kept and every other control or bidi character removed."""
    if not text:
        return ""
    text = _ESCAPE_SEQUENCE.sub("", str(text)).replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text)


def json_safe(text: str) -> str:
    """Serialised JSON with DEL, C1 and bidi characters escaped (``json.dumps`` escapes only C0)."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
