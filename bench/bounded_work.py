"""Measure one poll of the feeds of issue #10: wall time, peak RSS, database size.

    python bench/bounded_work.py [--items 700000] [--entry-mb 9]

Serves on 127.0.0.1, one at a time: an RSS feed whose single entry is
``--entry-mb`` MB of HTML-escaped markup, and a JSON Feed of ``--items``
minimal items (``{"id":N}``, so 700,000 fit within the default
``fetch.max_bytes``). Each is polled by ``monitor once`` in a child process,
which reports its own peak RSS (``ru_maxrss``). docs/fetching.md quotes the
figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import faults  # noqa: E402

CHILD = ("import resource, sys\nfrom monitor.cli import cli\n"
         "try:\n    cli.main(sys.argv[1:], prog_name='monitor', standalone_mode=False)\n"
         "finally:\n    print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def big_entry(megabytes: float) -> bytes:
    unit = escape("<p>north korea trade <b>tariff</b></p> ")
    text = unit * int(megabytes * 1_000_000 / len(unit))
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>North Korea dossier'
            f"</title><guid>huge</guid><description>{text}</description></item></channel></rss>").encode()


def many_items(count: int) -> bytes:
    items = ",".join(f'{{"id":{i}}}' for i in range(count))
    return ('{"version":"https://jsonfeed.org/version/1.1","title":"many","items":[' + items + "]}").encode()


def poll(name: str, body: bytes, media: str, folder: Path) -> dict[str, object]:
    server = faults.FaultServer().start()
    try:
        url = server.route("/feed", faults.feed(body, content_type=media))
        work = folder / name
        work.mkdir()
        (work / "monitor.toml").write_text(
            f'[monitor]\ndb = "{work / "monitor.db"}"\n[fetch]\nallow_private_networks = true\n[alerts]\nnew_source_window = 0\n'
            f'[sources.{name}]\nurl = "{url}"\n', encoding="utf-8")
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, "once", "--config", str(work / "monitor.toml")],
                              cwd=work, capture_output=True, text=True, timeout=1800)
        took = time.perf_counter() - started
    finally:
        server.stop()
    maxrss = next(int(l.split()[1]) for l in proc.stderr.splitlines() if l.startswith("MAXRSS"))
    return {"feed": name, "body_mb": round(len(body) / 1e6, 1), "exit": proc.returncode, "seconds": round(took, 1),
            "peak_rss_mb": round(maxrss / 1024), "db_mb": round(os.path.getsize(work / "monitor.db") / 1e6, 1),
            "output": proc.stdout.strip().splitlines()[-1:] }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=700_000)
    parser.add_argument("--entry-mb", type=float, default=9.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for row in (poll("single_entry", big_entry(args.entry_mb), "application/rss+xml", Path(tmp)),
                    poll("json_items", many_items(args.items), "application/feed+json", Path(tmp))):
            print(row)


if __name__ == "__main__":
    main()
