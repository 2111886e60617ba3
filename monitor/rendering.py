"""Plain-text rendering of alerts, used when no plugin renders one and by channels as a fallback.

Story text comes from feeds: subjects are one safe line and bodies keep
their lines but lose every other control and bidi character
(:mod:`monitor.safetext`), whatever channel shows them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .models import Alert, RenderedAlert
from .safetext import safe_line, safe_text
from .wording import plural

SNIPPET_MARKS = ("«", "»")


def alert_subject(alert: Alert) -> str:
    """``[watchlist] Story title``, on one line."""
    return safe_line(f"[{alert.watchlist.name}] {alert.story.title}")


def render_plain(alert: Alert) -> RenderedAlert:
    """Subject (with the title) and a plain-text body: watchlist, link, source, score, matched terms, snippet."""
    match, story = alert.match, alert.story
    lines = [
        f"Watchlist: {alert.watchlist.name} (score {match.score:.2f}, {match.classifier})",
    ]
    if story.url:
        lines.append(f"Link: {story.url}")
    published = story.published.strftime("%Y-%m-%d %H:%M UTC") if story.published else "date unknown"
    lines.append(f"Source: {story.source}, {published}")
    if match.evidence.terms:
        lines.append("Matched: " + ", ".join(match.evidence.terms))
    if match.evidence.snippet.text:
        lines.append("Evidence: " + " ".join(match.evidence.snippet.marked(*SNIPPET_MARKS).split()))
    if match.evidence.note:
        lines.append("Note: " + match.evidence.note)
    if alert.also_reported:
        lines.append(also_reported_line(alert))
        lines.extend(f"  - {r.source}: {r.title}" + (f" {r.url}" if r.url else "") for r in alert.also_reported)
    return RenderedAlert(subject=alert_subject(alert), text=safe_text("\n".join(lines)))


def also_reported_line(alert: Alert) -> str:
    """``Also reported by N sources: a, b`` (empty when no other source has the story)."""
    count = len(alert.also_reported)
    if not count:
        return ""
    names = ", ".join(r.source for r in alert.also_reported)
    return f"Also reported by {plural(count, 'source')}: {names}"


def group_by_watchlist(alerts: Sequence[Alert]) -> dict[str, list[Alert]]:
    """Alerts grouped by watchlist name, in first-seen order (for digests)."""
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.watchlist.name, []).append(alert)
    return groups


def digest_subject(alerts: Sequence[Alert]) -> str:
    """``N new matches: watchlist, watchlist``, on one line."""
    count = len(alerts)
    return safe_line(f"{count} new match{'es' if count != 1 else ''}: {', '.join(group_by_watchlist(alerts))}")


def render_digest_plain(alerts: Sequence[Alert]) -> RenderedAlert:
    """One plain-text message for many alerts, grouped by watchlist (digest channels)."""
    lines: list[str] = []
    for watchlist, group in group_by_watchlist(alerts).items():
        lines.append(f"== {watchlist} ({len(group)})")
        for alert in group:
            lines.append(f"- {safe_line(alert.story.title)}")
            body = render_plain(alert).text.splitlines()[1:]  # the watchlist line is the heading
            lines.extend("  " + line for line in body)
        lines.append("")
    return RenderedAlert(subject=digest_subject(alerts), text=safe_text("\n".join(lines).rstrip()))
