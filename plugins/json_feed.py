"""Parse JSON Feed 1.0 and 1.1 (feedparser does not read JSON Feed).

The ``items`` array is decoded one item at a time and only the newest
``fetch.max_entries`` are kept, so a feed of 700,000 tiny items never
becomes 700,000 dictionaries at once.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from monitor import EntryData, EntryLimits, FetchResult, NewestEntries, ParsedEntries, ParseError, Source, hookimpl

_TYPES = ("application/feed+json", "application/json", "text/json")
_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


@hookimpl(trylast=True)
def parse_feed(source: Source, fetched: FetchResult, limits: EntryLimits) -> list[EntryData] | None:
    content = fetched.content or b""
    if fetched.media_type not in _TYPES and not content.lstrip()[:1] == b"{":
        return None
    newest: NewestEntries[dict[str, Any]] = NewestEntries(limits.max_entries)
    try:
        data = _read(content.decode("utf-8-sig"), newest)
    except RecursionError:
        raise ParseError("invalid JSON: nested too deeply", url=fetched.url) from None
    except (UnicodeDecodeError, ValueError) as exc:
        if fetched.media_type in _TYPES:
            raise ParseError(f"invalid JSON: {exc}", url=fetched.url) from exc
        return None
    if not isinstance(data, dict) or "jsonfeed.org/version" not in str(data.get("version", "")):
        if fetched.media_type == "application/feed+json":
            raise ParseError("JSON without a JSON Feed version", url=fetched.url)
        return None
    if data.get("items") is not _STREAMED:
        raise ParseError("JSON Feed without an items list", url=fetched.url)
    language = data.get("language") if isinstance(data.get("language"), str) else None
    notes = [n for n in (newest.note(),) if n]
    return ParsedEntries([_entry(item, language) for item in newest.kept()], notes=notes)


_STREAMED = object()  # stands for the items array, whose items went to a NewestEntries


def _read(text: str, newest: NewestEntries[dict[str, Any]]) -> Any:
    """Decode a JSON document; if it is an object, its ``items`` array goes item by item to ``newest``.

    Raises ``ValueError`` (as ``json.loads`` would) on anything that is not JSON.
    """
    try:
        return _read_object(text, newest)
    except IndexError:
        raise ValueError("unexpected end of the document") from None


def _skip(text: str, idx: int) -> int:
    return _WS.match(text, idx).end()  # type: ignore[union-attr]  # matches the empty string at worst


def _read_object(text: str, newest: NewestEntries[dict[str, Any]]) -> Any:
    idx = _skip(text, 0)
    if text[idx:idx + 1] != "{":
        value, end = _DECODER.raw_decode(text, idx)
        if _skip(text, end) != len(text):
            raise ValueError(f"extra data at character {end}")
        return value
    data: dict[str, Any] = {}
    idx = _skip(text, idx + 1)
    if text[idx] == "}":
        idx += 1
    else:
        while True:
            if text[idx] != '"':
                raise ValueError(f"expected a key at character {idx}")
            key, idx = json.decoder.scanstring(text, idx + 1)
            idx = _skip(text, idx)
            if text[idx] != ":":
                raise ValueError(f"expected ':' at character {idx}")
            idx = _skip(text, idx + 1)
            if key == "items" and text[idx] == "[":
                idx = _read_items(text, idx, newest)
                data[key] = _STREAMED
            else:
                data[key], idx = _DECODER.raw_decode(text, idx)
            idx = _skip(text, idx)
            sep, idx = text[idx], idx + 1
            if sep == "}":
                break
            if sep != ",":
                raise ValueError(f"expected ',' or '}}' at character {idx - 1}")
            idx = _skip(text, idx)
    if _skip(text, idx) != len(text):
        raise ValueError(f"extra data at character {idx}")
    return data


def _read_items(text: str, idx: int, newest: NewestEntries[dict[str, Any]]) -> int:
    """Decode the array at ``idx`` one element at a time; the index after it."""
    idx = _skip(text, idx + 1)
    if text[idx] == "]":
        return idx + 1
    while True:
        item, idx = _DECODER.raw_decode(text, idx)
        if isinstance(item, dict):
            newest.offer(_time(item.get("date_published")) or _time(item.get("date_modified")), item)
        idx = _skip(text, idx)
        sep, idx = text[idx], idx + 1
        if sep == "]":
            return idx
        if sep != ",":
            raise ValueError(f"expected ',' or ']' at character {idx - 1}")
        idx = _skip(text, idx)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _entry(item: dict[str, Any], language: str | None) -> EntryData:
    authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
    author = next((_str(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")), None)
    return EntryData(
        guid=_str(str(item["id"])) if item.get("id") is not None else None,
        link=_str(item.get("url")) or _str(item.get("external_url")),
        title=_str(item.get("title")),
        summary=_str(item.get("summary")),
        content=_str(item.get("content_html")) or _str(item.get("content_text")),
        published=_time(item.get("date_published")),
        updated=_time(item.get("date_modified")),
        author=author,
        language=_str(item.get("language")) or language,
    )
