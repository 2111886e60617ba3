"""The ``email`` channel type: alerts by SMTP, as plain text with an HTML alternative.

Every piece of story text is HTML-escaped in the HTML part, so markup from a
feed never reaches a mail client as markup. SMTP replies map to the outbox's
rules: 4xx and connection problems are retried, 5xx (a refused recipient, a
rejected login) fail the alert at once.
"""

from __future__ import annotations

import html
import logging
import smtplib
import ssl
import threading
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from monitor import (
    Alert,
    ChannelOption,
    ConfigError,
    DeliveryError,
    Monitor,
    RenderedAlert,
    alert_subject,
    also_reported_line,
    group_by_watchlist,
    hookimpl,
    network_error_words,
    read_channel_options,
    render_plain,
    safe_line,
)

log = logging.getLogger(__name__)

TYPE = "email"
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}

OPTIONS = (
    ChannelOption("host", "str", "the SMTP server's host name", required=True),
    ChannelOption("port", "int", "SMTP port; default 587 with starttls, 465 with tls, 25 with none"),
    ChannelOption("security", "str", "starttls, tls (implicit TLS) or none", "starttls",
                  choices=("starttls", "tls", "none")),
    ChannelOption("username", "str", "login name; no login when absent"),
    ChannelOption("password", "str", "login password; write it as ${ENV_VAR}", secret=True),
    ChannelOption("from", "str", "the From address", required=True),
    ChannelOption("to", "list[str]", "recipient address or list of addresses", required=True),
    ChannelOption("timeout", "duration", "connect and reply timeout", 30.0),
    ChannelOption("ca_file", "str", "PEM file of CA certificates to trust instead of the system's (a private relay)"),
)


class EmailChannel:
    """Sends each alert (or digest) as one multipart/alternative message."""

    def __init__(self, name: str, settings: dict[str, Any]):
        self.name = name
        self.settings = settings
        self.port = settings["port"] or DEFAULT_PORTS[settings["security"]]
        self._lock = threading.Lock()

    def send(self, rendered: RenderedAlert, alert: Alert) -> None:
        html_part = rendered.html or _html_page(rendered.subject, [_alert_html(alert)])
        self._send(rendered.subject, rendered.text, html_part, key=f"alert-{alert.id}")

    def send_digest(self, rendered: RenderedAlert, alerts: Sequence[Alert]) -> None:
        sections = []
        for watchlist, group in group_by_watchlist(alerts).items():
            sections.append(f"<h2>{_e(watchlist)} ({len(group)})</h2>")
            sections.extend(_alert_html(a, heading="h3") for a in group)
        self._send(rendered.subject, rendered.text, _html_page(rendered.subject, sections),
                   key=f"digest-{min(a.id for a in alerts)}")

    def _send(self, subject: str, text: str, html_body: str, key: str) -> None:
        s = self.settings
        message = EmailMessage()
        message["Subject"] = " ".join(subject.split())  # one line: no header injection from a title
        message["From"] = s["from"]
        message["To"] = ", ".join(s["to"])
        message["Date"] = formatdate(localtime=False)
        # Stable per outbox row: a resent duplicate carries the same Message-ID.
        message["Message-ID"] = make_msgid(idstring=key, domain="news-monitor.invalid")
        message["X-News-Monitor-Alert"] = key
        message.set_content(text)
        message.add_alternative(html_body, subtype="html")
        where = f"email channel {self.name} ({s['host']}:{self.port})"
        with self._lock:  # smtplib connections are not shared; one send at a time is plenty
            try:
                self._deliver(message)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                permanent = all(code >= 500 for code in codes)
                raise DeliveryError(f"{where}: every recipient refused ({_codes(exc.recipients)})",
                                    permanent=permanent) from None
            except smtplib.SMTPResponseException as exc:
                reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
                raise DeliveryError(f"{where}: SMTP {exc.smtp_code} {reply}", permanent=exc.smtp_code >= 500) from None
            except smtplib.SMTPException as exc:  # before OSError: SMTPException is one
                raise DeliveryError(f"{where}: {safe_line(str(exc), 200) or type(exc).__name__}") from None
            except OSError as exc:
                words = network_error_words(exc, s["host"], self.port, s["timeout"] if isinstance(exc, TimeoutError) else None)
                raise DeliveryError(f"{where}: {words}") from None

    def _deliver(self, message: EmailMessage) -> None:
        s = self.settings
        context = ssl.create_default_context(cafile=s["ca_file"])
        if s["security"] == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s["host"], self.port, timeout=s["timeout"], context=context)
        else:
            smtp = smtplib.SMTP(s["host"], self.port, timeout=s["timeout"])
        with smtp:
            if s["security"] == "starttls":
                smtp.starttls(context=context)
            if s["username"]:
                smtp.login(s["username"], s["password"] or "")
            refused = smtp.send_message(message)
        if refused:
            # Some recipients took it: it counts as sent (resending would duplicate for them).
            log.warning("email channel %s: some recipients refused: %s", self.name, _codes(refused))


def _codes(recipients: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{addr}: {code}" for addr, (code, _) in recipients.items())


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _highlighted(text: str, highlights: Sequence[tuple[int, int]]) -> str:
    """``text`` escaped, with each highlight in <mark>: escaping happens piece by piece, after slicing."""
    out, last = [], 0
    for start, end in sorted(highlights):
        if start < last:
            continue
        out.append(_e(text[last:start]))
        out.append(f"<mark>{_e(text[start:end])}</mark>")
        last = end
    out.append(_e(text[last:]))
    return "".join(out)


def _alert_html(alert: Alert, heading: str = "h2") -> str:
    story, match = alert.story, alert.match
    title = _e(story.title)
    if story.url and story.url.lower().startswith(("http://", "https://")):  # never a javascript: link
        title = f'<a href="{_e(story.url)}">{title}</a>'
    parts = [f"<{heading}>{title}</{heading}>",
             f"<p>Watchlist <b>{_e(alert.watchlist.name)}</b>, score {match.score:.2f} ({_e(match.classifier)}); "
             f"source {_e(story.source)}"
             + (f", {story.published.strftime('%Y-%m-%d %H:%M UTC')}" if story.published else "") + "</p>"]
    if match.evidence.terms:
        parts.append("<p>Matched: " + ", ".join(f"<b>{_e(t)}</b>" for t in match.evidence.terms) + "</p>")
    snippet = match.evidence.snippet
    if snippet.text:
        parts.append(f"<blockquote>{_highlighted(snippet.text, snippet.highlights)}</blockquote>")
    if match.evidence.note:
        parts.append(f"<p>{_e(match.evidence.note)}</p>")
    if alert.also_reported:
        items = "".join(f"<li>{_e(r.source)}: {_link_html(r.title, r.url)}</li>" for r in alert.also_reported)
        parts.append(f"<p>{_e(also_reported_line(alert))}</p><ul>{items}</ul>")
    return "\n".join(parts)


def _link_html(title: str, url: str | None) -> str:
    if url and url.lower().startswith(("http://", "https://")):  # never a javascript: link
        return f'<a href="{_e(url)}">{_e(title)}</a>'
    return _e(title)


def _html_page(subject: str, sections: Sequence[str]) -> str:
    body = "\n".join(sections)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_e(subject)}</title></head>'
            f"<body>\n{body}\n</body></html>\n")


def make_email_channel(name: str, options: dict[str, Any], monitor: Monitor) -> EmailChannel:
    settings = read_channel_options(options, OPTIONS, TYPE)
    if settings["password"] and not settings["username"]:
        raise ConfigError("a password needs a username", key="username")
    if settings["ca_file"] and not Path(settings["ca_file"]).is_file():
        raise ConfigError(f"no such file: {settings['ca_file']}", key="ca_file")
    return EmailChannel(name, settings)


@hookimpl
def register_channel_types(register, monitor: Monitor) -> None:
    register(TYPE, make_email_channel)


@hookimpl
def render_alert(alert: Alert, channel_type: str) -> RenderedAlert | None:
    if channel_type != TYPE:
        return None
    plain = render_plain(alert)
    return RenderedAlert(subject=alert_subject(alert), text=f"{safe_line(alert.story.title)}\n\n{plain.text}",
                         html=_html_page(plain.subject, [_alert_html(alert)]))
