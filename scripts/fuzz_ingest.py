"""Fuzz the ingest path: fetch -> parse -> normalise -> classify -> store, with a time and memory bound per input.

Hypothesis builds feed-like documents (RSS, Atom, JSON Feed, a folder-bundle
lookalike, and mutated or random bytes) whose text fields mix ordinary words,
watchlist terms and hostile fragments (broken tags, comments, entities,
control characters), often repeated thousands of times, so super-linear paths
show up as a blown time bound rather than needing megabytes per example.

The test suite runs :func:`check_parse_path` on a few dozen examples
(``tests/test_fuzz_ingest.py``). This script runs many more and, for each,
also serves the bytes from a loopback HTTP server to a real :class:`Monitor`
(real fetch, real SQLite)::

    python scripts/fuzz_ingest.py --minutes 10

It prints what it covered (examples, formats, parsers' outcomes, notes seen,
largest input, slowest input per KB) and exits 1 with the failing input
saved under ``--out`` when a bound is broken or an exception escapes.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from hypothesis import strategies as st

from monitor import EntryLimits, FetchResult, KeywordMatcher, ParseError, Source, load_config
from monitor.limits import bound_entries
from monitor.normalize import default_story_key, normalize_entry
from monitor.plugins import load_plugins, make_plugin_manager
from monitor.timeutil import utcnow

# -- what an input looks like ----------------------------------------------------

WORDS = ["north", "korea", "pyongyang", "trade", "tariff", "abducted", "agents", "import", "ban", "the", "of",
         "kim", "jong", "un", "quota", "textile", "NEAR", "OR", "news", "wto", "é", "Ⅻ", "ß", "İ"]
HOSTILE = ["<", "<a", "<a href='", '<a href="', "</", "<!--", "-->", "<!", "<?", "<![CDATA[", "]]>", "<script>",
           "</script>", "<p>", "<br/>", "&", "&amp;", "&#", "&#x", "&#1114112;", "&lol;", "\x00", "\x0b", "\r",
           "\n\n", "\u200b", "\ufeff", "\ud800", " ", "\t", '"', "'", ">", "=", "\u0301", "Ａ", "ﬁ"]
MEDIA_TYPES = [None, "application/rss+xml", "application/atom+xml", "application/feed+json", "application/json",
               "text/html", "text/plain", "application/octet-stream", "application/x-news-monitor-articles+json"]


def _fragment(repeat: int) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(WORDS), st.sampled_from(HOSTILE), st.text(max_size=8))
    unit = st.lists(piece, min_size=1, max_size=6).map(" ".join)
    if repeat <= 1:
        return unit
    # Repetition is where quadratic paths hide: a short unit many times over.
    return st.one_of(unit, st.builds(lambda u, n: u * n, unit, st.integers(1, repeat)))


def text_field(repeat: int = 1) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.lists(_fragment(repeat), max_size=4).map("".join))


DATES = st.one_of(st.none(), st.sampled_from([
    "Mon, 27 May 2019 09:00:00 GMT", "2019-05-27T09:00:00Z", "2019-05-27T09:00:00", "9999-12-31T23:59:59Z",
    "not a date", "Thu, 01 Jan 1970 00:00:00 +0000", "2026-13-45", "",
]))


@st.composite
def items(draw: Callable, repeat: int, many: int) -> list[dict[str, Any]]:
    """A few entries with long fields (a unit up to ``repeat`` times), or up to ``many`` entries with short ones."""
    few = draw(st.booleans())
    count = draw(st.integers(0, 5) if few else st.integers(0, many))
    field = text_field(repeat if few else 1)
    template = {"title": draw(field), "description": draw(field), "date": draw(DATES)}
    # Mostly one item repeated (cheap to draw, large to parse), a few drawn one by one.
    out = [dict(template, guid=str(i)) for i in range(count)]
    for item in out[: draw(st.integers(0, 3))]:
        item.update(title=draw(field), description=draw(field), date=draw(DATES),
                    guid=draw(st.one_of(st.none(), st.text(max_size=5))))
    return out


def _rss(entries: list[dict[str, Any]], raw: bool) -> str:
    def put(tag: str, value: str | None) -> str:
        if value is None:
            return ""
        return f"<{tag}>{value if raw else escape(value)}</{tag}>"

    body = "".join("<item>" + put("title", e["title"]) + put("description", e["description"]) + put("guid", e["guid"])
                   + put("pubDate", e["date"]) + "</item>" for e in entries)
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>f</title>{body}</channel></rss>'


def _atom(entries: list[dict[str, Any]]) -> str:
    body = "".join(f'<entry><id>{escape(e["guid"] or "")}</id><title>{escape(e["title"] or "")}</title>'
                   f'<content type="html">{escape(e["description"] or "")}</content>'
                   f'<updated>{escape(e["date"] or "")}</updated></entry>' for e in entries)
    return f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>f</title>{body}</feed>'


def _json_feed(entries: list[dict[str, Any]]) -> str:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "f", "items": [
        {"id": e["guid"], "title": e["title"], "content_html": e["description"], "date_published": e["date"]}
        for e in entries]})


def _bundle(entries: list[dict[str, Any]]) -> str:
    return json.dumps({"articles": [{"name": f"{i}.txt", "uri": f"file:///x/{i}.txt",
                                     "text": f"{e['title'] or ''}\n{e['description'] or ''}"}
                                    for i, e in enumerate(entries)], "notes": []})


@st.composite
def documents(draw: Callable, repeat: int = 3000, many: int = 1500) -> tuple[str, str | None, bytes]:
    """``(format, media type, body)``; ``repeat`` and ``many`` scale the inputs (see :func:`items`)."""
    fmt = draw(st.sampled_from(["rss", "rss-raw", "atom", "json", "bundle", "bytes"]))
    if fmt == "bytes":
        body = draw(st.binary(max_size=2000))
    else:
        entries = draw(items(repeat, many))
        text = {"rss": lambda: _rss(entries, False), "rss-raw": lambda: _rss(entries, True), "atom": lambda: _atom(entries),
                "json": lambda: _json_feed(entries), "bundle": lambda: _bundle(entries)}[fmt]()
        body = text.encode("utf-8", "surrogatepass")
        mutation = draw(st.sampled_from(["none", "none", "truncate", "splice", "gzip-ish", "bom", "blank-lines"]))
        if mutation == "truncate" and body:
            body = body[: draw(st.integers(0, len(body)))]
        elif mutation == "splice" and body:
            at = draw(st.integers(0, len(body)))
            body = body[:at] + draw(st.binary(max_size=40)) + body[at:]
        elif mutation == "gzip-ish":
            body = b"\x1f\x8b" + body
        elif mutation == "bom":
            body = b"\xef\xbb\xbf" + body
        elif mutation == "blank-lines":
            body = b"\n\n  " + body
    media = draw(st.sampled_from(MEDIA_TYPES))
    if fmt == "bundle" and draw(st.booleans()):
        media = "application/x-news-monitor-articles+json"
    return fmt, media, body


# -- the property ----------------------------------------------------------------

LIMITS = EntryLimits(max_entries=1000, max_entry_bytes=200_000)
MAX_TEXT_CHARS = 200_000


def time_bound(size: int) -> float:
    """Seconds one input may take: a fixed allowance plus 10 µs per byte (linear, generous on a loaded machine)."""
    return 3.0 + size * 10e-6


def memory_bound(size: int) -> int:
    """Bytes of Python heap one input may peak at (traced): 40 MB plus 60 per input byte."""
    return 40_000_000 + 60 * size


@dataclass
class Tools:
    pm: Any
    matcher: KeywordMatcher
    source: Source = field(default_factory=lambda: Source("fuzz", "http://127.0.0.1/fuzz"))
    folder: Source = field(default_factory=lambda: Source("folder", "/nonexistent/folder", kind="directory"))


def tools() -> Tools:
    pm = make_plugin_manager()
    load_plugins(pm)
    config = load_config(None)
    return Tools(pm, KeywordMatcher({w.name: w.query for w in config.watchlists.values() if w.query}))


def check_parse_path(t: Tools, media: str | None, body: bytes) -> dict[str, Any]:
    """Parse, bound, normalise and classify ``body`` as the pipeline does; raise AssertionError past a bound.

    Returns what happened, for coverage counts.
    """
    started = time.perf_counter()
    outcome = _ingest(t, media, body)
    took = time.perf_counter() - started
    # Again under tracemalloc, which slows Python several times: so memory is
    # measured apart from time.
    tracemalloc.start()
    try:
        _ingest(t, media, body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    outcome["seconds"], outcome["peak"] = took, peak
    assert took < time_bound(len(body)), f"{len(body)} bytes took {took:.1f}s (bound {time_bound(len(body)):.1f}s)"
    assert peak < memory_bound(len(body)), f"{len(body)} bytes peaked at {peak / 1e6:.0f} MB of heap"
    return outcome


def _ingest(t: Tools, media: str | None, body: bytes) -> dict[str, Any]:
    fetched = FetchResult(url=t.source.url, content=body, media_type=media,
                          headers={"content-type": media} if media else {})
    outcome: dict[str, Any] = {"entries": 0, "matches": 0, "notes": [], "cut": 0}
    # The folder bundle is read only for directory sources; the rest as from a feed URL.
    source = t.folder if media == "application/x-news-monitor-articles+json" else t.source
    try:
        entries = t.pm.hook.parse_feed(source=source, fetched=fetched, limits=LIMITS)
    except ParseError as exc:
        outcome["outcome"] = "rejected: " + str(exc.message).split(":")[0][:40]
        return outcome
    if entries is None:
        outcome["outcome"] = "not claimed"
        return outcome
    outcome["outcome"] = "read"
    notes = list(getattr(entries, "notes", ()))
    entries, more = bound_entries(entries, LIMITS)
    outcome["notes"] = notes + more
    now = utcnow()
    for entry in entries:
        story = normalize_entry(entry, source, now)
        default_story_key(story, source)
        if len(story.text) > MAX_TEXT_CHARS:
            outcome["cut"] += 1
        outcome["matches"] += len(t.matcher.match(story.title[:MAX_TEXT_CHARS], story.text[:MAX_TEXT_CHARS]))
    outcome["entries"] = len(entries)
    return outcome


# -- the long run: the same property, and the whole pipeline over loopback HTTP -----


class _Server:
    """Serves whatever ``body``/``media`` currently hold, on 127.0.0.1."""

    def __init__(self) -> None:
        self.body, self.media = b"", None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except ConnectionError:
                    pass  # the monitor hung up: a body over fetch.max_bytes

            def do_GET(self) -> None:
                self.send_response(200)
                if server.media:
                    self.send_header("Content-Type", server.media)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/feed"


def main(argv: list[str] | None = None) -> int:
    from hypothesis import HealthCheck, Phase, given, settings

    from monitor import Monitor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-failure"))
    args = parser.parse_args(argv)

    logging.getLogger("monitor").setLevel(logging.CRITICAL)  # expected per-source errors are counted, not logged
    t = tools()
    server = _Server()
    work = Path(args.out).with_suffix(".work")
    work.mkdir(parents=True, exist_ok=True)
    (work / "monitor.toml").write_text(
        f'[monitor]\ndb = "{work / "fuzz.db"}"\nlog_level = "ERROR"\n[fetch]\nallow_private_networks = true\nmax_entry_bytes = {LIMITS.max_entry_bytes}\n'
        f'[alerts]\nnew_source_window = 0\n[sources.fuzz]\nurl = "{server.url}"\n', encoding="utf-8")
    monitor = Monitor.open(load_config(work / "monitor.toml", env={}))
    stats: dict[str, Any] = {"examples": 0, "formats": collections.Counter(), "outcomes": collections.Counter(),
                             "pipeline": collections.Counter(), "notes": collections.Counter(), "entries": 0,
                             "matches": 0, "cut_for_classifier": 0, "largest": 0, "slowest_per_kb": (0.0, 0),
                             "peak_mb": 0.0}
    stop_at = time.monotonic() + args.minutes * 60

    # Rounds of fresh random examples until the time is up (shrinking only on a failure).
    @settings(max_examples=200, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(documents())
    def run(doc: tuple[str, str | None, bytes]) -> None:
        if time.monotonic() > stop_at:
            return
        fmt, media, body = doc
        try:
            _one(fmt, media, body)
        except Exception:
            # Shrinking calls this again with smaller inputs: the last one saved is the smallest seen.
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "input.bin").write_bytes(body)
            (args.out / "input.txt").write_text(f"format {fmt}, media type {media}\n\n{traceback.format_exc()}", encoding="utf-8")
            raise

    def _one(fmt: str, media: str | None, body: bytes) -> None:
        stats["examples"] += 1
        stats["formats"][fmt] += 1
        outcome = check_parse_path(t, media, body)
        stats["outcomes"][outcome["outcome"]] += 1
        for note in outcome["notes"]:
            stats["notes"][note.split("(")[0].split(":")[0][:50]] += 1
        stats["entries"] += outcome["entries"]
        stats["matches"] += outcome["matches"]
        stats["cut_for_classifier"] += outcome["cut"]
        stats["largest"] = max(stats["largest"], len(body))
        stats["peak_mb"] = max(stats["peak_mb"], outcome["peak"] / 1e6)
        per_kb = outcome["seconds"] / max(1, len(body) / 1000)
        if len(body) > 10_000 and per_kb > stats["slowest_per_kb"][0]:
            stats["slowest_per_kb"] = (per_kb, len(body))
        # The whole pipeline: fetched over loopback HTTP, stored in SQLite. Never an internal error.
        server.body, server.media = body, media
        monitor.store.db.execute("UPDATE sources SET body_hash = NULL, next_poll_at = NULL")
        started = time.perf_counter()
        result = monitor.update_source("fuzz")
        took = time.perf_counter() - started
        assert "internal error" not in (result.error or ""), result.error
        assert took < time_bound(len(body)) * 2, f"pipeline: {len(body)} bytes took {took:.1f}s"
        stats["pipeline"]["error" if result.error else "ok"] += 1

    started = time.monotonic()
    failed = False
    try:
        while time.monotonic() < stop_at:
            run()
    except Exception as exc:  # a broken bound or an escaped exception: hypothesis has shrunk it
        failed = True
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        print(f"FAILED: {type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)
    finally:
        monitor.close()
        server.httpd.shutdown()
    stats["minutes"] = round((time.monotonic() - started) / 60, 1)
    print(json.dumps(stats, indent=2, default=lambda c: dict(c.most_common()) if isinstance(c, collections.Counter) else str(c)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
