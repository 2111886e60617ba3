"""The ``slack`` channel type: alerts to a Slack incoming webhook, as Block Kit with a text fallback.

The webhook URL is a secret (anyone holding it can post to the channel): it
is never logged or quoted in an error. Story text is escaped for Slack's
mrkdwn (``&``, ``<``, ``>``), so a feed cannot inject mentions or links.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from monitor import (
    Alert,
    ChannelOption,
    Monitor,
    RenderedAlert,
    alert_http_client,
    alert_subject,
    also_reported_line,
    close_http_client,
    group_by_watchlist,
    hookimpl,
    post_alert,
    read_channel_options,
)

NAME = "slack_alerts"
TYPE = "slack"
MAX_BLOCKS = 50  # Slack's limit per message
SNIPPET_MAX = 500

OPTIONS = (
    ChannelOption("webhook_url", "url", "the incoming-webhook URL; write it as ${ENV_VAR}", required=True, secret=True),
    ChannelOption("timeout", "duration", "request timeout", 10.0),
)


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(alert: Alert) -> str:
    title = escape_mrkdwn(" ".join(alert.story.title.split()))
    url = alert.story.url
    if url and url.lower().startswith(("http://", "https://")):
        return f"<{escape_mrkdwn(url).replace('|', '%7C')}|{title}>"
    return title


def _details(alert: Alert) -> str:
    match = alert.match
    lines = [f"Watchlist *{escape_mrkdwn(alert.watchlist.name)}* · score {match.score:.2f} · "
             f"source {escape_mrkdwn(alert.story.source)}"]
    if match.evidence.terms:
        lines.append("Matched: " + ", ".join(f"`{escape_mrkdwn(t)}`" for t in match.evidence.terms))
    snippet = " ".join(match.evidence.snippet.marked("\u2063", "\u2063").split())[:SNIPPET_MAX]
    if snippet:
        # Bold the matched spans: mark with an invisible separator first, escape, then swap in '*'.
        lines.append("> " + escape_mrkdwn(snippet).replace("\u2063", "*"))
    if alert.also_reported:
        lines.append(escape_mrkdwn(also_reported_line(alert)))
    return "\n".join(lines)


def alert_blocks(alert: Alert) -> list[dict[str, Any]]:
    """The Block Kit blocks of one alert."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_link(alert)}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _details(alert)}},
    ]


def _also(alert: Alert) -> str:
    if not alert.also_reported:
        return ""
    return f" · also {escape_mrkdwn(', '.join(r.source for r in alert.also_reported))}"


def _fallback(alert: Alert) -> str:
    url = f" {alert.story.url}" if alert.story.url else ""
    return escape_mrkdwn(f"{alert_subject(alert)}{url}")


class SlackChannel:
    """Posts one message per alert (or per digest) to an incoming webhook."""

    def __init__(self, name: str, settings: dict[str, Any], monitor: Monitor):
        self.name = name
        self.settings = settings
        self.monitor = monitor

    def send(self, rendered: RenderedAlert, alert: Alert) -> None:
        blocks = rendered.blocks or alert_blocks(alert)
        self._post({"text": _fallback(alert), "blocks": blocks})

    def send_digest(self, rendered: RenderedAlert, alerts: Sequence[Alert]) -> None:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": rendered.subject[:150]}}]
        for watchlist, group in group_by_watchlist(alerts).items():
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": f"*{escape_mrkdwn(watchlist)}* ({len(group)})"}})
            items = "\n".join(f"• {_link(a)} (score {a.match.score:.2f}){_also(a)}" for a in group)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": items[:3000]}})
        self._post({"text": escape_mrkdwn(rendered.subject), "blocks": blocks[:MAX_BLOCKS]})

    def _post(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        post_alert(alert_http_client(self.monitor, NAME), self.settings["webhook_url"], body,
                   {"Content-Type": "application/json; charset=utf-8"}, f"slack channel {self.name}",
                   timeout=self.settings["timeout"])


def make_slack_channel(name: str, options: dict[str, Any], monitor: Monitor) -> SlackChannel:
    return SlackChannel(name, read_channel_options(options, OPTIONS, TYPE), monitor)


@hookimpl
def register_channel_types(register, monitor: Monitor) -> None:
    register(TYPE, make_slack_channel)


@hookimpl
def render_alert(alert: Alert, channel_type: str) -> RenderedAlert | None:
    if channel_type != TYPE:
        return None
    return RenderedAlert(subject=alert_subject(alert), text=_fallback(alert), blocks=alert_blocks(alert))


@hookimpl
def shutdown(monitor: Monitor) -> None:
    close_http_client(monitor, NAME)
