"""Bounds on what one poll reads: how many entries, how many bytes per entry field.

A feed within ``fetch.max_bytes`` can still hold 700,000 tiny items or one
9 MB item. Parsers that can stop early use :class:`NewestEntries` and
:func:`cut_text` while they read (so the huge list is never built); the core
applies :func:`bound_entries` to every parser's result as well, so a
third-party parser that ignores the limits is bounded all the same.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from .models import EntryData

T = TypeVar("T")

TEXT_FIELDS = ("title", "summary", "content")


@dataclass(frozen=True)
class EntryLimits:
    """What a parser may hand on from one poll (``fetch.max_entries``, ``fetch.max_entry_bytes``)."""

    max_entries: int = 1000
    max_entry_bytes: int = 1_000_000


def cut_text(value: str | None, max_bytes: int) -> tuple[str | None, bool]:
    """``value`` cut to at most ``max_bytes`` bytes of UTF-8 (never mid-character), and whether it was cut."""
    if value is None or len(value) <= max_bytes // 4:
        return value, False  # a character is at most 4 bytes: no need to encode
    data = value.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return value, False
    return data[:max_bytes].decode("utf-8", "ignore"), True


def _timestamp(when: datetime | None) -> float | None:
    if when is None:
        return None
    try:
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    except (OverflowError, ValueError, OSError):
        return None


class NewestEntries(Generic[T]):
    """Keeps the newest ``limit`` of a stream of items, in O(limit) memory.

    Dated items rank by date, newest first; undated ones come after every
    dated one, in feed order (a feed without dates keeps its first items).
    :meth:`kept` returns the survivors in their original (feed) order.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.seen = 0
        self._heap: list[tuple[bool, float, int, T]] = []

    def offer(self, when: datetime | None, item: T) -> None:
        stamp = _timestamp(when)
        # The heap's smallest is the first to go: undated before dated, older
        # before newer, later in the feed before earlier.
        key = (stamp is not None, stamp or 0.0, -self.seen, item)
        self.seen += 1
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, key)  # type: ignore[misc]
        elif self.limit and key[:3] > self._heap[0][:3]:
            heapq.heapreplace(self._heap, key)  # type: ignore[misc]

    def kept(self) -> list[T]:
        return [k[3] for k in sorted(self._heap, key=lambda k: -k[2])]

    def note(self) -> str | None:
        """What was dropped, for the source's note; ``None`` when nothing was."""
        if self.seen <= self.limit:
            return None
        return f"{self.seen} entries: read the newest {self.limit} (fetch.max_entries)"


def cut_entry(entry: EntryData, max_bytes: int) -> tuple[EntryData, bool]:
    """``entry`` with title, summary and content each cut to ``max_bytes``; whether anything was cut."""
    changes: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value, cut = cut_text(getattr(entry, name), max_bytes)
        if cut:
            changes[name] = value
    return (replace(entry, **changes), True) if changes else (entry, False)


def cut_note(count: int, max_bytes: int) -> str:
    """The source's note for ``count`` entries cut to ``fetch.max_entry_bytes``."""
    which = "1 entry" if count == 1 else f"{count} entries"
    return f"{which} cut to fetch.max_entry_bytes ({max_bytes} bytes per title, summary or content)"


def bound_entries(entries: Iterable[EntryData], limits: EntryLimits) -> tuple[list[EntryData], list[str]]:
    """The newest ``max_entries`` entries, each cut to ``max_entry_bytes``, and notes saying what was dropped or cut."""
    newest: NewestEntries[EntryData] = NewestEntries(limits.max_entries)
    for entry in entries:
        newest.offer(entry.published or entry.updated, entry)
    notes = [n for n in (newest.note(),) if n]
    out, cut = [], 0
    for entry in newest.kept():
        entry, was_cut = cut_entry(entry, limits.max_entry_bytes)
        cut += was_cut
        out.append(entry)
    if cut:
        notes.append(cut_note(cut, limits.max_entry_bytes))
    return out, notes
