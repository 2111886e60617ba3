"""Loading and validating the TOML configuration.

The file is laid over the built-in defaults (``monitor/defaults.toml``) table
by table, key by key. Every problem is collected and reported with the file
and the dotted key, so ``monitor check`` can print all of them at once.
An unset ``${VAR}`` in a channel or plugin table is not an error of the file:
it is kept on the :class:`Config` (``unset_env``) for whatever uses that table
(:meth:`Config.require_env`), so commands that send nothing do not need it.
"""

from __future__ import annotations

import copy
import math
import os
import re
import tomllib
from urllib.parse import urlsplit
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from .clustering import DEFAULT_THRESHOLD as DEFAULT_CLUSTER_THRESHOLD
from .clustering import EMBEDDING_THRESHOLD as EMBEDDING_CLUSTER_THRESHOLD
from .story_embeddings import missing_embedding_requirements
from .errors import ConfigError, ConfigErrors
from .models import Source, Watchlist
from .netpolicy import parse_allow_entry
from .secrets import Secrets
from .storage import describe_location, is_postgres_url

DEFAULT_CONFIG_PATH = Path("config") / "monitor.toml"
BUILTIN = "built-in defaults"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SOURCE_KINDS = ("feed", "directory")
# The longest duration any setting takes: longer ones overflow date arithmetic
# later (a poll, a prune, a retry), so they are refused here instead.
MAX_DURATION = 3650 * 86400.0

# The db_path of a configuration whose database is PostgreSQL: never a file anyone creates.
POSTGRES_DB_PATH = "(postgresql)"


@dataclass(frozen=True)
class Setting:
    """One known key of a fixed section: its type check, default and help text."""

    name: str
    kind: str  # "str", "int", "number", "bool", "bool/auto", "duration", "list[str]", "path"
    help: str
    default: Any = None
    minimum: float | None = None  # the smallest value allowed (ints, numbers, durations)
    maximum: float | None = None  # the largest value allowed; durations are capped at MAX_DURATION anyway
    positive: bool = False  # must be more than zero: zero makes no sense here

    def range_words(self) -> str:
        """The allowed range in words, for errors and the README (empty when any value goes)."""
        if self.kind not in ("int", "number", "duration"):
            return ""
        show = _duration_words if self.kind == "duration" else (lambda v: f"{v:,g}" if v < 1e6 else f"{v:,.0f}")
        low = "more than 0" if self.positive else (f"at least {show(self.minimum)}" if self.minimum is not None else "")
        if self.kind == "int" and not low:
            low = "at least 0"
        high = self.maximum if self.maximum is not None else (MAX_DURATION if self.kind == "duration" else None)
        words = [w for w in (low, f"at most {show(high)}" if high is not None else "") if w]
        if self.kind == "number":
            words.insert(0, "finite")
        return " and ".join(words)


# The single table of known keys; it drives validation and the README reference.
SETTINGS: dict[str, tuple[Setting, ...]] = {
    "monitor": (
        Setting("log_level", "str", "DEBUG, INFO, WARNING or ERROR.", "INFO"),
        Setting("disable_plugins", "list[str]", "Plugin names not to load (built-in or third-party)."),
        Setting("plugins_dir", "path", "A folder of single-file plugins loaded by path."),
        Setting("db", "path", "The database: a SQLite file path (relative to the working directory) or a "
                "PostgreSQL URL, postgresql://user:${PASSWORD}@host:5432/dbname (docs/storage.md).", "monitor.db"),
    ),
    "schedule": (
        Setting("interval", "duration", "Default time between polls of a source.", 900, positive=True),
        Setting("jitter", "duration", "Up to this much (and at most a tenth of the source's interval) is added at random "
                "to each poll.", 30),
        Setting("max_workers", "int", "Sources fetched at the same time.", 4, minimum=1, maximum=256),
        Setting("processes", "int", "Worker processes that parse, normalise and classify fetched feeds; 0: in the "
                "polling threads (measured no faster end to end on 2 cores with the learned models on: docs/bench.md).",
                0, minimum=0, maximum=256),
        Setting("process_timeout", "duration", "Longest one feed may take in a worker process before the worker is "
                "stopped and that poll fails.", 120, positive=True),
        Setting("dispatch_interval", "duration", "Time between outbox runs (retries, digests).", 15, positive=True),
        Setting("adaptive", "bool", "Poll busy http feeds more often than their interval, from the stories of the "
                "last week (never less often, unless adaptive_max allows it).", True),
        Setting("min_interval", "duration", "Shortest interval adaptive polling may give a busy feed.", 300, positive=True),
        Setting("max_interval", "duration", "Longest wait between polls of a failing source (the cap of backoff).", 43200,
                positive=True),
        Setting("adaptive_max", "duration", "Let adaptive polling lengthen a quiet feed's interval up to this; unset or "
                "0 (the default): never longer than configured."),
    ),
    "fetch": (
        Setting("timeout", "duration", "Connect and read timeout per request.", 20, positive=True),
        Setting("deadline", "duration", "Total wall-clock time one fetch may take, redirects and body included.", 60,
                positive=True),
        Setting("max_per_host", "int", "Requests in flight to one host at the same time.", 2, minimum=1, maximum=256),
        Setting("max_bytes", "int", "Largest response body accepted (after decompression).", 10_000_000,
                minimum=1, maximum=10_000_000_000),
        Setting("max_redirects", "int", "Redirects followed per request.", 5, maximum=100),
        Setting("user_agent", "str", "User-Agent header; the default names the project and version."),
        Setting("allow_private_networks", "bool", "Let feeds connect to loopback, private, link-local and other "
                "non-public addresses (refused by default; see Network policy in docs/fetching.md).", False),
        Setting("allow_networks", "list[str]", "Non-public addresses, CIDR networks or host names feeds may "
                "connect to all the same (\"10.1.0.0/16\", \"feeds.internal.example\").", []),
        Setting("proxy", "str", "An http:// or https:// proxy every feed request goes through; the network "
                "policy still applies to each feed's own address."),
        Setting("max_entries", "int", "Entries read per poll of one source: the newest by date (undated ones: "
                "the first in the feed); the rest are dropped and the source's note says so.", 1000,
                minimum=1, maximum=10_000_000),
        Setting("max_entry_bytes", "int", "Longest title, summary or content of one entry, in bytes of UTF-8; "
                "longer ones are cut and the source's note says so.", 1_000_000,
                minimum=1000, maximum=10_000_000_000),
        Setting("work_deadline", "duration", "Wall-clock limit on what one poll does with the fetched body "
                "(parse, normalise, classify); past it the poll ends with an error and stores nothing.", 120,
                positive=True),
    ),
    "classify": (
        Setting("max_text_chars", "int", "Characters of a story's title and of its text a classifier scans; "
                "a match in a longer story says in its evidence that the text was cut.", 200_000,
                minimum=1000, maximum=1_000_000_000),
    ),
    "alerts": (
        Setting("max_attempts", "int", "Delivery attempts before an alert is marked failed.", 8, minimum=1, maximum=1000),
        Setting("claim_timeout", "duration", "Unused since the sender lock: an alert left 'sending' by a process "
                "that died is sent again by the next process that delivers (kept so older files load).", 600,
                positive=True),
        Setting("backoff", "duration", "Wait before the first retry; doubles each attempt (with jitter).", 30),
        Setting("backoff_max", "duration", "Longest wait between two attempts.", 3600),
        Setting("new_source_window", "duration",
                "On a source's first poll, alert only on entries published this recently (undated ones: never).", 86400),
    ),
    "retention": (
        Setting("max_age", "duration", "Prune stories first seen longer ago than this; 0 keeps them forever.", 0),
        Setting("matched_max_age", "duration", "Prune matched stories (with their matches and alerts) after this; 0 keeps them.", 0),
        Setting("prune_interval", "duration", "How often the daemon prunes (`monitor once` prunes on every run).", 3600,
                positive=True),
        Setting("tombstone_max_age", "duration", "Forget a pruned story's id after this (a feed still listing it "
                "then brings it back as new); longer than max_age and matched_max_age; 0 keeps ids forever.",
                400 * 86400),
    ),
    "web": (
        Setting("token", "str", "Bearer token `monitor serve` requires when it listens beyond 127.0.0.1 "
                "(use \"${VAR}\"); browsers may send it as the basic-auth password."),
        Setting("username", "str", "Basic-auth user name `monitor serve` requires beyond 127.0.0.1 (with password)."),
        Setting("password", "str", "Basic-auth password (use \"${VAR}\")."),
    ),
    "metrics": (
        Setting("port", "int", "`monitor run` serves Prometheus /metrics, /healthz and /readyz on this port; "
                "0 (the default): no server.", 0, maximum=65535),
        Setting("host", "str", "Address that metrics server binds.", "127.0.0.1"),
    ),
    "clustering": (
        Setting("enabled", "bool", "Group the same story from several sources into one cluster: one alert per "
                "cluster, watchlist and channel.", True),
        Setting("window", "duration", "A story joins a cluster only if its first story is at most this much older.",
                259200, positive=True),
        Setting("threshold", "number", "How sure (0 to 1) clustering must be that two reports are of one story; "
                f"higher merges less. Default: the fitted one, {DEFAULT_CLUSTER_THRESHOLD:g} on words alone, "
                f"{EMBEDDING_CLUSTER_THRESHOLD:g} with embeddings.", None, positive=True, maximum=1),
        Setting("embeddings", "bool/auto", "Sentence embeddings (the semantic extra's model) as a clustering signal: "
                "false (the default) never loads the model, \"auto\" uses it when the extra is installed, true "
                "requires it. They lift allsides21's F1 from 0.84-0.88 to 0.91-0.93 at about 100 ms and 500 MB more.",
                "false"),
    ),
    "source": (
        Setting("url", "str", "http(s) URL, file: URL, or path (relative to the config file)."),
        Setting("kind", "str", "feed (RSS, Atom, JSON Feed) or directory (one .txt article per file).", "feed"),
        Setting("interval", "duration", "Time between polls; defaults to schedule.interval.", positive=True),
        Setting("adaptive_max", "duration", "As schedule.adaptive_max, for this source; 0: never longer than its interval."),
        Setting("enabled", "bool", "false keeps the source configured but unpolled.", True),
        Setting("category", "str", "A folder such as \"News/Tech\", kept by OPML import and export."),
        Setting("language", "str", "The language its stories are written in (a code such as \"sv\"), when the feed "
                "does not say or says wrong; it decides which accented letters matching folds."),
        Setting("options", "table", "Free-form settings for the plugin that reads this source."),
    ),
    "watchlist": (
        Setting("query", "str", "Keyword query (see Query language)."),
        Setting("threshold", "number", "Score a match must reach.", 1.0, minimum=0),
        Setting("channels", "list[str]", "Channels to alert, by name.", ["console"]),
        Setting("description", "str", "What the topic is, in words (used by semantic classifiers)."),
        Setting("enabled", "bool", "false keeps the watchlist but stops matching it.", True),
        Setting("options", "table", "Free-form settings for classifier plugins."),
    ),
    "channel": (
        Setting("type", "str", "The channel type: console, or one registered by a plugin."),
        Setting("digest", "str", "Send one message per period instead of one per match: a cron line "
                "(\"0 8 * * *\", UTC) or an interval (\"1h\")."),
        Setting("rate_limit", "str", "At most this many messages per period (\"10/minute\", \"100/hour\", "
                "\"5/30s\"); the excess waits, it is never dropped."),
    ),
}

TOP_LEVEL = ("monitor", "schedule", "fetch", "classify", "alerts", "retention", "clustering", "web", "metrics",
             "sources", "watchlists", "channels", "plugins")


class Secret(str):
    """A string taken from the environment; its repr never shows the value."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class Config:
    """The validated configuration. ``file`` is ``None`` for built-in defaults only."""

    file: Path | None
    # A SQLite database's file; for a PostgreSQL database (``db``) a name that
    # is never a file: every use of it is guarded by :attr:`is_postgres`.
    db_path: Path
    log_level: str
    disable_plugins: tuple[str, ...]
    plugins_dir: Path | None
    schedule: Mapping[str, Any]
    fetch: Mapping[str, Any]
    alerts: Mapping[str, Any]
    sources: Mapping[str, Source]
    watchlists: Mapping[str, Watchlist]
    channels: Mapping[str, Mapping[str, Any]]
    plugins: Mapping[str, Mapping[str, Any]]
    secrets: Secrets = field(default_factory=Secrets)
    retention: Mapping[str, Any] = field(default_factory=dict)
    classify: Mapping[str, Any] = field(default_factory=lambda: {s.name: s.default for s in SETTINGS["classify"]})
    clustering: Mapping[str, Any] = field(default_factory=dict)
    web: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    # ``${VAR}`` references in channel and plugin tables whose variable is not
    # set: only what uses those tables needs them (see :meth:`require_env`).
    unset_env: tuple[ConfigError, ...] = ()
    # Where the database is: ``db_path`` as text, or a PostgreSQL URL (its password revealed).
    db: str = ""

    @property
    def is_postgres(self) -> bool:
        """Whether the database is a PostgreSQL server rather than a SQLite file."""
        return is_postgres_url(self.db)

    @property
    def database(self) -> str:
        """How messages name the database: its file, or its URL with the password hidden."""
        return describe_location(self.secrets.redact(self.db)) if self.is_postgres else str(self.db_path)

    @property
    def where(self) -> str:
        """How errors name this configuration's file."""
        return str(self.file) if self.file else BUILTIN

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the configuration start from: the config file's (else the working directory)."""
        return self.file.parent if self.file else Path.cwd()

    def resolve_path(self, value: str | os.PathLike[str]) -> Path:
        """A path given in the configuration (a plugin's option, say): ``~`` expanded, a relative one
        taken from the config file's folder, as ``plugins_dir`` and source paths are."""
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else self.base_dir / path

    def env_errors(self, key: str = "") -> list[ConfigError]:
        """The unset ``${VAR}`` references at or under the dotted ``key`` (all of them when empty)."""
        return [e for e in self.unset_env
                if not key or e.key == key or (e.key or "").startswith((key + ".", key + "["))]

    def require_env(self, key: str = "") -> None:
        """Raise :class:`ConfigErrors` naming each unset variable at or under ``key`` (file, key, variable).

        Channel and plugin tables are resolved when something uses them, so a
        command that sends nothing works without the senders' secrets.
        """
        errors = self.env_errors(key)
        if errors:
            raise ConfigErrors(errors)

    def redact(self, text: str) -> str:
        """``text`` with every value taken from the environment shown as its ``${VAR}`` (see :class:`Secrets`)."""
        return self.secrets.redact(text)


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|sec|s|minute|min|m|hour|h|day|d|\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)?)\s*$")
_RATE_PERIODS = {"second": 1, "sec": 1, "s": 1, "minute": 60, "min": 60, "m": 60, "hour": 3600, "h": 3600,
                 "day": 86400, "d": 86400}


def parse_rate_limit(value: str) -> tuple[int, float]:
    """``(messages, seconds)`` from ``"10/minute"``, ``"100/hour"`` or ``"5/30s"``."""
    m = _RATE.match(value) if isinstance(value, str) else None
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"expected a rate such as \"10/minute\", \"100/hour\" or \"5/30s\", got {value!r}")
    period = m.group(2)
    seconds = float(_RATE_PERIODS[period]) if period in _RATE_PERIODS else parse_duration(period)
    if seconds <= 0:
        raise ValueError(f"the period of a rate limit must be more than zero, got {value!r}")
    return int(m.group(1)), seconds


def channel_options(table: Mapping[str, Any]) -> dict[str, Any]:
    """A channel's table without the keys the core reads (type, digest, rate_limit): what its factory gets."""
    core = {s.name for s in SETTINGS["channel"]}
    return {k: v for k, v in table.items() if k not in core}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``.

    :raises ValueError: not a duration, negative, not finite, or longer than
        :data:`MAX_DURATION` (ten years: longer ones overflow date arithmetic).
    """
    seconds: float | None = None
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, (int, float)):
        # TOML integers are unbounded; float() of a huge one would raise OverflowError.
        seconds = float(value) if abs(value) < 10**20 else math.copysign(math.inf, value)
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds is None:
        raise ValueError(f"expected a duration such as 90, \"90s\", \"15m\" or \"1h\", got {str(value)[:40]!r}")
    if math.isnan(seconds):
        raise ValueError("expected a duration, got nan")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration can be at most {_duration_words(MAX_DURATION)} (10 years), got {str(value)[:40]}")
    return seconds


def _duration_words(seconds: float | None) -> str:
    """``"3650d"``, ``"1h"``, ``"90s"``: the shortest exact form of a duration."""
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def builtin_defaults() -> dict[str, Any]:
    """The built-in defaults as a plain dict."""
    text = resources.files("monitor").joinpath("defaults.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def find_config(path: str | os.PathLike[str] | None) -> Path | None:
    """The config file to use: ``path`` if given, else ``config/monitor.toml`` when present."""
    if path is not None:
        return Path(path)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    db: str | os.PathLike[str] | None = None,
) -> Config:
    """Read, merge and validate the configuration.

    :param path: the TOML file; ``None`` means ``config/monitor.toml`` if it
        exists, else the built-in defaults alone.
    :param env: the environment for ``${VAR}`` references (default ``os.environ``).
    :param db: a database path overriding ``monitor.db`` (the ``--db`` option).
    :raises ConfigErrors: listing every problem with file and key.
    """
    config, errors = read_config(path, env=env, db=db)
    if errors:
        raise ConfigErrors(errors)
    assert config is not None
    return config


def read_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    db: str | os.PathLike[str] | None = None,
) -> tuple[Config | None, list[ConfigError]]:
    """The configuration and every problem found in it, without raising (for ``monitor check``).

    Each bad value is replaced by its default in the returned configuration,
    so the checks that need plugins can still run on the rest. The
    configuration is ``None`` when the file cannot be read as TOML at all.
    """
    file = find_config(path)
    data = builtin_defaults()
    user: dict[str, Any] = {}
    if file is not None:
        try:
            user = _read_toml(file)
        except ConfigErrors as exc:
            return None, exc.errors
        _merge(data, user)
    validator = _Validator(file, user, os.environ if env is None else env)
    config = validator.build(data, db_override=db)
    return config, validator.errors


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigErrors([ConfigError("file not found", file=str(file))]) from None
    except OSError as exc:
        raise ConfigErrors([ConfigError(f"cannot read: {exc.strerror}", file=str(file))]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigErrors([ConfigError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save the file as UTF-8",
            file=str(file),
        )]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigErrors([ConfigError(f"not valid TOML: {exc}", file=str(file))]) from exc


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> None:
    """Lay ``over`` onto ``base`` in place: tables merge, other values replace."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


class _Validator:
    """Walks the merged tables once, converting values and collecting errors."""

    def __init__(self, file: Path | None, user: Mapping[str, Any], env: Mapping[str, str]):
        self.file = file
        self.user = user
        self.env = env
        self.errors: list[ConfigError] = []
        self.unset_env: list[ConfigError] = []
        self.secrets: dict[str, str] = {}
        self.base_dir = file.parent if file else Path.cwd()

    # -- helpers ---------------------------------------------------------------

    def error(self, key: str, message: str) -> None:
        # A message may quote a value that came from the environment.
        message = Secrets(dict(self.secrets)).redact(message)
        self.errors.append(ConfigError(message, file=self._file_for(key), key=key))

    def _file_for(self, key: str) -> str:
        # Every key is validated after merging; a problem is the user's file's
        # unless there is no file (the defaults are tested to be valid).
        return str(self.file) if self.file else BUILTIN

    def interpolate(self, key: str, value: Any, *, deferred: bool = False) -> Any:
        """Resolve ``${VAR}`` in strings, recursively.

        A missing variable is an error, or with ``deferred`` (channel and plugin
        tables) a problem kept on the configuration for whatever uses the table.
        """
        if isinstance(value, str) and "${" in value:
            missing = [name for name in _ENV_REF.findall(value) if name not in self.env]
            for name in missing:
                problem = ConfigError(f"environment variable {name} is not set", file=self._file_for(key), key=key)
                (self.unset_env if deferred else self.errors).append(problem)
            if missing:
                return value
            resolved = _ENV_REF.sub(lambda m: self.env[m.group(1)], value)
            for name in _ENV_REF.findall(value):
                self.secrets[name] = self.env[name]
            return Secret(resolved)
        if isinstance(value, list):
            return [self.interpolate(f"{key}[{i}]", v, deferred=deferred) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.interpolate(f"{key}.{k}", v, deferred=deferred) for k, v in value.items()}
        return value

    def convert(self, key: str, setting: Setting, value: Any) -> Any:
        kind = setting.kind
        ok = True
        if kind == "str":
            ok = isinstance(value, str)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif kind == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                try:
                    value = float(value)
                except OverflowError:  # a TOML integer beyond any float
                    value = math.inf
                if not math.isfinite(value):
                    self.error(key, f"expected a finite number, got {value}")
                    return setting.default
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "bool/auto":
            ok = isinstance(value, bool) or value == "auto"
        elif kind == "list[str]":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif kind == "table":
            ok = isinstance(value, dict)
        elif kind == "path":
            ok = isinstance(value, str) and value != ""
        elif kind == "duration":
            try:
                value = parse_duration(value)
            except ValueError as exc:
                self.error(key, str(exc))
                return setting.default
        if not ok:
            self.error(key, f"expected {_KIND_WORDS[kind]}, got {_describe(value)}")
            return setting.default
        return self.in_range(key, setting, value)

    def in_range(self, key: str, setting: Setting, value: Any) -> Any:
        """``value`` if it lies within the setting's bounds, else an error and the default."""
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return value
        low_ok = value > 0 if setting.positive else (setting.minimum is None or value >= setting.minimum)
        high_ok = setting.maximum is None or value <= setting.maximum
        if low_ok and high_ok:
            return value
        shown = _duration_words(value) if setting.kind == "duration" else f"{value:g}"
        self.error(key, f"must be {setting.range_words()}, got {shown}")
        return setting.default

    def section(self, key: str, table: Any, settings: tuple[Setting, ...], *, deferred: bool = False) -> dict[str, Any]:
        """Validate one fixed-shape table: unknown keys are errors, defaults filled in."""
        out: dict[str, Any] = {s.name: copy.deepcopy(s.default) for s in settings}
        if not isinstance(table, dict):
            self.error(key, f"expected a table, got {_describe(table)}")
            return out
        known = {s.name: s for s in settings}
        for name, value in table.items():
            dotted = f"{key}.{name}"
            if name not in known:
                self.error(dotted, f"unknown key (known keys: {', '.join(sorted(known))})")
                continue
            out[name] = self.convert(dotted, known[name], self.interpolate(dotted, value, deferred=deferred))
        return out

    def path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base_dir / p

    def named_tables(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.error(key, f"expected a table of named tables, got {_describe(value)}")
            return {}
        out = {}
        for name, table in value.items():
            if not _NAME.match(name):
                self.error(f"{key}.{name}", "names may hold only letters, digits, '_', '-' and '.'")
                continue
            out[name] = table
        return out

    # -- the whole configuration ------------------------------------------------

    def build(self, data: dict[str, Any], db_override: Any) -> Config:
        for key in data:
            if key not in TOP_LEVEL:
                self.error(key, f"unknown section (known sections: {', '.join(TOP_LEVEL)})")
        monitor = self.section("monitor", data.get("monitor", {}), SETTINGS["monitor"])
        schedule = self.section("schedule", data.get("schedule", {}), SETTINGS["schedule"])
        fetch = self.section("fetch", data.get("fetch", {}), SETTINGS["fetch"])
        alerts = self.section("alerts", data.get("alerts", {}), SETTINGS["alerts"])
        retention = self.section("retention", data.get("retention", {}), SETTINGS["retention"])
        classify = self.section("classify", data.get("classify", {}), SETTINGS["classify"])
        clustering = self.section("clustering", data.get("clustering", {}), SETTINGS["clustering"])
        if clustering["embeddings"] is True and (missing := missing_embedding_requirements()):
            self.error("clustering.embeddings", f"true needs the semantic extra ({', '.join(missing)} not installed): "
                       "install it or set \"auto\"")
            clustering["embeddings"] = "auto"  # as for any bad value: the later checks go on with the default
        # The web credentials are needed only by `monitor serve` (Config.require_env("web")).
        web = self.section("web", data.get("web", {}), SETTINGS["web"], deferred=True)
        metrics = self.section("metrics", data.get("metrics", {}), SETTINGS["metrics"])
        # Ranges of single values are in SETTINGS; what is left relates two values or names a set.
        kept = max(retention["max_age"] or 0, retention["matched_max_age"] or 0)
        if retention["max_age"] and retention["tombstone_max_age"] and retention["tombstone_max_age"] <= kept:
            self.error("retention.tombstone_max_age", "must be longer than retention.max_age and matched_max_age "
                       "(a pruned id forgotten while its feed still lists the story brings it back as new)")
        if schedule["max_interval"] < schedule["min_interval"]:
            self.error("schedule.max_interval", "must be at least schedule.min_interval")
        self.network_policy(fetch)
        if monitor["log_level"] not in LOG_LEVELS:
            self.error("monitor.log_level", f"must be one of {', '.join(LOG_LEVELS)}")
        channels = self.channels(data.get("channels", {}))
        watchlists = self.watchlists(data.get("watchlists", {}), channels)
        sources = self.sources(data.get("sources", {}), schedule["interval"])
        plugins = self.named_tables("plugins", data.get("plugins", {}))
        for name, table in plugins.items():
            if not isinstance(table, dict):
                self.error(f"plugins.{name}", f"expected a table, got {_describe(table)}")
        plugins = {n: self.interpolate(f"plugins.{n}", t, deferred=True) for n, t in plugins.items() if isinstance(t, dict)}
        # --db and relative paths: the database is relative to the working
        # directory (where the user runs the command), not to the config file.
        location = str(db_override) if db_override is not None else monitor["db"]
        if is_postgres_url(location):
            db_path = Path(POSTGRES_DB_PATH)
        else:
            db_path = Path(location) if db_override is not None else Path(os.path.expanduser(location))
            location = str(db_path)
        return Config(
            file=self.file,
            db_path=db_path,
            db=location,
            log_level=monitor["log_level"],
            disable_plugins=tuple(monitor["disable_plugins"] or ()),
            plugins_dir=self.path(monitor["plugins_dir"]),
            schedule=schedule,
            fetch=fetch,
            alerts=alerts,
            sources=sources,
            watchlists=watchlists,
            channels=channels,
            plugins=plugins,
            secrets=Secrets(dict(self.secrets)),
            retention=retention,
            classify=classify,
            clustering=clustering,
            web=web,
            metrics=metrics,
            unset_env=tuple(self.unset_env),
        )

    def network_policy(self, fetch: Mapping[str, Any]) -> None:
        """Check ``fetch.allow_networks`` entries and ``fetch.proxy`` (the policy itself is built by the fetcher)."""
        for i, entry in enumerate(fetch["allow_networks"] or ()):
            try:
                parse_allow_entry(entry)
            except ValueError as exc:
                self.error(f"fetch.allow_networks[{i}]", str(exc))
        proxy = fetch["proxy"]
        if proxy is not None and not re.match(r"^https?://[^/\s]+", proxy, re.I):
            self.error("fetch.proxy", f"expected an http:// or https:// proxy URL such as \"http://10.0.0.5:3128\", "
                                      f"got {proxy!r}")

    def channels(self, value: Any) -> dict[str, dict[str, Any]]:
        out = {}
        for name, table in self.named_tables("channels", value).items():
            key = f"channels.{name}"
            if not isinstance(table, dict):
                self.error(key, f"expected a table, got {_describe(table)}")
                continue
            if not isinstance(table.get("type"), str):
                self.error(f"{key}.type", "missing: every channel needs a type (for example \"console\" or \"email\")")
                continue
            for setting in SETTINGS["channel"]:
                if setting.name != "type" and setting.name in table:
                    self.channel_key(f"{key}.{setting.name}", setting, table[setting.name])
            # The other options belong to the channel type; its factory validates them.
            out[name] = self.interpolate(key, dict(table), deferred=True)
        return out

    def channel_key(self, key: str, setting: Setting, value: Any) -> None:
        """Check one core-level channel key (``digest``, ``rate_limit``) as it reads once ``${VAR}`` is filled.

        The core reads these keys for every channel, whatever command runs, so a
        variable they name must be set now, not when the channel is first used.
        """
        if not isinstance(value, str):
            self.error(key, f"expected {_KIND_WORDS['str']}, got {_describe(value)}")
            return
        errors = len(self.errors)
        value = self.interpolate(key, value)
        if len(self.errors) > errors:
            return
        try:
            if setting.name == "digest":
                from .scheduler import digest_schedule  # the one module that knows APScheduler

                digest_schedule(value)
            else:
                parse_rate_limit(value)
        except ValueError as exc:
            self.error(key, str(exc))

    def watchlists(self, value: Any, channels: Mapping[str, Any]) -> dict[str, Watchlist]:
        out = {}
        for name, table in self.named_tables("watchlists", value).items():
            key = f"watchlists.{name}"
            opts = self.section(key, table, SETTINGS["watchlist"])
            for i, channel in enumerate(opts["channels"] or ()):
                if channel not in channels:
                    known = ", ".join(sorted(channels)) or "none"
                    self.error(f"{key}.channels[{i}]", f"unknown channel {channel!r} (configured channels: {known})")
            if opts["query"] is not None and not opts["query"].strip():
                self.error(f"{key}.query", "is empty")
            out[name] = Watchlist(
                name=name,
                query=opts["query"],
                threshold=opts["threshold"],
                channels=tuple(opts["channels"] or ()),
                description=opts["description"] or "",
                enabled=opts["enabled"],
                options=opts["options"] or {},
            )
        return out

    def sources(self, value: Any, default_interval: float) -> dict[str, Source]:
        out = {}
        for name, table in self.named_tables("sources", value).items():
            key = f"sources.{name}"
            opts = self.section(key, table, SETTINGS["source"])
            if opts["url"] is None:
                if isinstance(table, dict) and "url" not in table:
                    self.error(f"{key}.url", "missing: every source needs a url")
                continue
            problem = url_problem(opts["url"])
            if problem:
                self.error(f"{key}.url", problem)
                continue
            if opts["kind"] not in SOURCE_KINDS:
                self.error(f"{key}.kind", f"must be one of {', '.join(SOURCE_KINDS)}, got {opts['kind']!r}")
            interval = opts["interval"] if opts["interval"] is not None else default_interval
            if opts["language"] is not None and not _LANGUAGE_TAG.fullmatch(opts["language"]):
                self.error(f"{key}.language", f"must be a language code such as \"sv\" or \"pt-BR\", "
                           f"got {opts['language']!r}")
            if opts["adaptive_max"] and opts["adaptive_max"] < interval:
                self.error(f"{key}.adaptive_max", f"must be at least the source's interval ({interval:g} s), or 0")
            out[name] = Source(
                name=name,
                url=_resolve_location(opts["url"], self.base_dir),
                kind=opts["kind"],
                interval=interval,
                enabled=opts["enabled"],
                options=opts["options"] or {},
                adaptive_max=opts["adaptive_max"],
                category=opts["category"],
                language=opts["language"],
            )
        return out


# A BCP 47 tag as feeds and people write them: a primary language and optional subtags.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a source's address, or ``None``. Plain paths are fine; the file may come later.

    Whether any loaded plugin reads the URL's scheme is decided once the
    plugins are loaded (``source_url_schemes``; see :class:`monitor.Monitor`),
    so a plugin can add schemes. The message never quotes the URL: it may
    carry a token from the environment.
    """
    if not url.strip():
        return "is empty: every source needs a url (an http(s) URL, a file: URL or a path)"
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", url)
    if not scheme or not (url[scheme.end():].startswith("//") or scheme.group(1).lower() == "file"):
        return None
    name = scheme.group(1).lower()
    if name not in ("http", "https", "file"):
        return None  # a plugin's scheme: its plugin checks the rest
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number or out of range)
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if name == "file":
        return None
    if not parts.hostname:
        return f"not a valid URL: no host after {name}://"
    try:
        httpx.URL(url)  # what http_source will use: refuse here what it would refuse there
    except httpx.InvalidURL as exc:
        return f"not a valid URL: {str(exc)[:120]}"
    return None


def _resolve_location(url: str, base_dir: Path) -> str:
    """URLs stay as they are; plain paths become absolute, relative to the config file."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url) or url.startswith("file:"):
        return url
    path = Path(os.path.expanduser(url))
    return str(path if path.is_absolute() else (base_dir / path).resolve())


_KIND_WORDS = {
    "str": "a string",
    "int": "a whole number (0 or more)",
    "number": "a number",
    "bool": "true or false",
    "bool/auto": 'true, false or "auto"',
    "list[str]": "a list of strings",
    "table": "a table",
    "path": "a path (a non-empty string)",
}


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


_SECTION_TITLES = {
    "monitor": "`[monitor]`",
    "schedule": "`[schedule]`",
    "fetch": "`[fetch]`",
    "classify": "`[classify]`",
    "alerts": "`[alerts]`",
    "clustering": "`[clustering]`",
    "web": "`[web]`",
    "metrics": "`[metrics]`",
    "source": "`[sources.NAME]`",
    "watchlist": "`[watchlists.NAME]`",
    "channel": "`[channels.NAME]`",
}


def settings_markdown() -> str:
    """The configuration reference as Markdown tables, from :data:`SETTINGS` (README embeds it)."""
    out = []
    for section, settings in SETTINGS.items():
        out.append(f"#### {_SECTION_TITLES.get(section, section)}\n")
        out.append("| key | type | default | range | meaning |")
        out.append("|---|---|---|---|---|")
        for s in settings:
            default = "" if s.default is None else f"`{_toml_value(s.default)}`"
            out.append(f"| `{s.name}` | {s.kind} | {default} | {s.range_words()} | {s.help} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)
