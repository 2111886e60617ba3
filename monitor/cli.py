"""The ``monitor`` command line (also ``python -m monitor``)."""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from .app import Monitor, disable_warnings
from .config import Config, load_config
from .errors import ConfigErrors, MonitorError, StorageError
from .logs import setup_logging
from .outbox import DispatchResult
from .output import json_line, output_options, typed_rows, write_rows
from .plugins import load_plugins, make_plugin_manager
from .safetext import json_safe, safe_line
from .storage import Storage, open_store
from .timeutil import format_duration, from_iso, utcnow
from .version import __version__
from .wording import plural


def echo(text: str = "", err: bool = False) -> None:
    """One line to the terminal, made safe first: titles, links and errors come from servers we do not control."""
    click.echo(safe_line(text), err=err)


def config_options(with_db: bool = True) -> Callable:
    """``--config`` (and ``--db``) on a command."""

    def decorate(fn: Callable) -> Callable:
        fn = click.option(
            "--config", "-c", "config_path", type=click.Path(dir_okay=False),
            help="Configuration file (default: config/monitor.toml if present, else built-in defaults).",
        )(fn)
        if with_db:
            fn = click.option("--db", "db_path", metavar="PATH|URL",
                              help="SQLite database file or postgresql:// URL (overrides monitor.db).")(fn)
        return fn

    return decorate


def _load(config_path: str | None, db_path: str | None = None) -> Config:
    try:
        return load_config(config_path, db=db_path)
    except ConfigErrors as exc:
        for error in exc.errors:
            echo(f"error: {error}", err=True)
        raise SystemExit(2) from None


def _setup_logging(config: Config, level: str | None = None) -> None:
    setup_logging(level or config.log_level, config.redact)


def _open(config: Config, **kwargs: Any) -> Monitor:
    for warning in disable_warnings(config):
        logging.getLogger("monitor").warning("%s", warning)
    try:
        return Monitor.open(config, **kwargs)
    except ConfigErrors as exc:
        for error in exc.errors:
            echo(f"error: {config.redact(str(error))}", err=True)
        raise SystemExit(2) from None
    except MonitorError as exc:
        raise click.ClickException(config.redact(str(exc))) from exc


def load_cli_config(config_path: str | None, db_path: str | None = None) -> Config:
    """The configuration for a command, or exit 2 printing every problem (for plugins' commands)."""
    return _load(config_path, db_path)


def open_cli_monitor(config: Config, **kwargs: Any) -> Monitor:
    """:meth:`Monitor.open` for a command, errors printed as one-liners (for plugins' commands)."""
    return _open(config, **kwargs)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit with ``code`` (2: the command was asked something impossible)."""
    echo(f"error: {message}", err=True)
    raise SystemExit(code)


def require_database(config: Config) -> None:
    """Refuse (exit 2) a database file that does not exist: a read command must not create an empty one."""
    if config.is_postgres:
        return  # a server database: opening it says whether it can be reached
    path = config.db_path
    if str(path) != ":memory:" and not path.exists():
        fail(f"no database at {path}: nothing has been polled into it yet (run `monitor once` first), "
             "or pass the right --db / monitor.db")


def check_name(kind: str, name: str | None, known: Iterable[str], where: str) -> None:
    """Refuse (exit 2) an unknown watchlist, channel or source name, listing the known ones."""
    names = sorted(set(known))
    if name is not None and name not in names:
        fail(f"no {kind} named {name!r} ({where}: {', '.join(names) or 'none'})")


class Since(click.ParamType):
    """A moment: an ISO 8601 date or time (UTC unless it has an offset), or a duration back from now (``2h``, ``3d``)."""

    name = "since"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        from .config import parse_duration

        try:
            return utcnow() - timedelta(seconds=parse_duration(value))
        except ValueError:
            pass
        try:
            moment = from_iso(value)
        except ValueError:
            moment = None
        if moment is None:
            self.fail(f"expected a duration back from now (\"2h\", \"3d\") or an ISO 8601 date or time "
                      f"(\"2026-11-30\", \"2026-11-30T08:00:00+01:00\"), got {value!r}", param, ctx)
        return moment


@contextmanager
def _store(config_path: str | None, db_path: str | None) -> Iterator[tuple[Config, Storage]]:
    """The configuration and its database, opened for a read command and closed after."""
    config = _load(config_path, db_path)
    require_database(config)
    store = open_store(config.db, config.secrets, for_reading=True)
    if store.warning:
        echo(f"warning: {store.warning}", err=True)
    try:
        yield config, store
    finally:
        store.close()


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
    """Run the daemon: poll every source on its schedule until SIGINT or SIGTERM.

    With --db postgresql://…, run as one worker of a fleet sharing that database (docs/scale-out.md).
    """
    from .daemon import run_daemon

    config = _load(config_path, db_path)
    if config.is_postgres:
        from .fleet import run_worker

        _setup_logging(config)
        raise SystemExit(run_worker(config))
    _setup_logging(config)
    monitor = _open(config)
    try:
        code = run_daemon(monitor)
    finally:
        monitor.close()
    raise SystemExit(code)


@cli.command()
@config_options()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs [web] token or username and password.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@handle_errors
def serve(config_path: str | None, db_path: str | None, host: str, port: int) -> None:
    """Serve the web UI, its JSON API (/api/), /metrics, /healthz and /readyz."""
    from .web.server import serve as run_server

    config = _load(config_path, db_path)
    _setup_logging(config)
    try:
        run_server(config, host, port, announce=lambda line: click.echo(line))
    except ConfigErrors as exc:
        for error in exc.errors:
            echo(f"error: {config.redact(str(error))}", err=True)
        raise SystemExit(2) from None


@cli.command()
@config_options()
@click.option("--source", "-s", "only", multiple=True, help="Poll only this source (repeatable).")
@handle_errors
def once(config_path: str | None, db_path: str | None, only: tuple[str, ...]) -> None:
    """Poll every source once, deliver alerts, print a summary and exit.

    Exits 1 when every polled source failed, else 0.
    """
    config = _load(config_path, db_path)
    _setup_logging(config)
    unknown = [name for name in only if name not in config.sources]
    if unknown:
        raise click.BadParameter(f"no source named {unknown[0]!r} (configured: {', '.join(config.sources) or 'none'})", param_hint="--source")
    late_error = None
    with _open(config) as monitor:
        sources = [config.sources[name] for name in only] if only else None
        results = monitor.run_once(sources, deliver=False)
        try:
            dispatched = monitor.dispatch(until_done=True)
            monitor.prune()  # retention applies as in the daemon
        except MonitorError as exc:
            dispatched, late_error = DispatchResult(), str(exc)
    errors = [r for r in results if r.error]
    click.echo(
        f"Polled {plural(len(results), 'source')}: "
        f"{plural(sum(r.new_stories for r in results), 'new story')}, "
        f"{sum(r.updated_stories for r in results)} updated, "
        f"{plural(sum(r.matches for r in results), 'new match')}, "
        f"{plural(sum(r.alerts_queued for r in results), 'alert')} queued, "
        f"{plural(len(errors), 'error')}."
    )
    if dispatched.held_by:
        click.echo(f"Alerts: not delivered by this command: {dispatched.held_by} delivers from this database.")
    if dispatched.retrying or dispatched.failed:
        click.echo(f"Alerts: {dispatched.retrying} waiting to retry, {dispatched.failed} failed "
                   "(see `monitor alerts`).")
    for result in errors:
        echo(f"  {result.source}: {result.error}", err=True)
    if late_error:
        echo(f"error: {late_error}", err=True)
    if results and len(errors) == len(results) or late_error:
        raise SystemExit(1)


@cli.command()
@config_options(with_db=False)
@click.option("--no-env", "no_env", is_flag=True,
              help="Check everything except that the ${VAR}s of channels and plugins are set "
                   "(on a machine without the senders' secrets).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: only the problems, as a JSON array of {file, key, message, severity} (for editors and CI).")
def check(config_path: str | None, no_env: bool, output_format: str) -> None:
    """Validate the configuration and plugins; print every problem at once, with file and key.

    Then say what interval each source will actually get. Exits 0 when the
    configuration is usable, 1 when it is not.
    """
    from .checking import check_configuration

    result = check_configuration(config_path, require_env=not no_env)
    try:
        if output_format == "json":
            click.echo(json_safe(json.dumps([p.to_dict() for p in result.problems], ensure_ascii=False, indent=2)))
        else:
            for problem in result.problems:
                echo(f"{problem.severity}: {problem}", err=True)
            unset = result.config and result.config.env_errors("channels") + result.config.env_errors("plugins")
            if unset and not no_env:
                echo("(`monitor check --no-env` checks the rest without them; only run, once and "
                     "alerts --retry need them)", err=True)
        if result.errors:
            raise SystemExit(1)
        if output_format == "text":
            assert result.monitor is not None and result.config is not None
            _describe_check(config_path, result.config, result.monitor)
    finally:
        if result.monitor is not None:
            result.monitor.close()


def _describe_check(config_path: str | None, config: Config, monitor: Monitor) -> None:
    """What a configuration that passed ``check`` will do: counts, unchecked channels, polling, new sources."""
    enabled = [s for s in config.sources.values() if s.enabled]
    click.echo(
        f"OK: {config.where}: {plural(len(enabled), 'source')}, "
        f"{plural(len(monitor.watchlists), 'watchlist')} ({', '.join(w.name for w in monitor.watchlists)}), "
        f"{plural(len(monitor.channels), 'channel')} ({', '.join(monitor.channels)}), "
        f"{plural(len(monitor.classifiers), 'classifier')} ({', '.join(monitor.classifiers)})."
    )
    for name, unset in monitor.unavailable_channels.items():
        for error in unset:
            click.echo(f"not checked (--no-env): channel {name}: {error}")
    if not enabled:
        click.echo("warning: no sources are configured; add [sources.NAME] tables (see README).")
    _describe_polling(config, enabled)
    # The check ran on a scratch database; what has been polled is in the real one.
    _note_new_sources(load_config(config_path), config.alerts["new_source_window"], enabled)


def _describe_polling(config: Config, enabled: list) -> None:
    """One line per source: the interval it will actually get."""
    from .polling import MAX_AGE_CAP, RETRY_AFTER_CAP, describe_policy

    if not enabled:
        return
    click.echo("Polling (each source's interval):")
    for source in enabled:
        click.echo(f"  {source.name}: {describe_policy(source, config.schedule)}")
    click.echo(f"  Longer only when a server asks (Retry-After: at most {format_duration(RETRY_AFTER_CAP)}; "
               f"Cache-Control max-age: at most {format_duration(MAX_AGE_CAP)}) or a source fails "
               f"(backoff: at most {format_duration(config.schedule['max_interval'])}, schedule.max_interval); "
               "`monitor sources` shows why.")


def _note_new_sources(config: Config, window: float, enabled: list) -> None:
    """Say which feeds have never been polled and what their first poll will alert on."""
    names = [s.name for s in enabled if s.kind == "feed"]
    if config.is_postgres:
        with closing(open_store(config.db, config.secrets, read_only=True)) as store:
            new = store.never_polled(names)
    else:
        from .sqlite_store import never_polled

        new = never_polled(config.db_path, names)
    if not new:
        return
    if window:
        what = (f"stores the entries already in the feed but alerts only on those published in the last "
                f"{format_duration(window)} (alerts.new_source_window; undated entries do not alert)")
    else:
        what = "alerts on every entry already in the feed (alerts.new_source_window = 0)"
    click.echo(f"New source{'' if len(new) == 1 else 's'} (never polled): {', '.join(new)}: the first poll {what}.")


@cli.command()
@config_options()
@click.option("--watchlist", "-w", help="Only matches of this watchlist.")
@click.option("--source", "-s", help="Only matches of stories from this source.")
@click.option("--since", type=Since(), help="Only matches made since then: a duration back from now (2h, 3d) "
              "or an ISO 8601 date or time.")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many.")
@click.option("--all", "show_all", is_flag=True, help="Every matched story of each cluster, not only its first.")
@output_options
@handle_errors
def matches(config_path: str | None, db_path: str | None, watchlist: str | None, source: str | None,
            since: datetime | None, limit: int, show_all: bool, output_format: str | None) -> None:
    """List recent matches, newest first: one line per story cluster (the same story from several sources)."""
    with _store(config_path, db_path) as (config, store):
        check_name("watchlist", watchlist, [*config.watchlists, *store.watchlist_names()], "watchlists")
        check_name("source", source, [*config.sources, *(r["name"] for r in store.sources())], "sources")
        found = store.matches_by_cluster(watchlist, limit, since=since, source=source)
        members = {(r["watchlist"], r["cluster"]): store.cluster_matches(r["watchlist"], r["cluster"]) for r in found}
    rows = []
    for row in found:
        group = members[(row["watchlist"], row["cluster"])]
        shown = {k: v for k, v in row.items() if k not in ("source_names", "last_matched", "stories", "sources")}
        data = {**shown, "evidence": json.loads(row["evidence"] or "{}"),
                "cluster_sources": sorted({m["source"] for m in group}), "cluster_stories": row["stories"]}
        if show_all:
            data["members"] = group
        rows.append(data)

    def human(rows: Sequence[dict]) -> None:
        for row in rows:
            evidence = row["evidence"]
            others = len(row["cluster_sources"]) - 1
            also = f"  +{plural(others, 'source')}" if others > 0 else ""
            echo(f"{row['matched_at']}  [{row['watchlist']}] {row['title']}  (score {row['score']:.2f}){also}")
            if row["url"]:
                echo(f"    {row['url']}")
            if evidence.get("terms"):
                echo(f"    matched: {', '.join(evidence['terms'])}")
            if evidence.get("truncated"):
                echo(f"    note: {evidence.get('note') or 'the story was cut before classifying'}")
            if others > 0 and not show_all:
                echo(f"    also reported by: {', '.join(s for s in row['cluster_sources'] if s != row['source'])}")
            if show_all:
                for member in row["members"]:
                    if member["story_id"] != row["story_id"]:
                        echo(f"    + {member['source']}: {member['title']}" + (f"  {member['url']}" if member["url"] else ""))
        if not rows:
            scope = " ".join(part for part in (
                f"for {watchlist}" if watchlist else "", f"from {source}" if source else "",
                f"since {since.isoformat(timespec='seconds')}" if since else "") if part)
            click.echo(f"No matches {scope} yet." if scope else "No matches yet.")

    write_rows(rows, output_format, human)


@cli.command()
@config_options()
@click.argument("query", required=False)
@click.option("--watchlist", "-w", help="Show what this configured watchlist's query would match (at its threshold) "
              "among the stored stories, instead of QUERY.")
@click.option("--fts", "raw_fts", is_flag=True, help="QUERY is raw SQLite FTS5 syntax, ranked by FTS5.")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many.")
@output_options
@handle_errors
def search(config_path: str | None, db_path: str | None, query: str | None, watchlist: str | None, raw_fts: bool,
           limit: int, output_format: str | None) -> None:
    """Search stored stories with the watchlist query language (see README, Query language).

    Words, "phrases", AND/OR/NOT/-, NEAR/n, prefix*, title: and text: work as
    in watchlist queries; matched words are shown in [brackets], best score first.
    """
    from .errors import QuerySyntaxError
    from .search import search as search_stories

    if (query is None) == (watchlist is None):
        fail("give a QUERY or --watchlist NAME (one of them)")
    if raw_fts and watchlist:
        fail("--fts searches a raw FTS5 QUERY; it does not apply to --watchlist")
    with _store(config_path, db_path) as (config, store):
        threshold = 0.0
        if watchlist is not None:
            check_name("watchlist", watchlist, config.watchlists, "configured watchlists")
            query = config.watchlists[watchlist].query
            threshold = config.watchlists[watchlist].threshold
            if not query:
                fail(f"watchlist {watchlist!r} has no query (it is matched by other classifiers only)")
        assert query is not None
        if raw_fts:
            rows = store.search(query, limit)
        else:
            try:
                rows = [f.to_dict() for f in search_stories(store, query, limit, threshold).found]
            except QuerySyntaxError as exc:
                where = f"watchlists.{watchlist}.query" if watchlist else "query"
                fail(f"{where}: {exc}")

    def human(rows: Sequence[dict]) -> None:
        for row in rows:
            score = f"  (score {row['score']:.2f})" if "score" in row else ""
            echo(f"{row['published_at'] or '(no date)':25}  {row['title']}{score}")
            if row["url"]:
                echo(f"    {row['url']}")
            echo(f"    {row['snippet']}")
        if not rows:
            click.echo("No stories match.")

    write_rows(rows, output_format, human)


@cli.group(invoke_without_command=True)
@config_options()
@output_options
@click.pass_context
@handle_errors
def sources(ctx: click.Context, config_path: str | None, db_path: str | None, output_format: str | None) -> None:
    """Every source with its last fetch, HTTP status, error, next poll and why, effective URL and story count.

    The subcommands add, import, export and remove manage the sources of the configuration file.
    """
    if ctx.invoked_subcommand is not None:
        return
    with _store(config_path, db_path) as (config, store):
        try:
            store.sync_sources(config.sources.values())
        except StorageError:
            pass  # a read-only or damaged file: list what it holds
        rows = typed_rows((r for r in store.sources() if r["name"] in config.sources), booleans=("enabled",))
        if config.is_postgres:
            from .fleet_cli import last_polled_by

            polled_by = last_polled_by(store)
            for row in rows:
                row["polled_by"] = polled_by.get(row["name"])

    def human(rows: Sequence[dict]) -> None:
        for row in rows:
            status = row["status"] + (f" (HTTP {row['http_status']})" if row["http_status"] else "")
            echo(f"{row['name']}  {status}  stories: {row['stories_count']}  url: {row['url']}")
            if row["effective_url"] and row["effective_url"] != row["url"]:
                echo(f"    moved permanently to: {row['effective_url']} (polled there; update the config to silence this)")
            if row["status"] == "gone":
                next_poll = "never (gone)"
            elif row["next_poll_at"]:
                # Rows last polled before poll reasons were recorded have none.
                next_poll = row["next_poll_at"] + (f" ({row['poll_reason']})" if row["poll_reason"] else "")
            else:
                next_poll = "at start"
            by = f"  by worker {row['polled_by']}" if row.get("polled_by") else ""
            echo(f"    last fetch: {row['last_fetch_at'] or 'never'}{by}  next poll: {next_poll}"
                 f"  errors in a row: {row['error_count']}")
            if row["last_error"]:
                echo(f"    error: {row['last_error']}")
            elif row["last_note"]:
                echo(f"    note: {row['last_note']}")

    write_rows(rows, output_format, human)


# More stories than this are not deleted at a terminal without a yes.
PRUNE_CONFIRM_OVER = 20


@cli.command()
@config_options()
@click.option("--dry-run", is_flag=True, help="Say how many stories would be deleted; delete nothing.")
@click.option("--yes", "-y", is_flag=True, help=f"Delete without asking, however many (needed to delete more than "
              f"{PRUNE_CONFIRM_OVER} stories when not at a terminal).")
@handle_errors
def prune(config_path: str | None, db_path: str | None, dry_run: bool, yes: bool) -> None:
    """Apply retention now: delete stories older than retention.max_age (matched ones after
    retention.matched_max_age), forget tombstones older than retention.tombstone_max_age and give
    the space back; prints the file size before and after.

    The daemon prunes every retention.prune_interval, `monitor once` on every run. Asks first
    when more than 20 stories would go (--yes to skip); --dry-run only counts them.
    """
    config = _load(config_path, db_path)
    require_database(config)
    if not config.retention.get("max_age"):
        click.echo("Nothing to do: retention.max_age is 0 (stories are kept forever).")
        return
    age = format_duration(config.retention["max_age"])
    _setup_logging(config)
    with _open(config, require_env=False) as monitor:
        doomed = monitor.prune(dry_run=True)
        if dry_run:
            click.echo(f"Would prune {plural(doomed, 'story')} first seen more than {age} ago (nothing deleted: --dry-run).")
            return
        if doomed > PRUNE_CONFIRM_OVER and not yes:
            what = f"{plural(doomed, 'story')} first seen more than {age} ago"
            if not sys.stdin.isatty():
                fail(f"would delete {what}: refused without --yes when not at a terminal "
                     "(`monitor prune --dry-run` shows what would go)")
            if not click.confirm(f"Delete {what}?", default=False):
                click.echo("Nothing deleted.")
                return
        before = monitor.store.file_size()
        deleted = monitor.prune()
        after = monitor.store.file_size()
    click.echo(f"Pruned {plural(deleted, 'story')} first seen more than {age} ago. "
               f"Database file: {_size(before)} before, {_size(after)} after.")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


@cli.command(name="migrate-db")
@config_options()
@click.option("--to", "target", required=True, metavar="URL",
              help="The empty PostgreSQL database to copy into: postgresql://user@host/dbname "
                   "(a password written ${VAR} is read from the environment).")
@handle_errors
def migrate_db(config_path: str | None, db_path: str | None, target: str) -> None:
    """Copy the SQLite database (monitor.db or --db) into an empty PostgreSQL database.

    Copies sources with their fetch state, stories, matches, the outbox, digest timetables,
    tombstones, trained models and feedback in one transaction, keeping ids, and says how many
    rows of each it copied. Refuses a target that holds any row. The SQLite file is only read:
    point monitor.db (or --db) at the URL afterwards. Stop the daemon first, or what it writes
    meanwhile stays behind.
    """
    import os

    from .migrate_db import copy_database
    from .postgres_store import PostgresStore
    from .secrets import Secrets
    from .sqlite_store import SQLiteStore
    from .storage import is_postgres_url, redact_url

    config = _load(config_path, db_path)
    if config.is_postgres:
        fail(f"the database to copy from is {config.database}: migrate-db copies a SQLite file "
             "(monitor.db or --db) into PostgreSQL")
    require_database(config)
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", target))
    unset = sorted(n for n in names if not os.environ.get(n))
    if unset:
        fail(f"--to: environment variable {', '.join(unset)} is not set")
    secrets = Secrets({**dict(config.secrets.values), **{n: os.environ[n] for n in names}})
    url = secrets.reveal(target)
    if not is_postgres_url(url):
        fail(f"--to must be a postgresql:// URL, got {redact_url(target)!r}")
    source = SQLiteStore(config.db_path, config.secrets)
    try:
        destination = PostgresStore(url, secrets)
        try:
            copied = copy_database(source, destination)
        finally:
            destination.close()
    finally:
        source.close()
    shown = redact_url(secrets.redact(url))
    click.echo(f"Copied {config.db_path} into {shown}:")
    for table, count in copied.items():
        click.echo(f"  {table}: {count:,} rows")
    click.echo(f'Use it with --db {shown} or [monitor] db = "{shown}".')


ALERT_STATUSES = ("pending", "sending", "sent", "failed")


@cli.command()
@config_options()
@click.option("--status", type=click.Choice([*ALERT_STATUSES, "all"]), default="all", show_default=True,
              help="Only alerts in this state.")
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(min=1), help="How many.")
@click.option("--retry", is_flag=True, help="Requeue every failed alert (with --channel, only that channel's).")
@click.option("--channel", help="Only this channel.")
@output_options
@handle_errors
def alerts(config_path: str | None, db_path: str | None, status: str, limit: int, retry: bool, channel: str | None,
           output_format: str | None) -> None:
    """Show the alert outbox: pending, sent and failed deliveries with their last error."""
    config = _load(config_path, db_path)
    require_database(config)
    if retry:
        check_name("channel", channel, config.channels, "configured channels")
        _setup_logging(config)
        with _open(config) as monitor:
            from .outbox import requeue_failed

            count = requeue_failed(monitor, channel)
            click.echo(f"Requeued {plural(count, 'failed alert')}.")
            # The whole backlog, as `monitor once` sends it, not one batch per channel.
            result = monitor.dispatch(until_done=True)
            if result.held_by:
                click.echo(f"Not sent by this command: {result.held_by} delivers from this database.")
            else:
                click.echo(f"Sent {result.sent}, {result.retrying} waiting to retry, {result.failed} failed.")
        return
    with _store(config_path, db_path) as (_, store):
        check_name("channel", channel, [*config.channels, *store.outbox_channels()], "channels")
        rows = store.outbox(None if status == "all" else status, channel, limit)
        counts = store.outbox_counts()

    def human(rows: Sequence[dict]) -> None:
        for row in rows:
            when = row["sent_at"] if row["status"] == "sent" else row["next_attempt_at"]
            echo(f"#{row['id']}  {row['status']:7}  {row['channel']}  [{row['watchlist']}] {row['title']}"
                 f"  attempts: {row['attempts']}  {'sent' if row['status'] == 'sent' else 'next'}: {when}")
            if row["last_error"]:
                echo(f"    last error: {row['last_error']}")
        if rows:
            return
        if not counts:
            click.echo("The outbox is empty.")
            return
        held = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        what = " ".join(p for p in ("" if status == "all" else status, "alerts", f"on channel {channel}" if channel else "") if p)
        click.echo(f"No {what} (the outbox holds {held}).")

    write_rows(rows, output_format, human)


@cli.command()
@config_options(with_db=False)
@output_options
@handle_errors
def plugins(config_path: str | None, output_format: str | None) -> None:
    """List the loaded plugins, where each came from and the hooks it implements."""
    config = _load(config_path, None)
    pm = make_plugin_manager()
    origins = load_plugins(pm, disable=config.disable_plugins, plugins_dir=config.plugins_dir, redact=config.redact)
    from .plugins import plugin_infos

    rows = [{"name": i.name, "origin": i.origin, "hooks": list(i.hooks)} for i in plugin_infos(pm, origins)]

    def human(rows: Sequence[dict]) -> None:
        for row in rows:
            click.echo(f"{row['name']}  ({row['origin']})")
            click.echo(f"    hooks: {', '.join(row['hooks'])}")
        for name in config.disable_plugins:
            click.echo(f"{name}  (disabled by monitor.disable_plugins)")

    write_rows(rows, output_format, human)


@cli.command()
@config_options()
@click.argument("args", nargs=-1, metavar="[MATCH_ID] right|wrong")
@click.option("--story", "story_id", help="A story the watchlist missed (with --watchlist), instead of a match.")
@click.option("--watchlist", "-w", help="The watchlist that missed --story.")
@handle_errors
def feedback(config_path: str | None, db_path: str | None, args: tuple[str, ...], story_id: str | None,
             watchlist: str | None) -> None:
    """Tell the monitor whether a match was right, or that a watchlist missed a story.

    `monitor feedback 12 wrong` judges match 12 (ids in `monitor matches`);
    `monitor feedback --story ID --watchlist NAME right` records a miss. The
    verdict is stored for `monitor train NAME` to learn from; matches and
    alerts already sent are left as they are.
    """
    from .models import VERDICTS

    if story_id is not None or watchlist is not None:
        if story_id is None or watchlist is None or len(args) != 1:
            raise click.UsageError("a miss needs --story ID, --watchlist NAME and one verdict (right or wrong)")
        verdict, match_id = args[0], None
    else:
        if len(args) != 2 or not args[0].isdigit():
            raise click.UsageError("give MATCH_ID and a verdict (right or wrong), or --story ID --watchlist NAME right")
        match_id, verdict = int(args[0]), args[1]
    if verdict not in VERDICTS:
        raise click.UsageError(f"the verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    with _store(config_path, db_path) as (config, store):
        if watchlist is not None and watchlist not in config.watchlists:
            raise click.BadParameter(f"no watchlist named {watchlist!r} (configured: {', '.join(config.watchlists)})",
                                     param_hint="--watchlist")
        recorded = store.add_feedback(watchlist or "", verdict, match_id=match_id, story_id=story_id)
    what = f"match {match_id}" if match_id is not None else "the miss"
    click.echo(f"Recorded: {what} ({recorded.watchlist}, story {recorded.story_id}) is {verdict}. "
               f"`monitor train {recorded.watchlist}` learns from it.")


def _classifier_monitor(config_path: str | None, db_path: str | None) -> Monitor:
    """A monitor for classifying input: the configured database if it exists (trained models), else in memory."""
    config = _load(config_path, db_path)
    if not config.is_postgres and not config.db_path.exists():
        config = _load(config_path, ":memory:")
    _setup_logging(config, "WARNING")
    return _open(config, require_env=False)  # classifying sends nothing


def _classify_all(monitor: Monitor, items: list) -> dict[str, list]:
    """``{story id: matches}`` for every story, classified in batches."""
    from .models import Match

    found: dict[str, list[Match]] = {item.story.id: [] for item in items}
    for start in range(0, len(items), CLASSIFY_BATCH):
        batch = [item.story for item in items[start : start + CLASSIFY_BATCH]]
        for match in monitor.classify(batch):
            found[match.story_id].append(match)
    return found


CLASSIFY_BATCH = 256



@cli.command()
@config_options()
@click.argument("input_file", type=click.File("r", encoding="utf-8"), default="-")
@handle_errors
def classify(config_path: str | None, db_path: str | None, input_file) -> None:
    """Classify stories given as JSON lines (file or stdin) with the configured watchlists.

    Each input line is {"id": ..., "title": ..., "summary": ..., "language"?: "sv"} ("text" may
    stand for "summary"; "language", as a feed's, keeps that language's own letters unfolded).
    Each output line is {"id", "topics", "scores",
    "evidence"}. Bad lines are reported on stderr with their line number and
    the command exits 1 after classifying the rest.
    """
    from .evaluation import InputError, read_stories

    errors = 0
    with _classifier_monitor(config_path, db_path) as monitor:
        items = []
        for item in read_stories(input_file):
            if isinstance(item, InputError):
                echo(f"error: {input_file.name}: {item}", err=True)
                errors += 1
            else:
                items.append(item)
        found = _classify_all(monitor, items)
        for item in items:
            matches = sorted(found[item.story.id], key=lambda m: -m.score)
            click.echo(json_line({
                "id": item.story.id,
                "topics": [m.watchlist for m in matches],
                "scores": {m.watchlist: round(m.score, 4) for m in matches},
                "evidence": {m.watchlist: m.evidence.to_dict() for m in matches},
            }))
    if errors:
        raise SystemExit(1)


def _read_labelled_file(labels_file) -> list:
    from .evaluation import InputError, read_stories

    items = []
    for item in read_stories(labels_file, source=labels_file.name):
        if isinstance(item, InputError):
            raise click.ClickException(f"{labels_file.name}: {item}")
        if item.labels is None:
            raise click.ClickException(f"{labels_file.name}: line {item.line}: no \"labels\" list")
        items.append(item)
    return items


@cli.command(name="eval")
@config_options()
@click.argument("labels_file", type=click.File("r", encoding="utf-8"))
@click.option("--show", default=10, show_default=True, type=click.IntRange(min=0),
              help="Misclassified examples to print per watchlist.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=0),
              help="Also cross-validate a model trained on LABELS_FILE (0: skip).")
@click.option("--train-on", "train_file", type=click.File("r", encoding="utf-8"),
              help="Cross-corpus: train a model on this labelled file, test it on LABELS_FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@handle_errors
def eval_command(config_path: str | None, db_path: str | None, labels_file, show: int, folds: int, train_file,
                 as_json: bool) -> None:
    """Score the watchlists against labelled stories (JSON lines with "labels"), beside the naive floor.

    Prints precision, recall and F1 per watchlist for the configured
    classifiers (on stories a model learned from, these are fit-set figures),
    for a model cross-validated on LABELS_FILE (--folds), for a model trained on
    another file (--train-on, cross-corpus), and for the naive floor (three
    regular expressions per shipped watchlist), then the misclassified examples.
    """
    from .evaluation import FLOORS, Scores, floor_predicts, score

    items = _read_labelled_file(labels_file)
    training = _read_labelled_file(train_file) if train_file else []
    with _classifier_monitor(config_path, db_path) as monitor:
        found = _classify_all(monitor, items)
        watchlists = list(monitor.watchlists)
    names = [w.name for w in watchlists]
    gold = {item.story.id: item.labels for item in items}
    views: dict[str, dict[str, Scores]] = {}
    views["configured"] = score(names, {sid: {m.watchlist for m in ms} for sid, ms in found.items()}, gold)
    learned = _learned_views(watchlists, items, training, folds)
    for view, predicted in learned.items():
        views[view] = score(names, predicted, gold)
    floor_names = [n for n in names if n in FLOORS]
    if floor_names:
        views["naive floor"] = score(floor_names, {item.story.id: {n for n in floor_names if floor_predicts(
            n, item.story.title, item.story.text)} for item in items}, gold)
    if as_json:
        click.echo(json.dumps({"stories": len(items), "watchlists": [r.to_dict() for r in views["configured"].values()],
                               "views": {v: [r.to_dict() for r in rs.values()] for v, rs in views.items()}}, indent=2))
        return
    titles = {item.story.id: item.story.title for item in items}
    click.echo(f"{len(items)} labelled stories from {labels_file.name}")
    for view, results in views.items():
        click.echo(f"\n{view}\n{'watchlist':16} {'P':>6} {'R':>6} {'F1':>6} {'TP':>5} {'FP':>5} {'FN':>5}")
        for r in results.values():
            if not r.labelled:
                echo(f"{r.name:16} no story in {labels_file.name} is labelled {r.name}: nothing to score "
                     f"({plural(r.fp, 'story')} matched it)")
                continue
            click.echo(f"{r.name:16} {r.precision:6.3f} {r.recall:6.3f} {r.f1:6.3f} {r.tp:5d} {r.fp:5d} {r.fn:5d}")
    for r in views["configured"].values():
        for label, ids in (("false positives", r.false_positives), ("false negatives", r.false_negatives)):
            if ids and show:
                click.echo(f"\n{r.name}: {label} ({len(ids)})")
                for sid in ids[:show]:
                    echo(f"  {sid}: {titles[sid]}")


from .sources_cli import add_source_commands  # noqa: E402  (they use the helpers above)

add_source_commands(sources)

from .fleet_cli import add_fleet_commands  # noqa: E402

add_fleet_commands(cli)


@cli.command(name="cluster")
@config_options(with_db=False)
@click.argument("input_file", type=click.File("r", encoding="utf-8"), default="-")
@handle_errors
def cluster_command(config_path: str | None, input_file) -> None:
    """Group stories given as JSON lines (file or stdin) into story clusters, as the daemon does.

    Each input line is {"id", "title", "summary" or "text", "published"?, "source"?},
    read in order as if they arrived so. Each output line is {"id", "cluster"}:
    the cluster is the id of its first story. Bad lines are reported on stderr
    with their line number and the command exits 1 after clustering the rest.
    """
    from .cluster_stage import assign_stories, settings_from_config
    from .clustering import ClusterIndex
    from .evaluation import InputError, read_stories

    config = _load(config_path, ":memory:")
    index = ClusterIndex(settings_from_config(config.clustering))
    errors = 0
    for item in read_stories(input_file):
        if isinstance(item, InputError):
            click.echo(f"error: {input_file.name}: {item}", err=True)
            errors += 1
            continue
        [story] = assign_stories(index, [item.story])
        click.echo(json_line({"id": story.id, "cluster": story.cluster}))
    if errors:
        raise SystemExit(1)


@cli.command()
@config_options()
@click.option("--watchlist", "-w", "names", multiple=True, help="Only this watchlist (repeatable; default: all enabled).")
@click.option("--since", help="Only stories published (or first seen) this recently: \"7d\", \"12h\".")
@click.option("--alert", is_flag=True, help="Queue alerts for the new matches (one per story cluster), not only store them.")
@handle_errors
def reclassify(config_path: str | None, db_path: str | None, names: tuple[str, ...], since: str | None,
               alert: bool) -> None:
    """Run the watchlists over stored stories and store the new matches (backfill).

    Without --alert nothing is sent. A second run adds nothing. Progress goes to stderr.
    """
    from .backfill import BackfillResult, reclassify as run_backfill
    from .config import parse_duration

    config = _load(config_path, db_path)
    seconds = None
    if since is not None:
        try:
            seconds = parse_duration(since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    unknown = [n for n in names if n not in config.watchlists]
    if unknown:
        raise click.BadParameter(f"no watchlist named {unknown[0]!r} (configured: {', '.join(config.watchlists)})",
                                 param_hint="--watchlist")
    _setup_logging(config, "WARNING")

    def progress(done: BackfillResult) -> None:
        click.echo(f"reclassify: {done.stories} stories read, {done.clustered} clustered, "
                   f"{done.matches} new matches, {done.alerts_queued} alerts queued", err=True)

    with _open(config, require_env=alert) as monitor:  # only --alert needs the channels' secrets
        chosen = [config.watchlists[n] for n in names] if names else monitor.watchlists
        done = run_backfill(monitor, chosen, since=seconds, alert=alert, progress=progress)
        # Every alert the backfill queued, as `monitor once` sends its backlog, not one batch per channel.
        dispatched = monitor.dispatch(until_done=True) if alert and done.alerts_queued else None
    click.echo(f"Reclassified {plural(done.stories, 'story')} against "
               f"{', '.join(w.name for w in chosen) or 'no watchlists'}: {plural(done.matches, 'new match')}, "
               f"{plural(done.alerts_queued, 'alert')} queued" + _dispatched_words(dispatched) + ".")


def _dispatched_words(dispatched: DispatchResult | None) -> str:
    """What a command's own delivery did, after "N alerts queued": sent, or left to the sender that holds the outbox."""
    if dispatched is None:
        return ""
    if dispatched.held_by:
        return f", not sent by this command: {dispatched.held_by} delivers from this database"
    return f", {dispatched.sent} sent"


def _learned_views(watchlists: list, items: list, training: list, folds: int) -> dict[str, dict[str, set[str]]]:
    """Held-out decisions of learned models: k-fold on ``items``, and trained on ``training`` (cross-corpus)."""
    try:
        from monitor_plugins.learned_model import MIN_PER_CLASS, Example, out_of_fold_predictions, train
    except ImportError:
        return {}
    views: dict[str, dict[str, set[str]]] = {}
    for watchlist in watchlists:
        examples = [Example(i.story.title, i.story.text, watchlist.name in i.labels, language=i.story.language)
                    for i in items]
        positives = sum(e.positive for e in examples)
        if folds >= 2 and min(positives, len(examples) - positives) > MIN_PER_CLASS:
            decided = out_of_fold_predictions(watchlist.name, watchlist.query, examples, folds=folds)
            view = views.setdefault(f"learned, {folds}-fold cross-validated on this file", {})
            for item, yes in zip(items, decided):
                if yes:
                    view.setdefault(item.story.id, set()).add(watchlist.name)
        train_examples = [Example(i.story.title, i.story.text, watchlist.name in i.labels, language=i.story.language)
                          for i in training]
        train_positives = sum(e.positive for e in train_examples)
        if min(train_positives, len(train_examples) - train_positives) >= MIN_PER_CLASS:
            model = train(watchlist.name, watchlist.query, train_examples)
            view = views.setdefault("learned, trained on --train-on (cross-corpus)", {})
            probabilities = model.predict([(i.story.title, i.story.text) for i in items],
                                          languages=[i.story.language for i in items])
            for item, (p, _) in zip(items, probabilities):
                if p >= model.cutoff:
                    view.setdefault(item.story.id, set()).add(watchlist.name)
    return views


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
