"""The feed files the benchmark serves: real feeds from the shared corpus, one copy per source.

Each source gets its own copy of a corpus file with every GUID, ``<id>`` and
link rewritten (a ``bench=sN`` query parameter, or a ``-sN`` suffix for GUIDs
that are not URLs), so no two sources share an entry, however they key them.
Without the corpus, feeds are generated from the seed articles.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "feeds"
SEEDS = ROOT / "seeds"

# Files above this size are multi-second parses (podcast archives, whole blogs):
# real, but they would make the run measure feedparser on five files.
MAX_FILE_BYTES = 500_000

_ELEMENT = re.compile(rb"(<(guid|id|link)\b[^>/]*>)\s*([^<\s][^<]*?)\s*(</\2>)")
_HREF = re.compile(rb"(<link\b[^>]*?\bhref=\")([^\"]+)(\")")


@dataclass(frozen=True)
class Workload:
    """The feed files of one run, ``feed-00000.xml`` onwards, in ``folder``."""

    folder: Path
    sources: int
    origin: str  # "corpus" or "seeds"
    templates: int


def corpus_files(corpus: Path = CORPUS) -> list[Path]:
    """RSS/Atom files from the corpus index that feedparser reads entries from, smallest-first order kept."""
    index = corpus / "INDEX.tsv"
    if not index.is_file():
        return []
    files = []
    with index.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if int(row["entries"] or 0) <= 0 or int(row["bytes"]) > MAX_FILE_BYTES:
                continue
            if not row["format"] or "json" in row["format"]:
                continue  # JSON Feed: the feedparser baselines cannot read it
            files.append(corpus / row["path"])
    return files


def distinct_copy(data: bytes, tag: str) -> bytes:
    """``data`` with every GUID, id and link made unique to ``tag``."""

    def mark(value: bytes) -> bytes:
        if value.startswith((b"http://", b"https://")):
            return value + (b"&amp;bench=" if b"?" in value else b"?bench=") + tag.encode()
        return value + b"-" + tag.encode()

    data = _ELEMENT.sub(lambda m: m.group(1) + mark(m.group(3)) + m.group(4), data)
    return _HREF.sub(lambda m: m.group(1) + mark(m.group(2)) + m.group(3), data)


def seed_feed(tag: str, entries: int = 20) -> bytes:
    """An RSS feed of ``entries`` items cut from the seed articles."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))] or ["North Korea trade talks."]
    items = []
    for i in range(entries):
        body = texts[i % len(texts)]
        title = body.strip().split("\n", 1)[0][:100] or f"Story {i}"
        items.append(
            f"<item><title>{escape(title)} ({tag} {i})</title>"
            f"<link>http://127.0.0.1/story/{tag}/{i}</link><guid>{tag}-{i}</guid>"
            f"<description>{escape(body[:2000])}</description></item>"
        )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{tag}</title>'
            f"<link>http://127.0.0.1/{tag}</link>{''.join(items)}</channel></rss>").encode()


def build(folder: Path, sources: int, corpus: Path = CORPUS) -> Workload:
    """Write one feed file per source into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    templates = [p.read_bytes() for p in corpus_files(corpus)]
    for i in range(sources):
        tag = f"s{i}"
        data = distinct_copy(templates[i % len(templates)], tag) if templates else seed_feed(tag)
        (folder / feed_name(i)).write_bytes(data)
    return Workload(folder, sources, "corpus" if templates else "seeds", len(templates) or 1)


def feed_name(i: int) -> str:
    """The file (and URL path) of source ``i``."""
    return f"feed-{i:05d}.xml"
