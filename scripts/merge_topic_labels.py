"""Merge blind annotators' topic labels into tests/data/news_topics_labels.jsonl.

Annotators write ``LABELS_DIR/shard_NN.<annotator>.jsonl`` (one JSON line per
story: uid, labels, borderline, reason; see the GUIDE.md that scripts/annotation_pool.py writes). The candidate
pool (``pool.jsonl``) gives each uid its provenance. This script:

- checks every line and names the file and line of any it cannot use, keeping the rest;
- measures agreement on the stories two annotators labelled (per topic: raw
  agreement and Cohen's kappa);
- resolves a disagreement by the stricter reading of TOPICS.md: a topic only one
  annotator gave is dropped and the story is marked borderline, with the dispute
  named in its reason;
- writes the merged rows (provenance and labels, never text) and a READY note.

    python scripts/merge_topic_labels.py --workdir /work/labeldata

A later round (a new pool from scripts/annotation_pool.py) joins the same file:
rows of stories outside the pool being merged are kept, the pool's own rows are
written afresh (``--fresh`` writes the round alone).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from monitor.evaluation import json_lines

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "news_topics_labels.jsonl"
TOPICS = ("north_korea", "abductions", "trade")
LABEL_FILE = re.compile(r"^shard_(\d+)\.([A-Za-z0-9-]+)\.jsonl$")
PROVENANCE = ("source_repo", "commit", "path", "key")


@dataclass(frozen=True)
class Annotation:
    uid: str
    annotator: str
    labels: frozenset[str]
    borderline: bool
    reason: str


def parse_row(row: dict | str, where: str) -> Annotation | str:
    """One annotation from a line's JSON object (or the reason it has none), or a one-line complaint naming where."""
    if isinstance(row, str):
        return f"{where}: {row}"
    if not isinstance(row.get("uid"), str):
        return f"{where}: no uid"
    labels = row.get("labels")
    if not isinstance(labels, list) or any(label not in TOPICS for label in labels):
        return f"{where}: labels must be a list drawn from {', '.join(TOPICS)}"
    if not isinstance(row.get("borderline"), bool):
        return f"{where}: borderline must be true or false"
    return Annotation(row["uid"], "", frozenset(labels), row["borderline"], str(row.get("reason", "")))


def read_annotations(labels_dir: Path, pool: dict[str, dict]) -> tuple[list[Annotation], list[str]]:
    annotations: list[Annotation] = []
    problems: list[str] = []
    for path in sorted(labels_dir.glob("*.jsonl")):
        match = LABEL_FILE.match(path.name)
        if not match:
            problems.append(f"{path}: name is not shard_NN.<annotator>.jsonl; file skipped")
            continue
        annotator = match.group(2)
        seen: set[str] = set()
        for number, row in json_lines(path.read_text().split("\n")):
            parsed = parse_row(row, f"{path}:{number}")
            if isinstance(parsed, str):
                problems.append(parsed)
            elif parsed.uid not in pool:
                problems.append(f"{path}:{number}: uid {parsed.uid} is not in the pool")
            elif parsed.uid in seen:
                problems.append(f"{path}:{number}: uid {parsed.uid} labelled twice in this file; first kept")
            else:
                seen.add(parsed.uid)
                annotations.append(Annotation(parsed.uid, annotator, parsed.labels, parsed.borderline, parsed.reason))
    return annotations, problems


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa for two raters' yes/no decisions; None when chance agreement is total."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    p_a = sum(a for a, _ in pairs) / n
    p_b = sum(b for _, b in pairs) / n
    expected = p_a * p_b + (1 - p_a) * (1 - p_b)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def agreement(by_uid: dict[str, list[Annotation]]) -> dict[str, dict]:
    """Per topic, raw agreement and kappa over stories labelled by two different annotators."""
    doubles = [anns for anns in by_uid.values() if len({a.annotator for a in anns}) >= 2]
    result: dict[str, dict] = {}
    for topic in TOPICS:
        pairs = []
        for anns in doubles:
            first = anns[0]
            second = next(a for a in anns if a.annotator != first.annotator)
            pairs.append((topic in first.labels, topic in second.labels))
        raw = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
        kappa = cohen_kappa(pairs)
        result[topic] = {
            "stories": len(pairs),
            "both_yes": sum(a and b for a, b in pairs),
            "disagree": sum(a != b for a, b in pairs),
            "raw_agreement": None if raw is None else round(raw, 3),
            "kappa": None if kappa is None else round(kappa, 3),
        }
    return result


def resolve(anns: list[Annotation]) -> tuple[list[str], bool, str]:
    """Labels all annotators gave; a disputed topic is dropped and makes the story borderline."""
    labels = [t for t in TOPICS if all(t in a.labels for a in anns)]
    disputed = [t for t in TOPICS if any(t in a.labels for a in anns) and t not in labels]
    borderline = any(a.borderline for a in anns) or bool(disputed)
    reason = anns[0].reason
    if disputed:
        votes = ", ".join(f"{t} {sum(t in a.labels for a in anns)} of {len(anns)}" for t in disputed)
        reason = f"disputed ({votes}); {' | '.join(a.reason for a in anns)}"
    return labels, borderline, reason


def earlier_rows(out: Path, pool: dict[str, dict]) -> list[dict]:
    """The rows already in ``out`` from earlier labelling rounds (those of this pool are merged afresh)."""
    if not out.exists():
        return []
    rows = []
    for number, row in json_lines(out.read_text(encoding="utf-8").split("\n")):
        if isinstance(row, str) or not isinstance(row.get("uid"), str):
            raise ValueError(f"{out}:{number}: {row if isinstance(row, str) else 'no uid'}")
        if row["uid"] not in pool:
            rows.append(row)
    return rows


def merge(workdir: Path, out: Path, keep_earlier: bool = False) -> dict:
    pool_path = workdir / "pool.jsonl"
    pool = {}
    for number, row in json_lines(pool_path.read_text().split("\n")):
        if isinstance(row, str) or not isinstance(row.get("uid"), str):
            raise ValueError(f"{pool_path}:{number}: {row if isinstance(row, str) else 'no uid'}")
        pool[row["uid"]] = row
    annotations, problems = read_annotations(workdir / "labels", pool)
    by_uid: dict[str, list[Annotation]] = defaultdict(list)
    for ann in annotations:
        by_uid[ann.uid].append(ann)
    rows = []
    for uid in sorted(by_uid, key=lambda u: (pool[u]["source_repo"], pool[u]["path"], pool[u]["key"])):
        labels, borderline, reason = resolve(by_uid[uid])
        source = pool[uid]
        rows.append({
            "uid": uid,
            **{field: source[field] for field in PROVENANCE},
            "labels": labels,
            "borderline": borderline,
            "reason": reason,
            "annotators": sorted({a.annotator for a in by_uid[uid]}),
            "selected_by": source.get("selected_by", ""),
            "truncated_for_annotation": bool(source.get("truncated")),
        })
    earlier = earlier_rows(out, pool) if keep_earlier else []
    rows = sorted(earlier + rows, key=lambda r: (r["source_repo"], r["path"], r["key"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    summary = {
        "pool_stories": len(pool),
        "labelled_stories": len(rows) - len(earlier),
        "earlier_rows_kept": len(earlier),
        "annotation_files": sorted({f"{a.annotator}" for a in annotations}),
        "positives": {t: sum(t in r["labels"] for r in rows) for t in TOPICS},
        "borderline": sum(r["borderline"] for r in rows),
        "agreement": agreement(by_uid),
        "problems": problems,
    }
    return summary


def ready_note(summary: dict, out: Path, workdir: Path) -> str:
    lines = [
        f"Merged labels: {out}",
        f"{summary['labelled_stories']} of {summary['pool_stories']} pool stories labelled "
        f"(annotators: {', '.join(summary['annotation_files']) or 'none'})",
        f"rows kept from earlier rounds: {summary['earlier_rows_kept']}",
        f"positives (all rows written): {json.dumps(summary['positives'])}; borderline: {summary['borderline']}",
        "agreement on stories labelled twice (per topic):",
    ]
    for topic, figures in summary["agreement"].items():
        lines.append(f"  {topic}: {json.dumps(figures)}")
    lines += [
        "Text is not in the merged file: rebuild it with scripts/labelled_news.py --mirrors DIR --out FILE",
        f"Working files: {workdir / 'pool.jsonl'} (candidate pool with text), {workdir / 'shards'}, {workdir / 'labels'}",
        f"problems ({len(summary['problems'])}):",
        *[f"  {p}" for p in summary["problems"]],
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/work/labeldata"),
                        help="folder holding pool.jsonl and labels/")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--fresh", action="store_true",
                        help="write this round alone; by default the rows already in --out that are not in this "
                             "pool (earlier labelling rounds) are kept beside it")
    args = parser.parse_args(argv)
    try:
        summary = merge(args.workdir, args.out, keep_earlier=not args.fresh)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot merge from {args.workdir}: {exc}", file=sys.stderr)
        return 1
    note = ready_note(summary, args.out, args.workdir)
    (args.workdir / "READY").write_text(note)
    for problem in summary["problems"]:
        print(problem, file=sys.stderr)
    print(note, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
