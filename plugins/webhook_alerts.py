"""The ``webhook`` channel type: POST each alert as JSON to any URL.

The body follows a versioned schema (``schema_version``; see docs/alerts.md).
With a shared ``secret`` every request is signed: ``X-News-Monitor-Signature:
sha256=<hex>`` is HMAC-SHA256 over ``<timestamp>.<body bytes>`` with the
timestamp from ``X-News-Monitor-Timestamp``. ``Idempotency-Key`` is the outbox
row id (``digest-<id>`` for a digest): the same alert always carries the same
key, so a receiver can drop the rare duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

from monitor import (
    Alert,
    ChannelOption,
    Monitor,
    RenderedAlert,
    alert_http_client,
    close_http_client,
    hookimpl,
    post_alert,
    read_channel_options,
)

NAME = "webhook_alerts"
TYPE = "webhook"
SCHEMA_VERSION = 2
SIGNATURE_HEADER = "X-News-Monitor-Signature"
TIMESTAMP_HEADER = "X-News-Monitor-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"

OPTIONS = (
    ChannelOption("url", "url", "where to POST; may hold a token, so ${ENV_VAR} is advised", required=True, secret=True),
    ChannelOption("secret", "str", "shared secret for the HMAC-SHA256 signature header", secret=True),
    ChannelOption("headers", "table[str]", "extra request headers (e.g. Authorization)", secret=True),
    ChannelOption("timeout", "duration", "request timeout", 10.0),
)


def alert_json(alert: Alert) -> dict[str, Any]:
    """One alert as the ``alerts[]`` item / body of schema version 2 (version 1 plus ``cluster``)."""
    story, match = alert.story, alert.match
    return {
        "idempotency_key": str(alert.id),
        "watchlist": {"name": alert.watchlist.name, "description": alert.watchlist.description},
        "story": {
            "id": story.id, "source": story.source, "title": story.title, "url": story.url,
            "published": story.published.isoformat() if story.published else None,
            "author": story.author, "language": story.language, "summary": story.summary,
        },
        "match": {
            "score": match.score, "classifier": match.classifier, "terms": list(match.evidence.terms),
            "snippet": match.evidence.snippet.text,
            "highlights": [list(h) for h in match.evidence.snippet.highlights],
            "note": match.evidence.note,
        },
        "cluster": {
            "id": story.cluster or story.id,
            "also_reported_by": [{"source": r.source, "title": r.title, "url": r.url} for r in alert.also_reported],
        },
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` + HMAC-SHA256(secret, timestamp + "." + body)."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookChannel:
    """POSTs one JSON document per alert (or per digest)."""

    def __init__(self, name: str, settings: dict[str, Any], monitor: Monitor):
        self.name = name
        self.settings = settings
        self.monitor = monitor

    def send(self, rendered: RenderedAlert, alert: Alert) -> None:
        body = {"schema_version": SCHEMA_VERSION, "type": "alert", "channel": self.name,
                "subject": rendered.subject, **alert_json(alert)}
        self._post(body, str(alert.id))

    def send_digest(self, rendered: RenderedAlert, alerts: Sequence[Alert]) -> None:
        key = f"digest-{min(a.id for a in alerts)}"
        body = {"schema_version": SCHEMA_VERSION, "type": "digest", "channel": self.name,
                "subject": rendered.subject, "idempotency_key": key, "alerts": [alert_json(a) for a in alerts]}
        self._post(body, key)

    def _post(self, document: dict[str, Any], key: str) -> None:
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {**(self.settings["headers"] or {}), "Content-Type": "application/json; charset=utf-8",
                   IDEMPOTENCY_HEADER: key}
        if self.settings["secret"]:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self.settings["secret"], timestamp, body)
        post_alert(alert_http_client(self.monitor, NAME), self.settings["url"], body, headers, f"webhook channel {self.name}",
                   timeout=self.settings["timeout"])


def make_webhook_channel(name: str, options: dict[str, Any], monitor: Monitor) -> WebhookChannel:
    return WebhookChannel(name, read_channel_options(options, OPTIONS, TYPE), monitor)


@hookimpl
def register_channel_types(register, monitor: Monitor) -> None:
    register(TYPE, make_webhook_channel)


@hookimpl
def shutdown(monitor: Monitor) -> None:
    close_http_client(monitor, NAME)
