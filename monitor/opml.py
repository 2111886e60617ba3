"""OPML subscription lists in and out, as feed readers exchange them.

Reading is listparser's (nested outlines become categories such as
``News/Tech``; OPML 1.0, 2.0 and the readers' variants all parse). Writing
is OPML 2.0: one ``<outline type="rss">`` per feed source, nested in one
outline per category level.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

import listparser

from .errors import ConfigError, ConfigErrors
from .models import Source

CATEGORY_SEPARATOR = "/"


@dataclass(frozen=True)
class Subscription:
    """One feed of an OPML file: its address, title and category path (``"News/Tech"``, or ``None``)."""

    url: str
    title: str | None
    category: str | None


def read_opml(content: bytes, where: str) -> list[Subscription]:
    """Every feed in an OPML document, in document order.

    :param where: how errors name the file.
    :raises ConfigErrors: the document is not OPML, or lists no feed.
    """
    parsed = listparser.parse(content)
    if not parsed.feeds:
        if not parsed.get("version"):
            reason = parsed.get("bozo_exception") or "no <opml> document"
            raise ConfigErrors([ConfigError(f"not an OPML subscription list: {reason}", file=where)])
        raise ConfigErrors([ConfigError("the OPML file lists no feeds (no outline with an xmlUrl)", file=where)])
    out = []
    for feed in parsed.feeds:
        url = (feed.get("url") or "").strip()
        if not url:
            continue
        categories = [c for c in (feed.get("categories") or []) if c]
        category = CATEGORY_SEPARATOR.join(categories[0]) if categories and categories[0] else None
        out.append(Subscription(url=url, title=(feed.get("title") or "").strip() or None, category=category))
    return out


def write_opml(sources: Iterable[Source], title: str = "news-monitor sources", now: datetime | None = None) -> str:
    """An OPML 2.0 document with each source as an ``rss`` outline, inside its category's outlines."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(timezone.utc), usegmt=True)
    body = ET.SubElement(root, "body")
    folders: dict[tuple[str, ...], ET.Element] = {(): body}
    for source in sources:
        path = tuple(p for p in (source.category or "").split(CATEGORY_SEPARATOR) if p)
        for depth in range(1, len(path) + 1):
            if path[:depth] not in folders:
                folders[path[:depth]] = ET.SubElement(folders[path[: depth - 1]], "outline",
                                                      text=path[depth - 1], title=path[depth - 1])
        ET.SubElement(folders[path], "outline", type="rss", text=source.name, title=source.name, xmlUrl=source.url)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
