"""Read feed files from the local filesystem: ``file:`` URLs and plain paths."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

from monitor import FetchError, FetchResult, FetchState, Monitor, Source, hookimpl

_EXTRA_TYPES = {".rss": "application/rss+xml", ".atom": "application/atom+xml", ".json": "application/feed+json"}


def local_path(url: str) -> Path | None:
    """The filesystem path a source URL names, or ``None`` for a network URL."""
    if url.startswith("file:"):
        return Path(unquote(urlsplit(url).path))
    if "://" in url:
        return None
    return Path(url)


@hookimpl
def source_url_schemes(kind: str) -> list[str] | None:
    return ["file"] if kind == "feed" else None


@hookimpl(trylast=True)
def fetch_source(source: Source, state: FetchState, monitor: Monitor) -> FetchResult | None:
    if source.kind != "feed":
        return None
    path = local_path(source.url)
    if path is None:
        return None
    limit = int(monitor.config.fetch["max_bytes"])
    try:
        size = path.stat().st_size
        if size > limit:
            raise FetchError(f"file too large ({size} bytes; fetch.max_bytes is {limit})", url=source.url)
        content = path.read_bytes()
    except FileNotFoundError as exc:
        raise FetchError("file not found", url=source.url) from exc
    except IsADirectoryError as exc:
        raise FetchError("this is a folder; use kind = \"directory\" for a folder of articles", url=source.url) from exc
    except OSError as exc:
        raise FetchError(f"cannot read: {exc.strerror}", url=source.url) from exc
    media_type = _EXTRA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    return FetchResult(url=source.url, content=content, media_type=media_type)
