"""The ``learned`` classifier: a watchlist decided by a trained model instead of its query alone.

A watchlist uses a model when ``monitor train`` stored one for it in the
database, or when its table says ``options.model = "shipped"`` and the
package ships a model of that name (the three default watchlists do). The
model reads the story's words and the query's score (see
:mod:`monitor_plugins.learned_model`) and takes the watchlist over from the
``keywords`` classifier. A model that is missing, corrupt or from an
incompatible version is named in one log line and the watchlist runs on its
query, as it would without this plugin.

The ``monitor train`` command lives here: ``--examples FILE`` trains from
labelled stories, no file retrains from the current model and the stored
feedback, ``--semantic`` trains the semantic plugin's model instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from monitor import (
    Evidence,
    InputError,
    KeywordMatcher,
    Match,
    Monitor,
    StorageError,
    Story,
    Watchlist,
    config_options,
    handle_errors,
    hookimpl,
    is_postgres_url,
    load_cli_config,
    open_cli_monitor,
    open_store,
    read_stories,
)
from monitor_plugins.learned_model import (
    MIN_PER_CLASS,
    Example,
    Featurizer,
    Figures,
    LearnedModel,
    ModelLoadError,
    adjust,
    cross_validate,
    docs_of,
    dump_model,
    load_model,
    languages_of,
    near_duplicate_groups,
    train,
)

NAME = "learned"
KEYWORDS = "keywords"
SHIPPED = "shipped"
MODELS_DIR = Path(__file__).resolve().parent / "models"
# A verdict a reader gave counts for this many ordinary examples.
FEEDBACK_WEIGHT = 3.0
# Below this many verdicts a held-out comparison says nothing: they are taken as given.
MIN_HELD_OUT_FEEDBACK = 10
# From this many examples on, `monitor train` reads words only unless told otherwise: with
# thousands of stories the words say as much (Reuters ModApte, docs/learned.md), and
# character n-grams cost about five times the words' time, in training and in every batch.
# Below it, word forms (abducted, abductee) are worth having, and cheap to train on.
CHAR_NGRAMS_BELOW = 2000

log = logging.getLogger("monitor.learned")


def shipped_model_path(name: str) -> Path:
    """Where the package keeps the shipped model ``name``."""
    return MODELS_DIR / f"{name}.npz"


def wants_shipped(watchlist: Watchlist) -> bool:
    """Whether the watchlist's table asks for the shipped model of its name (``options.model = "shipped"``)."""
    return watchlist.options.get("model") == SHIPPED


def model_disabled(watchlist: Watchlist) -> bool:
    """``options.model = false`` keeps a watchlist on its query even when a trained model is stored."""
    return watchlist.options.get("model") is False


@dataclass(frozen=True)
class Loaded:
    """A watchlist's model and where it came from (``database`` or the shipped file's path)."""

    model: LearnedModel
    origin: str


class LearnedClassifier:
    """Decides every watchlist that has a usable model. Picklable: models are rebuilt lazily per process."""

    def __init__(self, db: str, where: str = "configuration", secrets: Any = None):
        self.db = db  # the database's location (a file path or a PostgreSQL URL)
        self.secrets = secrets
        self.where = where
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Loaded | None] = {}  # (watchlist, version) -> model or unusable
        self._monitor: Monitor | None = None
        # One automaton for every model's query, rebuilt when the set of queries changes.
        self._matcher: KeywordMatcher | None = None
        self._matcher_key: tuple[tuple[str, str], ...] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_monitor"] = None
        state["_matcher"], state["_matcher_key"] = None, None  # an automaton: rebuilt in each process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def bind(self, monitor: Monitor) -> None:
        self._monitor = monitor

    def models(self, watchlists: Sequence[Watchlist]) -> dict[str, Loaded]:
        """The usable model of each watchlist that has one: stored in the database first, else shipped."""
        stored = self._stored_versions()
        out = {}
        for watchlist in watchlists:
            if model_disabled(watchlist):
                continue
            if watchlist.name in stored:
                key = (watchlist.name, f"database:{stored[watchlist.name]}")
            elif wants_shipped(watchlist):
                key = (watchlist.name, f"shipped:{shipped_model_path(watchlist.name)}")
            else:
                continue
            with self._lock:
                if key not in self._cache:
                    self._cache[key] = self._load(watchlist.name, key[1])
                loaded = self._cache[key]
            if loaded is not None:
                out[watchlist.name] = loaded
        return out

    def _stored_versions(self) -> dict[str, str]:
        return self._read(lambda store: store.model_versions("learned"), {})

    def _read(self, what: Callable[[Any], Any], empty: Any) -> Any:
        """``what(store)`` on the monitor's store, or (unpickled in another process) on one opened read-only."""
        if self._monitor is not None:
            return what(self._monitor.store)
        if self.db == ":memory:" or not (is_postgres_url(self.db) or Path(self.db).exists()):
            return empty
        try:
            with closing(open_store(self.db, self.secrets, read_only=True, quick_check=False)) as store:
                return what(store)
        except StorageError:
            return empty  # not migrated yet, or unreadable: no stored models

    def _load(self, watchlist: str, version: str) -> Loaded | None:
        where = "the model stored in the database" if version.startswith("database:") else version.split(":", 1)[1]
        try:
            if version.startswith("database:"):
                row = self._read(lambda store: store.model("learned", watchlist), None)
                if row is None:
                    raise ModelLoadError("it was deleted")
                data = row["model"]
            else:
                try:
                    data = Path(where).read_bytes()
                except OSError as exc:
                    raise ModelLoadError(f"cannot read it ({exc.strerror or exc})") from None
            model = load_model(data)
        except ModelLoadError as exc:
            log.warning("watchlist %s: %s is unusable: %s; the watchlist runs on its query", watchlist, where, exc)
            return None
        return Loaded(model, "trained" if version.startswith("database:") else SHIPPED)

    def replaces(self, watchlist: Watchlist) -> tuple[str, ...]:
        # The model folds the query's score into its own features.
        return (KEYWORDS,) if watchlist.name in self.models([watchlist]) else ()

    def classify(self, stories: Sequence[Story], watchlists: Sequence[Watchlist]) -> Iterable[Match]:
        thresholds = {w.name: w.threshold for w in watchlists}
        docs = [(story.title, story.text) for story in stories]
        models = self.models(watchlists)
        if not models:
            return
        # Hashed n-grams are the same for every model that reads the same kind of them, and
        # one matcher scans a story for every model's query: each is done once per batch.
        shared: dict[bool, Any] = {}  # reads character n-grams -> the batch's log counts
        queries = self._query_scores({name: loaded.model.query for name, loaded in models.items()}, docs,
                                     [story.language for story in stories])
        for name, loaded in models.items():
            model = loaded.model
            chars = model.featurizer.chars
            if chars not in shared:
                shared[chars] = model.featurizer.log_counts(docs)
            for story, (probability, query) in zip(stories, model.predict(docs, shared[chars], queries[name])):
                # The score is the probability over the model's cutoff: a threshold of 1.0 is
                # the cutoff that was best on held-out folds; raise it to be stricter.
                score = probability / model.cutoff
                if score >= thresholds[name]:
                    yield Match(story_id=story.id, watchlist=name, score=round(score, 4), classifier=NAME,
                                evidence=_evidence(model, loaded.origin, story, probability, query))

    def _query_scores(self, queries: dict[str, str], docs: Sequence[tuple[str, str]], languages: Sequence[str | None]
                      ) -> dict[str, list[tuple[float, Any]]]:
        """Each model's query score and evidence per story ((0, None) where it did not hit)."""
        key = tuple(sorted((name, query) for name, query in queries.items() if query))
        with self._lock:
            if key != self._matcher_key:
                self._matcher = KeywordMatcher(dict(key)) if key else None
                self._matcher_key = key
            matcher = self._matcher
        out: dict[str, list[tuple[float, Any]]] = {name: [] for name in queries}
        for (title, text), language in zip(docs, languages):
            # The same words as the keyword classifier sees: a story's own letters stay unfolded.
            found = matcher.match(title, text, language=language) if matcher is not None else {}
            for name, scores in out.items():
                scores.append(found.get(name) or (0.0, None))
        return out

    def validate(self, watchlists: Sequence[Watchlist]) -> list[str]:
        """A watchlist asking for a shipped model the package does not have."""
        return [f"{self.where}: watchlists.{w.name}.options.model: no shipped model named {w.name!r} "
                f"(shipped: {', '.join(shipped_names()) or 'none'})"
                for w in watchlists if wants_shipped(w) and not shipped_model_path(w.name).exists()]


def shipped_names() -> list[str]:
    """The names of the models the package ships."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.npz"))


def _evidence(model: LearnedModel, origin: str, story: Story, probability: float, query: tuple[float, Any]) -> Evidence:
    words = model.top_words(story.title, story.text)
    note = (f"{origin} model: p={probability:.2f} (cutoff {model.cutoff:.2f}); "
            f"query score {query[0]:.2f}; weighed most: {', '.join(words) or '-'}")
    found = query[1]
    if isinstance(found, Evidence):
        return Evidence(terms=found.terms, hits=found.hits, snippet=found.snippet, note=note)
    return Evidence(note=note)


@hookimpl
def register_classifiers(register, monitor: Monitor) -> None:
    classifier = LearnedClassifier(monitor.config.db, monitor.config.where, monitor.config.secrets)
    classifier.bind(monitor)
    register(NAME, classifier)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(train_command)


# -- monitor train -----------------------------------------------------------------


def examples_from_file(path: Path, watchlist: str) -> list[Example]:
    """Labelled stories from JSON lines; a row is on topic when its ``labels`` contain ``watchlist``.

    :raises click.ClickException: a row is unusable (file and line named).
    """
    out = []
    with path.open(encoding="utf-8") as lines:
        for item in read_stories(lines, source=str(path)):
            if isinstance(item, InputError):
                raise click.ClickException(f"{path}: {item}")
            if item.labels is None:
                raise click.ClickException(f"{path}: line {item.line}: no \"labels\" list (empty for off-topic)")
            out.append(Example(item.story.title, item.story.text, watchlist in item.labels, source=str(path),
                               language=item.story.language))
    return out


def feedback_examples(monitor: Monitor, watchlist: str) -> list[Example]:
    """The stored verdicts on ``watchlist`` as training examples (each in its story's language)."""
    return [Example(f.title, f.text, f.verdict in ("right", "missed"), FEEDBACK_WEIGHT, source="feedback",
                    language=f.language) for f in monitor.store.feedback(watchlist)]


def base_model(monitor: Monitor, watchlist: Watchlist) -> LearnedModel | None:
    """The model feedback adjusts: the one in the database, else the shipped one (``None`` if neither is usable)."""
    row = monitor.store.learned_models().get(watchlist.name)
    try:
        if row is not None:
            return load_model(row["model"])
        if shipped_model_path(watchlist.name).exists() and not model_disabled(watchlist):
            return load_model(shipped_model_path(watchlist.name).read_bytes())
    except ModelLoadError as exc:
        raise click.ClickException(f"watchlist {watchlist.name}: its current model is unusable ({exc}); "
                                   "train it from a file with --examples") from None
    return None


def agreement(model: LearnedModel, examples: Sequence[Example]) -> Figures:
    """How the model's decisions compare with ``examples``' labels."""
    figures = Figures()
    for example, (p, _) in zip(examples, model.predict(docs_of(examples), languages=languages_of(examples))):
        figures.add(p >= model.cutoff, example.positive)
    return figures


def held_out_feedback(model: LearnedModel, feedback: Sequence[Example], folds: int) -> tuple[Figures, Figures]:
    """Figures on feedback verdicts held out of the adjustment, before and after adjusting on the rest."""
    before, after = Figures(), Figures()
    k = max(2, min(folds, len(feedback)))
    for fold in range(k):
        held = [e for i, e in enumerate(feedback) if i % k == fold]
        rest = [e for i, e in enumerate(feedback) if i % k != fold]
        adjusted = adjust(model, rest)
        for figures, judge in ((before, adjust(model, [])), (after, adjusted)):
            got = agreement(judge, held)
            figures.tp, figures.fp, figures.fn = figures.tp + got.tp, figures.fp + got.fp, figures.fn + got.fn
    return before, after


@click.command(name="train")
@config_options()
@click.argument("watchlist")
@click.option("--examples", "examples_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON lines {\"title\", \"summary\" or \"text\", \"labels\": [...], \"language\"?} to train from.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2), help="Cross-validation folds.")
@click.option("--force", is_flag=True, help="Store the new model even if it is worse on held-out folds.")
@click.option("--char-ngrams/--no-char-ngrams", default=None,
              help="Read character 3-5-grams of the lead as well as words (word forms; about five times slower "
                   f"to train and to classify). Default: only below {CHAR_NGRAMS_BELOW:,} examples.")
@click.option("--forget", is_flag=True, help="Delete WATCHLIST's trained model (back to the shipped one or its query).")
@click.option("--semantic", is_flag=True, help="Train the semantic plugin's embedding model instead (semantic extra).")
@handle_errors
def train_command(config_path: str | None, db_path: str | None, watchlist: str, examples_path: Path | None,
                  folds: int, force: bool, char_ngrams: bool | None, forget: bool, semantic: bool) -> None:
    """Train WATCHLIST's model: from labelled stories (--examples FILE), or from stored feedback.

    With --examples, the model learns from FILE (a row is on topic when its
    "labels" contain WATCHLIST) plus the stored feedback, prints k-fold
    cross-validated precision, recall and F1, and replaces the stored model
    only if it is not worse on held-out folds (or with --force). Without a
    file, the current model (stored, else shipped) is adjusted to the stored
    feedback (`monitor feedback`). The model is stored in the database; the
    daemon and `monitor classify` use it from then on.
    """
    if semantic:
        from monitor_plugins.semantic import train_semantic  # the semantic plugin keeps its own models

        train_semantic(config_path, db_path, watchlist, examples_path, forget)
        return
    config = load_cli_config(config_path, db_path)
    if forget:
        with open_cli_monitor(config, start=False) as monitor:
            gone = monitor.store.forget_learned_model(watchlist)
        click.echo(f"Forgot the trained model of {watchlist}." if gone else f"{watchlist} has no trained model.")
        return
    if watchlist not in config.watchlists:
        raise click.BadParameter(f"no watchlist named {watchlist!r} (configured: {', '.join(config.watchlists)})",
                                 param_hint="WATCHLIST")
    target = config.watchlists[watchlist]
    with open_cli_monitor(config, start=False) as monitor:
        feedback = feedback_examples(monitor, watchlist)
        if examples_path is None:
            _retrain_from_feedback(monitor, target, feedback, folds, force)
        else:
            _train_from_examples(monitor, target, examples_from_file(examples_path, watchlist) + feedback,
                                 str(examples_path), folds, force, char_ngrams)


def _train_from_examples(monitor: Monitor, target: Watchlist, examples: list[Example], origin: str, folds: int,
                         force: bool, chars: bool | None) -> None:
    positives = sum(e.positive for e in examples)
    if chars is None:
        chars = len(examples) < CHAR_NGRAMS_BELOW
    if min(positives, len(examples) - positives) < MIN_PER_CLASS + 1:
        raise click.ClickException(f"{origin}: needs at least {MIN_PER_CLASS + 1} on-topic and "
                                   f"{MIN_PER_CLASS + 1} off-topic rows for {target.name} "
                                   f"({positives} of {len(examples)} are on topic)")
    # A copy of a story (wire copy, a correction, a verdict on a story that is also in the file) on
    # each side of a fold boundary would let the model be judged on a story it has seen: the
    # figures, and the gate below that trusts them, would be inflated. Copies stay in one fold.
    groups = near_duplicate_groups(examples)
    copies = len(examples) - len(set(groups))
    distinct = [len({g for g, e in zip(groups, examples) if e.positive == side}) for side in (True, False)]
    if min(distinct) < MIN_PER_CLASS + 1:
        raise click.ClickException(f"{origin}: needs at least {MIN_PER_CLASS + 1} different on-topic and "
                                   f"{MIN_PER_CLASS + 1} different off-topic stories for {target.name} "
                                   f"({distinct[0]} and {distinct[1]} once near-duplicates count once)")
    click.echo(f"Cross-validating on {len(examples)} stories ({positives} on topic), {folds} folds"
               + (f", {copies} near-duplicates kept in their original's fold" if copies else "") + "...", err=True)
    # The features are counted once, for the folds and for the final model.
    raw = Featurizer(target.query, chars=chars).examples_raw(examples)
    figures = cross_validate(target.name, target.query, examples, folds=folds, raw=raw, chars=chars, groups=groups)
    click.echo(f"{target.name}: {folds}-fold cross-validated {figures.describe()}")
    previous = monitor.store.learned_models().get(target.name)
    if previous is not None and previous["cv_f1"] is not None and figures.f1 < previous["cv_f1"] and not force:
        raise click.ClickException(
            f"not stored: the new model's cross-validated F1 {figures.f1:.3f} is below the stored model's "
            f"{previous['cv_f1']:.3f} (trained {previous['trained_at']} from {previous['origin']}); "
            "use --force to replace it anyway")
    model = train(target.name, target.query, examples, folds=min(3, folds), raw=raw, chars=chars, groups=groups)
    monitor.store.save_learned_model(
        target.name, dump_model(model), format=1, examples=len(examples), positives=positives,
        feedback=sum(e.source == "feedback" for e in examples), cv_precision=figures.precision,
        cv_recall=figures.recall, cv_f1=figures.f1, origin=f"examples: {origin}")
    click.echo(f"Stored the {target.name} model in {monitor.config.database} (cutoff {model.cutoff:.2f}).")


def _retrain_from_feedback(monitor: Monitor, target: Watchlist, feedback: list[Example], folds: int,
                           force: bool) -> None:
    base = base_model(monitor, target)
    if base is None:
        raise click.ClickException(f"watchlist {target.name} has no model to retrain: give labelled stories "
                                   "with --examples FILE")
    if not feedback:
        raise click.ClickException(f"no feedback stored for {target.name} (see `monitor feedback`)")
    if len(feedback) < MIN_HELD_OUT_FEEDBACK:
        click.echo(f"{target.name}: {len(feedback)} verdicts, too few to hold some out "
                   f"(the check needs {MIN_HELD_OUT_FEEDBACK}); every verdict is taken as given")
    else:
        before, after = held_out_feedback(base, feedback, folds)
        click.echo(f"{target.name}: on held-out feedback, before {before.describe()}; after {after.describe()}")
        if after.f1 < before.f1 and not force:
            raise click.ClickException("not stored: the retrained model is worse on held-out feedback than the "
                                       "current one; use --force to store it anyway")
    model = adjust(base, feedback)
    fitted = agreement(model, feedback)
    previous = monitor.store.learned_models().get(target.name) or {}
    monitor.store.save_learned_model(
        target.name, dump_model(model), format=1, examples=base.meta.get("examples"),
        positives=base.meta.get("positives"), feedback=len(feedback), cv_precision=previous.get("cv_precision"),
        cv_recall=previous.get("cv_recall"), cv_f1=previous.get("cv_f1"),
        origin=f"feedback ({len(feedback)} verdicts) on the {'stored' if previous else SHIPPED} model")
    click.echo(f"Retrained {target.name} from {len(feedback)} feedback verdicts (it now agrees with "
               f"{fitted.tp + (len(feedback) - fitted.tp - fitted.fp - fitted.fn)} of them); stored in "
               f"{monitor.config.database}.")
