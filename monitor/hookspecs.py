"""The contract between news-monitor and its plugins.

Every hook is a function here with a docstring saying when it is called,
what it receives and what its return value means. Implementations may accept
any subset of a hook's arguments (pluggy's opt-in arguments).

pluggy stops a hook call at the first exception, so anything that must keep
working while one plugin fails (classifiers, alert channels) is not called as
a hook: plugins hand objects to the core through the ``register_*`` hooks and
the core calls each one on its own, recording each failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import click

    from .app import Monitor
    from .limits import EntryLimits
    from .models import Alert, EntryData, Event, FetchResult, FetchState, RenderedAlert, Source, Story

PROJECT = "news_monitor"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- lifecycle ---------------------------------------------------------------


@hookspec
def startup(monitor: Monitor) -> None:
    """Called once after configuration is loaded, the database is migrated and
    every plugin is registered, before the first poll.

    Validate your section of the configuration here (``monitor.plugin_config(name)``)
    and raise :class:`monitor.PluginConfigError` to refuse to start.

    :param monitor: the running :class:`monitor.Monitor`.
    :returns: nothing.
    """


@hookspec
def shutdown(monitor: Monitor) -> None:
    """Called once at a graceful stop, after the scheduler has stopped and the
    outbox has been flushed. Close clients and files here.

    :param monitor: the running :class:`monitor.Monitor`.
    :returns: nothing.
    """


@hookspec
def check_config(monitor: Monitor) -> list[str] | None:
    """Called by ``monitor check`` (:meth:`Monitor.check`), after every
    classifier's ``validate``, to report problems only a plugin can see, for
    example a watchlist asking for a feature whose optional dependencies are
    not installed.

    :param monitor: the opened :class:`monitor.Monitor`.
    :returns: a list of problems or ``None``. Each problem is best a
        :class:`monitor.ConfigError` with ``file`` and ``key`` (``monitor check
        --format json`` reports those fields); a plain string naming the file
        and key is accepted too.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Called when the command line is built; add click commands to ``cli``.

    :param cli: the ``monitor`` click group.
    :returns: nothing.
    """


# --- registries (each registered object is called in isolation) -------------


@hookspec
def register_classifiers(register: Callable[[str, Any], None], monitor: Monitor) -> None:
    """Called at start-up to collect classifiers.

    Call ``register(name, classifier)`` once per classifier. A classifier has a
    method ``classify(stories, watchlists) -> Iterable[Match]`` which receives
    a batch of :class:`Story` and every enabled :class:`Watchlist` and yields a
    :class:`Match` for each story/watchlist pair it considers on topic, with a
    score and the evidence. The core calls each classifier on its own; one that
    raises is logged and recorded, and the others' matches still count.
    Matches below the watchlist's ``threshold`` are dropped by the core.

    Optional methods: ``validate(watchlists) -> list[str]`` reports
    configuration problems to ``monitor check``; ``replaces(watchlist) ->
    Iterable[str]`` names other classifiers whose matches for that watchlist
    are ignored whenever this one ran on the batch without failing (for a
    classifier that folds their score into its own). Classifiers with
    ``replaces`` run first, and the others are then not asked about the
    watchlists taken from them.

    :param register: ``register(name: str, classifier) -> None``.
    :param monitor: the running :class:`monitor.Monitor` (configuration, database).
    :returns: nothing.

    Built-in: ``keywords`` registers the query-language classifier;
    ``learned`` the trained-model one (shipped and ``monitor train`` models,
    see docs/learned.md); ``semantic`` (with the ``semantic`` extra) the
    sentence-embedding one. A classifier object must pickle (models are
    rebuilt per process).
    """


@hookspec
def register_channel_types(register: Callable[[str, Any], None], monitor: Monitor) -> None:
    """Called at start-up to collect alert channel types.

    Call ``register(type_name, factory)``. For every ``[channels.NAME]`` table
    whose ``type`` is ``type_name`` the core calls
    ``factory(name: str, options: dict, monitor) -> channel``. The factory
    raises :class:`monitor.ConfigError` (with ``key``) for bad options. A
    channel has ``send(rendered: RenderedAlert, alert: Alert) -> None`` and
    raises :class:`monitor.DeliveryError` when delivery fails; the outbox
    retries transient failures with backoff and marks permanent ones failed.
    A channel may also have ``send_digest(rendered: RenderedAlert, alerts:
    Sequence[Alert]) -> None`` to send many alerts as one message (channels
    with a ``digest`` setting); without it the core calls ``send`` with the
    plain digest rendering and the first alert. ``close()``, if present, is
    called at shutdown. The core reads ``type``, ``digest`` and ``rate_limit``
    itself: the factory never sees them. :func:`monitor.read_channel_options`
    checks options against a list of :class:`monitor.ChannelOption`, and
    :func:`monitor.post_alert` maps HTTP outcomes to ``DeliveryError``.

    :param register: ``register(type_name: str, factory) -> None``.
    :param monitor: the running :class:`monitor.Monitor`.
    :returns: nothing.

    Built-in: ``console_alerts`` (``console``), ``email_alerts`` (``email``),
    ``slack_alerts`` (``slack``), ``webhook_alerts`` (``webhook``).
    """


# --- the pipeline: fetch -> parse -> normalise -> prepare -> classify -> cluster -> store


@hookspec(firstresult=True)
def fetch_source(source: Source, state: FetchState, monitor: Monitor) -> FetchResult | None:
    """Called when a source is due, to read its bytes.

    Send conditional requests using ``state`` where the transport supports
    them. Raise :class:`monitor.FetchError` for transport failures (the core
    records them on the source and backs off); never let other exceptions out.

    Stops at first non-None result.

    :param source: the :class:`Source` to read.
    :param state: what was remembered from the previous poll.
    :param monitor: the running :class:`monitor.Monitor`.
    :returns: a :class:`FetchResult`, or ``None`` for "not my kind of source".

    Built-in: ``http_source`` (``http``/``https``), ``file_source``
    (``file:`` URLs and paths to files), ``directory_source`` (``kind = "directory"``).
    """


@hookspec
def source_url_schemes(kind: str) -> list[str] | None:
    """Called when the monitor opens (and by ``monitor check``), to learn which
    addresses your ``fetch_source`` reads for sources of ``kind``.

    A source whose URL has a scheme (``scheme://...`` or ``file:``) that no
    loaded plugin lists for its kind is a configuration error naming the
    source's ``url`` key, before any poll. Plain paths are not URLs and are
    not checked here.

    :param kind: a source's ``kind`` (``"feed"``, ``"directory"``...).
    :returns: the schemes, lower-case and without ``://`` (``["http", "https"]``),
        or ``None`` when you read no sources of this kind.

    Built-in: ``http_source`` (``http``, ``https``), ``file_source`` and
    ``directory_source`` (``file``).
    """


@hookspec(firstresult=True)
def parse_feed(source: Source, fetched: FetchResult, limits: EntryLimits) -> list[EntryData] | None:
    """Called with fetched bytes, to turn them into entries.

    Raise :class:`monitor.ParseError` when the bytes are meant for you but are
    unusable (the source's status records the reason).

    Stops at first non-None result.

    :param source: the :class:`Source` the bytes came from.
    :param fetched: the :class:`FetchResult`; look at ``media_type`` and ``content``.
    :param limits: the :class:`EntryLimits` of this poll (``fetch.max_entries``,
        ``fetch.max_entry_bytes``). The core keeps only the newest
        ``max_entries`` of what you return and cuts longer fields, whatever
        you do; a parser that can stop early (see :class:`monitor.NewestEntries`)
        saves the memory of building what would be dropped. Say what you
        dropped in the notes.
    :returns: a list of :class:`EntryData`, or ``None`` for "not my format".
        Return a :class:`ParsedEntries` (a list with ``notes``) to tell the
        user about damage you read around (``monitor sources`` shows the notes).

    Built-in: ``json_feed`` (JSON Feed), ``feed_parser`` (RSS and Atom:
    well-formed RSS 2.0, RSS 1.0 and Atom 1.0 on a fast path with feedparser's
    exact entries, everything else via feedparser), ``directory_source`` (its
    own plain-text bundle).
    """


@hookspec(firstresult=True)
def story_key(story: Story, source: Source) -> str | None:
    """Called for every new story, to compute the key it is stored and deduplicated under.

    Stops at first non-None result.

    :param story: the normalised :class:`Story` (its ``id`` is still empty).
    :param source: where it came from.
    :returns: a string key, or ``None`` to leave it to the next implementation.

    Built-in (``trylast``): the feed GUID scoped to the source, else the
    canonicalised link, else a hash of the title and text.
    """


@hookspec(firstresult=True)
def skip_story(story: Story, source: Source) -> bool | None:
    """Called for every story before classification, to filter it out.

    Stops at first non-None result.

    :param story: the normalised :class:`Story`.
    :param source: where it came from.
    :returns: ``True`` to drop the story (it is not stored), ``False`` to keep
        it regardless of later plugins, ``None`` for no opinion.
    """


@hookspec
def prepare_story(story: Story, source: Source, monitor: Monitor) -> dict[str, Any] | None:
    """Called for every story before classification, to enrich it.

    :param story: the normalised :class:`Story`.
    :param source: where it came from.
    :param monitor: the running :class:`monitor.Monitor`.
    :returns: a dict of field updates (for example ``{"language": "en"}``),
        applied in call order, or ``None`` to leave the story as it is.
    """


# --- alerts --------------------------------------------------------------------


@hookspec(firstresult=True)
def render_alert(alert: Alert, channel_type: str, monitor: Monitor) -> RenderedAlert | None:
    """Called before an alert is handed to its channel, to render it.

    Stops at first non-None result.

    :param alert: the :class:`Alert` (match, story, watchlist, channel name).
    :param channel_type: the ``type`` of the channel it goes to (``"console"``, ``"email"``...).
    :param monitor: the running :class:`monitor.Monitor`.
    :returns: a :class:`RenderedAlert`, or ``None`` to leave it to the next implementation.

    When no implementation answers, the core renders plain text with
    :func:`monitor.render_plain`.
    """


# --- observation -------------------------------------------------------------


@hookspec
def track_event(event: Event, monitor: Monitor) -> None:
    """Called when something noteworthy happens: a source updated or failed, a
    match found, a classifier failed, an alert sent or failed. For metrics and
    audit logs; it cannot change the flow, and an exception here is logged and
    ignored.

    :param event: an instance of a :class:`monitor.models.Event` subclass.
    :param monitor: the running :class:`monitor.Monitor`.
    :returns: nothing.
    """
