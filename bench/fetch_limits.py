"""Measure what hostile input costs: a gzip bomb over HTTP and entity-expansion feeds.

    python bench/fetch_limits.py [--bomb-mb 1024]

Prints, for a gzip bomb served on 127.0.0.1: the largest single chunk
httpx's ``iter_bytes()`` hands over (it inflates each network read without
an output bound) against our bounded path (``http_source``), with the Python
heap peak of each; and the time and peak of parsing the entity-expansion
fixtures in tests/data.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import faults  # noqa: E402
import httpx  # noqa: E402

from monitor import Monitor, load_config  # noqa: E402


def measure(fn):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        value = fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return value, time.perf_counter() - started, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bomb-mb", type=int, default=1024)
    args = parser.parse_args()
    bomb = faults.gzip_bomb(args.bomb_mb << 20)
    print(f"gzip bomb: {len(bomb) / 1e6:.2f} MB on the wire, {args.bomb_mb} MB inflated")
    server = faults.FaultServer().start()
    try:
        url = server.route("/bomb", faults.compressed(bomb))

        def httpx_iter_bytes(limit: int = 10_000_000) -> tuple[int, int]:
            biggest = total = 0
            with httpx.stream("GET", url) as response:
                for chunk in response.iter_bytes():
                    biggest = max(biggest, len(chunk))
                    total += len(chunk)
                    if total > limit:
                        break
            return biggest, total

        (biggest, total), seconds, peak = measure(httpx_iter_bytes)
        print(f"httpx iter_bytes (stop past 10 MB): largest chunk {biggest / 1e6:.1f} MB, read {total / 1e6:.1f} MB, "
              f"{seconds:.2f} s, heap peak {peak:.1f} MB")

        folder = Path(tempfile.mkdtemp())
        config = folder / "monitor.toml"
        config.write_text(f'[monitor]\ndb = "{folder / "m.db"}"\n[fetch]\nmax_bytes = 10000000\n'
                          'allow_networks = ["127.0.0.1"]\n'
                          f'[sources.bomb]\nurl = "{url}"\n', encoding="utf-8")
        with Monitor.open(load_config(config)) as monitor:
            result, seconds, peak = measure(lambda: monitor.update_source("bomb"))
        print(f"http_source (max_bytes 10 MB): {result.error!r}, {seconds:.2f} s, heap peak {peak:.1f} MB")
    finally:
        server.stop()

    import feedparser

    for name in ("billion_laughs.xml", "quadratic_blowup.xml"):
        body = (ROOT / "tests" / "data" / name).read_bytes()
        parsed, seconds, peak = measure(lambda: feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False))
        sizes = [len(e.get("summary", "")) + len(e.get("title", "")) for e in parsed.entries]
        print(f"{name}: {len(body)} bytes, {seconds * 1000:.1f} ms, heap peak {peak:.1f} MB, "
              f"entry text sizes {sizes} (bozo: {parsed.get('bozo_exception')})")


if __name__ == "__main__":
    main()
