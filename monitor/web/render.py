"""Template helpers: highlighted text, times, a small SVG bar chart. Every piece of text is escaped here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from markupsafe import Markup, escape

from ..timeutil import from_iso


def highlight(text: str | None, spans: Iterable[Sequence[int]]) -> Markup:
    """``text`` escaped, with each ``(start, end)`` span wrapped in ``<mark>`` (overlaps merged)."""
    text = text or ""
    merged: list[list[int]] = []
    for start, end in sorted((max(0, int(s)), min(len(text), int(e))) for s, e in spans):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out.append(escape(text[last:start]))
        out.append(Markup("<mark>") + escape(text[start:end]) + Markup("</mark>"))
        last = end
    out.append(escape(text[last:]))
    return Markup("").join(out)


def paragraphs(text: str | None, spans: Iterable[Sequence[int]]) -> list[Markup]:
    """``text`` split at blank lines into highlighted paragraphs (offsets kept per paragraph)."""
    text = text or ""
    spans = list(spans)
    out, start = [], 0
    while start <= len(text):
        end = text.find("\n\n", start)
        end = len(text) if end < 0 else end
        local = [(max(s, start) - start, min(e, end) - start) for s, e in spans if s < end and e > start]
        if text[start:end].strip():
            out.append(highlight(text[start:end], local))
        start = end + 2
    return out


def time_tag(value: str | None) -> Markup:
    """A ``<time>`` element: UTC in the text (what shows without JavaScript), ISO in ``datetime``
    for /static/app.js to show in the viewer's zone."""
    moment = from_iso(value) if value else None
    if moment is None:
        return Markup('<span class="muted">never</span>')
    iso = moment.isoformat()
    return Markup('<time datetime="{}">{}</time>').format(iso, moment.strftime("%Y-%m-%d %H:%M UTC"))


def bar_chart(days: Sequence[tuple[str, int]], width: int = 180, height: int = 28) -> Markup:
    """Stories per day as an inline SVG of bars (no script, no style attribute: the CSP forbids both inline)."""
    top = max((n for _, n in days), default=0) or 1
    step = width / max(1, len(days))
    bars = []
    for i, (day, count) in enumerate(days):
        h = 0 if count == 0 else max(1.0, height * count / top)
        bars.append(Markup('<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"><title>{}: {}</title></rect>')
                    .format(i * step, height - h, max(1.0, step - 1), h, day, count))
    total = sum(n for _, n in days)
    label = f"{total} stories in the last {len(days)} days"
    baseline = Markup('<line x1="0" y1="{0}" x2="{1}" y2="{0}"></line>').format(height - 0.5, width)
    return (Markup('<svg class="chart" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}">')
            .format(label, width, height, width, height) + baseline + Markup("").join(bars) + Markup("</svg>"))


def age_words(value: str | None, now: datetime) -> str:
    """How long ago ``value`` was, in words ("3m ago"); "never" when unset."""
    moment = from_iso(value) if value else None
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            words = f"{int(seconds // size)}{unit}"
            break
    else:
        words = f"{int(seconds)}s"
    return f"in {words}" if future else f"{words} ago"
