"""How fast the outbox drains: N alerts to a loopback webhook receiver, one message each.

    .venv/bin/python bench/outbox_dispatch.py [N]

Prints alerts per second for the per-alert path (claim, POST, mark sent: two
commits and one HTTP round trip per alert) and for one digest of all N.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

from monitor import Monitor, load_config


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.count += 1
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def feed(n: int) -> str:
    items = "".join(
        f"<item><title>Pyongyang story {i}</title><link>http://news.test/{i}</link><guid>g{i}</guid>"
        f"<description>{escape(f'Officials in Pyongyang said thing {i}.')}</description></item>"
        for i in range(n)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>b</title>{items}</channel></rss>'


def run(n: int, digest: bool) -> float:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.count = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "feed.xml").write_text(feed(n), encoding="utf-8")
        extra = 'digest = "1ms"\n' if digest else ""
        (folder / "monitor.toml").write_text(
            f'[monitor]\ndb = "{folder / "m.db"}"\nlog_level = "WARNING"\n[sources.f]\nurl = "{folder / "feed.xml"}"\n'
            f'[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:{server.server_address[1]}/hook"\n{extra}'
            '[watchlists.korea]\nquery = "pyongyang"\nchannels = ["hook"]\n'
            "[watchlists.north_korea]\nenabled = false\n[watchlists.abductions]\nenabled = false\n"
            "[watchlists.trade]\nenabled = false\n",
            encoding="utf-8",
        )
        with Monitor.open(load_config(folder / "monitor.toml")) as monitor:
            for source in monitor.config.sources.values():
                monitor.update_source(source)
            monitor.dispatch()  # a digest channel's first pass only starts its period
            time.sleep(0.01)
            start = time.perf_counter()
            while True:
                result = monitor.dispatch()
                if not (result.sent or result.retrying):
                    break
            elapsed = time.perf_counter() - start
    server.shutdown()
    server.server_close()
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    each = run(n, digest=False)
    print(f"per-alert: {n} alerts in {each:.2f}s = {n / each:.0f} alerts/s ({Receiver.count} requests)")
    one = run(n, digest=True)
    print(f"digest:    {n} alerts in {one:.2f}s = {n / one:.0f} alerts/s ({Receiver.count} request)")


if __name__ == "__main__":
    main()
