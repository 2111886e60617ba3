"""The ``monitor`` command line (also ``python -m monitor``)."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from .app import Monitor
from .config import Config, load_config
from .errors import ConfigErrors, MonitorError
from .plugins import load_plugins, make_plugin_manager
from .version import __version__

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def config_options(with_db: bool = True) -> Callable:
    """``--config`` (and ``--db``) on a command."""

    def decorate(fn: Callable) -> Callable:
        fn = click.option(
            "--config", "-c", "config_path", type=click.Path(dir_okay=False),
            help="Configuration file (default: config/monitor.toml if present, else built-in defaults).",
        )(fn)
        if with_db:
            fn = click.option("--db", "db_path", type=click.Path(dir_okay=False), help="SQLite database (overrides monitor.db).")(fn)
        return fn

    return decorate


def _load(config_path: str | None, db_path: str | None = None) -> Config:
    try:
        return load_config(config_path, db=db_path)
    except ConfigErrors as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), format=LOG_FORMAT, stream=sys.stderr, force=True)


def _open(config: Config, **kwargs: Any) -> Monitor:
    try:
        return Monitor.open(config, **kwargs)
    except ConfigErrors as exc:
        for error in exc.errors:
            click.echo(f"error: {config.redact(str(error))}", err=True)
        raise SystemExit(2) from None
    except MonitorError as exc:
        raise click.ClickException(config.redact(str(exc))) from exc


def load_cli_config(config_path: str | None, db_path: str | None = None) -> Config:
    """The configuration for a command, or exit 2 printing every problem (for plugins' commands)."""
    return _load(config_path, db_path)


def open_cli_monitor(config: Config, **kwargs: Any) -> Monitor:
    """:meth:`Monitor.open` for a command, errors printed as one-liners (for plugins' commands)."""
    return _open(config, **kwargs)


def handle_errors(fn: Callable) -> Callable:
    """Library errors become one-line messages, not tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MonitorError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="news-monitor")
def cli() -> None:
    """news-monitor: watch feeds, classify stories against watchlists, alert on matches."""


@cli.command()
@config_options()
@handle_errors
def run(config_path: str | None, db_path: str | None) -> None:
    """Run the daemon: poll every source on its schedule until SIGINT or SIGTERM."""
    from .daemon import run_daemon

    config = _load(config_path, db_path)
    _setup_logging(config.log_level)
    monitor = _open(config)
    try:
        code = run_daemon(monitor)
    finally:
        monitor.close()
    raise SystemExit(code)


@cli.command()
@config_options()
@click.option("--source", "-s", "only", multiple=True, help="Poll only this source (repeatable).")
@handle_errors
def once(config_path: str | None, db_path: str | None, only: tuple[str, ...]) -> None:
    """Poll every source once, deliver alerts, print a summary and exit.

    Exits 1 when every polled source failed, else 0.
    """
    config = _load(config_path, db_path)
    _setup_logging(config.log_level)
    unknown = [name for name in only if name not in config.sources]
    if unknown:
        raise click.BadParameter(f"no source named {unknown[0]!r} (configured: {', '.join(config.sources) or 'none'})", param_hint="--source")
    with _open(config) as monitor:
        sources = [config.sources[name] for name in only] if only else None
        results = monitor.run_once(sources)
        dispatched = monitor.dispatch()
    errors = [r for r in results if r.error]
    click.echo(
        f"Polled {len(results)} source{'s' if len(results) != 1 else ''}: "
        f"{sum(r.new_stories for r in results)} new stories, "
        f"{sum(r.updated_stories for r in results)} updated, "
        f"{sum(r.matches for r in results)} new matches, "
        f"{sum(r.alerts_queued for r in results)} alerts queued, "
        f"{len(errors)} error{'s' if len(errors) != 1 else ''}."
    )
    if dispatched.retrying or dispatched.failed:
        click.echo(f"Alerts: {dispatched.retrying} waiting to retry, {dispatched.failed} failed (see `monitor alerts`).")
    for result in errors:
        click.echo(f"  {result.source}: {result.error}", err=True)
    if results and len(errors) == len(results):
        raise SystemExit(1)


@cli.command()
@config_options(with_db=False)
def check(config_path: str | None) -> None:
    """Validate the configuration and plugins; print every problem with file and key.

    Exits 0 when the configuration is usable, 1 when it is not.
    """
    try:
        config = load_config(config_path, db=":memory:")
    except ConfigErrors as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None
    try:
        monitor = Monitor.open(config)
    except ConfigErrors as exc:
        for error in exc.errors:
            click.echo(f"error: {config.redact(str(error))}", err=True)
        raise SystemExit(1) from None
    except MonitorError as exc:
        click.echo(f"error: {config.redact(str(exc))}", err=True)
        raise SystemExit(1) from None
    with monitor:
        problems = monitor.check()
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        if problems:
            raise SystemExit(1)
        enabled = [s for s in config.sources.values() if s.enabled]
        click.echo(
            f"OK: {config.where}: {len(enabled)} source{'s' if len(enabled) != 1 else ''}, "
            f"{len(monitor.watchlists)} watchlists ({', '.join(w.name for w in monitor.watchlists)}), "
            f"{len(monitor.channels)} channel{'s' if len(monitor.channels) != 1 else ''} "
            f"({', '.join(monitor.channels)}), {len(monitor.classifiers)} classifier"
            f"{'s' if len(monitor.classifiers) != 1 else ''} ({', '.join(monitor.classifiers)})."
        )
        if not enabled:
            click.echo("warning: no sources are configured; add [sources.NAME] tables (see README).")


@cli.command()
@config_options()
@click.option("--watchlist", "-w", help="Only matches of this watchlist.")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of text.")
@handle_errors
def matches(config_path: str | None, db_path: str | None, watchlist: str | None, limit: int, as_json: bool) -> None:
    """List recent matches, newest first."""
    from .store import Store

    config = _load(config_path, db_path)
    store = Store(config.db_path)
    try:
        rows = store.matches(watchlist, limit)
    finally:
        store.close()
    for row in rows:
        evidence = json.loads(row["evidence"] or "{}")
        if as_json:
            click.echo(json.dumps({**row, "evidence": evidence}, ensure_ascii=False))
            continue
        click.echo(f"{row['matched_at']}  [{row['watchlist']}] {row['title']}  (score {row['score']:.2f})")
        if row["url"]:
            click.echo(f"    {row['url']}")
        if evidence.get("terms"):
            click.echo(f"    matched: {', '.join(evidence['terms'])}")
    if not rows and not as_json:
        click.echo("No matches yet." if not watchlist else f"No matches for {watchlist} yet.")


@cli.command()
@config_options()
@click.argument("query")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of text.")
@handle_errors
def search(config_path: str | None, db_path: str | None, query: str, limit: int, as_json: bool) -> None:
    """Full-text search over stored stories (SQLite FTS5 syntax: words, "phrases", OR, NOT, prefix*)."""
    from .store import Store

    config = _load(config_path, db_path)
    store = Store(config.db_path)
    try:
        rows = store.search(query, limit)
    finally:
        store.close()
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        click.echo(f"{row['published_at'] or '(no date)':25}  {row['title']}")
        if row["url"]:
            click.echo(f"    {row['url']}")
        click.echo(f"    {row['snippet']}")
    if not rows and not as_json:
        click.echo("No stories match.")


@cli.command()
@config_options()
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@handle_errors
def sources(config_path: str | None, db_path: str | None, as_json: bool) -> None:
    """Every source with its last fetch, HTTP status, error, next poll and story count."""
    from .store import Store

    config = _load(config_path, db_path)
    store = Store(config.db_path)
    try:
        store.sync_sources(config.sources.values())
        rows = [r for r in store.sources() if r["name"] in config.sources]
    finally:
        store.close()
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        status = row["status"] + (f" (HTTP {row['http_status']})" if row["http_status"] else "")
        click.echo(f"{row['name']}  {status}  stories: {row['stories_count']}  url: {row['url']}")
        click.echo(f"    last fetch: {row['last_fetch_at'] or 'never'}  next poll: {row['next_poll_at'] or 'at start'}"
                   f"  errors in a row: {row['error_count']}")
        if row["last_error"]:
            click.echo(f"    error: {row['last_error']}")


@cli.command()
@config_options()
@click.option("--status", type=click.Choice(["pending", "sent", "failed", "all"]), default="all", show_default=True)
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--retry", is_flag=True, help="Requeue every failed alert (with --channel, only that channel's).")
@click.option("--channel", help="Only this channel.")
@handle_errors
def alerts(config_path: str | None, db_path: str | None, status: str, limit: int, retry: bool, channel: str | None) -> None:
    """Show the alert outbox: pending, sent and failed deliveries with their last error."""
    config = _load(config_path, db_path)
    if retry:
        _setup_logging(config.log_level)
        with _open(config) as monitor:
            from .outbox import requeue_failed

            count = requeue_failed(monitor, channel)
            click.echo(f"Requeued {count} failed alert{'s' if count != 1 else ''}.")
            result = monitor.dispatch()
            click.echo(f"Sent {result.sent}, {result.retrying} waiting to retry, {result.failed} failed.")
        return
    from .store import Store

    store = Store(config.db_path)
    clauses, params = [], []
    if status != "all":
        clauses.append("o.status = ?")
        params.append(status)
    if channel:
        clauses.append("o.channel = ?")
        params.append(channel)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    try:
        rows = store.query(
            "SELECT o.id, o.channel, o.status, o.attempts, o.next_attempt_at, o.sent_at, o.last_error, "
            f"m.watchlist, s.title FROM outbox o JOIN matches m ON m.id = o.match_id JOIN stories s ON s.id = m.story_id "
            f"{where} ORDER BY o.id DESC LIMIT ?",
            [*params, limit],
        )
    finally:
        store.close()
    for row in rows:
        when = row["sent_at"] if row["status"] == "sent" else row["next_attempt_at"]
        click.echo(f"#{row['id']}  {row['status']:7}  {row['channel']}  [{row['watchlist']}] {row['title']}"
                   f"  attempts: {row['attempts']}  {'sent' if row['status'] == 'sent' else 'next'}: {when}")
        if row["last_error"]:
            click.echo(f"    last error: {row['last_error']}")
    if not rows:
        click.echo("The outbox is empty.")


@cli.command()
@config_options(with_db=False)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@handle_errors
def plugins(config_path: str | None, as_json: bool) -> None:
    """List the loaded plugins, where each came from and the hooks it implements."""
    config = _load(config_path, None)
    pm = make_plugin_manager()
    origins = load_plugins(pm, disable=config.disable_plugins, plugins_dir=config.plugins_dir)
    from .plugins import plugin_infos

    infos = plugin_infos(pm, origins)
    if as_json:
        click.echo(json.dumps([{"name": i.name, "origin": i.origin, "hooks": list(i.hooks)} for i in infos], indent=2))
        return
    for info in infos:
        click.echo(f"{info.name}  ({info.origin})")
        click.echo(f"    hooks: {', '.join(info.hooks)}")
    for name in config.disable_plugins:
        click.echo(f"{name}  (disabled by monitor.disable_plugins)")


def _register_plugin_commands() -> None:
    pm = make_plugin_manager()
    try:
        load_plugins(pm)
    except MonitorError:
        return  # `monitor plugins` and `check` report the problem properly
    pm.hook.register_commands(cli=cli)


def main() -> None:
    """Entry point of the ``monitor`` console script."""
    _register_plugin_commands()
    cli()
