"""Reading labelled stories and scoring watchlists against them (``monitor classify`` / ``monitor eval``)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .models import Story
from .normalize import html_to_text, one_line


@dataclass(frozen=True)
class LabelledStory:
    """A story read from JSON lines, with its gold labels when given."""

    story: Story
    labels: frozenset[str] | None
    line: int


@dataclass
class Scores:
    """Counts and figures for one watchlist."""

    name: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    false_positives: list[str] = field(default_factory=list)
    false_negatives: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def labelled(self) -> int:
        """Stories labelled with this watchlist: without any, recall and F1 mean nothing."""
        return self.tp + self.fn

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON; recall and F1 are ``null`` when no story is labelled with the watchlist."""
        known = self.labelled > 0
        return {"watchlist": self.name, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": round(self.precision, 4), "recall": round(self.recall, 4) if known else None,
                "f1": round(self.f1, 4) if known else None}


class InputError(ValueError):
    """A line of JSON input that cannot be used; ``line`` is 1-based."""

    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(f"line {line}: {message}")


def json_lines(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Each non-blank line's number (from 1) with its JSON object, or with a sentence saying why it is not one."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as exc:
            yield number, f"not valid JSON ({exc})"
            continue
        yield number, row if isinstance(row, dict) else "expected a JSON object"


def read_stories(lines: Iterable[str], source: str = "input") -> Iterator[LabelledStory | InputError]:
    """Parse JSON lines ``{"id", "title", "summary" or "text", "labels"?, "published"?, "source"?, "url"?,
    "language"?}``.

    ``language`` (a code such as ``"sv"``) is read as a feed's language is: a word is matched, and a
    learned model trained, with that language's own letters unfolded (:mod:`monitor.letters`).
    Bad lines come back as errors.
    """
    for number, row in json_lines(lines):
        if isinstance(row, str):
            yield InputError(number, row)
            continue
        title = row.get("title") or ""
        text = row.get("summary") if row.get("summary") is not None else row.get("text")
        if text is None and "body" in row:
            text = row["body"]
        if not isinstance(title, str) or not isinstance(text or "", str):
            yield InputError(number, "title and summary/text must be strings")
            continue
        story_id = str(row.get("id", row.get("newid", number)))
        labels = row.get("labels")
        gold = frozenset(labels) if isinstance(labels, list) else None
        published = _published(row.get("published", row.get("date")))
        if isinstance(published, str):
            yield InputError(number, published)
            continue
        language = row.get("language")
        if language is not None and not isinstance(language, str):
            yield InputError(number, f"language: expected a language code such as \"sv\", got {json.dumps(language)[:40]}")
            continue
        outlet = row.get("source")
        # The same normalisation as feed entries: wire copy often carries escaped markup.
        story = Story(id=story_id, source=outlet if isinstance(outlet, str) and outlet else source,
                      title=one_line(html_to_text(title)), text=html_to_text(text or ""), published=published,
                      url=row.get("url") if isinstance(row.get("url"), str) else None,
                      language=language.strip() or None if language else None)
        yield LabelledStory(story, gold, number)


def _published(value: Any) -> datetime | str | None:
    """The optional ``published`` field (ISO 8601; naive means UTC), or an error message."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        return f"published: expected an ISO 8601 date such as \"2026-11-21T08:00:00Z\", got {str(value)[:40]!r}"
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def score(
    names: Iterable[str],
    predicted: Mapping[str, set[str]],
    gold: Mapping[str, frozenset[str]],
) -> dict[str, Scores]:
    """Per-watchlist true/false positives and negatives over the stories in ``gold``."""
    out = {name: Scores(name) for name in names}
    for story_id, labels in gold.items():
        got = predicted.get(story_id, set())
        for name, s in out.items():
            if name in got and name in labels:
                s.tp += 1
            elif name in got:
                s.fp += 1
                s.false_positives.append(story_id)
            elif name in labels:
                s.fn += 1
                s.false_negatives.append(story_id)
    return out


# The naive floor of each shipped watchlist: on topic when any of three regular
# expressions matches. A model or query that does not beat it is not worth its cost.
FLOORS: dict[str, tuple[str, ...]] = {
    "north_korea": (r"\bnorth korea", r"\bpyongyang\b", r"\bkim jong[ -]?(il|un)\b"),
    "abductions": (r"\babduct\w*\b.{0,200}\bnorth korea", r"\bnorth korea\w*\b.{0,200}\babduct",
                   r"\bmegumi yokota\b"),
    "trade": (r"\btariffs?\b", r"\btrade (deficit|surplus|war|talks|agreement|dispute|barrier)s?\b",
              r"\b(import|export)s? (ban|quota|curb|restriction)s?\b"),
}


def floor_predicts(name: str, title: str, text: str) -> bool:
    """The naive floor's decision for watchlist ``name`` (one of :data:`FLOORS`)."""
    body = f"{title}\n{text}".lower()
    return any(re.search(pattern, body, re.S) for pattern in FLOORS[name])
