"""Stories per second through ``Monitor.classify`` with the shipped learned models on and off.

Usage: python bench/learned_throughput.py [--shared DIR] [--batch N] [--repeat N]

Classifies AG News dev (feed-sized) and the first 1,000 Reuters-21578 train
articles (full-length) in batches, as the pipeline does, once with the
default configuration (the three shipped watchlists on their models) and once
with ``options.model = false`` (their queries alone). Prints stories per second
of wall time and per second of this process's CPU time: on a shared machine the
second is the steadier figure. Timing only: nothing is stored.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import eval_watchlists as ev  # noqa: E402
from monitor import Monitor, load_config  # noqa: E402

QUERY_ONLY = "".join(f"[watchlists.{name}.options]\nmodel = false\n" for name in ev.NAMES)


def measure(config_text: str, stories: list, batch: int, repeat: int) -> tuple[float, float]:
    """Stories per second of wall time and per second of CPU time."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "monitor.toml"
        path.write_text(f'[monitor]\ndb = "{Path(folder) / "monitor.db"}"\n' + config_text, encoding="utf-8")
        with Monitor.open(load_config(path, env={})) as monitor:
            monitor.classify(stories[:batch])  # loads the models
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(repeat):
                for start in range(0, len(stories), batch):
                    monitor.classify(stories[start:start + batch])
            done = repeat * len(stories)
            return done / (time.perf_counter() - started), done / (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ev.DEFAULT_SHARED)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    sets = {"AG News dev (feed-sized)": [i.story for i in ev.ag_news_dev(args.shared)],
            "Reuters train, first 1,000 (full-length)": [i.story for i in ev.reuters_train(args.shared)[:1000]]}
    for name, stories in sets.items():
        learned = measure("", stories, args.batch, args.repeat)
        query = measure(QUERY_ONLY, stories, args.batch, args.repeat)
        print(f"{name}: {len(stories)} stories; learned models {learned[0]:,.0f} stories/s "
              f"({learned[1]:,.0f} per CPU second); queries alone {query[0]:,.0f} stories/s "
              f"({query[1]:,.0f} per CPU second); learned/queries {learned[1] / query[1]:.2f} x in CPU time",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
