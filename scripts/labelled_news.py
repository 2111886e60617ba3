"""Rebuild the topic-labelled news set from mirrored public repositories.

tests/data/news_topics_labels.jsonl holds labels and provenance only (repository,
commit, path, key), never article text, so that no third-party text enters this
repository. This module knows how to read each source repository at its pinned
commit and pairs every labelled row with its text again:

    python scripts/labelled_news.py --mirrors /work/.mirror --out /tmp/news_topics.jsonl

A mirror directory holds one git directory per repository, laid out as
``MIRRORS/owner+name/repo`` (bare) or ``MIRRORS/owner+name/repo/.git``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "news_topics_labels.jsonl"
TOPICS = ("north_korea", "abductions", "trade")
MAX_WORDS = 900


class SourceError(Exception):
    """A mirror, commit, file or item cannot be read; the message names which."""


@dataclass(frozen=True)
class NewsItem:
    uid: str
    source_repo: str
    commit: str
    path: str
    key: str
    title: str
    text: str
    date: str
    outlet: str


@dataclass(frozen=True)
class Source:
    """One public repository at a pinned commit and the reader for its files."""

    repo: str
    commit: str
    licence: str
    about: str
    read: Callable[["Git", "Source"], Iterator[NewsItem]]


class Git:
    """Read-only access to one mirrored git directory."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir

    def show(self, commit: str, path: str) -> bytes:
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "show", f"{commit}:{path}"],
            capture_output=True,
        )
        if done.returncode != 0:
            raise SourceError(f"{self.git_dir}: cannot read {commit[:12]}:{path}")
        return done.stdout

    def ls(self, commit: str, folder: str) -> list[str]:
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "ls-tree", "--name-only", f"{commit}:{folder}"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SourceError(f"{self.git_dir}: cannot list {commit[:12]}:{folder}")
        return done.stdout.split("\n")[:-1]


def make_uid(repo: str, path: str, key: str) -> str:
    digest = hashlib.sha1(f"{repo}\0{path}\0{key}".encode()).hexdigest()[:12]
    return f"n-{digest}"


def item(source: Source, path: str, key: str, title: str, text: str, date: str, outlet: str) -> NewsItem:
    return NewsItem(make_uid(source.repo, path, key), source.repo, source.commit, path, key,
                    title.strip(), text.strip(), date, outlet)


def csv_rows(git: Git, source: Source, path: str) -> list[dict[str, str]]:
    raw = git.show(source.commit, path).decode("utf-8", errors="replace")
    return list(csv.DictReader(io.StringIO(raw)))


def read_bbc(git: Git, source: Source) -> Iterator[NewsItem]:
    # BBC News 2004-2005: the title runs into the body in this copy, so it stays in the text.
    for split in ("train", "val", "test"):
        path = f"datasets/bbcnews/data/{split}.csv"
        for row_no, row in enumerate(csv_rows(git, source, path)):
            yield item(source, path, f"row:{row_no}", "", row["text"], "2004-2005",
                       f"BBC News ({row['category']})")


def read_peoples_daily(git: Git, source: Source) -> Iterator[NewsItem]:
    path = "scrapedText/peoplesDailyOutput_tariff.csv"
    for row in csv_rows(git, source, path):
        yield item(source, path, f"row:{row['']}", row["title"], row["text"], row["date"], "People's Daily")


def zip_member(git: Git, source: Source, path: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(git.show(source.commit, path)))


def read_wsj_treebank(git: Git, source: Source) -> Iterator[NewsItem]:
    # The Penn Treebank sample: 199 Wall Street Journal stories from 1989, one file each.
    path = "packages/corpora/treebank.zip"
    archive = zip_member(git, source, path)
    for name in sorted(n for n in archive.namelist() if re.search(r"treebank/raw/wsj_\d+$", n)):
        text = archive.read(name).decode("latin-1").replace(".START", "")
        text = re.sub(r"[ \t]+\n", "\n", text).strip()
        if text:
            yield item(source, path, name, "", text, "1989", "Wall Street Journal")


def abc_articles(text: str) -> Iterator[tuple[int, str, str]]:
    """Split an ABC news file into (first line number, title, body).

    Blocks are separated by blank lines and start with a heading; a heading of
    two words or fewer is a cross-head inside the previous story, not a new one.
    """
    blocks: list[tuple[int, list[str]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            if blocks and blocks[-1][1]:
                blocks.append((0, []))
            continue
        if not blocks or not blocks[-1][1]:
            if blocks:
                blocks.pop()
            blocks.append((number, []))
        blocks[-1][1].append(line.strip())
    current: tuple[int, str, list[str]] | None = None
    for start, lines in blocks:
        if not lines:
            continue
        heading, body = lines[0], "\n".join(lines[1:])
        if current is not None and len(heading.split()) <= 2:
            current[2].append(f"{heading}\n{body}")
            continue
        if current is not None:
            yield current[0], current[1], "\n\n".join(current[2])
        current = (start, heading, [body])
    if current is not None:
        yield current[0], current[1], "\n\n".join(current[2])


def read_abc(git: Git, source: Source) -> Iterator[NewsItem]:
    path = "packages/corpora/abc.zip"
    archive = zip_member(git, source, path)
    for member, desk in (("abc/rural.txt", "rural"), ("abc/science.txt", "science")):
        text = archive.read(member).decode("latin-1")
        for start, title, body in abc_articles(text):
            if body:
                yield item(source, path, f"{member}#L{start}", title, body, "2006",
                           f"Australian Broadcasting Corporation ({desk})")


def read_this_just_in(git: Git, source: Source) -> Iterator[NewsItem]:
    # Only the mainstream ("Real") stories; the fake and satire folders are not news.
    base = "datasets/this_just_in/data"
    for folder in ("Random Poltical News Dataset", "Buzzfeed Political News Dataset"):
        for name in sorted(git.ls(source.commit, f"{base}/{folder}/Real")):
            path = f"{base}/{folder}/Real/{name}"
            text = git.show(source.commit, path).decode("utf-8", errors="replace")
            title_path = f"{base}/{folder}/Real_titles/{name}"
            try:
                title = git.show(source.commit, title_path).decode("utf-8", errors="replace")
            except SourceError:
                title = ""
            yield item(source, path, "file", title, text, "2016", "US/UK mainstream outlet (This Just In)")


def read_kcna(git: Git, source: Source) -> Iterator[NewsItem]:
    # The archive is cumulative; the newest daily file under the mirror's 4 MiB limit holds Aug-Nov 2024.
    path = "data/archive/headlines_2024-11-11.json"
    seen: set[str] = set()
    for row in json.loads(git.show(source.commit, path)):
        if not row.get("story_text") or row["link"] in seen:
            continue
        seen.add(row["link"])
        day = datetime.fromtimestamp(row["date"] / 1000, tz=timezone.utc).date().isoformat()
        yield item(source, path, row["link"], row["headline"], row["story_text"], day,
                   f"KCNA (North Korean state news agency; {row['topic']})")


def read_korea_herald(git: Git, source: Source) -> Iterator[NewsItem]:
    # National-desk stories 2015-2017, split by a student project into per-cluster CSVs;
    # the mirror lacks the files of 4 MiB and more, so only the smaller clusters are read.
    csv.field_size_limit(sys.maxsize)
    for year in ("2015", "2016", "2017"):
        folder = f"data/sub_cluster/{year}"
        for name in sorted(git.ls(source.commit, folder)):
            path = f"{folder}/{name}"
            try:
                rows = csv_rows(git, source, path)
            except SourceError:
                continue
            for row in rows:
                yield item(source, path, f"row:{row['']}", row["title"], row["body"],
                           f"{row['year']}-{int(row['month']):02d}", f"The Korea Herald ({row['section'].strip()})")


SOURCES: tuple[Source, ...] = (
    Source("LTSACH/AILearningHub", "38c4dfa48f34344f2e73eebbb93974928943a8c8",
           "BBC full-text dataset (Greene & Cunningham 2006), research use; repository README says educational use",
           "BBC News website stories 2004-2005, five desks", read_bbc),
    Source("Diana-New/make-trade-not-war", "2289ec33a9ef36eac5481521268a75d19f8ab6b1",
           "no licence file; README: code free to use as-is; article text (c) People's Daily, research use",
           "People's Daily English stories matching 'tariff', 2014-2018", read_peoples_daily),
    Source("nltk/nltk_data", "5db857e6f7df11eabb5e5665836db9ec8df07e28",
           "NLTK data: Penn Treebank sample (LDC, fair-use sample distributed with NLTK)",
           "Wall Street Journal stories, 1989 (treebank/raw)", read_wsj_treebank),
    Source("nltk/nltk_data", "5db857e6f7df11eabb5e5665836db9ec8df07e28",
           "NLTK data: ABC corpus, Australian Broadcasting Commission 2006, distributed with NLTK for research",
           "ABC Rural News and Science News, 2006", read_abc),
    Source("pmacinec/fake-news-datasets", "0ea4a5ccaf7698cb44ba01855295989a8e26e144",
           "MIT (collection); 'This Just In' data by Horne & Adali 2017, research use",
           "Mainstream political news 2016 (WSJ, BBC, NPR, Guardian, ...), the 'Real' folders only",
           read_this_just_in),
    Source("stiles/north-korea-news", "8154df9a5908c6281710bb627039c2e4c93fe12e", "CC0 1.0 (repository LICENSE)",
           "KCNA English stories archived daily, Aug-Nov 2024", read_kcna),
    Source("CS474-Term-Project-Team5/app", "4938252fbd9daf2df25ab5d393f1d95d0e0bf519",
           "no licence file; Korea Herald text (c) Herald Corporation, shared for a KAIST text-mining course, research use",
           "The Korea Herald national desk (North Korea, defence, politics, social affairs), 2015-2017",
           read_korea_herald),
)


def git_dir_for(mirrors: Path, repo: str) -> Path:
    base = mirrors / repo.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):
        if (candidate / "HEAD").exists():
            return candidate
    raise SourceError(f"no mirror of {repo} under {mirrors} (expected {base})")


def read_all(mirrors: Path) -> Iterator[NewsItem]:
    """Every item of every source, read from the mirrors at the pinned commits."""
    for source in SOURCES:
        yield from source.read(Git(git_dir_for(mirrors, source.repo)), source)


def truncate(text: str, max_words: int = MAX_WORDS) -> tuple[str, bool]:
    """Cut a story at about max_words words (at a word boundary) for annotation."""
    words = re.findall(r"\S+\s*", text)
    if len(words) <= max_words:
        return text, False
    return "".join(words[:max_words]).rstrip() + " [...]", True


def load_labelled(labels_path: Path, mirrors: Path, sources: tuple[Source, ...] = SOURCES) -> list[dict]:
    """Labelled rows joined with their text; an unreadable row is named and skipped."""
    rows = [json.loads(line) for line in labels_path.read_text().split("\n") if line.strip()]
    wanted = {(r["source_repo"], r["path"], r["key"]) for r in rows}
    texts: dict[tuple[str, str, str], NewsItem] = {}
    for source in sources:
        if not any(w[0] == source.repo for w in wanted):
            continue
        for news in source.read(Git(git_dir_for(mirrors, source.repo)), source):
            if (news.source_repo, news.path, news.key) in wanted:
                texts[(news.source_repo, news.path, news.key)] = news
    joined = []
    for row in rows:
        news = texts.get((row["source_repo"], row["path"], row["key"]))
        if news is None:
            print(f"skipped {row['uid']}: {row['source_repo']}:{row['path']} key {row['key']} not found",
                  file=sys.stderr)
            continue
        joined.append({**row, "title": news.title, "text": news.text, "date": news.date, "outlet": news.outlet})
    return joined


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", type=Path, required=True, help="directory of mirrored git repositories")
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file to write (keep it outside the repo)")
    args = parser.parse_args(argv)
    try:
        joined = load_labelled(args.labels, args.mirrors)
    except (SourceError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with args.out.open("w") as out:
        for row in joined:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = {t: sum(t in r["labels"] for r in joined) for t in TOPICS}
    print(f"{len(joined)} stories written to {args.out}; positives {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
