"""Speed and quality of the semantic classifier on the labelled AG News dev set.

Prints stories/second of the embedding step (model loaded once, batched) and,
per watchlist, precision/recall/F1 of keywords alone vs keywords combined with
semantic scoring in each mode, and with a model trained by ``monitor train``
(trained on one half of the dev set, measured on the other half).

    .venv/bin/python bench/semantic_bench.py [--dev PATH] [--min-similarity 0.2]

Needs the ``semantic`` extra. Uses the watchlists of the built-in defaults.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from monitor import Monitor, Story, load_config
from monitor_plugins.semantic import state_for, store_model
from monitor_plugins.semantic_model import story_text, train_logistic

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "corpora" / "ag_news" / "dev.jsonl"


def read_dev(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stories_of(rows: list[dict]) -> list[Story]:
    return [Story(id=r["id"], source="dev", title=r["title"], text=r.get("summary") or r.get("text") or "") for r in rows]


def scores(found, rows, names) -> dict[str, tuple[float, float, float, int, int, int]]:
    got = {(m.story_id, m.watchlist) for m in found}
    out = {}
    for name in names:
        tp = sum(1 for r in rows if (r["id"], name) in got and name in r["labels"])
        fp = sum(1 for r in rows if (r["id"], name) in got and name not in r["labels"])
        fn = sum(1 for r in rows if (r["id"], name) not in got and name in r["labels"])
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
        out[name] = (p, rc, f1, tp, fp, fn)
    return out


def config_file(folder: Path, db: Path, semantic: dict | None) -> Path:
    # No batch cap here: the whole dev set is one batch, and we measure quality.
    lines = [f'[monitor]\ndb = "{db}"\n[plugins.semantic]\nmax_stories_per_batch = 100000\n']
    if semantic is not None:
        for name in ("north_korea", "abductions", "trade"):
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in semantic.items())
            lines.append(f"[watchlists.{name}.options]\nsemantic = {{{inner}}}\n")
    path = folder / f"bench-{len(list(folder.iterdir()))}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def report(title: str, result: dict) -> None:
    print(f"  {title}")
    for name, (p, r, f1, tp, fp, fn) in result.items():
        print(f"    {name:12} P {p:.2f}  R {r:.2f}  F1 {f1:.2f}   (tp {tp}, fp {fp}, fn {fn})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--min-similarity", type=float, default=0.2)
    parser.add_argument("--either-min-similarity", type=float, default=0.45,
                        help="a stricter cutoff for an extra run of mode either")
    parser.add_argument("--weight", type=float, default=0.5)
    args = parser.parse_args()
    rows = read_dev(args.dev)
    stories = stories_of(rows)
    names = ["north_korea", "abductions", "trade"]
    print(f"{len(rows)} labelled stories from {args.dev}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "bench.db"

        # Keywords alone: the semantic plugin is loaded but no watchlist opts in.
        with Monitor.open(load_config(config_file(folder, db, None))) as monitor:
            report("keywords alone (defaults.toml queries)", scores(monitor.classify(stories), rows, names))

        # Speed: model load, then embedding every story in batches.
        with Monitor.open(load_config(config_file(folder, db, None))) as monitor:
            embedder = state_for(monitor).embedder
            started = time.perf_counter()
            embedder.embed(["warm up"])
            loaded = time.perf_counter() - started
            texts = [story_text(s.title, s.text, 100) for s in stories]
            started = time.perf_counter()
            vectors = embedder.embed(texts)
            spent = time.perf_counter() - started
        print(f"\nmodel import+load {loaded:.1f}s; embedded {len(texts)} stories in {spent:.1f}s "
              f"= {len(texts) / spent:.0f} stories/s (batch 32, title + first 100 words)\n")

        runs = [("rerank", args.min_similarity), ("boost", args.min_similarity),
                ("either", args.min_similarity), ("either", args.either_min_similarity)]
        for mode, min_similarity in runs:
            settings = {"mode": mode, "weight": args.weight, "min_similarity": min_similarity}
            with Monitor.open(load_config(config_file(folder, db, settings))) as monitor:
                started = time.perf_counter()
                found = monitor.classify(stories)
                spent = time.perf_counter() - started
                report(f"keywords + semantic, mode {mode}, min_similarity {min_similarity} "
                       f"({len(stories) / spent:.0f} stories/s through classify)", scores(found, rows, names))

        # A trained model: fit on half the dev set, measure on the other half,
        # against keywords alone on that same half.
        rng = random.Random(7)
        order = list(range(len(rows)))
        rng.shuffle(order)
        train_idx, test_idx = sorted(order[: len(order) // 2]), sorted(order[len(order) // 2 :])
        test_rows = [rows[i] for i in test_idx]
        test_stories = [stories[i] for i in test_idx]
        print("\n  held-out half (trained on the other half):")
        with Monitor.open(load_config(config_file(folder, db, None))) as monitor:
            report("keywords alone", scores(monitor.classify(test_stories), test_rows, names))
        with Monitor.open(load_config(config_file(folder, db, {"mode": "rerank", "weight": args.weight}))) as monitor:
            for name in names:
                labels = [name in rows[i]["labels"] for i in train_idx]
                if sum(labels) < 2:
                    continue
                model = train_logistic(vectors[train_idx], labels)
                store_model(monitor, name, model, sum(labels), len(labels) - sum(labels), "bench")
            report("keywords + trained model, mode rerank", scores(monitor.classify(test_stories), test_rows, names))
        with Monitor.open(load_config(config_file(folder, db, {"mode": "either", "weight": args.weight}))) as monitor:
            report("keywords + trained model, mode either", scores(monitor.classify(test_stories), test_rows, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
