"""Build a new pool of unlabelled news stories and its blind-annotation shards.

Stories come from the same pinned repositories as ``scripts/labelled_news.py``.
The pool leaves out every story already labelled (and its near-duplicates), is
drawn partly at random and partly by hard-case rules: broad recall terms for the
kinds of story the error analysis in docs/learned.md found missing. The rules are
written for this selection only; the watchlist queries and the monitor's
classifiers play no part, so the labels stay independent of what they judge.

    python scripts/annotation_pool.py --mirrors /work/.mirror --workdir /work/labeldata2 \\
        --topics ../shared/TOPICS.md

writes WORKDIR/pool.jsonl (provenance, text, ``selected_by``), WORKDIR/shards/
shard_NN.jsonl (``uid``, ``title``, ``text``; shuffled, some stories in two shards
for agreement) and WORKDIR/GUIDE.md (TOPICS.md verbatim plus the output format
scripts/merge_topic_labels.py reads). Keep WORKDIR outside the repository: it
holds third-party text.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import labelled_news
from labelled_news import NewsItem

MIN_WORDS = 40
OPENING_WORDS = 60


@dataclass(frozen=True)
class HardCase:
    """A kind of story the labelled set lacks, found by broad recall terms, and how many to take.

    ``within``, when given, must match as well: it keeps a term with several senses to the one
    sought (a player "signed" on a deal, not a treaty).
    """

    name: str
    pattern: re.Pattern[str]
    quota: int
    within: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        return bool(self.pattern.search(text)) and (self.within is None or bool(self.within.search(text)))


def terms(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


TRADE_GOODS = r"(export|import|shipment|beef|cattle|rice|coal|seafood|goods|product)s?"
MOVES = r"(ban|bans|banned|banning|halt|halted|halts|suspend\w*|resum\w*|lift\w*|curb\w*|restrict\w*)"

# Ordered by need: abductions positives are scarcest, then the trade stories no query reaches.
HARD_CASES: tuple[HardCase, ...] = (
    HardCase("abduction", terms(r"\babduct", r"\bkidnap", r"\bhostage", r"\byokota\b", r"\bmegumi\b",
                                r"\bhasuike\b", r"\bchimura\b", r"\bhitomi soga\b", r"\bcharles (robert )?jenkins\b"),
             200),
    HardCase("detention-nk", terms(r"\bdetain", r"\bdetention\b", r"\bwarmbier\b", r"separated famil",
                                   r"prisoners? of war", r"\bPOWs?\b", r"\brepatriat"), 110,
             within=terms(r"north korea", r"\bN\.\s?K(orea)?\b", r"\bpyongyang\b", r"\bdprk\b")),
    HardCase("trade-action", terms(rf"\b{MOVES}\b.{{0,60}}\b{TRADE_GOODS}\b", rf"\b{TRADE_GOODS}\b.{{0,60}}\b{MOVES}\b",
                                   r"anti-?dumping", r"countervailing", r"\bsafeguard (tariff|dut|measure)",
                                   r"\bembargo", r"(import|export|tariff|trade) quotas?", r"free[- ]trade",
                                   r"\bFTAs?\b", r"\bWTO\b", r"\bKORUS\b", r"unfair trad",
                                   r"trade (petition|complaint|dispute|deficit|surplus|retaliat|war|barrier)",
                                   r"(customs|import|export|anti-dumping) dut(y|ies)"), 330),
    HardCase("sanctions-exports", terms(r"sanction\w*.{0,120}\b(export|import|coal|iron ore|textile|seafood|"
                                        r"crude|trade)\w*", r"\b(export|import|coal|textile)\w*.{0,120}sanction"), 120),
    HardCase("exports-imports", terms(r"\bexport(s|ed|er|ers|ing)?\b", r"\bimport(s|ed|er|ers|ing)?\b",
                                      r"\btariffs?\b"), 150),
    HardCase("commodity-market", terms(r"\b(cattle|beef|wool|wheat|grain|sheep|lamb|dairy|sugar|cotton|rice|"
                                       r"barley|canola|fruit)\b.{0,80}\b(price|prices|market|markets|sale|sales|"
                                       r"saleyard|auction)\b",
                                       r"\b(price|prices|market|markets|saleyard|auction)\b.{0,80}\b(cattle|beef|"
                                       r"wool|wheat|grain|sheep|lamb|dairy|sugar|cotton|barley|canola)\b",
                                       r"\bcommodit"), 150),
    HardCase("player-trade", terms(r"\btransfer\b", r"\btraded\b", r"\bsigned\b", r"\bloan (deal|move|spell)\b"), 50,
             within=terms(r"\b(club|striker|midfielder|defender|goalkeeper|pitcher|quarterback|league|squad)s?\b")),
    HardCase("arms-export", terms(r"\b(arms|weapons?|defen[cs]e industry|fighter jets?|missiles?|warships?|"
                                  r"howitzers?|tanks)\b.{0,40}\b(exports?|sales?|deals?|buyers?)\b",
                                  r"\b(exports?|sales?)\b of (arms|weapons|fighter|missile|warship|howitzer|tank)",
                                  r"arms (trade|dealer|export)"), 80),
    HardCase("monetary", terms(r"interest rates?", r"central bank", r"exchange rates?", r"\bcurrenc",
                               r"\binflation\b", r"bank of (korea|england|japan)", r"federal reserve",
                               r"\b(dollar|euro|yen|yuan|won)\b.{0,40}\b(rose|fell|weak\w*|strong\w*|slid|gain\w*)\b"),
             110),
    HardCase("north-korea", terms(r"north korea", r"\bpyongyang\b", r"\bdprk\b", r"\bkim jong"), 150),
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class DuplicateFilter:
    """Remembers stories by their normalised text and by their opening words, the near-duplicates of one story."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    @staticmethod
    def keys_of(news: NewsItem) -> tuple[str, str]:
        body = words(news.text)
        return "all:" + " ".join(body), "open:" + " ".join(body[:OPENING_WORDS])

    def add(self, news: NewsItem) -> None:
        self.keys.update(self.keys_of(news))

    def seen(self, news: NewsItem) -> bool:
        return any(key in self.keys for key in self.keys_of(news))


def candidates(items: Iterable[NewsItem], labelled: set[tuple[str, str, str]]) -> list[NewsItem]:
    """Unlabelled stories of MIN_WORDS words or more, none a near-duplicate of a labelled story or of another."""
    items = list(items)
    known = DuplicateFilter()
    for news in items:
        if (news.source_repo, news.path, news.key) in labelled:
            known.add(news)
    fresh = []
    for news in items:
        if (news.source_repo, news.path, news.key) in labelled or len(words(news.text)) < MIN_WORDS:
            continue
        if not known.seen(news):
            known.add(news)
            fresh.append(news)
    return fresh


def hard_cases_of(news: NewsItem, rules: tuple[HardCase, ...] = HARD_CASES) -> list[str]:
    text = f"{news.title}\n{news.text}"
    return [rule.name for rule in rules if rule.matches(text)]


def select(pool: list[NewsItem], size: int, random_share: float, seed: int,
           rules: tuple[HardCase, ...] = HARD_CASES) -> list[tuple[NewsItem, str]]:
    """``size`` stories: a seeded random ``random_share`` of them, the rest filled rule by rule up to each quota.

    Within a rule, stories naming its terms in the title come first (the story is about it), then the
    others at random (passing mentions, the hard negatives). ``selected_by`` names every rule a story
    matches, so the pool can be broken down by reason whichever rule took it.
    """
    rng = random.Random(seed)
    order = pool[:]
    rng.shuffle(order)
    n_random = round(size * random_share)
    chosen: dict[str, NewsItem] = {news.uid: news for news in order[:n_random]}
    random_uids = set(chosen)
    rest = order[n_random:]
    for rule in rules:
        if len(chosen) >= size:
            break
        matching = [n for n in rest if n.uid not in chosen and rule.matches(f"{n.title}\n{n.text}")]
        matching.sort(key=lambda n: not rule.pattern.search(n.title))
        room = min(rule.quota, size - len(chosen))
        for news in matching[:room]:
            chosen[news.uid] = news
    picked = []
    for uid, news in chosen.items():
        reasons = hard_cases_of(news, rules)
        by = (["random"] if uid in random_uids else []) + ([f"keyword:{','.join(reasons)}"] if reasons else [])
        picked.append((news, "+".join(by)))
    return picked


def pool_rows(picked: list[tuple[NewsItem, str]]) -> list[dict]:
    rows = []
    for news, selected_by in picked:
        text, truncated = labelled_news.truncate(news.text)
        rows.append({"uid": news.uid, "source_repo": news.source_repo, "commit": news.commit, "path": news.path,
                     "key": news.key, "title": news.title, "text": text, "truncated": truncated,
                     "date": news.date, "outlet": news.outlet, "selected_by": selected_by})
    return rows


def shard(uids: list[str], shards: int, overlap: float, seed: int) -> list[list[str]]:
    """Deal shuffled uids into ``shards`` shards; an ``overlap`` share also goes to a second, different shard."""
    rng = random.Random(seed)
    order = uids[:]
    rng.shuffle(order)
    dealt: list[list[str]] = [[] for _ in range(shards)]
    for i, uid in enumerate(order):
        dealt[i % shards].append(uid)
    # The second copies carry on the round-robin where the first deal stopped, so the shards stay within one
    # story of each other; order[i] sits in shard i % shards, its copy `offset` shards on (never the same one).
    offset = len(order) % shards or 1
    for i, uid in enumerate(order[:round(len(order) * overlap)]):
        dealt[(i + offset) % shards].append(uid)
    for stories in dealt:
        rng.shuffle(stories)
    return dealt


def guide(topics: str, workdir: Path, shards: int) -> str:
    last = f"{shards - 1:02d}"
    return f"""# Annotation guide

You label news stories against the three topic definitions below (TOPICS.md,
verbatim). Read each story in your shard and decide, for each of the three
topics, whether the story is on topic as the definition says. Judge the story
only by its title and text and by the definitions; nothing else.

{topics.rstrip()}

# What you are given

One shard file, `{workdir}/shards/shard_NN.jsonl` (NN is `00` to `{last}`): one
JSON object per line with `uid`, `title` and `text`. Some titles are empty (the
title then starts the text). A text ending in ` [...]` was cut at about 900
words; label what you see.

# What you write

Write exactly one file, `{workdir}/labels/shard_NN.<annotator>.jsonl`, where
`NN` is your shard's number and `<annotator>` is a name of letters, digits and
hyphens only (for example `{workdir}/labels/shard_03.ann3.jsonl`). Any other
file name is skipped.

One JSON object per line, one line for every story of your shard, in any order:

    {{"uid": "n-0123456789ab", "labels": ["north_korea", "trade"], "borderline": false, "reason": "UN sanctions ban North Korean coal exports"}}

- `uid`: the story's uid, copied exactly from the shard.
- `labels`: a JSON list of the topics the story is on, drawn only from
  `"north_korea"`, `"abductions"`, `"trade"` (spelled exactly so, lower case);
  `[]` when it is on none.
- `borderline`: `true` when the definitions leave the case open (a reasonable
  reader could decide either way for at least one topic), else `false`. A
  JSON boolean, not a string.
- `reason`: at most 15 words saying why (what makes it on topic, or, for a
  borderline story, what is open).

Each line must be a complete JSON object on its own line (no trailing commas,
no comments, no surrounding list). Label each uid once.
"""


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def labelled_keys(paths: list[Path]) -> set[tuple[str, str, str]]:
    keys = set()
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                    keys.add((row["source_repo"], row["path"], row["key"]))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{number}: not a labelled row ({exc})") from None
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", type=Path, required=True, help="directory of mirrored git repositories")
    parser.add_argument("--labels", type=Path, action="append",
                        help="labelled rows whose stories stay out of the pool (repeatable; default: "
                             "tests/data/news_topics_labels.jsonl)")
    parser.add_argument("--workdir", type=Path, required=True, help="folder to write (keep it outside the repo)")
    parser.add_argument("--topics", type=Path, required=True, help="TOPICS.md, copied verbatim into the guide")
    parser.add_argument("--size", type=int, default=1350)
    parser.add_argument("--random-share", type=float, default=0.2)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--overlap", type=float, default=0.08, help="share of stories placed in two shards")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    try:
        topics = args.topics.read_text(encoding="utf-8")
        labelled = labelled_keys(args.labels or [labelled_news.LABELS])
        fresh = candidates(labelled_news.read_all(args.mirrors), labelled)
    except (labelled_news.SourceError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = pool_rows(select(fresh, args.size, args.random_share, args.seed))
    write_jsonl(args.workdir / "pool.jsonl", rows)
    by_uid = {row["uid"]: row for row in rows}
    dealt = shard(list(by_uid), args.shards, args.overlap, args.seed)
    for number, uids in enumerate(dealt):
        write_jsonl(args.workdir / "shards" / f"shard_{number:02d}.jsonl",
                    ({"uid": u, "title": by_uid[u]["title"], "text": by_uid[u]["text"]} for u in uids))
    (args.workdir / "labels").mkdir(exist_ok=True)
    (args.workdir / "GUIDE.md").write_text(guide(topics, args.workdir, args.shards), encoding="utf-8")
    print(summary(fresh, rows, dealt))
    return 0


def summary(fresh: list[NewsItem], rows: list[dict], dealt: list[list[str]]) -> str:
    reasons = Counter(r for row in rows for part in row["selected_by"].split("+")
                      for r in (part.removeprefix("keyword:").split(",") if part != "random" else ["random"]))
    lines = [f"{len(fresh)} unlabelled unique stories; pool {len(rows)}, "
             f"{sum(row['truncated'] for row in rows)} cut at ~{labelled_news.MAX_WORDS} words",
             "by source: " + json.dumps(Counter(row["source_repo"] for row in rows).most_common()),
             "by reason (a story counts under each reason it matches): " + json.dumps(reasons.most_common()),
             f"random only: {sum(row['selected_by'] == 'random' for row in rows)}; "
             f"random and keyword: {sum(row['selected_by'].startswith('random+') for row in rows)}; "
             f"keyword only: {sum(row['selected_by'].startswith('keyword') for row in rows)}",
             "shards: " + ", ".join(f"{i:02d}: {len(uids)}" for i, uids in enumerate(dealt)),
             f"in two shards: {sum(len(u) for u in dealt) - len(rows)}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
