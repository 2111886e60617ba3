"""Parse JSON Feed 1.0 and 1.1 (feedparser does not read JSON Feed)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from monitor import EntryData, FetchResult, ParseError, Source, hookimpl

_TYPES = ("application/feed+json", "application/json", "text/json")


@hookimpl(trylast=True)
def parse_feed(source: Source, fetched: FetchResult) -> list[EntryData] | None:
    content = fetched.content or b""
    if fetched.media_type not in _TYPES and not content.lstrip()[:1] == b"{":
        return None
    try:
        data = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        if fetched.media_type in _TYPES:
            raise ParseError(f"invalid JSON: {exc}", url=fetched.url) from exc
        return None
    if not isinstance(data, dict) or "jsonfeed.org/version" not in str(data.get("version", "")):
        if fetched.media_type == "application/feed+json":
            raise ParseError("JSON without a JSON Feed version", url=fetched.url)
        return None
    items = data.get("items")
    if not isinstance(items, list):
        raise ParseError("JSON Feed without an items list", url=fetched.url)
    language = data.get("language") if isinstance(data.get("language"), str) else None
    return [_entry(item, language) for item in items if isinstance(item, dict)]


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
