"""The ``apprise`` channel type: alerts to any service Apprise knows (optional extra ``[apprise]``).

Apprise speaks to over a hundred services (Telegram, Discord, Microsoft
Teams, Matrix, ntfy, Pushover, Mattermost, SMS gateways, generic JSON or form
posts...) from one URL per target, e.g. ``tgram://TOKEN/CHAT`` or
``discord://ID/TOKEN``. Those URLs carry credentials: they are never logged
or quoted. Apprise reports only success or failure, so every failure is
treated as transient and retried with the outbox's backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from monitor import Alert, ChannelOption, ConfigError, DeliveryError, Monitor, RenderedAlert, hookimpl, read_channel_options

TYPE = "apprise"

OPTIONS = (
    ChannelOption("urls", "list[str]", "one Apprise URL or a list of them; write them as ${ENV_VAR}",
                  required=True, secret=True),
)


class AppriseChannel:
    """Sends subject and plain text to every configured Apprise URL."""

    def __init__(self, name: str, notifier: Any):
        self.name = name
        self.notifier = notifier

    def send(self, rendered: RenderedAlert, alert: Alert) -> None:
        self._notify(rendered)

    def send_digest(self, rendered: RenderedAlert, alerts: Sequence[Alert]) -> None:
        self._notify(rendered)

    def _notify(self, rendered: RenderedAlert) -> None:
        # Apprise logs each target's URL and response at INFO and above; keep
        # those lines (which may quote tokens) out of our logs.
        apprise_log = logging.getLogger("apprise")
        level = apprise_log.level
        apprise_log.setLevel(logging.CRITICAL)
        try:
            ok = self.notifier.notify(title=rendered.subject, body=rendered.text)
        finally:
            apprise_log.setLevel(level)
        if not ok:
            raise DeliveryError(f"apprise channel {self.name}: at least one target did not accept the notification")


def make_apprise_channel(name: str, options: dict[str, Any], monitor: Monitor) -> AppriseChannel:
    settings = read_channel_options(options, OPTIONS, TYPE)
    try:
        import apprise
    except ImportError:
        raise ConfigError("the apprise channel needs the apprise package: pip install 'news-monitor[apprise]'",
                          key="type") from None
    notifier = apprise.Apprise()
    for index, url in enumerate(settings["urls"]):
        if not notifier.add(url):
            raise ConfigError("Apprise does not recognise this URL (the value is not shown: it may hold a token)",
                              key=f"urls[{index}]")
    return AppriseChannel(name, notifier)


@hookimpl
def register_channel_types(register, monitor: Monitor) -> None:
    register(TYPE, make_apprise_channel)
