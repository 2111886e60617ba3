"""Fetch ``http://`` and ``https://`` sources with httpx.

Everything a hostile or broken server can do is bounded, from the
``[fetch]`` section of the configuration:

- conditional requests (ETag, Last-Modified); a 304 carries no body;
- redirects followed here, not by httpx, so each hop is checked: at most
  ``fetch.max_redirects``, only to http/https, and a chain of permanent ones
  (301, 308) is reported as the feed's new address;
- ``fetch.timeout`` per connect and per read, and ``fetch.deadline`` for the
  whole fetch (redirects and body), so a server dripping one byte a second
  cannot hold a worker;
- ``fetch.max_bytes`` counted on the *decompressed* body while streaming:
  we read the raw bytes and inflate them ourselves with a bounded output, so
  a gzip bomb never expands past the limit in memory;
- at most ``fetch.max_per_host`` requests in flight to one host;
- the network policy (``monitor/netpolicy.py``): by default no connection to
  loopback, private, link-local or other non-public addresses, checked on the
  address each socket actually connects to, so neither a redirect, a numeric
  host spelling nor a DNS answer can lead a feed into the local network.
"""

from __future__ import annotations

import threading
import time
import zlib

import httpcore
import httpx

from monitor import (
    USER_AGENT,
    FetchError,
    FetchResult,
    FetchState,
    Monitor,
    NetworkPolicy,
    PollInterrupted,
    RefusedAddress,
    Source,
    hookimpl,
    network_error_words,
    parse_retry_after,
    safe_line,
)

NAME = "http_source"
ACCEPT = "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
REDIRECTS = (301, 302, 303, 307, 308)
PERMANENT_REDIRECTS = (301, 308)
SCHEMES = ("http", "https")

__all__ = ["fetch_source", "parse_retry_after", "shutdown"]


# The deadline of the fetch running on this thread (a monotonic time), read by
# the network streams below: every socket read and write is bounded by it;
# and the monitor's stop flag (``stopping``), checked between reads.
_deadline = threading.local()


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write times out at the fetch's deadline.

    httpx's timeouts bound each read; a server sending one byte a second, headers
    included, never trips them. This bounds the whole exchange.
    """

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:  # type: ignore[no-untyped-def]
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str):  # type: ignore[no-untyped-def]
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Opens sockets under the fetch's deadline and, when ``policy`` is given, only to addresses it allows.

    The check sits here, at connect time, so it judges the address actually
    connected to: after DNS resolution and on every redirect hop. With a proxy
    every socket goes to the proxy (the operator's choice), so ``policy`` is
    ``None`` and each feed's address is checked before the request instead.
    """

    def __init__(self, policy: NetworkPolicy | None):
        self._policy = policy

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[no-untyped-def]
        if self._policy is None or not self._policy.checks:
            return self._connect(host, port, timeout, local_address, socket_options)
        try:
            addresses = self._policy.addresses(host, port)
        except OSError as exc:  # does not resolve: the same error httpcore gives
            raise httpcore.ConnectError(str(exc)) from exc
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                # The checked literal, never the name again: a second lookup could answer differently.
                return self._connect(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host} has no address")

    def _connect(self, host, port, timeout, local_address, socket_options) -> httpcore.NetworkStream:  # type: ignore[no-untyped-def]
        timeout = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(super().connect_tcp(host, port, timeout, local_address, socket_options))


def _clamp(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = getattr(_deadline, "at", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the fetch deadline has passed")
    return left if timeout is None else min(timeout, left)


def _transport(max_connections: int, policy: NetworkPolicy, proxy: str | None) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=max_connections), proxy=proxy)
    # httpx has no public way to pass httpcore a network backend; the pool's
    # attribute is set directly. If a future httpx moves it, the deadline
    # still holds between body chunks and redirects (checked in _read_limited),
    # but the network policy cannot be enforced: fetches then fail (_Http.guarded).
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = _GuardedBackend(None if proxy else policy)
    return transport


class _Http:
    """The plugin's resources, kept in ``monitor.extensions[NAME]``: one client, one semaphore per host."""

    def __init__(self, monitor: Monitor):
        fetch = monitor.config.fetch
        self.policy = NetworkPolicy.from_settings(fetch)
        self.proxy: str | None = fetch["proxy"]
        transport = _transport(max(4, int(monitor.config.schedule["max_workers"]) * 2), self.policy, self.proxy)
        self.guarded = isinstance(getattr(getattr(transport, "_pool", None), "_network_backend", None), _GuardedBackend)
        self.client = httpx.Client(
            timeout=httpx.Timeout(fetch["timeout"]),
            follow_redirects=False,
            headers={"User-Agent": fetch["user_agent"] or USER_AGENT, "Accept": ACCEPT,
                     "Accept-Encoding": "gzip, deflate"},
            transport=transport,
        )
        self.per_host = int(fetch["max_per_host"])
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def check_destination(self, url: httpx.URL, source: Source) -> None:
        """Refuse ``url`` before any request when the policy cannot be, or is not, checked at connect time.

        :raises FetchError: the feed's address is refused, or cannot be checked.
        """
        if not self.policy.checks:
            return
        if not self.guarded:
            raise FetchError("the network policy cannot be checked with this httpx version (no network backend "
                             "to hook); set [fetch] allow_private_networks = true to fetch without it", url=source.url)
        if self.proxy is None or self.policy.allows_host(url.host):
            return  # checked at connect time, on the address actually connected to; or allowed by name
        try:
            self.policy.addresses(url.host, url.port or (443 if url.scheme == "https" else 80))
        except RefusedAddress as exc:
            raise _refused(exc, url, source) from None
        except OSError as exc:
            raise FetchError(f"cannot resolve {url.host} to check it against the network policy "
                             f"before handing it to fetch.proxy: {exc}", url=source.url) from exc

    def host_slot(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            slot = self._hosts.get(host)
            if slot is None:
                slot = self._hosts[host] = threading.BoundedSemaphore(self.per_host)
            return slot


def _http(monitor: Monitor) -> _Http:
    http = monitor.extensions.get(NAME)
    if http is None:
        http = monitor.extensions.setdefault(NAME, _Http(monitor))
    return http


@hookimpl
def shutdown(monitor: Monitor) -> None:
    http = monitor.extensions.pop(NAME, None)
    if http is not None:
        http.client.close()


@hookimpl
def source_url_schemes(kind: str) -> list[str] | None:
    return ["http", "https"] if kind == "feed" else None


@hookimpl(trylast=True)
def fetch_source(source: Source, state: FetchState, monitor: Monitor) -> FetchResult | None:
    if source.kind != "feed" or not source.url.lower().startswith(("http://", "https://")):
        return None
    fetch = monitor.config.fetch
    http = _http(monitor)
    deadline = time.monotonic() + float(fetch["deadline"])
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    try:
        url = httpx.URL(source.url)
    except httpx.InvalidURL as exc:
        raise FetchError(f"not a valid URL: {exc}", url=source.url) from None
    moved: str | None = None
    permanent_so_far = True
    _deadline.at = deadline
    _deadline.stopping = monitor.stopping
    try:
        for _hop in range(int(fetch["max_redirects"]) + 1):
            result = _get(http, url, headers, source, fetch, deadline)
            if isinstance(result, FetchResult):
                return _with_redirect(result, moved)
            status, location = result
            url = _next_url(url, location, source)
            permanent_so_far = permanent_so_far and status in PERMANENT_REDIRECTS
            if permanent_so_far:
                moved = str(url)
    finally:
        _deadline.at = _deadline.stopping = None
    raise FetchError(f"too many redirects (more than fetch.max_redirects = {fetch['max_redirects']})", url=source.url)


def _with_redirect(result: FetchResult, moved: str | None) -> FetchResult:
    if moved is None:
        return result
    return FetchResult(
        url=result.url, content=result.content, media_type=result.media_type, status=result.status,
        etag=result.etag, last_modified=result.last_modified, not_modified=result.not_modified,
        headers=result.headers, permanent_redirect=moved,
    )


def _next_url(current: httpx.URL, location: str | None, source: Source) -> httpx.URL:
    if not location:
        raise FetchError("a redirect without a Location header", url=source.url)
    try:
        target = current.join(location)
    except httpx.InvalidURL as exc:
        raise FetchError(f"redirected to an invalid address {location!r}: {exc}", url=source.url) from exc
    if target.scheme not in SCHEMES:
        raise FetchError(f"redirected to {str(target)[:200]!r}: only http and https are followed", url=source.url)
    return target


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _remaining(deadline: float, source: Source, fetch: dict) -> float:
    # Checked between reads: a slow server must not hold up a daemon asked to stop.
    stopping = getattr(_deadline, "stopping", None)
    if stopping is not None and stopping.is_set():
        raise PollInterrupted("interrupted while fetching: the monitor is stopping", url=source.url)
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(f"gave up after fetch.deadline ({fetch['deadline']:g} s): the server is too slow", url=source.url)
    return left


def _get(
    http: _Http, url: httpx.URL, headers: dict[str, str], source: Source, fetch: dict, deadline: float
) -> FetchResult | tuple[int, str | None]:
    """One request: a result, or ``(status, location)`` of a redirect to follow."""
    http.check_destination(url, source)
    slot = http.host_slot(url.host)
    if not slot.acquire(timeout=_remaining(deadline, source, fetch)):
        raise FetchError(f"gave up after fetch.deadline waiting for a free connection to {url.host}", url=source.url)
    try:
        timeout = min(float(fetch["timeout"]), _remaining(deadline, source, fetch))
        with http.client.stream("GET", url, headers=headers, timeout=timeout) as response:
            status = response.status_code
            if status in REDIRECTS:
                return status, response.headers.get("location")
            if status == 304:
                return FetchResult(url=str(response.url), content=None, status=304, not_modified=True,
                                   etag=response.headers.get("etag") or headers.get("If-None-Match"),
                                   last_modified=response.headers.get("last-modified") or headers.get("If-Modified-Since"),
                                   headers=dict(response.headers))
            _raise_for_status(source, response)
            body = _read_limited(response, int(fetch["max_bytes"]), source, fetch, deadline)
    except httpx.TimeoutException as exc:
        _remaining(deadline, source, fetch)  # says "deadline" when that is what ran out
        words = network_error_words(exc, url.host, url.port or _DEFAULT_PORTS.get(url.scheme), float(fetch["timeout"]))
        raise FetchError(f"{words} (fetch.timeout)", url=source.url) from exc
    except httpx.HTTPError as exc:
        words = network_error_words(exc, url.host, url.port or _DEFAULT_PORTS.get(url.scheme))
        raise FetchError(words, url=source.url) from exc
    except RefusedAddress as exc:  # from the network backend, at connect time
        raise _refused(exc, url, source) from None
    finally:
        slot.release()
    return FetchResult(
        url=str(response.url),
        content=body,
        media_type=(response.headers.get("content-type") or "").split(";")[0].strip().lower() or None,
        status=status,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        headers=dict(response.headers),
    )


def _refused(exc: RefusedAddress, url: httpx.URL, source: Source) -> FetchError:
    return FetchError(exc.refusal.message(str(url)[:200]), url=source.url)


def _raise_for_status(source: Source, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400 and status not in (204, 205) and not 100 <= status < 200:
        return
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 410:
        raise FetchError("the feed is gone (HTTP 410); polling stopped: remove the source or change its url",
                         url=source.url, status=status, permanent=True)
    reason = safe_line(response.reason_phrase, 80) or "error"  # the server's words: one safe line
    if status == 429:
        reason += f" (the server asks us to wait {retry_after:g} s)" if retry_after else " (rate limited)"
    raise FetchError(f"HTTP {status} {reason}", url=source.url, status=status, retry_after=retry_after)


def _read_limited(response: httpx.Response, limit: int, source: Source, fetch: dict, deadline: float) -> bytes:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit and encoding in ("", "identity"):
        raise FetchError(f"response too large ({declared} bytes; fetch.max_bytes is {limit})", url=source.url)
    decoder = _Decoder(encoding, source)
    chunks, size = [], 0
    for raw in response.iter_raw():
        _remaining(deadline, source, fetch)
        chunk = decoder.feed(raw, limit - size)
        size += len(chunk)
        if size > limit:
            raise FetchError(f"response larger than fetch.max_bytes ({limit} bytes) once decompressed; "
                             "stopped reading", url=source.url)
        chunks.append(chunk)
    return b"".join(chunks)


class _Decoder:
    """Content-Encoding undone with a bounded output per input chunk (no decompression bombs)."""

    def __init__(self, encoding: str, source: Source):
        self.source = source
        self.encoding = encoding
        self._z: zlib._Decompress | None = None  # type: ignore[name-defined]
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding not in ("", "identity", "deflate"):
            raise FetchError(f"unsupported Content-Encoding {encoding!r} (we ask for gzip or deflate)", url=source.url)

    def feed(self, data: bytes, room: int) -> bytes:
        """Inflate ``data``, producing at most ``room + 1`` bytes (one more than fits signals "too big")."""
        if not self.encoding or self.encoding == "identity":
            return data
        if self._z is None and data:
            # "deflate" is zlib-wrapped by the standard and raw in practice; the first byte tells.
            zlib_header = len(data) > 1 and data[0] & 0x0F == 8 and (data[0] * 256 + data[1]) % 31 == 0
            wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
            self._z = zlib.decompressobj(wbits)
        if self._z is None:
            return b""
        try:
            return self._z.decompress(data, max(0, room) + 1)
        except zlib.error as exc:
            raise FetchError(f"corrupt {self.encoding} body: {exc}", url=self.source.url) from exc

