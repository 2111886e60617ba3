"""A fault-injection HTTP server on 127.0.0.1: every way a feed server misbehaves.

Each fault is a function writing the whole response on the raw connection,
so it can do what a well-behaved server never does: drip bytes, reset the
connection mid-body, redirect forever, send a compressed bomb.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Fault = Callable[[BaseHTTPRequestHandler], None]


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    """A complete, honest response."""
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def status(code: int, headers: dict[str, str] | None = None, body: bytes = b"error") -> Fault:
    return lambda h: send(h, code, body, {"Content-Type": "text/plain", **(headers or {})})


def feed(body: bytes, content_type: str = "application/rss+xml", headers: dict[str, str] | None = None) -> Fault:
    return lambda h: send(h, 200, body, {"Content-Type": content_type, **(headers or {})})


def drip(prefix: bytes = b"<?xml version='1.0'?><rss><channel>", every: float = 0.2) -> Fault:
    """Headers at once, then one byte every ``every`` seconds, forever (until the client leaves)."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Connection", "close")  # the body runs until the connection closes
        h.end_headers()
        h.wfile.write(prefix)
        h.wfile.flush()
        try:
            while True:
                time.sleep(every)
                h.wfile.write(b" ")
                h.wfile.flush()
        except OSError:
            pass

    return answer


def reset_mid_body(prefix: bytes = b"<?xml version='1.0'?><rss><channel><item><title>half") -> Fault:
    """Promise a long body, send a little, then reset the connection (RST, not FIN)."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", "50000")
        h.end_headers()
        h.wfile.write(prefix)
        h.wfile.flush()
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.close()
        h.close_connection = True

    return answer


def redirect(location: str, code: int = 302) -> Fault:
    return lambda h: send(h, code, b"", {"Location": location})


def gzip_bomb(uncompressed: int) -> bytes:
    """``uncompressed`` zero bytes, gzipped (about 1000:1), built in pieces to stay small in memory."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [z.compress(block) for _ in range(uncompressed >> 20)]
    parts.append(z.flush())
    return b"".join(parts)


def compressed(body: bytes, encoding: str = "gzip", content_type: str = "application/rss+xml") -> Fault:
    """``body`` (already compressed) served with a Content-Encoding."""
    return lambda h: send(h, 200, body, {"Content-Type": content_type, "Content-Encoding": encoding})


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # resets and abandoned drips are the point here, not news


class FaultServer:
    """A ThreadingHTTPServer on 127.0.0.1 whose paths answer with faults; it records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Fault] = {}
        self.requests: list[tuple[str, dict[str, str], float]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._count_lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                server.requests.append((path, dict(self.headers), time.monotonic()))
                with server._count_lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    fault = server.routes.get(path)
                    if fault is None:
                        send(self, 404, b"not found", {"Content-Type": "text/plain"})
                    else:
                        fault(self)
                except OSError:
                    self.close_connection = True
                finally:
                    with server._count_lock:
                        server.in_flight -= 1

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def route(self, path: str, fault: Fault) -> str:
        self.routes[path] = fault
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for p, _, _ in self.requests if p == path)

    def start(self) -> "FaultServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def drip_headers(every: float = 0.2) -> Fault:
    """The status line and headers themselves, one byte every ``every`` seconds."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n" + b"X-Slow: " + b"a" * 10_000 + b"\r\n\r\n"
        try:
            for i in range(len(head)):
                h.wfile.write(head[i : i + 1])
                h.wfile.flush()
                time.sleep(every)
        except OSError:
            pass
        h.close_connection = True

    return answer
