"""Helpers for alert channels that deliver over HTTP.

One place decides what an HTTP outcome means for the outbox: 5xx, timeouts
and refused connections are transient, 429 is transient and honours
Retry-After, any other 4xx is permanent. Error messages never quote the URL:
for Slack and many webhooks the URL itself is the secret. What the receiver
says (reason phrase, the start of a text body) is quoted on one short line
with no control characters: it ends up in ``last_error``, logs and terminals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .config import parse_duration
from .errors import ConfigError, DeliveryError
from .neterrors import network_error_words
from .normalize import html_to_text
from .polling import parse_retry_after
from .safetext import safe_line
from .version import USER_AGENT


BODY_MAX = 200  # characters of a receiver's error body quoted in last_error
REASON_MAX = 80


@dataclass(frozen=True)
class ChannelOption:
    """One option a channel type accepts, for :func:`read_channel_options`.

    :param kind: ``"str"``, ``"url"`` (an absolute http or https URL), ``"int"``,
        ``"bool"``, ``"duration"``, ``"list[str]"`` (a string is taken as a
        one-item list) or ``"table[str]"``.
    :param secret: never quote the value in an error (passwords, webhook URLs).
    """

    name: str
    kind: str
    help: str
    default: Any = None
    required: bool = False
    secret: bool = False
    choices: tuple[str, ...] = ()


def read_channel_options(options: Mapping[str, Any], spec: Sequence[ChannelOption], channel_type: str) -> dict[str, Any]:
    """Check a channel's options against ``spec``; defaults filled in.

    :raises ConfigError: with ``key`` set, for an unknown, missing or wrong-typed option.
    """
    known = {o.name: o for o in spec}
    for name in options:
        if name not in known:
            raise ConfigError(f"unknown option for a {channel_type} channel (known: {', '.join(sorted(known))})", key=name)
    out: dict[str, Any] = {}
    for option in spec:
        if option.name not in options:
            if option.required:
                raise ConfigError(f"missing: a {channel_type} channel needs {option.name} ({option.help})", key=option.name)
            out[option.name] = option.default
            continue
        out[option.name] = _convert(option, options[option.name])
    return out


def _convert(option: ChannelOption, value: Any) -> Any:
    shown = "a secret value" if option.secret else repr(value)[:60]
    got = f"got {type(value).__name__} ({shown})"
    kind = option.kind
    if kind == "str" and isinstance(value, str) and value:
        if option.choices and value not in option.choices:
            raise ConfigError(f"must be one of {', '.join(option.choices)}, {got}", key=option.name)
        return value
    if kind == "url" and isinstance(value, str):
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError):
            url = None
        if url is not None and url.scheme in ("http", "https") and url.host:
            return value
        raise ConfigError(f"expected an absolute http:// or https:// URL, {got}", key=option.name)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "duration":
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ConfigError(str(exc) if not option.secret else "expected a duration", key=option.name) from None
        if seconds <= 0:
            raise ConfigError("must be more than zero", key=option.name)
        return seconds
    if kind == "list[str]":
        if isinstance(value, str) and value:
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return list(value)
    if kind == "table[str]" and isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return dict(value)
    words = {"str": "a non-empty string", "int": "a whole number above 0", "bool": "true or false",
             "list[str]": "a string or a non-empty list of strings", "table[str]": "a table of strings"}
    raise ConfigError(f"expected {words.get(kind, kind)}, {got}", key=option.name)


def receiver_body_line(body: str, content_type: str) -> str:
    """What a receiver said, for ``last_error``: its first line of text (tags stripped from an HTML page),
    at most :data:`BODY_MAX` characters; empty for bodies that are not text or JSON."""
    media = content_type.split(";")[0].strip().lower()
    if not (media.startswith("text/") or media.endswith(("json", "xml"))):
        return ""
    if "html" in media or body.lstrip()[:1] == "<":
        body = html_to_text(body)
    line = next((line.strip() for line in body.splitlines() if line.strip()), "")
    return safe_line(line, BODY_MAX)


def alert_http_client(monitor: Any, name: str) -> httpx.Client:
    """The plugin ``name``'s HTTP client for delivering alerts, made once per monitor.

    Redirects are not followed: a webhook that redirects is misconfigured,
    and following it could send the payload somewhere unintended.
    """
    client = monitor.extensions.get(name)
    if client is None:
        client = httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False)
        monitor.extensions[name] = client
    return client


def close_http_client(monitor: Any, name: str) -> None:
    """Close the client :func:`alert_http_client` made for ``name``, if any (from a ``shutdown`` hook)."""
    client = monitor.extensions.pop(name, None)
    if client is not None:
        client.close()


def post_alert(client: httpx.Client, url: str, content: bytes, headers: Mapping[str, str], what: str,
               timeout: float | None = None) -> httpx.Response:
    """POST ``content`` to ``url``; return the 2xx response or raise :class:`DeliveryError`.

    :param what: how errors name the receiver, e.g. ``"slack channel newsroom"``; never the URL.
    """
    try:
        response = client.post(url, content=content, headers=dict(headers),
                               timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
    except httpx.TransportError as exc:
        # The words name the host and the failure, never the path or query (they may hold a token).
        target = httpx.URL(url)
        seconds = timeout if timeout is not None else client.timeout.connect
        words = network_error_words(exc, target.host, target.port or {"https": 443}.get(target.scheme, 80),
                                    seconds if isinstance(exc, httpx.TimeoutException) else None)
        raise DeliveryError(f"{what}: {words}") from None
    status = response.status_code
    if status < 300:
        return response
    reason = safe_line(response.reason_phrase, REASON_MAX) or "error"
    detail = receiver_body_line(response.text[:BODY_MAX * 50], response.headers.get("content-type", ""))
    message = f"{what}: HTTP {status} {reason}" + (f" ({detail})" if detail and detail != reason else "")
    if status == 429:
        raise DeliveryError(message, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status >= 500 or status == 408:
        raise DeliveryError(message, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status >= 300 and status < 400:
        raise DeliveryError(f"{what}: HTTP {status} redirect; use the final URL", permanent=True)
    raise DeliveryError(message, permanent=True)
