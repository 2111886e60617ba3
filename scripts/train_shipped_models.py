"""Train the models of the three shipped watchlists and write their provenance.

Usage: python scripts/train_shipped_models.py [--shared DIR] [--labeldata DIR] [--only NAME] [--no-eval]

Reads every labelled set (bench/learned_eval.py: Reuters-21578 train labelled to
TOPICS.md, AG News dev, the written articles, the seeds, the blind-labelled news
stories when /work/labeldata has them, and the synthetic abduction examples,
which are trained on but never scored), measures each watchlist by 5-fold
cross-validation and across corpora beside the naive floor and the shipped
query, then fits one model per watchlist on all of it and writes:

- plugins/models/NAME.npz (the model the package ships);
- plugins/models/provenance.json (sources, counts, every figure) and
  plugins/models/PROVENANCE.md (the same, for people).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import learned_eval as le  # noqa: E402
from eval_watchlists import DEFAULT_SHARED, load_watchlists  # noqa: E402
from monitor_plugins.learned_model import dump_model, train  # noqa: E402

MODELS = ROOT / "plugins" / "models"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--labeldata", type=Path, default=le.DEFAULT_LABELDATA)
    parser.add_argument("--only", action="append", choices=le.NAMES, help="train only this watchlist (repeatable)")
    parser.add_argument("--no-eval", action="store_true", help="fit and write the models without measuring them")
    args = parser.parse_args(argv)
    watchlists = load_watchlists()
    sets = le.corpora(args.shared, args.labeldata)
    MODELS.mkdir(exist_ok=True)
    for name in args.only or le.NAMES:
        query, threshold = watchlists[name]["query"], watchlists[name].get("threshold", 1.0)
        started = time.perf_counter()
        # The model first (the package needs it), then its held-out figures.
        items, _ = le.examples(name, sets)
        model = train(name, query, items)
        data = dump_model(model)
        (MODELS / f"{name}.npz").write_bytes(data)
        print(f"{name}: wrote the model ({len(items)} examples, cutoff {model.cutoff}, {len(data) / 1e6:.1f} MB)",
              flush=True)
        counts = {c.name: {"stories": n, "positives": p, "scored": c.scored}
                  for c in sets
                  for n, p in [(sum(1 for e in items if e.source == c.name),
                                sum(1 for e in items if e.source == c.name and e.positive))]}
        entry = {"trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "examples": len(items), "positives": sum(e.positive for e in items), "cutoff": model.cutoff,
                 "bytes": len(data), "sources": counts, "sklearn": model.meta["sklearn"], "figures": []}
        record(name, entry)
        if args.no_eval:
            continue
        for found in [le.cross_validated(name, query, threshold, sets)] + [
                le.cross_corpus(name, query, threshold, train_sets, test_sets)
                for train_sets, test_sets in le.cross_corpus_plans(sets)]:
            for row in found:
                print(row.describe(), flush=True)
            entry["figures"] += [r.to_dict() for r in found]
            record(name, entry)  # figures as they come, so an interrupted run keeps what it measured
        print(f"{name}: done in {time.perf_counter() - started:.0f}s", flush=True)
    return 0


def record(name: str, entry: dict) -> None:
    """Write ``name``'s provenance; re-read first, as one process per watchlist may run at once (--only)."""
    path = MODELS / "provenance.json"
    provenance = json.loads(path.read_text()) if path.exists() else {"watchlists": {}}
    provenance["watchlists"][name] = entry
    provenance["sources"] = SOURCES
    path.write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
    (MODELS / "PROVENANCE.md").write_text(markdown(provenance), encoding="utf-8")


SOURCES = {
    "reuters_topics": "Reuters-21578 ModApte TRAIN split (shared/corpora/reuters21578/train.jsonl) with our TOPICS.md "
                      "labels (tests/data/reuters_topics_labels.jsonl); borderline trade labels left out for trade. "
                      "The test split is never read.",
    "ag_news_dev": "AG News dev labels (shared/corpora/ag_news/dev.jsonl), feed-sized, labelled to TOPICS.md.",
    "news_blind": "Blind-labelled real news stories (labeldata/labels/*.jsonl joined with labeldata/pool.jsonl); "
                  "stories marked borderline or on which annotators disagree are left out.",
    "written_long": "tests/data/long_articles_written.jsonl: full-length articles written for the tests.",
    "written_abductions": "tests/data/abductions_written.jsonl: feed-sized abduction stories written for the tests.",
    "seeds": "The two seed articles (all three labels).",
    "synthetic/synthetic_abductions": "scripts/training/synthetic_abductions.jsonl: SYNTHETIC examples written "
                                      "for training only (abduction positives are rare); never in any figure.",
}


def markdown(provenance: dict) -> str:
    lines = ["# Shipped watchlist models: provenance", "",
             "Written by `scripts/train_shipped_models.py`; the numbers are in `provenance.json`.", "",
             "## Sources", ""]
    lines += [f"- **{name}**: {text}" for name, text in provenance["sources"].items()]
    for name, entry in provenance["watchlists"].items():
        lines += ["", f"## {name}", "",
                  f"Trained {entry['trained_at']} with scikit-learn {entry['sklearn']} on {entry['examples']} "
                  f"stories ({entry['positives']} on topic); cutoff {entry['cutoff']}; {entry['bytes']:,} bytes.", "",
                  "| source | stories | on topic | in figures |", "|---|---:|---:|---|"]
        lines += [f"| {s} | {c['stories']} | {c['positives']} | {'yes' if c['scored'] else 'no (synthetic)'} |"
                  for s, c in entry["sources"].items()]
        if not entry.get("figures"):
            lines += ["", "Held-out figures: not recorded by the run that wrote this model (it was stopped "
                          "after the fit); docs/learned.md gives the figures measured so far."]
        else:
            lines += ["", "Held-out figures (P / R / F1), beside the naive floor and the shipped query:", "",
                      "| view | stories | on topic | learned | floor | query |", "|---|---:|---:|---|---|---|"]
            for f in entry["figures"]:
                cells = [" / ".join(f"{f[k][m]:.3f}" for m in ("precision", "recall", "f1"))
                         for k in ("learned", "floor", "query")]
                lines.append(f"| {f['view']} | {f['stories']} | {f['positives']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
