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
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ftfy
from ftfy.badness import is_bad
from ftfy.chardata import CONTROL_CHARS

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
# A lone surrogate (JSON's "\ud800") is not text: it cannot be encoded as
# UTF-8, so it would fail the story's key and its row in SQLite.
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False, remove_terminal_escapes=False, uncurl_quotes=False, fix_latin_ligatures=False,
    fix_character_width=False, fix_line_breaks=False, fix_c1_controls=False, normalization=None, explain=False,
)
# What ftfy.fix_text could change in a text with our configuration, beyond what
# its badness test (ftfy.badness.is_bad) finds: the control
# characters it removes, lone surrogates, and the one badness pattern anchored
# at the start of a line ("^[ÃÂ] ": fix_text tests each line on its own).
_FTFY_EDITS = re.compile("[" + "".join(re.escape(chr(c)) for c in CONTROL_CHARS) + "\ud800-\udfff]")
_LINE_START_BAD = ("\nÃ ", "\nÂ ")
# Every badness pattern holds a non-ASCII character and spans at most 7
# characters, so any match lies within this reach of a run of non-ASCII characters.
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_BADNESS_REACH = 7


# A tag: its name, then attributes. Unquoted attribute text may not contain
# "<", so a stray "<a" fails at the next "<" instead of scanning to the end
# of the document; MAX_TAG bounds a quoted value left open.
_TAG = re.compile(r"""<(/?)([A-Za-z][A-Za-z0-9:_.-]*)(?:[^<>"']|"[^"]*"|'[^']*')*>""")
_MAX_TAG = 4096
_SKIP_END = {tag: re.compile(rf"</{tag}\s*>", re.I) for tag in _SKIP_TAGS}


def _strip_tags(value: str) -> str:
    """The text between tags, block tags as line breaks, script/style and comments dropped.

    Linear in ``len(value)`` whatever the markup: the standard library's
    HTMLParser is quadratic on some broken markup (160 KB of ``<a`` took 29 s
    and 320 KB of ``<!--`` 92 s on Python 3.11), and feeds are hostile input.
    Every search below moves forward, and a search that found nothing is not
    repeated.
    """
    parts: list[str] = []
    pos, n = 0, len(value)
    next_gt = -2  # where the next ">" is (-1: none left); -2: not looked yet
    while pos < n:
        lt = value.find("<", pos)
        if lt < 0:
            parts.append(value[pos:])
            break
        parts.append(value[pos:lt])
        if value.startswith("<!--", lt):
            close = value.find("-->", lt + 4)
            pos = n if close < 0 else close + 3
            continue
        m = _TAG.match(value, lt, min(n, lt + _MAX_TAG))
        if m is not None:
            name = m.group(2).lower()
            pos = m.end()
            if name in _BLOCK_TAGS:
                parts.append("\n")
            elif name in _SKIP_TAGS and not m.group(1) and not m.group().endswith("/>"):
                end = _SKIP_END[name].search(value, pos)
                pos = n if end is None else end.end()
            continue
        if value.startswith(("<!", "<?"), lt):  # a doctype, CDATA section or processing instruction
            if next_gt != -1 and next_gt < lt:
                next_gt = value.find(">", lt)
            pos = n if next_gt < 0 else next_gt + 1
            continue
        parts.append("<")  # a "<" that starts no tag is text
        pos = lt + 1
    return "".join(parts)


def html_to_text(value: str | None) -> str:
    """Plain text from HTML or text: tags dropped, entities decoded, whitespace tidied."""
    if not value:
        return ""
    if "<" in value:
        value = _strip_tags(value)
    if "&" in value:
        value = html.unescape(value)
    return tidy_text(value)


def repair_mojibake(value: str) -> str:
    """``value`` with text mis-decoded upstream put right: ``â€œcomfort womenâ€`` becomes ``“comfort women”``.

    Publishers often decode UTF-8 as Windows-1252 (or Latin-1) before
    writing their feed; ftfy recognises and reverses exactly that. Only its
    encoding repairs run: quotes, ligatures and full-width forms are left as
    the publisher wrote them. C1 control characters, which never stand for
    themselves in a feed, become the Windows-1252 characters they were.
    """
    if value.isascii() or not _may_repair(value):  # mojibake is never ASCII; most text is
        return value
    return ftfy.fix_text(value, _FTFY_CONFIG)


def _may_repair(value: str) -> bool:
    """False only where ftfy.fix_text would return ``value`` unchanged.

    fix_text works line by line and pays a fixed cost per line: on the real
    feeds that was four fifths of normalisation, for text that needed no
    repair. Its tests run here on the whole text instead (a pattern found in
    a line is found in the text), so clean text skips it. fix_text splits an
    over-long line at arbitrary places: such text always goes through it.
    """
    if (len(value) > _FTFY_CONFIG.max_decode_length or _FTFY_EDITS.search(value) is not None
            or value.startswith(("Ã ", "Â ")) or any(bad in value for bad in _LINE_START_BAD)):
        return True
    # ftfy's badness expression tried at every position of a long text costs
    # more than fix_text itself: try it only around the non-ASCII characters.
    for run in _NON_ASCII_RUN.finditer(value):
        if is_bad(value[max(0, run.start() - _BADNESS_REACH):run.end() + _BADNESS_REACH]):
            return True
    return False


def tidy_text(value: str) -> str:
    """Repair mojibake, normalise Unicode (NFC), drop control characters, collapse spaces and blank lines."""
    value = _layout(repair_mojibake(valid_text(value)))
    # Collapsing spaces can complete a mis-decoded sequence ("Â" then a tab); one more repair makes the result final.
    again = repair_mojibake(value)
    return value if again == value else _layout(again)


def _layout(value: str) -> str:
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    value = _CONTROL.sub("", value)
    lines = [line.strip() for line in _SPACES.sub(" ", value).split("\n")]  # spaces never span a line break
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def valid_text(value: str) -> str:
    """``value`` with every lone surrogate replaced by U+FFFD, so it encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", value)


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
    # Parsers often copy a content-only entry's content into its summary: read it once.
    content = summary if entry.content == entry.summary else html_to_text(entry.content)
    text = content if len(content) >= len(summary) else summary
    title = one_line(html_to_text(entry.title))
    if not title:
        # Some feeds (microblogs, link logs) carry no titles: the text's opening stands in.
        first = text.split("\n", 1)[0] if text else ""
        title = _shorten(first, 120) if first else UNTITLED
    published = to_utc(entry.published, fetched) or to_utc(entry.updated, fetched)
    guid = valid_text(entry.guid or "").strip() or None
    return Story(
        id="",
        source=source.name,
        title=title,
        text=text,
        url=valid_text(entry.link or "").strip() or None,
        summary=summary,
        guid=guid,
        published=published,
        fetched=fetched,
        author=one_line(html_to_text(entry.author)) or None,
        language=source.language or valid_text(entry.language or "") or None,
        content_hash=content_hash(title, text),
    )


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + "…"
