"""The plugin manager: the hookspecs, and every plugin loaded through one door.

Order of registration: entry points of the ``news_monitor`` group (the
plugins we ship and third-party ones alike), then single-file plugins from
``plugins_dir``. pluggy calls the most recently registered implementation
first, so local files override installed plugins. Any plugin can be
disabled by name.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pluggy

from . import hookspecs
from .errors import InvalidPluginError
from .safetext import safe_text

ENTRY_POINT_GROUP = hookspecs.PROJECT  # "news_monitor"
LOAD_ENV = "MONITOR_LOAD_PLUGINS"
TRACE_ENV = "MONITOR_TRACE_PLUGINS"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin, as ``monitor plugins`` lists it."""

    name: str
    origin: str  # "entry point <dist> <version>" or "file <path>"
    hooks: tuple[str, ...]


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with the hookspecs and nothing registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(
    pm: pluggy.PluginManager,
    *,
    disable: tuple[str, ...] | list[str] = (),
    plugins_dir: Path | None = None,
    redact: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """Register every plugin not disabled, and check the hook names.

    :param disable: plugin names to block (entry-point names or file stems).
    :param plugins_dir: a folder whose ``*.py`` files are loaded by path.
    :param redact: applied to the hook trace (``MONITOR_TRACE_PLUGINS``),
        which prints hook arguments such as source URLs; normally
        :meth:`monitor.config.Config.redact`.
    :returns: ``{plugin name: origin}`` for ``monitor plugins``.
    :raises InvalidPluginError: a plugin failed to import, or implements a hook that does not exist.
    """
    for name in disable:
        pm.set_blocked(name)
    origins: dict[str, str] = {}
    wanted = _wanted_entry_points()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise InvalidPluginError(
                f"cannot load plugin {ep.name!r} (entry point {ENTRY_POINT_GROUP}:{ep.value}): {exc}"
            ) from exc
        dist = ep.dist
        _register(pm, plugin, ep.name)
        origins[ep.name] = f"entry point ({dist.name} {dist.version})" if dist else "entry point"
    if plugins_dir is not None:
        for name, origin in _load_dir(pm, plugins_dir).items():
            origins[name] = origin
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise InvalidPluginError(f"{exc} (is the hook name misspelled?)") from exc
    if os.environ.get(TRACE_ENV):
        clean = redact or (lambda text: text)
        # Hook arguments carry feed text and URLs: redacted, and no terminal escapes.
        pm.trace.root.setwriter(lambda msg: print(safe_text(clean(msg)), end="", file=sys.stderr))
        pm.enable_tracing()
    return origins


def unknown_plugin_names(names: Iterable[str], plugins_dir: Path | None = None) -> list[str]:
    """The names among ``names`` that no installed entry point and no file of ``plugins_dir`` carries.

    ``monitor.disable_plugins`` warns about them rather than failing: the
    plugin may be an optional one that is not installed here.
    """
    known = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if plugins_dir is not None and plugins_dir.is_dir():
        known.update(path.stem for path in plugins_dir.glob("*.py"))
    return [name for name in names if name not in known]


def _wanted_entry_points() -> set[str] | None:
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise InvalidPluginError(f"plugin {name!r} does not fit the hooks: {exc}") from exc
    except ValueError as exc:
        raise InvalidPluginError(f"plugin {name!r} is registered twice: {exc}") from exc


def _load_dir(pm: pluggy.PluginManager, folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        raise InvalidPluginError(f"plugins_dir {folder} is not a folder")
    origins = {}
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        if name.startswith("_") or pm.is_blocked(name):
            continue
        if pm.get_plugin(name) is not None:
            raise InvalidPluginError(f"{path}: a plugin named {name!r} is already loaded; rename the file")
        _register(pm, module_from_path(path), name)
        origins[name] = f"file {path}"
    return origins


def module_from_path(path: Path) -> ModuleType:
    """Import one file as a module without putting it on ``sys.path`` or in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(f"monitor_local_plugin_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise InvalidPluginError(f"{path}: cannot be imported as a module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InvalidPluginError(f"cannot load plugin file {path}: {exc}") from exc
    return module


def plugin_infos(pm: pluggy.PluginManager, origins: dict[str, str]) -> list[PluginInfo]:
    """Every registered plugin with the hooks it implements, by name."""
    infos = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda pair: pair[0]):
        if plugin is None:
            continue
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        infos.append(PluginInfo(name=name, origin=origins.get(name, "registered"), hooks=hooks))
    return infos
