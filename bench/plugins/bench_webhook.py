"""A ``bench_webhook`` channel type: POSTs each alert as JSON to a URL.

Loaded by the benchmark through ``monitor.plugins_dir``, using only the public
plugin API, so alert dispatch is measured through the real outbox against a
loopback receiver. Options: ``url``.
"""

from __future__ import annotations

from typing import Any

import httpx

from monitor import Alert, ConfigError, DeliveryError, Monitor, RenderedAlert, hookimpl

NAME = "bench_webhook"


class WebhookChannel:
    """Sends alerts with one shared keep-alive client."""

    def __init__(self, url: str, monitor: Monitor):
        self.url = url
        self.monitor = monitor

    def send(self, rendered: RenderedAlert, alert: Alert) -> None:
        client = self.monitor.extensions.get(NAME)
        if client is None:
            client = self.monitor.extensions[NAME] = httpx.Client(timeout=10)
        payload = {"subject": rendered.subject, "text": rendered.text, "watchlist": alert.watchlist.name,
                   "story": alert.story.id, "url": alert.story.url}
        try:
            response = client.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise DeliveryError(f"{self.url}: HTTP {response.status_code}")


def make_webhook_channel(name: str, options: dict[str, Any], monitor: Monitor) -> WebhookChannel:
    if not isinstance(options.get("url"), str):
        raise ConfigError("a bench_webhook channel needs a url", key="url")
    return WebhookChannel(options["url"], monitor)


@hookimpl
def register_channel_types(register, monitor: Monitor) -> None:
    register(NAME, make_webhook_channel)


@hookimpl
def shutdown(monitor: Monitor) -> None:
    client = monitor.extensions.pop(NAME, None)
    if client is not None:
        client.close()
