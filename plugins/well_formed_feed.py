"""Read well-formed RSS 2.0, RSS 1.0 and Atom 1.0 the fast way, with exactly feedparser's results.

feedparser is most of the CPU a poll spends outside our own stages: it runs
its SAX handlers in Python for every element and character run. This module
builds the tree with the standard library's C ElementTree instead (expat, the
same XML parser feedparser's strict mode drives, so the two accept exactly the
same documents and see the same characters) and walks only what
``plugins/feed_parser.py`` reads. Every value goes through feedparser's own
rules (which title wins, when a second description becomes content, when a
GUID stands in for the link, the Windows-1252 and double-UTF-8 repairs) and
its own date parser, so the entries are the same ones feedparser gives.

Anything it is not sure of answers ``None`` and feedparser reads the feed:
a document that is not well-formed, has a DOCTYPE (so no entity can be
declared: no billion laughs, no external entities, no DTD loading), an
encoding other than UTF-8, an RSS 0.9x or Atom 0.3 root,
inline XHTML, base64 content, or any element feedparser gives a meaning we do
not model. ``tests/test_well_formed_feed.py`` holds it to feedparser on every
real feed of the corpus.
"""

from __future__ import annotations

import calendar
import codecs
import re
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from io import BytesIO
from typing import Any

# feedparser's own helpers, so dates, URI clean-up and character repairs are
# the same by construction (feedparser is pinned below 7; the corpus test
# catches a change in them).
from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri

from monitor import EntryData

_ATOM = "http://www.w3.org/2005/Atom"
_RSS10 = "http://purl.org/rss/1.0/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
_CANONICAL_PREFIX = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
# Every element name feedparser has a handler for: an element we do not model
# among these means feedparser would do something we would not.
_HANDLED_BY_FEEDPARSER = frozenset(
    name.split("_", 2)[2].lower() for name in dir(_FeedParserMixin) if name.startswith(("_start_", "_end_"))
)

_TITLES = {"title", "dc_title"}
_DESCRIPTIONS = {"description", "dc_description", "media_description"}
_SUMMARIES = {"summary", "itunes_summary"}
_CONTENTS = {"content": "text/plain", "content_encoded": "text/html", "fullitem": "text/html"}
_PUBLISHED = {"pubdate", "published", "issued", "dcterms_issued"}
_UPDATED = {"updated", "modified", "dc_date", "dcterms_modified", "lastbuilddate"}
_CREATED = {"created", "dcterms_created"}
_AUTHORS = {"author", "dc_creator", "dc_author", "itunes_author", "managingeditor"}
_LANGUAGES = {"language", "dc_language"}
_AUTHOR_PARTS = {"name": "name", "email": "email", "uri": "href", "url": "href", "homepage": "href"}
# Elements feedparser handles without touching anything we read (tags,
# enclosures, rights, media and geo details...); their children are checked too.
_IRRELEVANT = frozenset({
    "category", "keywords", "tags", "enclosure", "cc_license", "creativecommons_license", "copyright", "rights",
    "dc_rights", "dc_subject", "dc_publisher", "webmaster", "dcterms_valid", "expirationdate", "generator", "info",
    "feedburner_browserfriendly", "cloud", "georss_box", "georss_line", "georss_point", "georss_polygon",
    "georss_where", "where", "gml_exterior", "gml_linearring", "gml_linestring", "gml_point", "gml_polygon",
    "gml_pos", "gml_poslist", "itunes_block", "itunes_category", "itunes_explicit", "itunes_image", "itunes_link",
    "itunes_keywords", "itunes_subtitle", "media_category", "media_content", "media_credit", "media_group",
    "media_keywords", "media_license", "media_player", "media_rating", "media_restriction", "media_thumbnail",
    "psc_chapter", "psc_chapters", "subtitle", "tagline", "width", "height", "url", "uri", "homepage",
    "newlocation", "name", "email", "contributor", "dc_contributor",
})
# What may appear inside an entry's <source> (its values go to the source, not the entry).
_SOURCE_PARTS = frozenset({"title", "link", "id", "updated", "published", "subtitle", "rights", "category",
                           "generator", "icon", "logo", "author", "name", "email", "uri", "url"})
# Outside the entries only the feed's language is read; these there would change how entries are read.
_NOT_AT_FEED_LEVEL = frozenset({"item", "entry", "channel", "feed", "rss", "source", "content", "content_encoded",
                                "fullitem", "body", "xhtml_body", "language", "dc_language"})
_PLAIN_TYPES = frozenset({"text", "plain", "html", "text/plain", "text/html"})  # feedparser's names for them
_HTML_LINK_TYPES = {"text/html", "html", "application/xhtml+xml", "xhtml"}
# The keys feed_parser reads from feedparser's entries: an unknown element of one of these names would land there.
_ENTRY_KEYS = frozenset({"published_parsed", "updated_parsed", "created_parsed", "content", "summary", "title",
                         "link", "id", "author", "language"})
_ENTRY_NAMES = ("item", "entry")
_BASE_ATTRIBUTE = re.compile(rb"base\s*=")  # preceded by a space or "xml:" (checked apart: a leading class is slow)
# The C1 controls feedparser maps to Windows-1252: str.translate with a dict costs per character, so look first.
_C1_CONTROLS = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_cp1252)) + "]")
_XML_DECLARED_ENCODING = re.compile(rb'^<\?.*encoding=[\'"](.*?)[\'"].*\?>')
_ENTITY_NAME = re.compile("&([A-Za-z0-9_]+);")


class _NotConfident(Exception):
    """This document needs feedparser."""


def read_entries(body: bytes, content_type: str | None) -> list[EntryData] | None:
    """The entries of a well-formed RSS 2.0, RSS 1.0 or Atom 1.0 document, as feedparser reads them.

    :param body: the document's bytes (after ``feed_parser``'s gzip and blank-line repairs).
    :param content_type: the response's Content-Type header, if any.
    :return: the entries, or ``None`` where feedparser must read the document.
    """
    if not _utf8(body, content_type) or b"<!DOCTYPE" in body:
        return None
    try:
        events = ET.iterparse(BytesIO(body), events=("start-ns",))
        declared = [ns for _event, ns in events]
        root = events.root  # type: ignore[attr-defined]
    except (ET.ParseError, ValueError):
        return None
    try:
        document = _Document(declared)
        if _has_base_attribute(body):
            document.base_of = _bases(root)
        return document.entries(root)
    except (_NotConfident, RecursionError):  # RecursionError: elements nested thousands deep
        return None


def _utf8(body: bytes, content_type: str | None) -> bool:
    """True when feedparser would decode ``body`` as UTF-8 and call it an XML media type (RFC 3023)."""
    media_type, _, params = (content_type or "").partition(";")
    media_type = media_type.strip()
    charset = ""
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    head = body[3:] if body.startswith(codecs.BOM_UTF8) else body
    declared = _XML_DECLARED_ENCODING.match(head)
    encodings = [charset, declared.group(1).decode("ascii", "replace") if declared else ""]
    if content_type:
        if media_type in ("application/xml", "application/xml-dtd", "application/xml-external-parsed-entity") or (
                media_type.startswith("application/") and media_type.endswith("+xml")):
            named = encodings[0] or encodings[1] or "utf-8"
        elif media_type in ("text/xml", "text/xml-external-parsed-entity") or (
                media_type.startswith("text/") and media_type.endswith("+xml")):
            named = encodings[0] or "us-ascii"  # RFC 3023: text/xml without a charset is US-ASCII
        else:
            return False  # feedparser reads it but notes that it is not an XML media type
        if not _is_utf8(named):
            return False
    elif not _is_utf8(encodings[1] or "utf-8"):
        return False
    if encodings[1] and not _is_utf8(encodings[1]):
        return False  # expat would follow the declaration where feedparser follows the header
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def from_struct_time(value: time.struct_time | None) -> datetime | None:
    """A UTC datetime from feedparser's parsed date (a ``time.struct_time`` in UTC), or ``None`` when missing or out of range."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None


def _has_base_attribute(body: bytes) -> bool:
    """Whether ``body`` may hold an ``xml:base`` or ``base`` attribute (which feedparser resolves links against)."""
    return any(body[match.start() - 1:match.start()] in b": \t\r\n" for match in _BASE_ATTRIBUTE.finditer(body))


def _is_utf8(name: str) -> bool:
    try:
        return codecs.lookup(name).name == "utf-8"
    except LookupError:
        return False


def _finish(value: str) -> str:
    """feedparser's treatment of an element's text: stripped, UTF-8 read as Latin-1 undone, C1 controls as Windows-1252."""
    value = value.strip()
    try:
        value = value.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return value.translate(_cp1252) if _C1_CONTROLS.search(value) else value


def _bases(root: ET.Element) -> dict[int, str]:
    """The base URI feedparser resolves links against inside each element (by ``id``), from ``xml:base``.

    feedparser keeps one current base: an element with ``xml:base`` (or ``base``)
    moves it; at an element's end it goes back to the parent's only if that one
    was not empty, so a base set under an element without one stays in force
    after it. This walks the document in its order to follow that exactly.
    """
    bases: dict[int, str] = {}
    stack: list[str] = []
    current = ""
    todo: list[tuple[ET.Element, bool]] = [(root, False)]
    while todo:
        element, ending = todo.pop()
        if ending:
            stack.pop()
            if stack and stack[-1]:
                current = stack[-1]
            continue
        attributes = _plain_attributes(element)
        given = attributes.get("xml:base", attributes.get("base")) or current
        current = (make_safe_absolute_uri(current, given) or current) if current else _urljoin(current, given)
        stack.append(current)
        bases[id(element)] = current
        todo.append((element, True))
        todo.extend((child, False) for child in reversed(element))
    return bases


class _Document:
    """Names elements as feedparser does (its prefixes for namespaces it knows, the document's for others)."""

    def __init__(self, declared: list[tuple[str, str]]):
        self.prefix_of: dict[str, str] = {}
        in_use: dict[str, str] = {}
        remap: dict[str, str] = {}
        bound: dict[str, str] = {}
        for prefix, uri in declared:
            if not uri:
                continue
            if prefix and bound.setdefault(prefix, uri) != uri:  # the default namespace names nothing
                raise _NotConfident("a prefix bound to two namespaces")
            lower = uri.lower()
            if "backend.userland.com/rss" in lower:
                lower = "http://backend.userland.com/rss"
            if lower in _CANONICAL_PREFIX:
                remap[prefix or ""] = _CANONICAL_PREFIX[lower]
            else:
                in_use[prefix or ""] = uri
        self._remap = remap
        for prefix, uri in in_use.items():
            if prefix and uri not in self.prefix_of:
                self.prefix_of[uri] = prefix
        self._names: dict[str, str] = {}
        self.base_of: dict[int, str] = {}  # element id -> its base URI, where the document has xml:base
        # A feed-level description after a feed-level summary is content to feedparser, and
        # its "has content" flag stays up until the end of the next entry.
        self.content_leaks_into_next_entry = False

    def resolve(self, element: ET.Element, uri: str) -> str:
        """``uri`` resolved as feedparser resolves it inside ``element``."""
        return _urljoin(self.base_of.get(id(element), ""), uri)

    def name(self, tag: Any) -> str:
        """feedparser's name for an element: ``title``, ``dc_creator``, ``media_content``..."""
        known = self._names.get(tag)
        if known is not None:
            return known
        if not isinstance(tag, str):
            raise _NotConfident("a comment or processing instruction")  # ElementTree keeps none, but be sure
        uri, _, local = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
        lower = uri.lower()
        if "backend.userland.com/rss" in lower:
            lower = "http://backend.userland.com/rss"
        prefix = _CANONICAL_PREFIX.get(lower)
        if prefix is None:
            prefix = self.prefix_of.get(uri, "")
        prefix = self._remap.get(prefix, prefix) if prefix else prefix
        name = f"{prefix}_{local.lower()}" if prefix else local.lower()
        self._names[tag] = name
        return name

    def entries(self, root: ET.Element) -> list[EntryData]:
        if root.tag == "rss":
            if not root.get("version", "").startswith("2."):
                raise _NotConfident("not RSS 2")
            channel = self._only_channel(root, "channel")
            self._feed_language(root, None, skip=("channel",), reads_language=False)
            feed, language = channel, self._feed_language(channel, _root_language(root), skip=_ENTRY_NAMES)
        elif root.tag == f"{{{_ATOM}}}feed":
            feed, language = root, self._feed_language(root, _root_language(root), skip=_ENTRY_NAMES)
        elif root.tag == f"{{{_RDF}}}RDF":
            # Entries are the root's <item>s; only the channel's own elements say the
            # language (feedparser does not take xml:lang on rdf:RDF for it).
            channel = self._only_channel(root, f"{{{_RSS10}}}channel")
            language = self._feed_language(channel, None, skip=())
            if self.content_leaks_into_next_entry and any(self.name(child.tag) in _ENTRY_NAMES for child in root
                                                          if child is not channel and list(root).index(child) < list(root).index(channel)):
                raise _NotConfident("entries before the channel")
            feed = root
            self._feed_language(root, None, skip=("channel", *_ENTRY_NAMES), reads_language=False)
        else:
            raise _NotConfident("not RSS 2.0, RSS 1.0 or Atom 1.0")
        entries = []
        for child in feed:
            if self.name(child.tag) in _ENTRY_NAMES:
                entries.append(_Entry(self, child, has_content=self.content_leaks_into_next_entry).data(language))
                self.content_leaks_into_next_entry = False
        return entries

    def _only_channel(self, root: ET.Element, tag: str) -> ET.Element:
        channels = [child for child in root if self.name(child.tag) == "channel"]
        if len(channels) != 1 or channels[0].tag != tag or {key.lower() for key in channels[0].attrib} & {"lastmod", "href"}:
            raise _NotConfident("not exactly one plain channel")
        return channels[0]

    def _feed_language(self, feed: ET.Element, language: str | None, skip: tuple[str, ...],
                       reads_language: bool = True) -> str | None:
        """The last <language> among the feed's own elements, checking nothing else there changes how entries read."""
        summary_seen = entry_seen = False
        for child in feed:
            name = self.name(child.tag)
            if name in skip:
                entry_seen = entry_seen or name in _ENTRY_NAMES
                continue
            if name in _LANGUAGES and reads_language:
                if len(child):
                    raise _NotConfident("markup inside <language>")
                language = _finish(child.text or "")
            elif name in _NOT_AT_FEED_LEVEL or _descendants_named(self, child):
                raise _NotConfident(f"<{name}> outside the entries")
            elif name in _SUMMARIES:
                summary_seen = True
            elif summary_seen and name in _DESCRIPTIONS:
                if entry_seen or len(child):
                    raise _NotConfident("a feed-level description after a summary, among the entries")
                self.content_leaks_into_next_entry = True
        return language


def _descendants_named(doc: _Document, element: ET.Element) -> bool:
    """Whether anything inside ``element`` would change how feedparser reads the entries or the feed's language."""
    return any(doc.name(inner.tag) in _NOT_AT_FEED_LEVEL for inner in element.iter() if inner is not element)


def _root_language(root: ET.Element) -> str | None:
    lang = root.get(f"{_XML_NS}lang", root.get("lang"))
    return lang.replace("_", "-") if lang else None


class _Entry:
    """One <item> or <entry>, read in document order with feedparser's rules.

    feedparser keeps a value met deeper in the entry (a ``media:title`` inside
    ``media:content``) only while nothing was kept from a shallower element,
    and lets a shallower one replace it: ``depth_of`` tracks that as it does.
    """

    def __init__(self, doc: _Document, element: ET.Element, has_content: bool = False):
        self.doc = doc
        self.element = element
        self.fields: dict[str, Any] = {}
        self.depth_of: dict[str, int] = {}
        self.contents: list[str] = []
        self.title_depth = -1  # the depth of the title that won, as feedparser's title_depth
        self.has_content = has_content
        self.guid_is_link = False
        self.author_kind: str | None = None

    def data(self, feed_language: str | None) -> EntryData:
        keys = _attribute_keys(self.element)
        if keys & {"lastmod", "href"}:
            raise _NotConfident("CDF attributes on the entry")
        about = self.element.get(f"{{{_RDF}}}about")
        if about:
            self.fields["id"] = about
        for child in self.element:
            self._read(child, 1)
        fields = self.fields
        return EntryData(
            guid=fields.get("id") or None,
            link=fields.get("link") or None,
            title=fields.get("title") or None,
            summary=fields.get("summary") or None,
            content=max(self.contents, key=len) if self.contents else None,
            published=from_struct_time(fields.get("published")) or from_struct_time(fields.get("created")),
            updated=from_struct_time(fields.get("updated")),
            author=fields.get("author") or None,
            language=fields.get("language") or feed_language or None,
        )

    def _save(self, key: str, value: Any, depth: int) -> None:
        """feedparser's ``pop``: a value replaces one kept from the same depth or deeper."""
        old = self.depth_of.get(key)
        if old is None or depth <= old:
            self.depth_of[key] = depth
            self.fields[key] = value

    def _read(self, child: ET.Element, depth: int) -> None:
        name = self.doc.name(child.tag)
        if name in _AUTHORS and depth == 1:
            self._author(child)
        elif name == "source" and depth == 1:
            self._source(child)
        elif name == "link" and depth == 1:
            self._link(child)
        elif name in _IRRELEVANT or name not in _HANDLED_BY_FEEDPARSER:
            self._irrelevant(name, child, depth)
        elif len(child):
            raise _NotConfident(f"markup inside <{name}>")
        elif name in _TITLES or name == "media_title":
            self._title(name, child, depth)
        elif name in _DESCRIPTIONS or name in _SUMMARIES:
            if "summary" in self.fields and not self.has_content:
                self._content(child, "text/plain", depth)
            else:
                default = "text/html" if name in _DESCRIPTIONS else "text/plain"
                self._save("summary", _finish(self._plain_text(child, default)), depth)
        elif depth > 1:
            raise _NotConfident(f"<{name}> nested in an entry")
        elif name in ("guid", "id"):
            self._guid(child)
        elif name == "abstract":
            self._save("summary", _finish(self._plain_text(child, "text/plain")), depth)
        elif name in _CONTENTS:
            self._content(child, _CONTENTS[name], depth)
        elif name in _PUBLISHED:
            self.fields["published"] = _parse_date(_finish(child.text or ""))
        elif name in _UPDATED:
            self.fields["updated"] = _parse_date(_finish(child.text or ""))
        elif name in _CREATED:
            self.fields["created"] = _parse_date(_finish(child.text or ""))
        elif name in _LANGUAGES:
            self._save("language", _finish(child.text or ""), depth)
        else:
            raise _NotConfident(f"<{name}> in an entry")

    def _irrelevant(self, name: str, element: ET.Element, depth: int) -> None:
        """An element that sets nothing we read; inside it, only media titles and descriptions may (Media RSS groups)."""
        if name in _ENTRY_KEYS:
            raise _NotConfident(f"an element named like an entry key: <{name}>")
        if name in ("contributor", "dc_contributor"):
            if {self.doc.name(e.tag) for e in element.iter() if e is not element} - set(_AUTHOR_PARTS):
                raise _NotConfident("unexpected markup in a contributor")
            return
        for inner in element:
            inner_name = self.doc.name(inner.tag)
            if name in ("media_group", "media_content") and inner_name in ("media_title", "media_description"):
                self._read(inner, depth + 1)
            elif inner_name in _HANDLED_BY_FEEDPARSER and inner_name not in _IRRELEVANT or inner_name in _ENTRY_KEYS:
                raise _NotConfident(f"<{inner_name}> inside <{name}>")
            else:
                self._irrelevant(inner_name, inner, depth + 1)

    def _title(self, name: str, element: ET.Element, depth: int) -> None:
        value = _finish(self._plain_text(element, "text/plain"))
        if not -1 < self.title_depth <= depth:
            self._save("title", value, depth)
        if value and name != "media_title":  # feedparser's media:title leaves title_depth as it was
            self.title_depth = depth

    def _guid(self, element: ET.Element) -> None:
        attributes = _plain_attributes(element)
        self.guid_is_link = attributes.get("ispermalink", "true") == "true"
        value = (element.text or "").strip()
        if value and self.guid_is_link:
            value = self.doc.resolve(element, value)
        value = _finish(value)
        self._save("id", value, 1)
        if self.guid_is_link:
            self.fields.setdefault("link", value)

    def _plain_text(self, element: ET.Element, default_type: str) -> str:
        """The text of a text, HTML or escaped-HTML element; anything else (XHTML, base64, other types) is not ours."""
        attributes = _plain_attributes(element)
        if "mode" in attributes:
            raise _NotConfident("a mode attribute")
        kind = attributes.get("type", default_type).lower()
        if kind not in _PLAIN_TYPES:
            raise _NotConfident(f"content of type {kind}")
        return element.text or ""

    def _content(self, element: ET.Element, default_type: str, depth: int) -> None:
        if len(element):
            raise _NotConfident("markup inside content")
        self.has_content = True
        value = _finish(self._plain_text(element, default_type))
        self.contents.append(value)
        self.fields.setdefault("summary", value)  # feedparser's _save: no depth recorded

    def _link(self, element: ET.Element) -> None:
        if len(element):
            raise _NotConfident("markup inside <link>")
        attributes = _plain_attributes(element)
        href = attributes.get("url", attributes.get("uri", attributes.get("href")))
        if href:
            attributes["href"] = href
        if "href" in attributes:
            rel = attributes.get("rel", "alternate").lower()
            kind = attributes.get("type", "application/atom+xml" if rel == "self" else "text/html").lower()
            if rel == "alternate" and kind in _HTML_LINK_TYPES:
                self.fields["link"] = self.doc.resolve(element, attributes["href"])
            return
        value = (element.text or "").strip()
        value = _finish(self.doc.resolve(element, value) if value else value)
        self.fields["link"] = _ENTITY_NAME.sub(r"&\g<1>", value.replace("&amp;", "&"))

    def _author(self, element: ET.Element) -> None:
        parts: dict[str, str] = {}
        for part in element:
            part_name = self.doc.name(part.tag)
            key = _AUTHOR_PARTS.get(part_name)
            if key is None and part_name not in _HANDLED_BY_FEEDPARSER and part_name not in _ENTRY_KEYS:
                continue  # an extension's element (Blogger's gd:image): feedparser files it elsewhere
            if key is None or key in parts or len(part):
                raise _NotConfident("unexpected markup in an author")
            parts[key] = (part.text or "").strip()
        kind = "person" if parts else "text"
        if self.author_kind is not None and (kind == "person" or self.author_kind == "person"):
            raise _NotConfident("several authors, one of them a person element")
        self.author_kind = kind
        # Text inside <author> beside its parts: feedparser keeps it where the parts give no name or email.
        text = _finish((element.text or "") + "".join(part.tail or "" for part in element))
        name, email = parts.get("name"), parts.get("email")
        if name and email:
            self.fields["author"] = f"{name} ({email})"
        elif name or email:
            self.fields["author"] = name or email
        else:
            self._save("author", text, 1)

    def _source(self, element: ET.Element) -> None:
        for inner in element.iter():
            name = self.doc.name(inner.tag)
            if inner is not element and name not in _SOURCE_PARTS and (name in _HANDLED_BY_FEEDPARSER or name in _ENTRY_KEYS):
                raise _NotConfident("unexpected markup in a source")
        self.title_depth = -1  # feedparser forgets the entry's title at <source>...
        for inner in element.iter():
            if inner is not element and self.doc.name(inner.tag) in _TITLES and (inner.text or "").strip():
                self.title_depth = 2  # ...and remembers the source's own, one level down


def _attribute_keys(element: ET.Element) -> set[str]:
    """The attribute names feedparser sees: lower-case, local names for namespaces it does not know."""
    return {_attribute_key(key) for key in element.attrib}


def _attribute_key(key: str) -> str:
    if key.startswith("{"):
        uri, _, local = key[1:].partition("}")
        prefix = _CANONICAL_PREFIX.get(uri.lower())
        return f"{prefix}:{local.lower()}" if prefix else local.lower()
    return key.lower()


def _plain_attributes(element: ET.Element) -> dict[str, str]:
    """Attributes by feedparser's names (``rel`` and ``type`` values in lower case), if none of them is ambiguous."""
    attributes = {}
    for key, value in element.attrib.items():
        name = _attribute_key(key)
        if name in attributes:
            raise _NotConfident("two attributes of one name")
        attributes[name] = value.lower() if name in ("rel", "type") else value
    return attributes
