"""The ``semantic`` classifier: topical similarity from sentence embeddings,
combined with each watchlist's keyword score.

A watchlist opts in with ``options.semantic``. For such a watchlist this
classifier computes the keyword score itself (the public
:class:`monitor.KeywordMatcher`) and the similarity of the story to the topic
(the description and example stories, or the model ``monitor train`` stored),
combines them by the watchlist's ``mode``, and takes the watchlist over from
the ``keywords`` classifier (see ``replaces``), so a semantic veto in
``rerank`` mode really removes a keyword match. If this classifier fails on a
batch, the keyword matches count as they would without it.

Without the ``semantic`` extra (sentence-transformers and the model package)
the plugin registers nothing and every watchlist runs as it would without
it (on its learned model where it has one, else on its query); a watchlist
that asks for semantic scoring is named at start-up and by ``monitor check``.
See docs/semantic.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from monitor import (
    ConfigError,
    Evidence,
    InputError,
    KeywordMatcher,
    Match,
    Monitor,
    PluginConfigError,
    Story,
    Watchlist,
    hookimpl,
    load_cli_config,
    open_cli_monitor,
    read_stories,
)
from monitor_plugins.semantic_model import (
    EMBEDDER,
    INSTALL_HINT,
    Embedder,
    LogisticModel,
    centroid,
    cosine_to_centroid,
    missing_requirements,
    story_text,
    train_logistic,
)

NAME = "semantic"
MODES = ("rerank", "boost", "either")
KEYWORDS = "keywords"
LEARNED = "learned"

log = logging.getLogger("monitor.semantic")

# [plugins.semantic] keys and their defaults.
PLUGIN_DEFAULTS: dict[str, int] = {
    "max_stories_per_batch": 256,  # stories embedded per classify call; the rest are judged on keywords
    "max_words": 100,              # words of the story text embedded after the title
    "batch_size": 32,              # sentences per forward pass
}


# -- configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class SemanticSettings:
    """One watchlist's ``options.semantic``, with its example stories."""

    mode: str = "rerank"
    weight: float = 0.5
    min_similarity: float = 0.2
    examples: tuple[str, ...] = ()


def wants_semantic(watchlist: Watchlist) -> bool:
    """Whether the watchlist asks for semantic scoring (``options.semantic`` present and not false)."""
    value = watchlist.options.get("semantic")
    return value is not None and value is not False


def runs_without(monitor: Monitor, watchlist: Watchlist) -> str:
    """What decides ``watchlist`` when semantic scoring cannot, in words: the classifiers that take
    it over from the keyword query (``replaces``), or the query alone."""
    takers = [name for name, classifier in monitor.classifiers.items()
              if name != NAME and KEYWORDS in (getattr(classifier, "replaces", _replaces_nothing)(watchlist) or ())]
    if takers:
        return "on the " + " and ".join(takers) + " classifier" + ("s" if len(takers) > 1 else "")
    return "on its keyword query alone"


def _replaces_nothing(watchlist: Watchlist) -> tuple[str, ...]:
    return ()


def read_settings(watchlist: Watchlist, base_dir: Path, problems: list[str] | None = None, where: str = "") -> SemanticSettings:
    """The watchlist's settings; each problem is appended to ``problems`` naming file and key."""
    key = f"watchlists.{watchlist.name}.options"

    def problem(subkey: str, message: str) -> None:
        if problems is not None:
            problems.append(f"{where}: {key}.{subkey}: {message}")

    raw = watchlist.options.get("semantic")
    table: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    if not isinstance(raw, (Mapping, bool)):
        problem("semantic", f"expected true or a table such as {{mode = \"rerank\"}}, got {raw!r}")
    for name in table:
        if name not in ("mode", "weight", "min_similarity"):
            problem(f"semantic.{name}", "unknown key (known keys: min_similarity, mode, weight)")
    mode = table.get("mode", "rerank")
    if mode not in MODES:
        problem("semantic.mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        mode = "rerank"
    numbers = {}
    for name, default in (("weight", 0.5), ("min_similarity", 0.2)):
        value = table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problem(f"semantic.{name}", f"expected a number, got {value!r}")
            value = default
        numbers[name] = float(value)
    if mode in ("rerank", "boost") and not watchlist.query:
        problem("semantic.mode", f"mode {mode!r} reranks keyword matches, but the watchlist has no query "
                                 "(add one, or use mode = \"either\")")
    return SemanticSettings(mode=mode, examples=_examples(watchlist, base_dir, problem), **numbers)


def _examples(watchlist: Watchlist, base_dir: Path, problem: Any) -> tuple[str, ...]:
    value = watchlist.options.get("examples")
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v.strip())
    if not isinstance(value, str):
        problem("examples", f"expected a list of example stories or the path of a JSONL file, got {value!r}")
        return ()
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base_dir / path
    try:
        rows = read_labelled(path)
    except (OSError, ValueError) as exc:
        problem("examples", str(exc))
        return ()
    # Rows without labels are examples; labelled rows count when they carry this watchlist.
    return tuple(text for text, labels in rows if labels is None or watchlist.name in labels)


def read_labelled(path: Path) -> list[tuple[str, list[str] | None]]:
    """``(title + text, labels or None)`` for each row of a JSONL file of stories (read as ``monitor eval`` reads them).

    :raises OSError: the file cannot be read.
    :raises ValueError: a row is not a JSON object with a title or text (message names file and line).
    """
    rows = []
    with path.open(encoding="utf-8") as fh:
        for item in read_stories(fh, source=str(path)):
            if isinstance(item, InputError):
                raise ValueError(f"{path}: {item}")
            if not (item.story.title or item.story.text):
                raise ValueError(f"{path}: line {item.line}: a row needs a \"title\" and a \"summary\" or \"text\"")
            labels = sorted(item.labels) if item.labels is not None else None
            rows.append((story_text(item.story.title, item.story.text, PLUGIN_DEFAULTS["max_words"]), labels))
    return rows


def plugin_settings(monitor: Monitor, problems: list[PluginConfigError] | None = None) -> dict[str, int]:
    """``[plugins.semantic]`` over the defaults; bad keys keep their default and go to ``problems``."""
    out = dict(PLUGIN_DEFAULTS)
    for name, value in monitor.plugin_config(NAME).items():
        key = f"plugins.{NAME}.{name}"
        if name not in PLUGIN_DEFAULTS:
            message = f"unknown key (known keys: {', '.join(sorted(PLUGIN_DEFAULTS))})"
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            message = f"expected a whole number of 1 or more, got {value!r}"
        else:
            out[name] = value
            continue
        if problems is not None:
            problems.append(PluginConfigError(message, file=monitor.config.where, key=key))
    return out


# -- stored models (monitor train) ------------------------------------------------


def stored_models(monitor: Monitor) -> dict[str, tuple[str, LogisticModel]]:
    """``{watchlist: (trained_at, model)}`` for every model trained with this embedder."""
    rows = [r for r in monitor.store.models("semantic").values() if r["embedder"] == EMBEDDER]
    return {
        r["watchlist"]: (r["trained_at"], LogisticModel(tuple(json.loads(r["weights"])), r["bias"], r["cutoff"]))
        for r in rows
    }


def store_model(monitor: Monitor, watchlist: str, model: LogisticModel, positives: int, negatives: int, labels_file: str) -> None:
    """Save (or replace) the watchlist's trained model."""
    monitor.store.save_model(
        "semantic", watchlist, embedder=EMBEDDER, dim=len(model.weights), weights=json.dumps(model.weights),
        bias=model.bias, cutoff=model.cutoff, positives=positives, negatives=negatives, labels_file=labels_file,
        trained_at=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
    )


# -- the classifier ---------------------------------------------------------------


class SemanticState:
    """What the plugin keeps per Monitor (in ``monitor.extensions["semantic"]``)."""

    def __init__(self, batch_size: int):
        self.embedder = Embedder(batch_size=batch_size)
        self.lock = threading.Lock()
        self.centroids: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.matchers: dict[tuple[tuple[str, str], ...], KeywordMatcher] = {}
        # Settings per watchlist, keyed by its options: examples may come from a file.
        self.settings: dict[tuple[str, str], SemanticSettings] = {}


def state_for(monitor: Monitor) -> SemanticState:
    """The plugin's state for ``monitor``, created on first use (the model loads later, lazily)."""
    state = monitor.extensions.get(NAME)
    if state is None:
        state = monitor.extensions.setdefault(NAME, SemanticState(int(plugin_settings(monitor)["batch_size"])))
    return state


class SemanticClassifier:
    """Scores opted-in watchlists by keywords and embedding similarity together."""

    # One embedding model (~800 MB) per worker process would not fit: it runs in the daemon's.
    runs_in_workers = False

    def __init__(self, monitor: Monitor):
        self.monitor = monitor
        settings = plugin_settings(monitor)
        self.max_stories = int(settings["max_stories_per_batch"])
        self.max_words = int(settings["max_words"])

    def replaces(self, watchlist: Watchlist) -> tuple[str, ...]:
        """The keyword classifier's matches for opted-in watchlists: ours already include its score.

        The learned classifier's too: asking for semantic scoring is an explicit
        choice of this model over the shipped or trained one.
        """
        return (KEYWORDS, LEARNED) if wants_semantic(watchlist) else ()

    def validate(self, watchlists: Sequence[Watchlist]) -> list[str]:
        """Every bad ``options.semantic`` / ``options.examples``, with file and key."""
        problems: list[str] = []
        for watchlist in watchlists:
            if wants_semantic(watchlist) or "examples" in watchlist.options:
                read_settings(watchlist, self.monitor.config.base_dir, problems, self.monitor.config.where)
        return problems

    def classify(self, stories: Sequence[Story], watchlists: Sequence[Watchlist]) -> Iterable[Match]:
        if not stories or not any(wants_semantic(w) for w in watchlists):
            return []
        state = state_for(self.monitor)
        targets = [(w, self._settings(state, w)) for w in watchlists if wants_semantic(w)]
        keyword = self._keyword_scores(state, stories, [w for w, _ in targets])
        embeddings = self._embed_candidates(state, stories, targets, keyword)
        models = stored_models(self.monitor)
        matches = []
        for watchlist, settings in targets:
            similarity, cutoff, how = self._similarities(state, watchlist, settings, models, embeddings)
            for story in stories:
                found = keyword[story.id].get(watchlist.name)
                s = similarity.get(story.id)
                match = combine(story.id, watchlist, settings, found, s, cutoff, how)
                if match is not None:
                    matches.append(match)
        return matches

    def _settings(self, state: SemanticState, watchlist: Watchlist) -> SemanticSettings:
        key = (watchlist.name, json.dumps(watchlist.options, sort_keys=True, default=str))
        with state.lock:
            cached = state.settings.get(key)
        if cached is None:
            cached = read_settings(watchlist, self.monitor.config.base_dir)
            with state.lock:
                state.settings[key] = cached
        return cached

    def _keyword_scores(self, state: SemanticState, stories: Sequence[Story], watchlists: Sequence[Watchlist]) -> dict[str, dict[str, tuple[float, Evidence]]]:
        key = tuple(sorted((w.name, w.query) for w in watchlists if w.query))
        with state.lock:
            matcher = state.matchers.get(key)
            if matcher is None:
                matcher = state.matchers[key] = KeywordMatcher(dict(key))
        return {s.id: matcher.match(s.title, s.text, language=s.language) if key else {} for s in stories}

    def _embed_candidates(self, state: SemanticState, stories: Sequence[Story], targets: Sequence[tuple[Watchlist, SemanticSettings]], keyword: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Embeddings of the stories that need one: keyword candidates first, then (mode
        "either") the rest, up to ``max_stories_per_batch``."""
        names = {w.name for w, _ in targets}
        everyone = any(s.mode == "either" for _, s in targets)
        candidates = [s for s in stories if names & keyword[s.id].keys()]
        if everyone:
            chosen = {s.id for s in candidates}
            candidates += [s for s in stories if s.id not in chosen]
        if len(candidates) > self.max_stories:
            log.warning("semantic: %d stories need scoring, embedding the first %d (plugins.semantic.max_stories_per_batch); "
                        "the rest are judged on keywords alone", len(candidates), self.max_stories)
            candidates = candidates[: self.max_stories]
        if not candidates:
            return {}
        vectors = state.embedder.embed([story_text(s.title, s.text, self.max_words) for s in candidates])
        return {s.id: vectors[i] for i, s in enumerate(candidates)}

    def _similarities(self, state: SemanticState, watchlist: Watchlist, settings: SemanticSettings, models: Mapping[str, tuple[str, LogisticModel]], embeddings: Mapping[str, Any]) -> tuple[dict[str, float], float, str]:
        """``({story id: similarity}, cutoff, how it was computed)``."""
        if not embeddings:
            return {}, settings.min_similarity, ""
        import numpy as np

        ids = list(embeddings)
        matrix = np.stack([embeddings[i] for i in ids])
        stored = models.get(watchlist.name)
        if stored is not None and len(stored[1].weights) != matrix.shape[1]:
            log.warning("semantic: the trained model of %s has %d dimensions, the embeddings %d: "
                        "using the description and examples (train it again)", watchlist.name,
                        len(stored[1].weights), matrix.shape[1])
            stored = None
        if stored is not None:
            trained_at, model = stored
            values = model.probabilities(matrix)
            return {i: float(v) for i, v in zip(ids, values)}, model.cutoff, f"trained model ({trained_at[:19]})"
        topic = self._centroid(state, watchlist, settings)
        values = cosine_to_centroid(matrix, topic)
        how = "similarity to the description" + (f" and {len(settings.examples)} examples" if settings.examples else "")
        return {i: float(v) for i, v in zip(ids, values)}, settings.min_similarity, how

    def _centroid(self, state: SemanticState, watchlist: Watchlist, settings: SemanticSettings) -> Any:
        texts = tuple(t for t in ((watchlist.description or watchlist.name.replace("_", " ")), *settings.examples) if t)
        key = (watchlist.name, texts)
        with state.lock:
            cached = state.centroids.get(key)
        if cached is None:
            cached = centroid(state.embedder.embed(list(texts)))
            with state.lock:
                state.centroids[key] = cached
        return cached


def combine(story_id: str, watchlist: Watchlist, settings: SemanticSettings, keyword: tuple[float, Evidence] | None, similarity: float | None, cutoff: float, how: str) -> Match | None:
    """The match (or none) for one story and watchlist, by the watchlist's mode.

    ``k`` is the keyword score (0 without a keyword match), ``s`` the similarity
    (``None`` when the story was not embedded). The core still drops scores
    below the watchlist's threshold.

    - rerank: keyword matches whose similarity reaches the cutoff; score ``k + weight*s``
      (``s`` counted as 0 when negative, here and below).
    - boost: every keyword match; score ``k + weight*s`` (raise the threshold
      so that weak keyword matches need semantic support).
    - either: rerank's matches, plus keyword matches as they are, plus stories
      with no keyword match whose similarity reaches the cutoff, scored
      ``threshold + weight*s`` so they pass.
    A story over the batch cap (``s`` is None) keeps its keyword judgement.
    """
    k, evidence = keyword if keyword is not None else (0.0, Evidence())
    if similarity is None:
        if keyword is None:
            return None
        return Match(story_id, watchlist.name, k, NAME, _note(evidence, "semantic scoring skipped (batch cap)"))
    s = similarity
    agrees = s >= cutoff
    note = f"{how}: {s:.2f} (cutoff {cutoff:.2f})"
    if keyword is not None:
        if settings.mode == "rerank" and not agrees:
            return None
        # Similarity only ever adds: a keyword match is never pushed below
        # the keyword classifier's own score by a negative cosine.
        return Match(story_id, watchlist.name, k + settings.weight * max(s, 0.0), NAME, _note(evidence, note))
    if settings.mode == "either" and agrees:
        return Match(story_id, watchlist.name, watchlist.threshold + settings.weight * max(s, 0.0), NAME, Evidence(note=note))
    return None


def _note(evidence: Evidence, note: str) -> Evidence:
    return dataclasses.replace(evidence, note=f"{evidence.note}; {note}" if evidence.note else note)


# -- hooks ------------------------------------------------------------------------


@hookimpl
def register_classifiers(register, monitor: Monitor) -> None:
    # Not installed is the usual case and says nothing by itself: only a watchlist
    # that asks for semantic scoring is warned about (startup, check_config).
    if missing_requirements():
        return
    register(NAME, SemanticClassifier(monitor))


@hookimpl
def startup(monitor: Monitor) -> None:
    if NAME in monitor.classifiers:
        problems: list[PluginConfigError] = []
        plugin_settings(monitor, problems)
        if problems:
            raise problems[0]
        return
    for watchlist in monitor.watchlists:
        if wants_semantic(watchlist):
            log.warning("%s: watchlists.%s.options.semantic: semantic scoring is asked for but the semantic extra "
                        "is not installed (%s): the watchlist runs without it, %s; %s", monitor.config.where,
                        watchlist.name, ", ".join(missing_requirements()), runs_without(monitor, watchlist),
                        INSTALL_HINT)


@hookimpl
def check_config(monitor: Monitor) -> list[str]:
    if NAME in monitor.classifiers:
        return []  # the classifier's validate() checks the options
    missing = ", ".join(missing_requirements()) or "the semantic classifier"
    return [
        ConfigError(f"semantic scoring is asked for but the semantic extra is not installed ({missing}), so this "
                    f"watchlist would run without it, {runs_without(monitor, w)}; {INSTALL_HINT}",
                    file=monitor.config.where, key=f"watchlists.{w.name}.options.semantic")
        for w in monitor.watchlists if wants_semantic(w)
    ]


@hookimpl
def shutdown(monitor: Monitor) -> None:
    monitor.extensions.pop(NAME, None)  # frees the model


def train_semantic(config_path: str | None, db_path: str | None, watchlist: str, labels: Path | None,
                   forget: bool) -> None:
    """``monitor train WATCHLIST --semantic --examples LABELS``: teach WATCHLIST's semantic scoring.

    Each row: {"id", "title", "summary" or "text", "labels": [...]}; a row is
    on topic when WATCHLIST is among its labels. The model is stored in the
    database and used by the semantic classifier from then on (train again to
    replace it, or ``--forget`` it). The command itself is the ``learned``
    plugin's: one ``monitor train`` for both kinds of model.
    """
    if forget:
        _forget(load_cli_config(config_path, db_path), watchlist)
        return
    if labels is None:
        raise click.UsageError("give the file to train from with --examples (or --forget)")
    missing = missing_requirements()
    if missing:
        raise click.ClickException(f"monitor train needs the semantic extra (not installed: {', '.join(missing)}); {INSTALL_HINT}")
    config = load_cli_config(config_path, db_path)
    if watchlist not in config.watchlists:
        raise click.BadParameter(f"no watchlist named {watchlist!r} (configured: {', '.join(config.watchlists)})",
                                 param_hint="WATCHLIST")
    try:
        rows = read_labelled(labels)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if any(row_labels is None for _, row_labels in rows):
        raise click.ClickException(f"{labels}: every row needs \"labels\" (a list, empty for off-topic stories)")
    texts = [text for text, _ in rows]
    targets = [watchlist in (row_labels or ()) for _, row_labels in rows]
    target = config.watchlists[watchlist]
    if target.description:  # the description is one more on-topic example
        texts.append(target.description)
        targets.append(True)
    positives = sum(targets)
    if positives == 0 or positives == len(targets):
        raise click.ClickException(f"{labels}: needs on-topic and off-topic rows for {watchlist} "
                                   f"({positives} of {len(targets)} are on topic)")
    with open_cli_monitor(config, require_env=False) as monitor:  # training sends nothing
        click.echo(f"Embedding {len(texts)} stories...", err=True)
        embeddings = state_for(monitor).embedder.embed(texts)
        model = train_logistic(embeddings, targets)
        predicted = model.probabilities(embeddings) >= model.cutoff
        tp = int(sum(p and t for p, t in zip(predicted, targets)))
        fp = int(sum(p and not t for p, t in zip(predicted, targets)))
        fn = int(sum(t and not p for p, t in zip(predicted, targets)))
        store_model(monitor, watchlist, model, positives, len(targets) - positives, str(labels))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    click.echo(f"Trained {watchlist} on {positives} on-topic and {len(targets) - positives} off-topic stories "
               f"(F1 on those stories {f1:.2f}); stored in {config.database}.")
    if not wants_semantic(target):
        click.echo(f"Note: watchlist {watchlist} does not use semantic scoring yet: add "
                   f"options.semantic = {{mode = \"rerank\"}} to its table in {config.where}.")


def _forget(config: Any, watchlist: str) -> None:
    with open_cli_monitor(config, start=False, require_env=False) as monitor:
        deleted = monitor.store.forget_model("semantic", watchlist)
    click.echo(f"Forgot the trained model of {watchlist}." if deleted else f"{watchlist} has no trained model.")
