"""Finding the feed behind an address, and checking that it reads, as ``monitor sources add`` does.

The address is fetched and parsed through the same hooks as a poll
(``fetch_source``, ``parse_feed``), so the network policy, timeouts, size
limits and parsers are the daemon's own. When the answer is a web page, the
feeds it announces with ``<link rel="alternate" type="application/rss+xml"
href="...">`` (RSS, Atom or JSON Feed) are tried in the page's order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import feedparser

from .errors import FetchError, ParseError, SourceError
from .models import FetchResult, FetchState, Source
from .wording import plural

if TYPE_CHECKING:
    from .app import Monitor

# Media types a page may announce its feeds with; "application/json" is what some JSON Feed sites use.
FEED_TYPES = {
    "application/rss+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
    "application/json": "JSON Feed",
    "application/rdf+xml": "RSS 1.0",
    "text/xml": "XML feed",
    "application/xml": "XML feed",
}
_HTML_HINTS = (b"<html", b"<!doctype html", b"<head")


@dataclass(frozen=True)
class FeedLink:
    """A feed a web page announces: its absolute URL, the announced type and title."""

    url: str
    media_type: str
    title: str | None = None

    @property
    def kind(self) -> str:
        """``"RSS"``, ``"Atom"``, ``"JSON Feed"``...: the format in words."""
        return FEED_TYPES.get(self.media_type, self.media_type)


@dataclass(frozen=True)
class FoundFeed:
    """A feed that was fetched and parsed: where it is, what it is called, how many entries it has.

    :param page: the web page it was discovered on, if the address given was one.
    :param links: every feed that page announced, in its order (the first that reads is ``url``).
    """

    url: str
    title: str | None
    entries: int
    page: str | None = None
    links: tuple[FeedLink, ...] = ()


class DiscoveryError(SourceError):
    """No readable feed at an address (or on the page there)."""


class _LinkFinder(HTMLParser):
    """Collects ``<link rel="alternate">`` feeds and ``<base href>`` from a page's markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "").strip() for k, v in attrs}
        if tag == "base" and values.get("href") and self.base is None:
            self.base = values["href"]
        elif tag == "link" and "alternate" in values.get("rel", "").lower().split():
            media_type = values.get("type", "").lower().split(";")[0].strip()
            if media_type in FEED_TYPES and values.get("href"):
                self.links.append((values["href"], media_type, values.get("title") or None))

    handle_startendtag = handle_starttag


def feed_links(html: str, page_url: str) -> list[FeedLink]:
    """The feeds a page announces, as absolute URLs (relative ``href`` resolved against ``<base>`` or the page)."""
    finder = _LinkFinder()
    try:
        finder.feed(html)
        finder.close()
    except Exception:  # HTMLParser is lenient; this guards the odd assertion on broken markup
        pass
    base = urljoin(page_url, finder.base) if finder.base else page_url
    seen: set[str] = set()
    out = []
    for href, media_type, title in finder.links:
        url = urljoin(base, href)
        if url in seen or urlsplit(url).scheme not in ("http", "https"):
            continue
        seen.add(url)
        out.append(FeedLink(url, media_type, title))
    return out


def find_feed(monitor: Monitor, url: str) -> FoundFeed:
    """The feed at ``url``, or the first readable one announced by the web page there.

    :raises SourceError: the address cannot be fetched, or neither it nor any
        feed the page announces can be read (the message says which and why).
    """
    fetched = _fetch(monitor, url)
    try:
        return _read(monitor, fetched)
    except ParseError as not_a_feed:
        if not _looks_like_html(fetched):
            raise
        why = not_a_feed
    links = feed_links(_text(fetched), fetched.url)
    if not links:
        raise DiscoveryError(
            "the address is a web page that announces no feed (no <link rel=\"alternate\"> with an RSS, Atom "
            "or JSON Feed type); give the feed's own address", url=fetched.url,
        ) from why
    problems = []
    for link in links:
        try:
            found = _read(monitor, _fetch(monitor, link.url))
        except SourceError as exc:
            problems.append(f"{link.url}: {exc.message}")
            continue
        return FoundFeed(found.url, found.title or link.title, found.entries, page=fetched.url, links=tuple(links))
    raise DiscoveryError(f"the page announces {plural(len(links), 'feed')} and none reads: {'; '.join(problems)}",
                         url=fetched.url)


def _fetch(monitor: Monitor, url: str) -> FetchResult:
    probe = Source(name="new-source", url=url)
    fetched = monitor.pm.hook.fetch_source(source=probe, state=FetchState(), monitor=monitor)
    if fetched is None:
        raise FetchError("no loaded plugin can fetch this address (http:// and https:// only)", url=url)
    return fetched


def _read(monitor: Monitor, fetched: FetchResult) -> FoundFeed:
    probe = Source(name="new-source", url=fetched.url)
    entries = monitor.pm.hook.parse_feed(source=probe, fetched=fetched, limits=monitor.entry_limits)
    if entries is None:
        raise ParseError(f"not a feed any loaded parser can read ({fetched.media_type or 'unknown media type'})",
                         url=fetched.url)
    return FoundFeed(url=fetched.url, title=feed_title(fetched.content or b""), entries=len(entries))


def feed_title(content: bytes) -> str | None:
    """The title a feed gives itself (RSS, Atom or JSON Feed), or ``None``."""
    if content.lstrip()[:1] == b"{":
        try:
            title = json.loads(content).get("title")
        except (ValueError, AttributeError):
            return None
        return title.strip() or None if isinstance(title, str) else None
    parsed = feedparser.parse(content, sanitize_html=False, resolve_relative_uris=False)
    title = parsed.feed.get("title") if parsed.get("feed") else None
    return " ".join(title.split()) or None if isinstance(title, str) else None


def _looks_like_html(fetched: FetchResult) -> bool:
    head = (fetched.content or b"")[:1024].lower()
    return fetched.media_type in ("text/html", "application/xhtml+xml") or any(h in head for h in _HTML_HINTS)


def _text(fetched: FetchResult) -> str:
    content = fetched.content or b""
    m = re.search(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_.:-]+)", content[:4096], re.I)
    try:
        return content.decode(m.group(1).decode() if m else "utf-8", errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")
