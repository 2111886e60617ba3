"""A folder of plain-text articles as a source (``kind = "directory"``).

One story per ``.txt`` file: the first non-empty line is the title, the rest
is the body. The story's id comes from its content, so renaming a file does
not make it new and an edited article is a new story. This is how the
default configuration reads ``seeds/``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from monitor import EntryData, FetchError, FetchResult, FetchState, Monitor, ParseError, Source, hookimpl

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
    limit = int(monitor.config.fetch["max_bytes"])
    articles = []
    for path in sorted(folder.glob(PATTERN)):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise FetchError(f"cannot read {path.name}: {exc.strerror}", url=source.url) from exc
        if len(raw) > limit:
            continue
        articles.append({"name": path.name, "uri": path.resolve().as_uri(), "text": _decode(raw)})
    content = json.dumps(articles, ensure_ascii=False, sort_keys=True).encode()
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
    if fetched.media_type != MEDIA_TYPE:
        return None
    try:
        articles = json.loads(fetched.content or b"[]")
    except ValueError as exc:
        raise ParseError(f"unreadable article bundle: {exc}", url=fetched.url) from exc
    entries = []
    for article in articles:
        text = article["text"].replace("\r\n", "\n")
        lines = text.strip().split("\n", 1)
        title = lines[0].strip()
        body = lines[1].strip() if len(lines) > 1 else ""
        if not title:
            continue
        digest = hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()
        entries.append(EntryData(guid=f"sha256:{digest}", link=article["uri"], title=title, content=body))
    return entries
