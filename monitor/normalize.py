"""Turning parsed entries into stories: plain text, UTC times, stable identity.

Nothing here raises on odd input: a missing title, an unparseable or future
date, stray markup or control characters all produce a sensible story.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ftfy

from .models import EntryData, Source, Story

# Publishers' clocks drift; only dates further ahead than this are distrusted.
FUTURE_TOLERANCE = timedelta(hours=12)
UNTITLED = "(untitled)"

_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "tr", "table", "section", "article", "header", "footer", "figure", "figcaption",
}
_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "head"}
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ocid|cmpid|ref|ref_src)$", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False, remove_terminal_escapes=False, uncurl_quotes=False, fix_latin_ligatures=False,
    fix_character_width=False, fix_line_breaks=False, fix_c1_controls=False, normalization=None, explain=False,
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(value: str | None) -> str:
    """Plain text from HTML or text: tags dropped, entities decoded, whitespace tidied."""
    if not value:
        return ""
    if "<" in value or "&" in value:
        parser = _TextExtractor()
        try:
            parser.feed(value)
            parser.close()
            value = "".join(parser.parts)
        except Exception:  # HTMLParser is lenient; this guards the odd assertion on broken markup
            value = html.unescape(re.sub(r"<[^>]*>", " ", value))
    return tidy_text(value)


def repair_mojibake(value: str) -> str:
    """``value`` with text mis-decoded upstream put right: ``â€œcomfort womenâ€`` becomes ``“comfort women”``.

    Publishers often decode UTF-8 as Windows-1252 (or Latin-1) before
    writing their feed; ftfy recognises and reverses exactly that. Only its
    encoding repairs run: quotes, ligatures and full-width forms are left as
    the publisher wrote them. C1 control characters, which never stand for
    themselves in a feed, become the Windows-1252 characters they were.
    """
    if value.isascii():  # mojibake is never ASCII; most text is
        return value
    return ftfy.fix_text(value, _FTFY_CONFIG)


def tidy_text(value: str) -> str:
    """Repair mojibake, normalise Unicode (NFC), drop control characters, collapse spaces and blank lines."""
    value = repair_mojibake(value)
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    value = _CONTROL.sub("", value)
    lines = [_SPACES.sub(" ", line).strip() for line in value.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def one_line(value: str) -> str:
    """Collapse text onto one line (titles)."""
    return " ".join(value.split())


def to_utc(value: datetime | None, now: datetime) -> datetime | None:
    """A timezone-aware UTC time, or ``None`` when missing or implausibly far in the future.

    Naive datetimes are taken as UTC. A date more than :data:`FUTURE_TOLERANCE`
    ahead is dropped: it is a publisher's error, and trusting it would pin the
    story to the top of every list.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    if value > now + FUTURE_TOLERANCE or value.year < 1970:
        return None
    return value.replace(microsecond=0)


def canonical_url(url: str | None) -> str | None:
    """A comparable form of a link: lower-case scheme and host, no default port,
    no fragment, no tracking parameters, remaining parameters sorted."""
    url = (url or "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return url
    try:
        port = parts.port
    except ValueError:  # a port out of range or not a number: leave the link as it is
        return url
    host = (parts.hostname or "").lower()
    port = port if port not in (None, 80, 443) else None
    netloc = f"{host}:{port}" if port else host
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k))
    path = parts.path or "/"
    return urlunsplit((parts.scheme.lower(), netloc, path, urlencode(query), ""))


def content_hash(title: str, text: str) -> str:
    """SHA-256 of title and text, as hex."""
    return hashlib.sha256(f"{title}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()


def default_story_key(story: Story, source: Source) -> str:
    """The feed GUID scoped to the source, else the canonical link, else a content hash.

    A GUID is only unique within its feed (many feeds number their posts), so
    it is scoped by source name; a link identifies a story across feeds.
    """
    if story.guid:
        return "guid:" + hashlib.sha256(f"{source.name}\n{story.guid}".encode()).hexdigest()[:32]
    link = canonical_url(story.url)
    if link:
        return "url:" + hashlib.sha256(link.encode()).hexdigest()[:32]
    return "hash:" + story.content_hash[:32]


def normalize_entry(entry: EntryData, source: Source, fetched: datetime) -> Story:
    """Turn one parsed entry into a :class:`Story` with an empty ``id`` (see ``story_key``)."""
    summary = html_to_text(entry.summary)
    content = html_to_text(entry.content)
    text = content if len(content) >= len(summary) else summary
    title = one_line(html_to_text(entry.title))
    if not title:
        # Some feeds (microblogs, link logs) carry no titles: the text's opening stands in.
        first = text.split("\n", 1)[0] if text else ""
        title = _shorten(first, 120) if first else UNTITLED
    published = to_utc(entry.published, fetched) or to_utc(entry.updated, fetched)
    guid = (entry.guid or "").strip() or None
    return Story(
        id="",
        source=source.name,
        title=title,
        text=text,
        url=(entry.link or "").strip() or None,
        summary=summary,
        guid=guid,
        published=published,
        fetched=fetched,
        author=one_line(html_to_text(entry.author)) or None,
        language=(entry.language or None),
        content_hash=content_hash(title, text),
    )


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + "…"
