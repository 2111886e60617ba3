"""Loading and validating the TOML configuration.

The file is laid over the built-in defaults (``monitor/defaults.toml``) table
by table, key by key. Every problem is collected and reported with the file
and the dotted key, so ``monitor check`` can print all of them at once.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError, ConfigErrors
from .models import Source, Watchlist

DEFAULT_CONFIG_PATH = Path("config") / "monitor.toml"
BUILTIN = "built-in defaults"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SOURCE_KINDS = ("feed", "directory")


@dataclass(frozen=True)
class Setting:
    """One known key of a fixed section: its type check, default and help text."""

    name: str
    kind: str  # "str", "int", "number", "bool", "duration", "list[str]", "path"
    help: str
    default: Any = None


# The single table of known keys; it drives validation and the README reference.
SETTINGS: dict[str, tuple[Setting, ...]] = {
    "monitor": (
        Setting("log_level", "str", "DEBUG, INFO, WARNING or ERROR.", "INFO"),
        Setting("disable_plugins", "list[str]", "Plugin names not to load (built-in or third-party)."),
        Setting("plugins_dir", "path", "A folder of single-file plugins loaded by path."),
        Setting("db", "path", "SQLite database path, relative to the working directory.", "monitor.db"),
    ),
    "schedule": (
        Setting("interval", "duration", "Default time between polls of a source.", 900),
        Setting("jitter", "duration", "Up to this much is added at random to each poll.", 30),
        Setting("max_workers", "int", "Sources fetched at the same time.", 4),
        Setting("dispatch_interval", "duration", "Time between outbox runs (retries, digests).", 15),
        Setting("adaptive", "bool", "Poll busy feeds more often and quiet ones less, from the stories of the last week.", True),
        Setting("min_interval", "duration", "Shortest adaptive interval; the scheduler checks what is due this often.", 300),
        Setting("max_interval", "duration", "Longest adaptive interval, and the cap of failure backoff.", 43200),
    ),
    "fetch": (
        Setting("timeout", "duration", "Connect and read timeout per request.", 20),
        Setting("deadline", "duration", "Total wall-clock time one fetch may take, redirects and body included.", 60),
        Setting("max_per_host", "int", "Requests in flight to one host at the same time.", 2),
        Setting("max_bytes", "int", "Largest response body accepted (after decompression).", 10_000_000),
        Setting("max_redirects", "int", "Redirects followed per request.", 5),
        Setting("user_agent", "str", "User-Agent header; the default names the project and version."),
    ),
    "alerts": (
        Setting("max_attempts", "int", "Delivery attempts before an alert is marked failed.", 8),
        Setting("claim_timeout", "duration", "An alert left 'sending' this long (a crashed run) is sent again.", 600),
        Setting("backoff", "duration", "Wait before the first retry; doubles each attempt (with jitter).", 30),
        Setting("backoff_max", "duration", "Longest wait between two attempts.", 3600),
        Setting("new_source_window", "duration",
                "On a source's first poll, alert only on entries published this recently (undated ones: never).", 86400),
    ),
    "retention": (
        Setting("max_age", "duration", "Prune stories first seen longer ago than this; 0 keeps them forever.", 0),
        Setting("matched_max_age", "duration", "Prune matched stories (with their matches and alerts) after this; 0 keeps them.", 0),
        Setting("prune_interval", "duration", "How often the daemon prunes.", 3600),
    ),
    "clustering": (
        Setting("enabled", "bool", "Group the same story from several sources into one cluster: one alert per "
                "cluster, watchlist and channel.", True),
        Setting("window", "duration", "A story joins a cluster only if its first story is at most this much older.",
                259200),
        Setting("threshold", "number", "How sure (0 to 1) clustering must be that two reports are of one story; "
                "higher merges less.", 0.6),
    ),
    "source": (
        Setting("url", "str", "http(s) URL, file: URL, or path (relative to the config file)."),
        Setting("kind", "str", "feed (RSS, Atom, JSON Feed) or directory (one .txt article per file).", "feed"),
        Setting("interval", "duration", "Time between polls; defaults to schedule.interval."),
        Setting("enabled", "bool", "false keeps the source configured but unpolled.", True),
        Setting("options", "table", "Free-form settings for the plugin that reads this source."),
    ),
    "watchlist": (
        Setting("query", "str", "Keyword query (see Query language)."),
        Setting("threshold", "number", "Score a match must reach.", 1.0),
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

TOP_LEVEL = ("monitor", "schedule", "fetch", "alerts", "retention", "clustering", "sources", "watchlists", "channels",
             "plugins")


class Secret(str):
    """A string taken from the environment; its repr never shows the value."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class Config:
    """The validated configuration. ``file`` is ``None`` for built-in defaults only."""

    file: Path | None
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
    secrets: frozenset[str] = field(default_factory=frozenset)
    retention: Mapping[str, Any] = field(default_factory=dict)
    clustering: Mapping[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """How errors name this configuration's file."""
        return str(self.file) if self.file else BUILTIN

    def redact(self, text: str) -> str:
        """``text`` with every secret value from the environment replaced by ``***``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text


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
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(f"expected a duration such as 90, \"90s\", \"15m\" or \"1h\", got {value!r}")


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
    file = find_config(path)
    data = builtin_defaults()
    user: dict[str, Any] = {}
    if file is not None:
        user = _read_toml(file)
        _merge(data, user)
    validator = _Validator(file, user, os.environ if env is None else env)
    config = validator.build(data, db_override=db)
    if validator.errors:
        raise ConfigErrors(validator.errors)
    return config


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigErrors([ConfigError("file not found", file=str(file))]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigErrors([ConfigError(f"not valid TOML: {exc}", file=str(file))]) from exc
    except OSError as exc:
        raise ConfigErrors([ConfigError(f"cannot read: {exc.strerror}", file=str(file))]) from exc


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
        self.secrets: set[str] = set()
        self.base_dir = file.parent if file else Path.cwd()

    # -- helpers ---------------------------------------------------------------

    def error(self, key: str, message: str) -> None:
        self.errors.append(ConfigError(message, file=self._file_for(key), key=key))

    def _file_for(self, key: str) -> str:
        # Every key is validated after merging; a problem is the user's file's
        # unless there is no file (the defaults are tested to be valid).
        return str(self.file) if self.file else BUILTIN

    def interpolate(self, key: str, value: Any) -> Any:
        """Resolve ``${VAR}`` in strings, recursively; missing variables are errors."""
        if isinstance(value, str) and "${" in value:
            missing = [name for name in _ENV_REF.findall(value) if name not in self.env]
            for name in missing:
                self.error(key, f"environment variable {name} is not set")
            if missing:
                return value
            resolved = _ENV_REF.sub(lambda m: self.env[m.group(1)], value)
            for name in _ENV_REF.findall(value):
                self.secrets.add(self.env[name])
            return Secret(resolved)
        if isinstance(value, list):
            return [self.interpolate(f"{key}[{i}]", v) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.interpolate(f"{key}.{k}", v) for k, v in value.items()}
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
            value = float(value) if ok else value
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "list[str]":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif kind == "table":
            ok = isinstance(value, dict)
        elif kind == "path":
            ok = isinstance(value, str) and value != ""
        elif kind == "duration":
            try:
                return parse_duration(value)
            except ValueError as exc:
                self.error(key, str(exc))
                return setting.default
        if not ok:
            self.error(key, f"expected {_KIND_WORDS[kind]}, got {_describe(value)}")
            return setting.default
        return value

    def section(self, key: str, table: Any, settings: tuple[Setting, ...]) -> dict[str, Any]:
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
            out[name] = self.convert(dotted, known[name], self.interpolate(dotted, value))
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
        clustering = self.section("clustering", data.get("clustering", {}), SETTINGS["clustering"])
        if not 0 < clustering["threshold"] <= 1:
            self.error("clustering.threshold", f"must be more than 0 and at most 1, got {clustering['threshold']:g}")
        if clustering["window"] <= 0:
            self.error("clustering.window", "must be more than zero")
        if schedule["min_interval"] <= 0:
            self.error("schedule.min_interval", "must be more than zero")
        elif schedule["max_interval"] < schedule["min_interval"]:
            self.error("schedule.max_interval", "must be at least schedule.min_interval")
        if fetch["max_per_host"] < 1:
            self.error("fetch.max_per_host", "must be at least 1")
        if fetch["deadline"] <= 0:
            self.error("fetch.deadline", "must be more than zero")
        if alerts["max_attempts"] < 1:
            self.error("alerts.max_attempts", "must be at least 1")
        if monitor["log_level"] not in LOG_LEVELS:
            self.error("monitor.log_level", f"must be one of {', '.join(LOG_LEVELS)}")
        if schedule["max_workers"] < 1:
            self.error("schedule.max_workers", "must be at least 1")
        channels = self.channels(data.get("channels", {}))
        watchlists = self.watchlists(data.get("watchlists", {}), channels)
        sources = self.sources(data.get("sources", {}), schedule["interval"])
        plugins = self.named_tables("plugins", data.get("plugins", {}))
        for name, table in plugins.items():
            if not isinstance(table, dict):
                self.error(f"plugins.{name}", f"expected a table, got {_describe(table)}")
        plugins = {n: self.interpolate(f"plugins.{n}", t) for n, t in plugins.items() if isinstance(t, dict)}
        # --db and relative paths: the database is relative to the working
        # directory (where the user runs the command), not to the config file.
        db_path = Path(db_override) if db_override is not None else Path(os.path.expanduser(monitor["db"]))
        return Config(
            file=self.file,
            db_path=db_path,
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
            secrets=frozenset(self.secrets),
            retention=retention,
            clustering=clustering,
        )

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
            out[name] = self.interpolate(key, dict(table))
        return out

    def channel_key(self, key: str, setting: Setting, value: Any) -> None:
        """Check one core-level channel key (``digest``, ``rate_limit``)."""
        if not isinstance(value, str):
            self.error(key, f"expected {_KIND_WORDS['str']}, got {_describe(value)}")
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
            if not opts["url"]:
                if isinstance(table, dict) and "url" not in table:
                    self.error(f"{key}.url", "missing: every source needs a url")
                continue
            if opts["kind"] not in SOURCE_KINDS:
                self.error(f"{key}.kind", f"must be one of {', '.join(SOURCE_KINDS)}, got {opts['kind']!r}")
            interval = opts["interval"] if opts["interval"] is not None else default_interval
            if interval <= 0:
                self.error(f"{key}.interval", "must be more than zero")
            out[name] = Source(
                name=name,
                url=_resolve_location(opts["url"], self.base_dir),
                kind=opts["kind"],
                interval=interval,
                enabled=opts["enabled"],
                options=opts["options"] or {},
            )
        return out


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
    "alerts": "`[alerts]`",
    "clustering": "`[clustering]`",
    "source": "`[sources.NAME]`",
    "watchlist": "`[watchlists.NAME]`",
    "channel": "`[channels.NAME]`",
}


def settings_markdown() -> str:
    """The configuration reference as Markdown tables, from :data:`SETTINGS` (README embeds it)."""
    out = []
    for section, settings in SETTINGS.items():
        out.append(f"#### {_SECTION_TITLES.get(section, section)}\n")
        out.append("| key | type | default | meaning |")
        out.append("|---|---|---|---|")
        for s in settings:
            default = "" if s.default is None else f"`{_toml_value(s.default)}`"
            out.append(f"| `{s.name}` | {s.kind} | {default} | {s.help} |")
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
