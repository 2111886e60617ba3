"""Fetch ``http://`` and ``https://`` sources with httpx.

Conditional requests (ETag, Last-Modified), a size limit enforced while
streaming (so compressed bodies cannot expand past it), bounded redirects,
and timeouts, all from the ``[fetch]`` section of the configuration.
"""

from __future__ import annotations

import email.utils
from datetime import datetime, timezone

import httpx

from monitor import USER_AGENT, FetchError, FetchResult, FetchState, Monitor, Source, hookimpl

NAME = "http_source"
ACCEPT = "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
PERMANENT_REDIRECTS = (301, 308)


def _client(monitor: Monitor) -> httpx.Client:
    client = monitor.extensions.get(NAME)
    if client is None:
        fetch = monitor.config.fetch
        client = httpx.Client(
            timeout=httpx.Timeout(fetch["timeout"]),
            follow_redirects=True,
            max_redirects=fetch["max_redirects"],
            headers={"User-Agent": fetch["user_agent"] or USER_AGENT, "Accept": ACCEPT,
                     "Accept-Encoding": "gzip, deflate"},
            limits=httpx.Limits(max_connections=max(4, int(monitor.config.schedule["max_workers"]) * 2)),
        )
        monitor.extensions[NAME] = client
    return client


@hookimpl
def shutdown(monitor: Monitor) -> None:
    client = monitor.extensions.pop(NAME, None)
    if client is not None:
        client.close()


@hookimpl(trylast=True)
def fetch_source(source: Source, state: FetchState, monitor: Monitor) -> FetchResult | None:
    if source.kind != "feed" or not source.url.lower().startswith(("http://", "https://")):
        return None
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    limit = int(monitor.config.fetch["max_bytes"])
    try:
        with _client(monitor).stream("GET", source.url, headers=headers) as response:
            if response.status_code == 304:
                return FetchResult(url=str(response.url), content=None, status=304, not_modified=True,
                                   etag=response.headers.get("etag") or state.etag,
                                   last_modified=response.headers.get("last-modified") or state.last_modified)
            _raise_for_status(source, response)
            body = _read_limited(response, limit, source.url)
    except httpx.TooManyRedirects as exc:
        raise FetchError(f"too many redirects (more than {monitor.config.fetch['max_redirects']})", url=source.url) from exc
    except httpx.TimeoutException as exc:
        raise FetchError(f"timed out ({type(exc).__name__})", url=source.url) from exc
    except httpx.UnsupportedProtocol as exc:
        raise FetchError(f"redirected to an unsupported address: {exc}", url=source.url, permanent=True) from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}", url=source.url) from exc
    moved = next((str(r.headers.get("location")) for r in response.history if r.status_code in PERMANENT_REDIRECTS), None)
    return FetchResult(
        url=str(response.url),
        content=body,
        media_type=(response.headers.get("content-type") or "").split(";")[0].strip().lower() or None,
        status=response.status_code,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        headers=dict(response.headers),
        permanent_redirect=str(response.url) if moved else None,
    )


def _raise_for_status(source: Source, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 410:
        raise FetchError("the feed is gone (HTTP 410); remove the source or fix its URL", url=source.url,
                         status=status, permanent=True)
    reason = response.reason_phrase or "error"
    raise FetchError(f"HTTP {status} {reason}", url=source.url, status=status, retry_after=retry_after)


def _read_limited(response: httpx.Response, limit: int, url: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
        raise FetchError(f"response too large ({declared} bytes; fetch.max_bytes is {limit})", url=url)
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise FetchError(f"response larger than fetch.max_bytes ({limit} bytes); stopped reading", url=url)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
