"""``monitor workers``: the fleet as PostgreSQL sees it (live workers, their leases, their last poll)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from .output import output_options, write_rows
from .safetext import safe_line
from .storage import is_postgres_url, redact_url

__all__ = ["add_fleet_commands", "last_polled_by", "STALE_AFTER"]

# A worker whose heartbeat is older than this is not listed (it died, or cannot reach the database).
STALE_AFTER = 60.0
URL_ENV = "MONITOR_POSTGRES_URL"


def add_fleet_commands(cli: click.Group) -> None:
    """Add ``workers`` to ``cli``."""

    @cli.command()
    @click.option("--db", "db_url", envvar=URL_ENV, help=f"The fleet's PostgreSQL database, postgresql://user@host/dbname "
                  f"(default: ${URL_ENV}).")
    @click.option("--stale-after", default=STALE_AFTER, show_default=True, type=click.FloatRange(min=1),
                  help="Seconds without a heartbeat after which a worker is not listed.")
    @output_options
    def workers(db_url: str | None, stale_after: float, output_format: str | None) -> None:
        """Live fleet workers: heartbeat, leases held, polls made and the last one."""
        if not is_postgres_url(db_url):
            raise click.UsageError("monitor workers needs the fleet's PostgreSQL database: --db postgresql://user@host/"
                                   f"dbname (or ${URL_ENV}); a SQLite database is one process, not a fleet")
        try:
            import psycopg
        except ImportError:
            raise click.ClickException("psycopg is not installed: pip install 'news-monitor[postgres]'") from None
        from .leases import live_workers

        try:
            with psycopg.connect(db_url, autocommit=True, connect_timeout=10) as conn:
                conn.row_factory = psycopg.rows.dict_row
                exists = conn.execute("SELECT to_regclass('fleet_workers') IS NOT NULL AS ok").fetchone()["ok"]
                rows = live_workers(conn, stale_after) if exists else []
        except psycopg.Error as exc:
            raise click.ClickException(f"{redact_url(db_url)}: cannot read the fleet: {safe_line(str(exc).strip(), 300)}") from None
        rows = [_plain(row) for row in rows]

        def human(rows: Sequence[dict[str, Any]]) -> None:
            if not rows:
                click.echo(f"no live workers (none has sent a heartbeat in the last {stale_after:g}s)")
            for row in rows:
                click.echo(f"{row['id']}  pid {row['pid']} on {row['hostname']}  heartbeat: {row['heartbeat_at']}")
                leases = ", ".join(row["leases"]) or "none"
                last = f"{row['last_source']} at {row['last_poll_at']}" if row["last_source"] else "none yet"
                click.echo(f"    leases: {leases}  polls: {row['polls']}  last poll: {last}")

        write_rows(rows, output_format, human)


def last_polled_by(store: Any) -> dict[str, str]:
    """Which fleet worker last polled each source (empty when no fleet worker ever ran on this database)."""
    if not store.query("SELECT to_regclass('fleet_polls') IS NOT NULL AS ok")[0]["ok"]:
        return {}
    return {row["source"]: row["worker"] for row in store.query("SELECT source, worker FROM fleet_polls")}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Times as ISO text, leases as a list: the same in every output format."""
    out = dict(row)
    for key in ("started_at", "heartbeat_at", "last_poll_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat(timespec="seconds")
    out["leases"] = list(out.get("leases") or [])
    return out
