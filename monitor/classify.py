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

    def add(self, other: "Found") -> None:
        self.by_classifier.update(other.by_classifier)
        self.replaced |= other.replaced
        self.failures.extend(other.failures)


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
    found = run_classifiers(monitor.classifiers, stories, watchlists)
    for failure in found.failures:
        monitor.emit(failure)
    return combine(found, stories, watchlists)


def run_classifiers(classifiers: Mapping[str, Any], stories: Sequence[Story], watchlists: Sequence[Watchlist]) -> Found:
    """Run each of ``classifiers`` over ``stories``; a failing one is logged and listed in ``failures``."""
    found = Found()
    if not stories or not watchlists:
        return found
    for name, classifier in classifiers.items():
        started = time.perf_counter()
        try:
            matches = list(classifier.classify(stories, watchlists))
            taken = _replaced_by(classifier, watchlists)
        except Exception as exc:
            log.exception("classifier %s failed on a batch of %d stories", name, len(stories))
            found.failures.append(ClassifierFailed(classifier=name, error=f"{type(exc).__name__}: {exc}"))
            continue
        elapsed = time.perf_counter() - started
        if elapsed > SLOW_SECONDS:
            log.warning("classifier %s took %.1fs for %d stories", name, elapsed, len(stories))
        found.by_classifier[name] = matches
        found.replaced.update(taken)
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
    return list(best.values())


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
