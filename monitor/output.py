"""How listing commands print rows: a human view, or JSON, JSON lines, CSV or TSV for scripts.

Every listing command (``sources``, ``matches``, ``search``, ``alerts``,
``plugins``...) takes the same flags, as sqlite-utils does: ``--json`` (one
array), ``--nl`` (one object per line), ``--csv``, ``--tsv``; without any of
them the command prints its human view. The machine formats are the same for
every command and are written here only: booleans are ``true``/``false``,
times are ISO 8601 with their offset (as stored), nested values are JSON
(inside a CSV cell too), and text from servers is made safe for a terminal.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from .safetext import json_safe, safe_line

FORMATS = ("json", "nl", "csv", "tsv")
_FORMAT_HELP = {
    "json": "Print a JSON array.",
    "nl": "Print JSON lines (one object per line).",
    "csv": "Print CSV with a header row.",
    "tsv": "Print tab-separated values with a header row.",
}


def output_options(fn: Callable) -> Callable:
    """``--json``, ``--nl``, ``--csv`` and ``--tsv`` on a listing command; it receives ``output_format``
    (``None`` for the human view)."""
    for name in reversed(FORMATS):
        fn = click.option(f"--{name}", "output_format", flag_value=name, help=_FORMAT_HELP[name])(fn)
    return fn


def json_line(data: Any) -> str:
    """One JSON value on one line, non-ASCII kept readable and control or bidi characters escaped."""
    return json_safe(json.dumps(data, ensure_ascii=False))


def typed_rows(rows: Iterable[dict[str, Any]], booleans: Sequence[str] = ()) -> list[dict[str, Any]]:
    """``rows`` with the ``booleans`` columns (SQLite stores 0 and 1) as ``True``/``False``."""
    out = []
    for row in rows:
        row = dict(row)
        for column in booleans:
            if column in row and row[column] is not None:
                row[column] = bool(row[column])
        out.append(row)
    return out


def write_rows(rows: Sequence[dict[str, Any]], output_format: str | None, human: Callable[[Sequence[dict[str, Any]]], None]) -> None:
    """Print ``rows`` in ``output_format``, or call ``human(rows)`` for the human view."""
    if output_format is None:
        human(rows)
    elif output_format == "json":
        click.echo(json_safe(json.dumps(list(rows), ensure_ascii=False, indent=2)))
    elif output_format == "nl":
        for row in rows:
            click.echo(json_line(row))
    elif output_format in ("csv", "tsv"):
        click.echo(_delimited(rows, "," if output_format == "csv" else "\t"), nl=False)
    else:  # pragma: no cover - click restricts the flag values
        raise ValueError(f"unknown output format {output_format!r}")


def _delimited(rows: Sequence[dict[str, Any]], delimiter: str) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json_line(value)
    return safe_line(str(value))
