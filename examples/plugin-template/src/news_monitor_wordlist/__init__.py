"""A news-monitor classifier: a watchlist matches the stories naming words from a word-list file.

Configuration::

    [plugins.wordlist]
    score = 1.5                  # the score of every match (default 1.0)

    [watchlists.NAME.options.wordlist]
    file = "words/nk.txt"        # relative to the configuration file
    min_hits = 1                 # distinct words a story must name (default 1)

A watchlist without ``options.wordlist`` is not this plugin's business; one
with it needs no ``query`` (the keyword classifier then leaves it alone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from monitor import (Evidence, Match, Monitor, PluginConfigError, Story, Watchlist, hookimpl,
                     html_to_text)

NAME = "wordlist"  # the entry-point name: [plugins.wordlist], options.wordlist
DEFAULTS = {"score": 1.0}


class WordlistClassifier:
    """Matches each watchlist that has ``options.wordlist`` against its word list."""

    def __init__(self, monitor: Monitor):
        self.monitor = monitor

    def validate(self, watchlists: Sequence[Watchlist]) -> list[str]:
        """Problems for ``monitor check``: each names the file and the key."""
        problems = []
        for watchlist in watchlists:
            try:
                self.words(watchlist)
            except PluginConfigError as exc:
                problems.append(f"{self.monitor.config.where}: {exc.key}: {exc.message}")
        return problems

    def words(self, watchlist: Watchlist) -> tuple[list[re.Pattern[str]], int] | None:
        """The compiled words and ``min_hits`` of a watchlist, ``None`` when it has no word list.

        :raises PluginConfigError: the options are wrong or the file cannot be read.
        """
        options = watchlist.options.get(NAME)
        if options is None:
            return None
        key = f"watchlists.{watchlist.name}.options.{NAME}"
        if not isinstance(options, dict) or not isinstance(options.get("file"), str):
            raise PluginConfigError('expected a table with file = "path/to/words.txt"', key=key)
        unknown = set(options) - {"file", "min_hits"}
        if unknown:
            raise PluginConfigError(f"unknown key {sorted(unknown)[0]!r} (known: file, min_hits)", key=key)
        min_hits = options.get("min_hits", 1)
        if not isinstance(min_hits, int) or isinstance(min_hits, bool) or min_hits < 1:
            raise PluginConfigError(f"must be a whole number of at least 1, got {min_hits!r}", key=f"{key}.min_hits")
        # Relative to the configuration file, like every path in it.
        path = self.monitor.config.resolve_path(options["file"])
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise PluginConfigError(f"cannot read {path}: {exc.strerror}", key=f"{key}.file") from None
        words = [line.split("#", 1)[0].strip() for line in lines]
        patterns = [re.compile(r"\b" + r"\s+".join(map(re.escape, w.split())) + r"\b", re.I) for w in words if w]
        if not patterns:
            raise PluginConfigError(f"{path} lists no words", key=f"{key}.file")
        return patterns, min_hits

    def classify(self, stories: Sequence[Story], watchlists: Sequence[Watchlist]) -> Iterable[Match]:
        for watchlist in watchlists:
            found = self.words(watchlist)
            if found is None:
                continue
            patterns, min_hits = found
            score = float(settings(self.monitor)["score"])
            for story in stories:
                text = f"{story.title}\n{html_to_text(story.text)}"
                named = sorted({m.group().lower() for p in patterns for m in [p.search(text)] if m})
                if len(named) >= min_hits:
                    yield Match(story_id=story.id, watchlist=watchlist.name, score=score,
                                classifier=NAME, evidence=Evidence(terms=tuple(named)))


def settings(monitor: Monitor) -> dict:
    """``[plugins.wordlist]`` over the defaults.

    :raises PluginConfigError: an unknown key or a score that is not a positive number.
    """
    out = dict(DEFAULTS)
    for key, value in monitor.plugin_config(NAME).items():
        if key not in DEFAULTS:
            raise PluginConfigError(f"unknown key (known: {', '.join(DEFAULTS)})", key=f"plugins.{NAME}.{key}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise PluginConfigError(f"must be a number above 0, got {value!r}", key=f"plugins.{NAME}.{key}")
        out[key] = value
    return out


@hookimpl
def startup(monitor: Monitor) -> None:
    # Refuse to start on a bad [plugins.wordlist] rather than fail on the first poll.
    settings(monitor)


@hookimpl
def register_classifiers(register, monitor: Monitor) -> None:
    register(NAME, WordlistClassifier(monitor))
