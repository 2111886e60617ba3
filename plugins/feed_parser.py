"""Parse RSS 0.9x/1.0/2.0 and Atom with feedparser, from bytes we fetched.

Well-formed RSS 2.0, RSS 1.0 and Atom 1.0 take a faster road to the same
entries (``well_formed_feed``); feedparser reads everything else.

feedparser never fetches anything itself here. Its "bozo" flag does not mean
unusable: a feed with a small XML error still yields entries, so we keep
them and only reject a body that yields nothing.
"""

from __future__ import annotations

import gzip
import zlib
from datetime import datetime
from typing import Any

import feedparser

from monitor import EntryData, FetchResult, ParsedEntries, ParseError, Source, hookimpl
from monitor_plugins.well_formed_feed import from_struct_time, read_entries

_NOT_XML_TYPES = ("application/feed+json", "application/json", "application/x-news-monitor-articles+json")
_HTML_TYPES = ("text/html", "application/xhtml+xml")


@hookimpl(trylast=True)
def parse_feed(source: Source, fetched: FetchResult) -> list[EntryData] | None:
    if fetched.content is None or fetched.media_type in _NOT_XML_TYPES:
        return None
    body = _prepare(fetched.content, fetched.url)
    if body.lstrip()[:1] in (b"{", b"["):
        return None  # JSON: not ours
    headers = {"content-type": fetched.headers.get("content-type", fetched.media_type or "")} if fetched.media_type else {}
    entries = read_entries(body, headers.get("content-type"))
    if entries is not None:
        return ParsedEntries(entries)
    return _parse_with_feedparser(body, headers, fetched)


def _parse_with_feedparser(body: bytes, headers: dict[str, str], fetched: FetchResult) -> list[EntryData]:
    try:
        parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:
        # feedparser itself trips on some hostile bytes (found by fuzzing: a
        # non-UTF-8 byte inside the XML encoding declaration raises
        # UnicodeDecodeError). That is this feed's fault, not a plugin bug.
        raise ParseError(f"unreadable feed (feedparser failed: {type(exc).__name__}: {exc})"[:300], url=fetched.url) from exc
    if not parsed.entries:
        if parsed.get("version"):
            return []  # a valid feed with no entries
        raise ParseError(_why_not(parsed, fetched), url=fetched.url)
    language = parsed.feed.get("language")
    return ParsedEntries([_entry(e, language) for e in parsed.entries], notes=_damage(parsed))


def _damage(parsed: Any) -> list[str]:
    """What was wrong with a feed that still yielded entries (feedparser's "bozo")."""
    if not parsed.get("bozo"):
        return []
    reason = parsed.get("bozo_exception")
    if isinstance(reason, feedparser.CharacterEncodingOverride):
        return [f"wrong encoding declared: read as {parsed.get('encoding')}"]
    text = str(reason)[:160] if reason else "unknown error"
    return [f"malformed feed ({type(reason).__name__}: {text}); kept the {len(parsed.entries)} entries that could be read"]


def _prepare(content: bytes, url: str) -> bytes:
    """Undo the commonest breakages: a gzip body served raw, and blank lines before ``<?xml``."""
    if content[:2] == b"\x1f\x8b":
        try:
            # Bounded like any response: 50 MB decompressed at most.
            content = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(content, 50_000_000)
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise ParseError(f"corrupt gzip body: {exc}", url=url) from exc
    stripped = content.lstrip(b" \t\r\n")
    if stripped.startswith(b"<?xml") or stripped.startswith(b"\xef\xbb\xbf<?xml"):
        return stripped
    return content


def _why_not(parsed: Any, fetched: FetchResult) -> str:
    head = (fetched.content or b"")[:512].lower()
    if fetched.media_type in _HTML_TYPES or b"<html" in head or b"<!doctype html" in head:
        return "the server sent an HTML page, not a feed (is the URL the feed's address?)"
    if not (fetched.content or b"").strip():
        return "the response is empty"
    reason = parsed.get("bozo_exception")
    return f"not a feed: {type(reason).__name__}: {reason}" if reason else "not a feed: no RSS or Atom entries found"


def _time(entry: Any, key: str) -> datetime | None:
    # dict.get skips FeedParserDict's deprecated updated->published fallback.
    return from_struct_time(dict.get(entry, f"{key}_parsed"))


def _entry(entry: Any, feed_language: str | None) -> EntryData:
    content = None
    if entry.get("content"):
        content = max((c.get("value") or "" for c in entry.content), key=len)
    author = entry.get("author") or None
    return EntryData(
        guid=entry.get("id") or None,
        link=entry.get("link") or None,
        title=entry.get("title") or None,
        summary=entry.get("summary") or None,
        content=content,
        published=_time(entry, "published") or _time(entry, "created"),
        updated=_time(entry, "updated"),
        author=author,
        language=(entry.get("language") or feed_language or None),
    )
