"""Helpers for alert channels that deliver over HTTP.

One place decides what an HTTP outcome means for the outbox: 5xx, timeouts
and refused connections are transient, 429 is transient and honours
Retry-After, any other 4xx is permanent. Error messages never quote the URL:
for Slack and many webhooks the URL itself is the secret.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import datetime, timezone

import httpx

from .errors import DeliveryError


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def post_alert(client: httpx.Client, url: str, content: bytes, headers: Mapping[str, str], what: str) -> httpx.Response:
    """POST ``content`` to ``url``; return the 2xx response or raise :class:`DeliveryError`.

    :param what: how errors name the receiver, e.g. ``"slack channel newsroom"``; never the URL.
    """
    try:
        response = client.post(url, content=content, headers=dict(headers))
    except httpx.TimeoutException:
        raise DeliveryError(f"{what}: timed out") from None
    except httpx.TransportError as exc:
        # The message of a transport error names the failure, never the path or query.
        raise DeliveryError(f"{what}: cannot connect ({type(exc).__name__})") from None
    status = response.status_code
    if status < 300:
        return response
    reason = response.reason_phrase or "error"
    detail = response.text[:200].strip() if response.headers.get("content-type", "").startswith("text/") else ""
    message = f"{what}: HTTP {status} {reason}" + (f" ({detail})" if detail else "")
    if status == 429:
        raise DeliveryError(message, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status >= 500 or status == 408:
        raise DeliveryError(message, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status >= 300 and status < 400:
        raise DeliveryError(f"{what}: HTTP {status} redirect; use the final URL", permanent=True)
    raise DeliveryError(message, permanent=True)
