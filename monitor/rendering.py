"""Plain-text rendering of alerts, used when no plugin renders one and by channels as a fallback."""

from __future__ import annotations

from .models import Alert, RenderedAlert

SNIPPET_MARKS = ("«", "»")


def alert_subject(alert: Alert) -> str:
    """``[watchlist] Story title``, on one line."""
    return f"[{alert.watchlist.name}] {alert.story.title}"


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
    return RenderedAlert(subject=alert_subject(alert), text="\n".join(lines))
