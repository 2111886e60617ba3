"""The real feeds of ../shared/corpora/feeds through our parser path and pipeline.

Every file is either read (entries) or rejected with a stated reason (a
ParseError with a message); no other exception may escape.
"""

from __future__ import annotations

import csv
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from conftest import shared_corpus
from monitor import EntryLimits, Monitor, ParseError, Source, load_config


def corpus_rows() -> tuple[Path, list[dict[str, str]]]:
    root = shared_corpus("feeds")
    with open(root / "INDEX.tsv", encoding="utf-8", newline="") as fh:
        return root, list(csv.DictReader(fh, delimiter="\t"))


def parse_files(paths: list[str]) -> list[tuple[str, str, int | str]]:
    """In a worker process: ``(path, "entries" | "rejected" | "crashed", count or reason)`` per file."""
    from monitor.normalize import default_story_key, normalize_entry
    from monitor.plugins import load_plugins, make_plugin_manager
    from monitor.timeutil import utcnow

    warnings.simplefilter("ignore")
    pm = make_plugin_manager()
    load_plugins(pm)
    out: list[tuple[str, str, int | str]] = []
    for path in paths:
        source = Source("corpus", path)
        fetched = pm.hook.fetch_source(source=source, state=None, monitor=_FakeMonitorConfig())
        try:
            entries = pm.hook.parse_feed(source=source, fetched=fetched, limits=EntryLimits(max_entries=10**9))
            if entries is None:
                raise ParseError("no parser claimed it", url=path)
            now = utcnow()
            for entry in entries:
                default_story_key(normalize_entry(entry, source, now), source)
            out.append((path, "entries", len(entries)))
        except ParseError as exc:
            out.append((path, "rejected", exc.message))
        except Exception as exc:  # the failure this test exists to catch
            out.append((path, "crashed", f"{type(exc).__name__}: {exc}"))
    return out


class _FakeMonitorConfig:
    """Just enough of a monitor for the file_source plugin: its fetch limits."""

    class config:  # noqa: N801 - mirrors Monitor.config
        fetch = {"max_bytes": 100_000_000}


@pytest.mark.slow
def test_every_corpus_file_is_read_or_rejected_with_a_reason():
    root, rows = corpus_rows()
    paths = [str(root / row["path"]) for row in rows]
    # Two processes, big files spread across both: the parse is CPU-bound.
    ordered = sorted(paths, key=lambda p: Path(p).stat().st_size, reverse=True)
    chunks = [ordered[i::2] for i in range(2)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = [r for chunk in pool.map(parse_files, chunks) for r in chunk]

    assert len(results) == len(rows)
    crashed = [r for r in results if r[1] == "crashed"]
    assert not crashed, crashed
    rejected = {Path(p).relative_to(root).as_posix(): why for p, kind, why in results if kind == "rejected"}
    assert all(isinstance(why, str) and why for why in rejected.values())
    # Nothing feedparser alone can read is lost on our path (we read more: JSON Feed, raw gzip...).
    expected = {row["path"]: int(row["entries"] or 0) for row in rows}
    read = {Path(p).relative_to(root).as_posix(): n for p, kind, n in results if kind == "entries"}
    lost = [path for path, n in expected.items() if n > 0 and not read.get(path)]
    assert not lost, lost
    assert len(rejected) <= 10, rejected


def test_bozo_corpus_files_through_the_whole_pipeline(make_config):
    """The damaged files (small ones, to stay fast) polled as file: sources, stored, statused."""
    root, rows = corpus_rows()
    picked = [r for r in rows if r["bozo"] == "1" and int(r["bytes"]) < 150_000]
    assert picked
    text = "".join(
        f'[sources.c{i}]\nurl = "{root / row["path"]}"\n' for i, row in enumerate(picked)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Monitor.open(load_config(make_config(text))) as monitor:
            results = monitor.run_once()
            rows_by_name = {r["name"]: r for r in monitor.store.sources()}
    for index, result in enumerate(results):
        row = rows_by_name[f"c{index}"]
        assert "internal error" not in (result.error or ""), (picked[index]["path"], result.error)
        if result.error:
            assert row["status"] == "error" and row["last_error"]
        else:
            assert row["status"] == "ok"
            raw = (root / picked[index]["path"]).read_bytes()
            repaired = raw[:1].isspace() and raw.lstrip().startswith(b"<?xml")  # we strip the blank line
            if picked[index]["format"] and not repaired:  # XML feedparser found damaged (JSON Feed is ours)
                # A damaged feed that still gave entries says so.
                assert row["last_note"] or row["stories_count"] == 0, row
