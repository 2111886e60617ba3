"""A folder of plain-text articles as a source (``kind = "directory"``).

One story per ``.txt`` file: the first non-empty line is the title, the rest
is the body. The story's id comes from its content, so renaming a file does
not make it new and an edited article is a new story. This is how the
default configuration reads ``seeds/``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from monitor import (
    EntryData,
    FetchError,
    FetchResult,
    FetchState,
    Monitor,
    NewestEntries,
    ParsedEntries,
    ParseError,
    Source,
    cut_note,
    hookimpl,
)

MEDIA_TYPE = "application/x-news-monitor-articles+json"
PATTERN = "*.txt"


@hookimpl
def source_url_schemes(kind: str) -> list[str] | None:
    return ["file"] if kind == "directory" else None


@hookimpl(trylast=True)
def fetch_source(source: Source, state: FetchState, monitor: Monitor) -> FetchResult | None:
    if source.kind != "directory":
        return None
    folder = Path(source.url.removeprefix("file://").removeprefix("file:"))
    if not folder.is_dir():
        raise FetchError("folder not found (kind = \"directory\" needs a folder of .txt files)", url=source.url)
    limits = monitor.entry_limits
    # The newest files by modification time, like the newest entries of a feed.
    newest: NewestEntries[Path] = NewestEntries(limits.max_entries)
    for path in sorted(folder.glob(PATTERN)):
        try:
            modified = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        except OSError:
            continue  # vanished since the listing
        newest.offer(modified, path)
    articles, cut = [], 0
    for path in newest.kept():
        try:
            with path.open("rb") as fh:
                # A title line and a body: at most one entry's worth of each.
                raw = fh.read(2 * limits.max_entry_bytes + 1)
        except OSError as exc:
            raise FetchError(f"cannot read {path.name}: {exc.strerror}", url=source.url) from exc
        if len(raw) > 2 * limits.max_entry_bytes:
            raw, cut = raw[: 2 * limits.max_entry_bytes], cut + 1
        articles.append({"name": path.name, "uri": path.resolve().as_uri(), "text": _decode(raw)})
    notes = [n for n in (newest.note(),) if n]
    if cut:
        notes.append(cut_note(cut, limits.max_entry_bytes))
    content = json.dumps({"articles": articles, "notes": notes}, ensure_ascii=False, sort_keys=True).encode()
    return FetchResult(url=source.url, content=content, media_type=MEDIA_TYPE)


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252 as a last resort."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


@hookimpl(trylast=True)
def parse_feed(source: Source, fetched: FetchResult) -> list[EntryData] | None:
    # The bundle is what fetch_source above makes of a folder: bytes from any
    # other source that merely claim its media type are not one.
    if fetched.media_type != MEDIA_TYPE or source.kind != "directory":
        return None
    try:
        bundle = json.loads(fetched.content or b"[]")
        # A bare list is the bundle of earlier versions.
        articles, notes = (bundle, []) if isinstance(bundle, list) else (bundle["articles"], list(bundle["notes"]))
        return ParsedEntries([e for e in map(_entry, articles) if e is not None], notes=notes)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ParseError(f"unreadable article bundle: {type(exc).__name__}: {exc}"[:300], url=fetched.url) from exc


def _entry(article: dict) -> EntryData | None:
    text = article["text"].replace("\r\n", "\n")
    lines = text.strip().split("\n", 1)
    title = lines[0].strip()
    body = lines[1].strip() if len(lines) > 1 else ""
    if not title:
        return None
    digest = hashlib.sha256(f"{title}\n{body}".encode("utf-8", "surrogatepass")).hexdigest()
    return EntryData(guid=f"sha256:{digest}", link=article["uri"], title=title, content=body)
