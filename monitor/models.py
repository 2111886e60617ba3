"""Plain data objects that cross every boundary between the core and plugins.

They are frozen dataclasses: a plugin that wants to change a story returns
field updates (see the ``prepare_story`` hook) instead of mutating it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.timeutil import to_iso

@dataclass(frozen=True)
class Source:
    """A configured place stories come from.

    :param name: the key under ``[sources]``; the stable identity of the source.
    :param url: ``http(s)://`` URL, ``file:`` URL or a filesystem path.
    :param kind: ``"feed"`` (RSS, Atom, JSON Feed) or ``"directory"`` (plain-text articles).
    :param interval: seconds between polls.
    :param options: any other keys of the source's table, for plugins.
    :param adaptive_max: how long adaptive polling may stretch the interval of
        a quiet feed (``None``: as ``schedule.adaptive_max``; 0: never longer
        than ``interval``).
    :param category: a folder such as ``"News/Tech"`` (OPML import and export keep it); nothing else reads it.
    :param language: the language of its stories as configured; it overrides what the feed says.
    """

    name: str
    url: str
    kind: str = "feed"
    interval: float = 900.0
    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    adaptive_max: float | None = None
    category: str | None = None
    language: str | None = None

@dataclass(frozen=True)
class FetchState:
    """What we remember about a source between polls (from the ``sources`` table).

    :param effective_url: where a permanent redirect (301, 308) moved the feed;
        polls use it instead of the configured URL.
    :param interval: the interval the last poll chose (configured, adaptive, asked for or backoff), in seconds.
    """

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_fetch_at: datetime | None = None
    error_count: int = 0
    first_poll: bool = True
    effective_url: str | None = None
    interval: float | None = None

@dataclass(frozen=True)
class FetchResult:
    """What a ``fetch_source`` implementation returns.

    :param content: the body as bytes; ``None`` when ``not_modified``.
    :param media_type: the body's media type, lower-case, without parameters.
    :param not_modified: the server answered 304 (or the body is known unchanged).
    :param url: the URL finally read, after redirects.
    """

    url: str
    content: bytes | None
    media_type: str | None = None
    status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    permanent_redirect: str | None = None

@dataclass(frozen=True)
class EntryData:
    """One entry as a parser read it, before normalisation.

    Text fields may still hold HTML; dates may be missing or odd. The core's
    normaliser turns this into a :class:`Story`.
    """

    guid: str | None = None
    link: str | None = None
    title: str | None = None
    summary: str | None = None
    content: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    language: str | None = None

class ParsedEntries(list):
    """A ``parse_feed`` result that also says what was wrong with the feed.

    A plain list of :class:`EntryData` whose ``notes`` (short sentences such
    as "malformed XML (unclosed token): read what came before it") end up in
    the source's status.
    """

    def __init__(self, entries: list[EntryData] | None = None, notes: list[str] | None = None):
        super().__init__(entries or [])
        self.notes: list[str] = list(notes or [])

@dataclass(frozen=True)
class Story:
    """A normalised story: plain text, UTC times, a stable id.

    :param id: the dedupe key (see the ``story_key`` hook).
    :param source: the name of the source it came from.
    :param title: the headline as one line of plain text (the text's opening when the feed gave none).
    :param text: the body as plain text (the content, else the summary).
    :param url: the link to the story as the feed gave it.
    :param summary: the feed's summary as plain text.
    :param guid: the feed's id for the entry, if any.
    :param published: when it was published (else updated), UTC; ``None`` when missing or implausible.
    :param fetched: when this poll read it, UTC.
    :param author: the author as the feed names them.
    :param language: a language code, if the feed or a plugin gave one.
    :param content_hash: SHA-256 of title and text, for change detection.
    :param cluster: the id of the first story of the story's cluster (the same
        story from other outlets; see docs/clustering.md), once clustered.
    """

    id: str
    source: str
    title: str
    text: str
    url: str | None = None
    summary: str = ""
    guid: str | None = None
    published: datetime | None = None
    fetched: datetime | None = None
    author: str | None = None
    language: str | None = None
    content_hash: str = ""
    cluster: str | None = None

    def replace(self, **changes: Any) -> "Story":
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

@dataclass(frozen=True)
class Watchlist:
    """A named topic to watch for.

    :param name: the key under ``[watchlists]``.
    :param query: the keyword query (see README, "Query language"), or ``None``: a watchlist
        may be defined for classifier plugins alone, by its description and options.
    :param description: what the topic is, in words (semantic classifiers read it).
    :param enabled: ``False`` keeps it configured but unmatched (disabled watchlists never reach classifiers).
    :param threshold: the score a match must reach to count.
    :param channels: names of the alert channels this watchlist notifies.
    :param options: other keys of the watchlist's table, for classifier plugins.
    """

    name: str
    query: str | None = None
    threshold: float = 1.0
    channels: tuple[str, ...] = ("console",)
    description: str = ""
    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

@dataclass(frozen=True)
class Hit:
    """One place a term matched: ``field`` is ``"title"`` or ``"text"``, offsets are characters."""

    term: str
    field: str
    start: int
    end: int

@dataclass(frozen=True)
class Snippet:
    """A short excerpt with the matched spans given as offsets into ``text``."""

    text: str
    highlights: tuple[tuple[int, int], ...] = ()

    def marked(self, before: str = "[", after: str = "]") -> str:
        """The excerpt with every highlight wrapped in ``before``/``after``."""
        out, last = [], 0
        for start, end in sorted(self.highlights):
            if start < last:
                continue
            out.append(self.text[last:start])
            out.append(before + self.text[start:end] + after)
            last = end
        out.append(self.text[last:])
        return "".join(out)

@dataclass(frozen=True)
class Evidence:
    """Why a classifier matched: the distinct terms, where they hit, a snippet.

    :param terms: the distinct terms that matched, strongest first.
    :param hits: every place they matched, with character offsets.
    :param snippet: an excerpt around the hits, for alerts.
    :param note: a sentence from the classifier (for example why a score was lowered).
    :param truncated: the story was longer than ``classify.max_text_chars``
        and the classifier saw only its beginning (``note`` says how much).
    """

    terms: tuple[str, ...] = ()
    hits: tuple[Hit, ...] = ()
    snippet: Snippet = field(default_factory=lambda: Snippet(""))
    note: str = ""
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, as stored in ``matches.evidence``."""
        return {
            "terms": list(self.terms),
            "hits": [dataclasses.asdict(h) for h in self.hits],
            "snippet": self.snippet.text,
            "highlights": [list(h) for h in self.snippet.highlights],
            "note": self.note,
            "truncated": self.truncated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Evidence":
        """Inverse of :meth:`to_dict`."""
        return cls(
            terms=tuple(data.get("terms", ())),
            hits=tuple(Hit(**h) for h in data.get("hits", ())),
            snippet=Snippet(
                data.get("snippet", ""),
                tuple(tuple(h) for h in data.get("highlights", ())),  # type: ignore[misc]
            ),
            note=data.get("note", ""),
            truncated=bool(data.get("truncated", False)),
        )

@dataclass(frozen=True)
class Match:
    """A story matched a watchlist, with a score and the evidence.

    :param story_id: the :attr:`Story.id` matched.
    :param watchlist: the watchlist's name.
    :param score: how strongly; the core drops matches below the watchlist's ``threshold``.
    :param classifier: the name the classifier was registered under.
    :param evidence: why, for alerts and ``monitor matches``.
    """

    story_id: str
    watchlist: str
    score: float
    classifier: str
    evidence: Evidence = field(default_factory=Evidence)

VERDICTS = ("right", "wrong", "missed")


@dataclass(frozen=True)
class Feedback:
    """A reader's verdict on whether a story belongs to a watchlist, as given (web, API, CLI) or as stored.

    :param verdict: ``"right"`` (a good match), ``"wrong"`` (a false match) or ``"missed"``
        (on topic, but the watchlist did not match it).
    :param note: the reader's words, if any.
    :param origin: where the verdict was given (``cli``, ``web``, ``api``).
    :param id: the stored verdict's row, ``None`` until it is stored.
    :param match_id: the match judged, or ``None`` for a story the watchlist missed.
    :param title: the story's title and ``text`` as they were when judged (filled in when stored).
    :param language: the story's language when judged (filled in when stored; ``None`` if it had none).
    """

    story_id: str
    watchlist: str
    verdict: str
    note: str = ""
    origin: str = ""
    id: int | None = None
    match_id: int | None = None
    title: str = ""
    text: str = ""
    created_at: datetime | None = None
    language: str | None = None

    def listing(self) -> dict[str, Any]:
        """The stored verdict as listed (web UI, API): everything but the story's text."""
        return {"id": self.id, "story_id": self.story_id, "watchlist": self.watchlist, "verdict": self.verdict,
                "note": self.note, "origin": self.origin, "title": self.title,
                "created_at": to_iso(self.created_at)}

@dataclass(frozen=True)
class Reported:
    """Another outlet's report of an alert's story (a member of its cluster)."""

    source: str
    title: str
    url: str | None = None


@dataclass(frozen=True)
class Alert:
    """A match on its way to one channel (one row of the outbox).

    :param id: the outbox row's id (``monitor alerts`` shows it as ``#id``).
    :param channel: the name of the ``[channels.NAME]`` it goes to.
    :param match: the match being alerted.
    :param story: the matched story, as stored.
    :param watchlist: the watchlist matched, as configured now.
    :param attempts: delivery attempts made before this one.
    :param also_reported: the other sources' reports of the same story known
        when the alert is rendered (they do not alert on their own).
    """

    id: int
    channel: str
    match: Match
    story: Story
    watchlist: Watchlist
    attempts: int = 0
    also_reported: tuple[Reported, ...] = ()

@dataclass(frozen=True)
class RenderedAlert:
    """An alert rendered for a channel (by the ``render_alert`` hook, else as plain text).

    :param subject: one line: an e-mail subject, a notification title.
    :param text: the plain-text body; every channel can send it.
    :param html: an HTML body, for channels that can show one (e-mail).
    :param blocks: Slack Block Kit blocks, for channels that take them.
    :param data: anything else a renderer hands its own channel type.
    """

    subject: str
    text: str
    html: str | None = None
    blocks: list[dict[str, Any]] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

@dataclass(frozen=True)
class UpdateResult:
    """The outcome of polling one source once."""

    source: str
    new_stories: int = 0
    updated_stories: int = 0
    seen_stories: int = 0
    matches: int = 0
    alerts_queued: int = 0
    not_modified: bool = False
    error: str | None = None
    status: int | None = None

# Events observed through the ``track_event`` hook. They never change the flow.

@dataclass(frozen=True)
class Event:
    """Base class of the events passed to ``track_event``."""

@dataclass(frozen=True)
class SourceUpdated(Event):
    result: UpdateResult

@dataclass(frozen=True)
class SourceFailed(Event):
    source: str
    url: str
    error: str

@dataclass(frozen=True)
class MatchFound(Event):
    match: Match

@dataclass(frozen=True)
class ClassifierFailed(Event):
    classifier: str
    error: str

@dataclass(frozen=True)
class AlertSent(Event):
    alert_id: int
    channel: str

@dataclass(frozen=True)
class AlertFailed(Event):
    alert_id: int
    channel: str
    error: str
    final: bool
