"""Running every registered classifier over a batch of stories, each in isolation."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .models import ClassifierFailed, Match, Story, Watchlist

if TYPE_CHECKING:
    from .app import Monitor

log = logging.getLogger("monitor.classify")

# A classifier slower than this per batch is named in the log.
SLOW_SECONDS = 5.0


@dataclass
class Found:
    """What a set of classifiers returned for one batch, before thresholds and merging.

    Plain data, so a worker process can hand it back to the daemon.
    """

    by_classifier: dict[str, list[Match]] = field(default_factory=dict)
    replaced: set[tuple[str, str]] = field(default_factory=set)  # (classifier name, watchlist name)
    failures: list[ClassifierFailed] = field(default_factory=list)
    cut: dict[str, str] = field(default_factory=dict)  # story id -> why only part of it was classified

    def add_batch(self, other: "Found") -> None:
        """Add what the same classifiers found in the next batch of stories."""
        for name, matches in other.by_classifier.items():
            self.by_classifier.setdefault(name, []).extend(matches)
        self.replaced |= other.replaced
        self.failures.extend(other.failures)
        self.cut.update(other.cut)

    def add(self, other: "Found") -> None:
        self.by_classifier.update(other.by_classifier)
        self.replaced |= other.replaced
        self.failures.extend(other.failures)
        self.cut.update(other.cut)


def classify(monitor: Monitor, stories: Sequence[Story], watchlists: Sequence[Watchlist]) -> list[Match]:
    """Matches from every classifier, at or above each watchlist's threshold.

    One classifier raising does not stop the others: its failure is logged,
    emitted as :class:`ClassifierFailed`, and the stories are still stored.
    When several classifiers match the same story and watchlist, the highest
    score is kept and the others' evidence terms are added to it.

    A classifier may take over a watchlist from others: if it has a method
    ``replaces(watchlist) -> Iterable[str]`` naming other classifiers, and it
    ran on this batch without failing, their matches for that watchlist are
    ignored (it is expected to have folded their judgement into its own, as
    the ``semantic`` classifier does with the keyword score). When it fails,
    the others' matches count as usual.
    """
    if not stories or not watchlists:
        return []
    found = run_classifiers(monitor.classifiers, stories, watchlists, int(monitor.config.classify["max_text_chars"]))
    for failure in found.failures:
        monitor.emit(failure)
    return combine(found, stories, watchlists)


def run_classifiers(classifiers: Mapping[str, Any], stories: Sequence[Story], watchlists: Sequence[Watchlist],
                    max_text_chars: int) -> Found:
    """Run each of ``classifiers`` over ``stories`` (title and text cut to ``max_text_chars``);
    a failing one is logged and listed in ``failures``.

    Classifiers that take watchlists over from others (``replaces``) run
    first; the others then skip the watchlists taken from them, whose
    matches :func:`combine` would ignore anyway.
    """
    found = Found()
    if not stories or not watchlists:
        return found
    stories, found.cut = _cut_for_classifiers(stories, max_text_chars)
    taking_first = sorted(classifiers, key=lambda name: not hasattr(classifiers[name], "replaces"))
    results: dict[str, list[Match]] = {}
    for name in taking_first:
        classifier = classifiers[name]
        mine = [w for w in watchlists if (name, w.name) not in found.replaced]
        if not mine:
            results[name] = []
            continue
        started = time.perf_counter()
        try:
            matches = list(classifier.classify(stories, mine))
            taken = _replaced_by(classifier, mine)
        except Exception as exc:
            log.exception("classifier %s failed on a batch of %d stories", name, len(stories))
            found.failures.append(ClassifierFailed(classifier=name, error=f"{type(exc).__name__}: {exc}"))
            continue
        elapsed = time.perf_counter() - started
        if elapsed > SLOW_SECONDS:
            log.warning("classifier %s took %.1fs for %d stories", name, elapsed, len(stories))
        results[name] = matches
        found.replaced.update(taken)
    # In the configured order: when two classifiers score a story alike, the first one's match is kept.
    found.by_classifier.update((name, results[name]) for name in classifiers if name in results)
    return found


def combine(found: Found, stories: Sequence[Story], watchlists: Sequence[Watchlist]) -> list[Match]:
    """The matches at or above threshold, best per story and watchlist (see :func:`classify`)."""
    by_name = {w.name: w for w in watchlists}
    wanted = {s.id for s in stories}
    best: dict[tuple[str, str], Match] = {}
    for name, matches in found.by_classifier.items():
        for match in matches:
            if (name, match.watchlist) in found.replaced:
                continue
            watchlist = by_name.get(match.watchlist)
            if watchlist is None or match.story_id not in wanted or match.score < watchlist.threshold:
                continue
            key = (match.story_id, match.watchlist)
            best[key] = _better(best.get(key), match)
    cut = found.cut
    return [_mark_cut(m, cut[m.story_id]) if m.story_id in cut else m for m in best.values()]


def _cut_for_classifiers(stories: Sequence[Story], limit: int) -> tuple[list[Story], dict[str, str]]:
    """Stories whose title and text are each cut to ``limit`` characters, and a note for each one cut.

    Classifiers are linear in the text they scan, but a plugin's cost per
    character may be high; the cap keeps one huge story from holding a poll.
    The stored story keeps its whole text; hit offsets stay valid, as the
    cut keeps the beginning.
    """
    out, cut = [], {}
    for story in stories:
        if len(story.title) > limit or len(story.text) > limit:
            longest = max(len(story.title), len(story.text))
            cut[story.id] = (f"only the first {limit} of {longest} characters were classified "
                             "(classify.max_text_chars)")
            story = replace(story, title=story.title[:limit], text=story.text[:limit])
        out.append(story)
    return out, cut


def _mark_cut(match: Match, note: str) -> Match:
    old = match.evidence.note
    evidence = replace(match.evidence, truncated=True, note=f"{old}; {note}" if old else note)
    return replace(match, evidence=evidence)


def _replaced_by(classifier: object, watchlists: Sequence[Watchlist]) -> set[tuple[str, str]]:
    replaces = getattr(classifier, "replaces", None)
    if replaces is None:
        return set()
    return {(other, w.name) for w in watchlists for other in (replaces(w) or ())}


def _better(current: Match | None, new: Match) -> Match:
    if current is None:
        return new
    winner, other = (new, current) if new.score > current.score else (current, new)
    extra = tuple(t for t in other.evidence.terms if t not in winner.evidence.terms)
    if not extra and other.classifier in winner.classifier.split("+"):
        return winner
    evidence = replace(winner.evidence, terms=winner.evidence.terms + extra)
    return replace(winner, classifier=f"{winner.classifier}+{other.classifier}", evidence=evidence)
