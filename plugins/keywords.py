"""The keyword classifier: each watchlist's ``query`` in the query language.

All watchlists' terms are compiled into one matcher, so a story is scanned
once however many watchlists there are. The matcher is rebuilt only when the
set of watchlists changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from monitor import (ConfigError, KeywordMatcher, Match, Monitor, QuerySyntaxError, Story, Watchlist, hookimpl,
                     parse_query, query_error_words)

NAME = "keywords"


class KeywordClassifier:
    """Matches stories against every watchlist that has a ``query``."""

    def __init__(self, where: str = "configuration"):
        self.where = where
        self._lock = threading.Lock()
        self._key: tuple[tuple[str, str], ...] | None = None
        self._matcher: KeywordMatcher | None = None

    def _matcher_for(self, watchlists: Sequence[Watchlist]) -> KeywordMatcher:
        key = tuple(sorted((w.name, w.query) for w in watchlists if w.query))
        with self._lock:
            if key != self._key:
                self._matcher = KeywordMatcher(dict(key))
                self._key = key
            assert self._matcher is not None
            return self._matcher

    def classify(self, stories: Sequence[Story], watchlists: Sequence[Watchlist]) -> Iterable[Match]:
        matcher = self._matcher_for(watchlists)
        # Matches under a watchlist's threshold are dropped by the core: not building their evidence saves its cost.
        thresholds = {w.name: w.threshold for w in watchlists}
        for story in stories:
            for name, (score, evidence) in matcher.match(story.title, story.text, thresholds, story.language).items():
                yield Match(story_id=story.id, watchlist=name, score=score, classifier=NAME, evidence=evidence)

    def validate(self, watchlists: Sequence[Watchlist]) -> list[ConfigError]:
        """Every query that does not parse, with its watchlist and position (one line each)."""
        problems = []
        for watchlist in watchlists:
            if not watchlist.query:
                continue
            try:
                parse_query(watchlist.query)
            except QuerySyntaxError as exc:
                problems.append(ConfigError(query_error_words(exc), file=self.where,
                                            key=f"watchlists.{watchlist.name}.query"))
        return problems


@hookimpl
def register_classifiers(register, monitor: Monitor) -> None:
    register(NAME, KeywordClassifier(monitor.config.where))


