"""The :class:`Monitor`: configuration, database, plugins and registries in one object.

It is what every hook may ask for as ``monitor``. Build one with
:meth:`Monitor.open`; close it with :meth:`Monitor.close` (or use it as a
context manager).
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pluggy

from . import classify as classify_mod
from . import outbox, pipeline
from .cluster_stage import StoryClusters, settings_from_config
from .config import Config, channel_options
from .errors import ConfigError, ConfigErrors, InvalidPluginError, PluginError
from .limits import EntryLimits
from .models import Event, Match, Source, Story, UpdateResult, Watchlist
from .plugins import load_plugins, make_plugin_manager, plugin_infos, unknown_plugin_names
from .sender_lock import SenderLock
from .storage import Storage, open_store
from .timeutil import format_duration, utcnow
from .wording import plural
from .workers import WorkerPool

log = logging.getLogger("monitor")


def url_scheme(url: str) -> str | None:
    """The lower-case scheme of a URL (``scheme://...`` or ``file:...``), ``None`` for a plain path."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?", url)
    if not m or not (m.group(2) or m.group(1).lower() == "file"):
        return None
    return m.group(1).lower()


def unread_scheme(pm: pluggy.PluginManager, url: str, kind: str) -> str | None:
    """Why no plugin of ``pm`` would read ``url`` for a source of ``kind`` (see the
    ``source_url_schemes`` hook), or ``None`` when one would or ``url`` is a plain path."""
    scheme = url_scheme(url)
    if scheme is None:
        return None
    known = {s.lower() for schemes in pm.hook.source_url_schemes(kind=kind) for s in (schemes or ())}
    if scheme in known:
        return None
    close = difflib.get_close_matches(scheme, sorted(known), n=1)
    return (f"no loaded plugin reads {scheme[:20]}: URLs for sources of kind {kind!r} (they read: "
            f"{', '.join(sorted(known)) or 'none'}){f'; did you mean {close[0]}?' if close else ''}")


def disable_warnings(config: Config) -> list[str]:
    """One sentence per name in ``monitor.disable_plugins`` that matches no installed plugin."""
    return [
        f"{config.where}: monitor.disable_plugins: no installed plugin is named {name!r}; nothing is disabled "
        "by it (fine for an optional plugin that is not installed here, else check the spelling)"
        for name in unknown_plugin_names(config.disable_plugins, config.plugins_dir)
    ]


class Monitor:
    """A configured monitor with its database and plugins."""

    def __init__(self, config: Config, pm: pluggy.PluginManager, store: Storage, origins: dict[str, str]):
        self.config = config
        self.pm = pm
        self.store = store
        self.plugin_origins = origins
        self.classifiers: dict[str, Any] = {}
        self.channel_types: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        # Channels left unbuilt because a ``${VAR}`` of theirs is not set (only
        # when opened with ``require_env=False``): their alerts wait in the outbox.
        self.unavailable_channels: dict[str, list[ConfigError]] = {}
        # Per-plugin resources (HTTP clients, models), keyed by plugin name:
        # plugins keep what they open here rather than in module globals.
        self.extensions: dict[str, Any] = {}
        # Configuration problems found while opening with ``strict=False``.
        self.problems: list[ConfigError] = []
        # The cluster stage's index of the window, read back from the database on first use.
        self.clusters = StoryClusters(store, settings_from_config(config.clustering))
        self._dispatch_lock = threading.Lock()
        self._workers: WorkerPool | None = None
        self._workers_lock = threading.Lock()
        # Worker processes rebuild the plugins from the configuration: a plugin manager
        # handed in by the caller (tests, embedding code) cannot cross, so it reads in-process.
        self.own_plugins = False
        # Across processes: on SQLite only the sender lock's holder delivers (the daemon holds it
        # for its life); on PostgreSQL each channel has a sender at a time, the holder of its lease.
        self.sender_lock: Any = None
        self.channel_dispatcher: Any = None
        if config.is_postgres:
            from .channel_dispatch import ChannelDispatcher  # psycopg: only with a PostgreSQL database
            from .leases import new_worker_id

            self.channel_dispatcher = ChannelDispatcher(self, store.connection, new_worker_id())
        elif str(config.db_path) != ":memory:":
            self.sender_lock = SenderLock(config.db_path)
        self._closed = False
        # Set when the daemon is asked to stop: polls in progress end at their
        # next check instead of running to completion (see monitor.budget).
        self.stopping = threading.Event()

    # -- construction -----------------------------------------------------------

    @classmethod
    def open(
        cls, config: Config, *, pm: pluggy.PluginManager | None = None, start: bool = True, require_env: bool = True,
        strict: bool = True,
    ) -> "Monitor":
        """Load plugins, open and migrate the database, build registries and channels.

        :param pm: a plugin manager to use (tests pass one with extra plugins registered).
        :param start: call the ``startup`` hook.
        :param require_env: every ``${VAR}`` of the channel and plugin tables must be
            set (for what sends alerts). ``False`` builds only the channels whose
            variables are set; a plugin asking for a table with an unset one gets
            :class:`ConfigErrors` from :meth:`plugin_config`.
        :param strict: ``False`` keeps the problems of channels and sources in
            :attr:`problems` instead of raising (``monitor check`` reports them
            with everything else).
        :raises ConfigErrors: channels or plugins refuse the configuration, a
            source's URL scheme is read by no loaded plugin, or
            (``require_env``) a variable is not set.
        :raises InvalidPluginError: a plugin cannot be loaded.
        """
        if require_env:
            # Only what sends needs these; [web]'s are for `monitor serve` and the metrics server.
            unset = config.env_errors("channels") + config.env_errors("plugins")
            if unset:
                raise ConfigErrors(unset)
        origins: dict[str, str] = {}
        own_plugins = pm is None
        if pm is None:
            pm = make_plugin_manager()
            origins = load_plugins(pm, disable=config.disable_plugins, plugins_dir=config.plugins_dir,
                                   redact=config.redact)
        store = open_store(config.db, config.secrets)
        monitor = cls(config, pm, store, origins)
        monitor.own_plugins = own_plugins
        try:
            problems = monitor._build_registries()
            if problems and strict:
                raise ConfigErrors(problems)
            monitor.problems = problems
            store.sync_sources(config.sources.values())
            if start:
                pm.hook.startup(monitor=monitor)
        except BaseException:
            store.close()
            raise
        return monitor

    def register_classifiers(self) -> None:
        """Fill :attr:`classifiers` through the ``register_classifiers`` hook (a worker process does only this)."""
        def register_classifier(name: str, classifier: Any) -> None:
            if name in self.classifiers:
                raise InvalidPluginError(f"two plugins register a classifier named {name!r}")
            self.classifiers[name] = classifier

        self.pm.hook.register_classifiers(register=register_classifier, monitor=self)

    def _build_registries(self) -> list[ConfigError]:
        self.register_classifiers()

        def register_channel_type(name: str, factory: Any) -> None:
            if name in self.channel_types:
                raise InvalidPluginError(f"two plugins register a channel type named {name!r}")
            self.channel_types[name] = factory

        self.pm.hook.register_channel_types(register=register_channel_type, monitor=self)
        errors = []
        for name, options in self.config.channels.items():
            kind = options["type"]
            factory = self.channel_types.get(kind)
            unset = self.config.env_errors(f"channels.{name}")
            if unset and factory is not None:
                self.unavailable_channels[name] = unset
                continue
            if factory is None:
                known = ", ".join(sorted(self.channel_types)) or "none"
                close = difflib.get_close_matches(str(kind), sorted(self.channel_types), n=1)
                errors.append(ConfigError(
                    f"unknown channel type {kind!r} (types from loaded plugins: {known})"
                    + (f"; did you mean {close[0]!r}?" if close else ""),
                    file=self.config.where, key=f"channels.{name}.type",
                ))
                continue
            try:
                self.channels[name] = factory(name, channel_options(options), self)
            except ConfigError as exc:
                exc.file = exc.file or self.config.where
                exc.key = f"channels.{name}.{exc.key}" if exc.key else f"channels.{name}"
                errors.append(exc)
        return errors + self._unreadable_sources()

    def _unreadable_sources(self) -> list[ConfigError]:
        """A problem for each source whose URL scheme no loaded plugin reads (``htp://``, ``feed://``)."""
        return [
            ConfigError(problem, file=self.config.where, key=f"sources.{source.name}.url")
            for source in self.config.sources.values()
            if (problem := unread_scheme(self.pm, source.url, source.kind))
        ]

    def close(self) -> None:
        """Call the ``shutdown`` hook and close the database. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.pm.hook.shutdown(monitor=self)
        finally:
            if self._workers is not None:
                self._workers.close()
            for channel in self.channels.values():
                close = getattr(channel, "close", None)
                if close:
                    close()
            self.store.close()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what plugins ask for ---------------------------------------------------

    def plugin_config(self, name: str) -> Mapping[str, Any]:
        """The ``[plugins.NAME]`` table of the configuration (empty if absent).

        :raises ConfigErrors: a ``${VAR}`` in the table is not set.
        """
        self.config.require_env(f"plugins.{name}")
        return self.config.plugins.get(name, {})

    @property
    def watchlists(self) -> list[Watchlist]:
        """The enabled watchlists."""
        return [w for w in self.config.watchlists.values() if w.enabled]

    @property
    def entry_limits(self) -> EntryLimits:
        """What one poll may read (``fetch.max_entries``, ``fetch.max_entry_bytes``)."""
        fetch = self.config.fetch
        return EntryLimits(int(fetch["max_entries"]), int(fetch["max_entry_bytes"]))

    def plugins(self) -> list:
        """Every loaded plugin with its hooks (see :class:`monitor.plugins.PluginInfo`)."""
        return plugin_infos(self.pm, self.plugin_origins)

    def emit(self, event: Event) -> None:
        """Pass ``event`` to ``track_event``; an observer's failure never stops the flow."""
        try:
            self.pm.hook.track_event(event=event, monitor=self)
        except Exception:
            log.exception("a track_event implementation failed on %s", type(event).__name__)

    # -- the work ---------------------------------------------------------------

    def classify(self, stories: Sequence[Story], watchlists: Sequence[Watchlist] | None = None) -> list[Match]:
        """Run every classifier over ``stories``; matches at or above threshold, best per watchlist."""
        return classify_mod.classify(self, stories, self.watchlists if watchlists is None else watchlists)

    def worker_pool(self) -> WorkerPool | None:
        """The worker processes that read fetched feeds (started on first use), or ``None``
        when feeds are read in the polling threads (``schedule.processes = 0``, an
        in-memory database, or a plugin manager handed to :meth:`open`)."""
        size = int(self.config.schedule["processes"])
        if size <= 0 or not self.own_plugins or str(self.config.db_path) == ":memory:" or self._closed:
            return None
        with self._workers_lock:
            if self._workers is None:
                self._workers = WorkerPool(self.config, size, float(self.config.schedule["process_timeout"]),
                                           self.stopping)
            return None if self._workers.unavailable else self._workers

    def update_source(self, source: Source | str) -> UpdateResult:
        """Poll one source now: fetch, parse, normalise, classify, cluster, store, queue alerts."""
        if isinstance(source, str):
            source = self.config.sources[source]
        return pipeline.update_source(self, source)

    def run_once(self, sources: Iterable[Source] | None = None, *, deliver: bool = True) -> list[UpdateResult]:
        """Poll every enabled source once (``max_workers`` at a time), then deliver every alert that is due,
        as ``monitor once`` does.

        :param deliver: ``False`` leaves delivery to the caller (``monitor once`` reports its counts).
        """
        todo = [s for s in (sources if sources is not None else self.config.sources.values()) if s.enabled]
        workers = max(1, min(int(self.config.schedule["max_workers"]), len(todo) or 1))
        if todo:
            self.worker_pool()  # its processes start while the first feeds are fetched
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
            results = list(pool.map(self.update_source, todo))
        if deliver:
            self.dispatch(until_done=True)
        return results

    def prune(self, *, dry_run: bool = False) -> int:
        """Apply ``retention``: delete stories older than ``max_age`` (see :meth:`~monitor.storage.Storage.prune`),
        forget tombstones older than ``tombstone_max_age`` and give the freed space back to
        the file system. Returns the stories deleted; 0 when retention is off.

        :param dry_run: only count the stories that would be deleted; change nothing.
        """
        retention = self.config.retention
        if not retention.get("max_age"):
            return 0
        now = utcnow()
        matched = retention.get("matched_max_age")
        cutoffs = (now - timedelta(seconds=retention["max_age"]), now - timedelta(seconds=matched) if matched else None)
        if dry_run:
            return self.store.count_prunable(*cutoffs)
        deleted = self.store.prune(*cutoffs)
        expired = 0
        if retention.get("tombstone_max_age"):
            expired = self.store.expire_tombstones(now - timedelta(seconds=retention["tombstone_max_age"]))
        if deleted or expired:
            freed = self.store.reclaim_space()
            log.info("pruned %s first seen more than %s ago, forgot %s; %s", plural(deleted, "story"),
                     format_duration(retention["max_age"]), plural(expired, "pruned id"),
                     f"the database shrank by {freed / 1e6:.1f} MB" if freed is not None else
                     "the file keeps its size until it is converted to auto_vacuum (the m005 migration)")
        return deleted

    def dispatch(self, *, until_done: bool = False) -> outbox.DispatchResult:
        """Deliver the alerts that are due. Runs one dispatcher at a time; a second caller returns at
        once, and so does a process whose database another process delivers from (``held_by`` says who).

        :param until_done: keep going until nothing due is left (``monitor once``, ``monitor alerts
            --retry``), instead of at most one batch per channel (the daemon and fleet workers, which
            come back at once when a batch was full: ``more`` in the result).
        """
        if not self._dispatch_lock.acquire(blocking=False):
            return outbox.DispatchResult()
        try:
            if self.channel_dispatcher is not None:
                return self.channel_dispatcher.dispatch(until_done=until_done)
            lock = self.sender_lock
            if lock is not None and not lock.try_acquire("command"):
                return outbox.DispatchResult(held_by=lock.describe_holder())
            try:
                return outbox.dispatch_due(self, until_done=until_done)
            finally:
                if lock is not None:
                    lock.release()
        finally:
            self._dispatch_lock.release()

    def check(self) -> list[str]:
        """Problems found by compiling every watchlist with every classifier, and
        those plugins report through ``check_config``, one line each (empty when all is well)."""
        return [str(problem) for problem in self.check_errors()]

    def check_errors(self) -> list[ConfigError]:
        """:meth:`check`'s problems as :class:`ConfigError`, with their file and key where known."""
        problems: list[ConfigError] = []
        for name, classifier in self.classifiers.items():
            validate = getattr(classifier, "validate", None)
            if validate is None:
                continue
            try:
                problems.extend(as_config_error(p) for p in validate(self.watchlists) or ())
            except PluginError as exc:
                problems.append(ConfigError(f"classifier {name}: {exc}", file=self.config.where))
        for found in self.pm.hook.check_config(monitor=self):
            problems.extend(as_config_error(p) for p in found or ())
        return problems


def as_config_error(problem: ConfigError | str) -> ConfigError:
    """A plugin's problem as a :class:`ConfigError` (plugins may still report plain strings)."""
    return problem if isinstance(problem, ConfigError) else ConfigError(str(problem))
