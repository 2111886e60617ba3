"""``monitor check``: every problem of a configuration at once, with its file and key.

The checks run in the order the monitor itself would meet the problems (the
file's values, the environment, plugins and channels, sources' URL schemes,
plugins' start-up, watchlist queries and what plugins check), but a problem
found early never hides the later ones: each stage works on what the earlier
ones could read, bad values replaced by their defaults.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .app import Monitor
from .config import Config, read_config
from .errors import ConfigError, ConfigErrors, MonitorError
from .plugins import unknown_plugin_names

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong (``severity`` "error") or worth a look ("warning"), located by file and dotted key."""

    file: str | None
    key: str | None
    message: str
    severity: str = ERROR

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.key, self.message) if part)

    def to_dict(self) -> dict[str, str | None]:
        """The JSON form (``monitor check --format json``)."""
        return asdict(self)


@dataclass
class CheckResult:
    """What ``monitor check`` found; ``monitor`` is the opened monitor when the checks got that far."""

    problems: list[Problem]
    config: Config | None = None
    monitor: Monitor | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]


def _problems(errors: Iterable[ConfigError | str], config: Config | None, severity: str = ERROR) -> list[Problem]:
    redact = config.redact if config else (lambda text: text)
    out = []
    for error in errors:
        if isinstance(error, ConfigError):
            out.append(Problem(error.file, error.key, redact(error.message), severity))
        else:
            out.append(Problem(None, None, redact(str(error)), severity))
    return out


def check_configuration(path: str | os.PathLike[str] | None, *, require_env: bool = True) -> CheckResult:
    """Run every check on the configuration at ``path`` (see the module docstring).

    The caller closes ``result.monitor`` when it is set.
    """
    config, errors = read_config(path, db=":memory:")
    result = CheckResult(_problems(errors, config), config)
    if config is None:
        return result
    result.problems += _problems(
        (ConfigError(f"no installed plugin is named {name!r}; nothing is disabled by it (fine for an optional plugin "
                     "that is not installed here, else check the spelling)", file=config.where,
                     key="monitor.disable_plugins")
         for name in unknown_plugin_names(config.disable_plugins, config.plugins_dir)),
        config, WARNING,
    )
    if require_env:  # what sends needs these (as Monitor.open asks)
        result.problems += _problems(config.env_errors("channels") + config.env_errors("plugins"), config)
    result.problems += _problems(
        (ConfigError(f"{e.message} (only monitor serve and the [metrics] server need it)", file=e.file, key=e.key)
         for e in config.env_errors("web")),
        config, WARNING,
    )
    try:
        monitor = Monitor.open(config, require_env=False, strict=False, start=False)
    except ConfigErrors as exc:
        result.problems += _problems(exc.errors, config)
        return result
    except MonitorError as exc:  # a plugin that cannot be loaded
        result.problems += _problems([ConfigError(str(exc), file=config.where)], config)
        return result
    result.monitor = monitor
    result.problems += _problems(monitor.problems, config)
    result.problems += _problems(_unknown_plugin_tables(monitor), config)
    try:
        monitor.pm.hook.startup(monitor=monitor)
    except ConfigErrors as exc:
        result.problems += _problems(exc.errors, config)
    except MonitorError as exc:
        result.problems += _problems([exc if isinstance(exc, ConfigError) else ConfigError(str(exc))], config)
    result.problems += _problems(monitor.check_errors(), config)
    return result


def _unknown_plugin_tables(monitor: Monitor) -> list[ConfigError]:
    """A ``[plugins.NAME]`` table for a plugin that is not loaded configures nothing: most often a typo."""
    loaded = {info.name for info in monitor.plugins()}
    out = []
    for name in monitor.config.plugins:
        if name in loaded:
            continue
        close = difflib.get_close_matches(name, sorted(loaded), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (loaded plugins: {', '.join(sorted(loaded))})"
        out.append(ConfigError(f"no loaded plugin is named {name!r}, so these options are not read{hint}",
                               file=monitor.config.where, key=f"plugins.{name}"))
    return out
