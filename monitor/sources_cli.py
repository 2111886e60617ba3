"""``monitor sources add | import | export | remove``: the sources of the configuration file, managed
as a feed reader manages its subscriptions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from .app import Monitor, unread_scheme
from .config import DEFAULT_CONFIG_PATH, Config, load_config, parse_duration, url_problem
from .config_file import SourcesFile, name_for, unique_name
from .errors import ConfigErrors, SourceError
from .opml import read_opml, write_opml
from .plugins import load_plugins, make_plugin_manager
from .wording import plural


def _target(config_path: str | None) -> Path:
    """The file the command edits: ``--config``, else ``config/monitor.toml`` (created if need be)."""
    return Path(config_path) if config_path else DEFAULT_CONFIG_PATH


@contextmanager
def _config_errors() -> Iterator[None]:
    """Configuration problems as ``error:`` lines and exit status 2, as every command reports them."""
    from .cli import echo

    try:
        yield
    except ConfigErrors as exc:
        for error in exc.errors:
            echo(f"error: {error}", err=True)
        raise SystemExit(2) from None


def _current(target: Path) -> Config:
    """The configuration as it is now (the built-in defaults alone when the file does not exist yet)."""
    with _config_errors():
        # os.devnull is an empty TOML file: the built-in defaults alone.
        return load_config(target if target.exists() else os.devnull, db=":memory:")


def _configured_urls(config: Config) -> dict[str, str]:
    """``{url: name}`` of every configured source (plain paths as they resolved)."""
    return {source.url: name for name, source in config.sources.items()}


def add_source_commands(group: click.Group) -> None:
    """Attach the subcommands to the ``monitor sources`` group."""
    from .cli import config_options, echo, handle_errors

    @group.command("add")
    @config_options(with_db=False)
    @click.argument("url")
    @click.option("--name", help="The source's name (default: from the feed's title).")
    @click.option("--interval", help="Time between polls, e.g. 15m (default: schedule.interval).")
    @click.option("--category", help="A folder such as News/Tech (kept by OPML export).")
    @handle_errors
    def add(config_path: str | None, url: str, name: str | None, interval: str | None, category: str | None) -> None:
        """Add the feed at URL, or the feed a web page at URL announces, to the configuration file.

        The address is fetched and parsed as a poll would (same network policy,
        [fetch] settings and parsers); the file keeps its comments and layout.
        """
        target = _target(config_path)
        config = _current(target)
        problem = url_problem(url)
        if problem or not url.lower().startswith(("http://", "https://")):
            raise click.BadParameter(problem or "expected an http:// or https:// address", param_hint="URL")
        if interval is not None:
            try:
                parse_duration(interval)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--interval") from None
        configured = _configured_urls(config)
        if url in configured:
            raise click.ClickException(f"{url} is configured already, as source {configured[url]!r}")
        from .discovery import find_feed

        monitor = Monitor.open(config, require_env=False)  # a scratch database: nothing is stored
        try:
            found = find_feed(monitor, url)
        except SourceError as exc:
            raise click.ClickException(config.redact(str(exc))) from exc
        finally:
            monitor.close()
        if found.page:
            echo(f"{found.page} is a web page; it announces {plural(len(found.links), 'feed')}:")
            for link in found.links:
                echo(f"  {link.kind:9} {link.url}" + (f"  ({link.title})" if link.title else ""))
        echo(f"Read {found.url}: " + (f"\"{found.title}\", " if found.title else "") +
             f"{plural(found.entries, 'entry')}.")
        if found.url in configured:
            raise click.ClickException(f"{found.url} is configured already, as source {configured[found.url]!r}")
        with _config_errors():
            edit = SourcesFile(target)
            chosen = name or name_for(found.title, found.url)
            edit.add(chosen, found.url, interval=interval, category=category)
            edit.save()
        every = f" (every {interval})" if interval else ""
        echo(f"Added source {chosen}{every} to {target}. `monitor check` shows when it will be polled.")

    @group.command("import")
    @config_options(with_db=False)
    @click.argument("opml_file", type=click.Path(exists=True, dir_okay=False))
    @handle_errors
    def import_(config_path: str | None, opml_file: str) -> None:
        """Add every feed of an OPML subscription list (nested outlines become categories).

        Feeds already configured (by URL) are skipped; feeds are not fetched.
        """
        target = _target(config_path)
        config = _current(target)
        configured = _configured_urls(config)
        with _config_errors():
            subscriptions = read_opml(Path(opml_file).read_bytes(), opml_file)
            edit = SourcesFile(target)
            taken = set(config.sources)
            added, skipped = [], []
            pm = make_plugin_manager()
            load_plugins(pm, disable=config.disable_plugins, plugins_dir=config.plugins_dir, redact=config.redact)
            for sub in subscriptions:
                problem = url_problem(sub.url) or unread_scheme(pm, sub.url, "feed")
                if sub.url in configured:
                    skipped.append(f"{sub.url}: configured already, as source {configured[sub.url]!r}")
                    continue
                if problem:
                    skipped.append(f"{sub.url[:200]}: {problem}")
                    continue
                chosen = unique_name(name_for(sub.title, sub.url), taken)
                edit.add(chosen, sub.url, category=sub.category)
                taken.add(chosen)
                configured[sub.url] = chosen
                added.append(f"{chosen}: {sub.url}" + (f"  [{sub.category}]" if sub.category else ""))
            if added:
                edit.save()
        click.echo(f"Added {plural(len(added), 'source')} to {target}, "
                   f"skipped {len(skipped)}.")
        for line in added:
            echo(f"  added {line}")
        for line in skipped:
            echo(f"  skipped {line}")

    @group.command("export")
    @config_options(with_db=False)
    @click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
                  help="Write to this file instead of standard output.")
    @handle_errors
    def export(config_path: str | None, output: str | None) -> None:
        """Write the feed sources as an OPML 2.0 subscription list (categories as nested outlines)."""
        with _config_errors():
            config = load_config(config_path, db=":memory:")
        feeds = [s for s in config.sources.values()
                 if s.kind == "feed" and s.url.lower().startswith(("http://", "https://"))]
        for source in config.sources.values():
            if source not in feeds:
                echo(f"not exported: {source.name}: not an http(s) feed (OPML lists web feeds only)", err=True)
        text = write_opml(feeds)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            echo(f"Wrote {plural(len(feeds), 'source')} to {output}.", err=True)
        else:
            click.echo(text, nl=False)

    @group.command("remove")
    @config_options(with_db=False)
    @click.argument("name")
    @handle_errors
    def remove(config_path: str | None, name: str) -> None:
        """Remove the source NAME from the configuration file (its stored stories stay in the database).

        The comment lines directly above its table go with it; every other comment stays.
        """
        target = _target(config_path)
        if not target.exists():
            raise click.ClickException(f"{target}: file not found")
        with _config_errors():
            edit = SourcesFile(target)
            url = edit.remove(name)
            edit.save()
        echo(f"Removed source {name} ({url}) from {target}.")
