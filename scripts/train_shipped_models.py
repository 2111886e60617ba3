"""Train the models of the three shipped watchlists and write their provenance.

Usage: python scripts/train_shipped_models.py [--shared DIR] [--mirrors DIR | --news FILE] [--only NAME] [--no-eval]

Reads every labelled set (bench/learned_eval.py: Reuters-21578 train labelled to
TOPICS.md, AG News dev, the written articles, the seeds, the 4,110 blind-labelled
news stories of tests/data/news_topics_labels.jsonl with their text read from git
mirrors of their public repositories, and the synthetic abduction examples,
which are trained on but never scored), fits one model per watchlist on all of
it, then measures the recipe by grouped 5-fold cross-validation and across
corpora beside the naive floor and the shipped query, and writes:

- plugins/models/NAME.npz (the model the package ships);
- plugins/models/provenance.json (sources, counts, every figure) and
  plugins/models/PROVENANCE.md (the same, for people).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
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
    parser.add_argument("--mirrors", type=Path, default=le.DEFAULT_MIRRORS,
                        help="git mirrors of the blind-labelled stories' repositories (owner+name/repo each; "
                             "tests/data/news_topics_labels.README.md names them)")
    parser.add_argument("--news", type=Path, metavar="FILE",
                        help="the blind-labelled stories already rebuilt by scripts/labelled_news.py --out FILE")
    parser.add_argument("--only", action="append", choices=le.NAMES, help="train only this watchlist (repeatable)")
    parser.add_argument("--no-eval", action="store_true", help="fit and write the models without measuring them")
    parser.add_argument("--measure-only", action="store_true",
                        help="keep the shipped model file and its provenance entry; measure the recipe and record "
                             "the figures beside it")
    parser.add_argument("--measure-without", action="append", default=[], metavar="CORPUS",
                        help="leave this corpus out of the measurement (not of the fit); recorded with the figures")
    parser.add_argument("--jobs", type=int, default=1,
                        help="fit the model, the folds and the cross-corpus runs in this many forked processes")
    args = parser.parse_args(argv)
    watchlists = load_watchlists()
    try:
        sets = le.corpora(args.shared, args.mirrors, args.news)
    except (le.labelled_news.SourceError, OSError) as exc:
        # The shipped models are trained on every labelled set or not at all.
        print(f"error: the blind-labelled stories cannot be read: {exc}", file=sys.stderr)
        return 1
    MODELS.mkdir(exist_ok=True)
    for name in args.only or le.NAMES:
        query, threshold = watchlists[name]["query"], watchlists[name].get("threshold", 1.0)
        started = time.perf_counter()
        if args.measure_only:
            measure(name, query, threshold, [c for c in sets if c.name not in args.measure_without], args)
            print(f"{name}: done in {time.perf_counter() - started:.0f}s", flush=True)
            continue
        prepared = le.prepare(name, query, threshold, sets)
        items = prepared.items
        model, views = le.fit_and_measure(prepared, sets, args.jobs, measure=not args.no_eval)
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
                 "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "learner": learner_commit(),
                 "sources": counts, "sklearn": model.meta["sklearn"], "figures": []}
        for found in views:
            for row in found:
                print(row.describe(), flush=True)
            entry["figures"] += [r.to_dict() for r in found]
        record(name, entry)
        print(f"{name}: done in {time.perf_counter() - started:.0f}s", flush=True)
    return 0


def measure(name: str, query: str, threshold: float, sets: list[le.Corpus], args: argparse.Namespace) -> None:
    """Measure the recipe on ``sets`` and record the figures beside the shipped model's provenance entry."""
    prepared = le.prepare(name, query, threshold, sets)
    _, views = le.fit_and_measure(prepared, sets, args.jobs, fit_model=False)
    provenance = json.loads((MODELS / "provenance.json").read_text(encoding="utf-8"))
    entry = provenance["watchlists"][name]
    entry["figures"] = [r.to_dict() for found in views for r in found]
    entry["measured_without"] = sorted(args.measure_without)
    entry["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entry["measured_with_learner"] = learner_commit()
    for row in (r for found in views for r in found):
        print(row.describe(), flush=True)
    record(name, entry)


def learner_commit() -> str:
    """The commit of plugins/learned_model.py the models are trained with ("+ local changes" when it differs)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("log", "-1", "--format=%h", "--", "plugins/learned_model.py") or "unknown"
    return commit + (" + local changes" if git("status", "--porcelain", "--", "plugins/learned_model.py") else "")


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
    "news_blind": "Blind-labelled real news stories from seven public datasets (tests/data/news_topics_labels.jsonl, "
                  "text rebuilt from the pinned repositories by scripts/labelled_news.py; sources and agreement in "
                  "tests/data/news_topics_labels.README.md); stories marked borderline or on which the annotators "
                  "disagreed are left out.",
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
                  f"stories ({entry['positives']} on topic); cutoff {entry['cutoff']}; {entry['bytes']:,} bytes; "
                  f"learner plugins/learned_model.py at {entry.get('learner', 'unknown')}.", "",
                  "| source | stories | on topic | in figures |", "|---|---:|---:|---|"]
        lines += [f"| {s} | {c['stories']} | {c['positives']} | {'yes' if c['scored'] else 'no (synthetic)'} |"
                  for s, c in entry["sources"].items()]
        if not entry.get("figures"):
            lines += ["", "Held-out figures: **not recorded** for this model yet (the measurement did not finish "
                          "on the machine that trained it); `scripts/train_shipped_models.py --measure-only` "
                          "records them here."]
        else:
            measured = (f" The recipe was measured on every source except {', '.join(entry['measured_without'])} "
                        f"({entry.get('measured_at', '')}, learner at {entry.get('measured_with_learner', '?')}); "
                        "the model above is fitted on all of them."
                        if entry.get("measured_without") else "")
            lines += ["", "Held-out figures (P / R / F1), beside the naive floor and the shipped query." + measured,
                      "",
                      "| view | stories | on topic | learned | floor | query |", "|---|---:|---:|---|---|---|"]
            for f in entry["figures"]:
                cells = [" / ".join("—" if f[k][m] is None else f"{f[k][m]:.3f}" for m in ("precision", "recall", "f1"))
                         for k in ("learned", "floor", "query")]
                lines.append(f"| {f['view']} | {f['stories']} | {f['positives']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
