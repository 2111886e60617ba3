"""Building a new annotation pool: deduplication, hard-case selection, shards and a guide the merge reads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from test_topic_label_scripts import ROOT, label, load_script, pool_row, run_merge, write_jsonl

labelled_news = load_script("labelled_news")
annotation_pool = load_script("annotation_pool")
merge_topic_labels = load_script("merge_topic_labels")
SCRIPT = ROOT / "scripts" / "annotation_pool.py"


def story(key: str, text: str, title: str = "") -> labelled_news.NewsItem:
    source = labelled_news.Source("someone/news", "c" * 40, "test", "test", labelled_news.read_bbc)
    return labelled_news.item(source, "news.csv", key, title, text, "2016", "test outlet")


def filler(n: int, seed: str) -> str:
    return " ".join(f"{seed}{i}" for i in range(n))


def test_the_pool_leaves_out_labelled_stories_their_near_duplicates_and_short_ones() -> None:
    labelled = story("row:0", filler(80, "a"))
    copy_of_labelled = story("row:1", filler(60, "a") + " different ending " + filler(10, "z"))
    fresh = story("row:2", filler(80, "b"))
    same_as_fresh = story("row:3", filler(80, "b"))
    short = story("row:4", filler(20, "c"))
    kept = annotation_pool.candidates([labelled, copy_of_labelled, fresh, same_as_fresh, short],
                                      {("someone/news", "news.csv", "row:0")})
    assert [news.key for news in kept] == ["row:2"]


def test_selection_takes_a_random_share_then_fills_each_hard_case_to_its_quota() -> None:
    exports = [story(f"row:e{i}", f"Beef exports to Japan halted after the ban. {filler(50, f'e{i}x')}")
               for i in range(30)]
    prices = [story(f"row:p{i}", f"Cattle prices at the saleyard rose. {filler(50, f'p{i}x')}") for i in range(30)]
    plain = [story(f"row:n{i}", filler(60, f"n{i}x")) for i in range(40)]
    rules = (annotation_pool.HardCase("trade-action", annotation_pool.terms(r"exports .{0,20}halted"), 10),
             annotation_pool.HardCase("commodity-market", annotation_pool.terms(r"cattle prices"), 5))
    picked = annotation_pool.select(exports + prices + plain, size=30, random_share=0.2, seed=1, rules=rules)
    by = [selected_by for _, selected_by in picked]
    assert len(picked) == 6 + 10 + 5  # the quotas cap the pool below its size
    assert sum(b.startswith("random") for b in by) == 6
    keyword_only = [b for b in by if not b.startswith("random")]
    assert keyword_only.count("keyword:trade-action") == 10
    assert keyword_only.count("keyword:commodity-market") == 5
    assert all(b in ("random", "random+keyword:trade-action", "random+keyword:commodity-market")
               for b in by if b.startswith("random"))
    smaller = annotation_pool.select(exports + prices + plain, size=12, random_share=0.25, seed=1, rules=rules)
    assert len(smaller) == 12
    assert sum(b == "keyword:trade-action" for _, b in smaller) == 9


def test_a_hard_case_with_a_context_needs_both() -> None:
    rule = next(r for r in annotation_pool.HARD_CASES if r.name == "player-trade")
    assert rule.matches("The striker signed a three-year deal with the club.")
    assert not rule.matches("The two ministers signed a deal on fisheries.")


def test_shards_are_balanced_and_the_overlap_lands_in_two_different_shards() -> None:
    uids = [f"n-{i}" for i in range(1000)]
    dealt = annotation_pool.shard(uids, shards=6, overlap=0.08, seed=3)
    sizes = [len(s) for s in dealt]
    assert sum(sizes) == 1080 and max(sizes) - min(sizes) <= 1
    homes: dict[str, list[int]] = {}
    for number, stories in enumerate(dealt):
        assert len(set(stories)) == len(stories)
        for uid in stories:
            homes.setdefault(uid, []).append(number)
    assert set(homes) == set(uids)
    assert sum(len(h) == 2 for h in homes.values()) == 80


def test_the_guide_quotes_topics_and_its_example_line_is_what_the_merge_reads(tmp_path: Path) -> None:
    topics = "# Topic definitions\n\n## trade\nInternational trade relations.\n"
    text = annotation_pool.guide(topics, tmp_path, shards=6)
    assert topics.rstrip() in text
    example = next(line.strip() for line in text.split("\n") if line.strip().startswith('{"uid"'))
    parsed = merge_topic_labels.parse_row(json.loads(example), "guide")
    assert isinstance(parsed, merge_topic_labels.Annotation) and parsed.labels == {"north_korea", "trade"}
    named = re.search(r"`(\S+/labels/shard_03\.ann3\.jsonl)`", text).group(1)
    assert merge_topic_labels.LABEL_FILE.match(Path(named).name)
    assert f"{tmp_path}/shards/shard_NN.jsonl" in text and "`05`" in text


def test_a_later_round_joins_the_labels_file_and_keeps_the_earlier_rows(tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    earlier = {"uid": "n-old", "source_repo": "a/a", "commit": "c" * 40, "path": "p", "key": "row:0",
               "labels": ["trade"], "borderline": False, "reason": "r", "annotators": ["ann1"],
               "selected_by": "random", "truncated_for_annotation": False}
    write_jsonl(out, [earlier])
    workdir = tmp_path / "round2"
    write_jsonl(workdir / "pool.jsonl", [pool_row("n-1"), pool_row("n-2")])
    write_jsonl(workdir / "labels" / "shard_00.ann7.jsonl", [label("n-1", ["abductions"]), label("n-2", [])])
    for _ in range(2):  # merging the same round again replaces its rows rather than adding them twice
        done = run_merge(workdir, out)
        assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().split("\n") if line]
    assert sorted(r["uid"] for r in rows) == ["n-1", "n-2", "n-old"]
    assert next(r for r in rows if r["uid"] == "n-old") == earlier
    assert "rows kept from earlier rounds: 1" in done.stdout
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "merge_topic_labels.py"), "--workdir",
                           str(workdir), "--out", str(out), "--fresh"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(line)["uid"] for line in out.read_text().split("\n") if line) == ["n-1", "n-2"]


def test_a_missing_mirror_or_topics_file_is_one_line(tmp_path: Path) -> None:
    topics = tmp_path / "TOPICS.md"
    topics.write_text("# Topic definitions\n")
    for args in (["--topics", str(topics), "--mirrors", str(tmp_path / "none")],
                 ["--topics", str(tmp_path / "absent.md"), "--mirrors", str(tmp_path)]):
        done = subprocess.run([sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "out"), *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
