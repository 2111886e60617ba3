"""The loopback HTTP server of the benchmark, run in its own process.

``python -m bench.server FOLDER`` serves ``FOLDER/*.xml`` on 127.0.0.1 (an
ephemeral port, printed as the first line of standard output) with ETag and
Last-Modified, answering conditional requests with 304. It also takes
webhook POSTs on ``/hook`` (the alert receiver) and has two control paths:
``/_mode?conditional=0|1`` (0: ignore validators and resend unchanged bytes)
and ``/_stats`` (requests served and the server's own CPU seconds, as JSON).
It stops on SIGTERM or when its standard input closes.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


class BenchServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, folder: Path):
        super().__init__(("127.0.0.1", 0), Handler)
        self.folder = folder
        self.conditional = True
        self.lock = threading.Lock()
        self.counts = {"feeds": 0, "not_modified": 0, "hooks": 0, "bytes": 0}
        # Validators are fixed per file: the content never changes during a run.
        self.last_modified = formatdate(1_700_000_000, usegmt=True)

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real feed servers do
    # Headers and body go out in two writes: with Nagle's algorithm on, the body
    # waits for the client's delayed ACK (~40 ms a response), which would make
    # the benchmark measure the server instead of the client.
    disable_nagle_algorithm = True
    server: BenchServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats = {**self.server.counts, "cpu_s": usage.ru_utime + usage.ru_stime}
            self._send(200, json.dumps(stats).encode(), {"Content-Type": "application/json"})
            return
        if url.path == "/_mode":
            self.server.conditional = parse_qs(url.query).get("conditional", ["1"])[0] != "0"
            self._send(204)
            return
        name = url.path.rsplit("/", 1)[-1]
        path = self.server.folder / name
        if not name.endswith(".xml") or not path.is_file():
            self._send(404, b"not found")
            return
        etag = f'"{name}-{path.stat().st_size}"'
        if self.server.conditional:
            validators = {"ETag": etag, "Last-Modified": self.server.last_modified}
            if self.headers.get("If-None-Match") == etag:
                self.server.count("not_modified")
                self._send(304, b"", validators)
                return
        else:
            validators = {}
        body = path.read_bytes()
        self.server.count("feeds")
        self.server.count("bytes", len(body))
        self._send(200, body, {"Content-Type": "application/xml; charset=utf-8", **validators})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.count("hooks")
        self._send(204)


def main() -> None:
    server = BenchServer(Path(sys.argv[1]))
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # the parent closes our stdin (or exits) to stop us
    server.shutdown()
    server.server_close()
    os._exit(0)


if __name__ == "__main__":
    main()
