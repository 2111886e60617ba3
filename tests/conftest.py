"""Shared fixtures: real loopback HTTP servers, config files, the CLI."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner, Result

from faults import FaultServer
from monitor import Monitor, load_config

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"
CORPORA = SHARED / "corpora"


def shared_corpus(*parts: str) -> Path:
    """A path in ../shared/corpora, or skip the test saying why."""
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared corpora are not beside this checkout")
    return path


# -- no packet leaves the machine ------------------------------------------------

# Non-loopback addresses this test process tried to connect to. Each attempt is
# stopped by the audit hook below before the socket connects, and fails its test.
_OUTSIDE_CONNECTS: list[str] = []


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:  # a name: judge every address it resolves to
        return all(_is_loopback(str(info[4][0])) for info in socket.getaddrinfo(host, None))
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _loopback_only(event: str, args: tuple) -> None:
    # CPython raises this audit event before connect(2): raising here means no packet is sent.
    if event != "socket.connect":
        return
    sock, address = args
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return
    host = str(address[0])
    if not _is_loopback(host):
        _OUTSIDE_CONNECTS.append(host)
        raise PermissionError(f"tests connect to loopback addresses only; a connection to {host} was stopped")


sys.addaudithook(_loopback_only)


@pytest.fixture(autouse=True)
def _no_connection_leaves_loopback() -> Iterator[None]:
    del _OUTSIDE_CONNECTS[:]
    yield
    assert not _OUTSIDE_CONNECTS, f"the test tried to connect outside loopback: {_OUTSIDE_CONNECTS}"


@pytest.fixture
def outside_connects() -> list[str]:
    """The non-loopback addresses the test has tried to connect to so far (each stopped before any packet)."""
    return _OUTSIDE_CONNECTS


# -- a real HTTP server ---------------------------------------------------------


@dataclass
class Response:
    """What the server answers on one path. ``body`` may be a callable for dynamic answers."""

    body: bytes | Callable[[BaseHTTPRequestHandler], bytes] = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/rss+xml"})
    etag: bool = True  # answer If-None-Match with 304 when the body is unchanged
    reason: str | None = None  # the status line's reason phrase, if not the standard one


@dataclass
class RequestRecord:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float


class FeedServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving registered responses and recording requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Response | list[Response]] = {}
        self.requests: list[RequestRecord] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(RequestRecord(self.path, self.command, dict(self.headers), body, time.monotonic()))
                route = server.routes.get(self.path.split("?")[0])
                if isinstance(route, list):  # a sequence of answers, the last one repeating
                    route = route.pop(0) if len(route) > 1 else route[0]
                if route is None:
                    self._send(404, {"Content-Type": "text/plain"}, b"not found")
                    return
                payload = route.body(self) if callable(route.body) else route.body
                headers = dict(route.headers)
                if route.etag and route.status == 200:
                    tag = '"' + hashlib.sha256(payload).hexdigest()[:16] + '"'
                    headers["ETag"] = tag
                    if self.headers.get("If-None-Match") == tag:
                        self._send(304, {"ETag": tag}, b"")
                        return
                self._send(route.status, headers, payload, route.reason)

            def _send(self, status: int, headers: dict[str, str], payload: bytes, reason: str | None = None) -> None:
                self.send_response(status, reason)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: bytes | Callable, **kwargs: object) -> str:
        """Serve ``body`` at ``path``; returns the full URL."""
        self.routes[path] = Response(body=body, **kwargs)  # type: ignore[arg-type]
        return self.url(path)

    def hits(self, path: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    def start(self) -> "FeedServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A loopback server whose paths answer with the faults of tests/faults.py."""
    server = FaultServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()


# -- feeds built from the seed articles ----------------------------------------


def seed_articles() -> list[tuple[str, str, str]]:
    """``(file name, title, body)`` of each seed article."""
    out = []
    for path in sorted(SEEDS.glob("*.txt")):
        title, _, body = path.read_text(encoding="utf-8").strip().partition("\n")
        out.append((path.name, title.strip(), body.strip()))
    return out


def rss(items: list[dict[str, str]], title: str = "Test feed") -> bytes:
    """RSS 2.0 bytes; each item may have title, link, guid, description, pubDate."""
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
             "<link>http://127.0.0.1/</link><description>test</description>"]
    for item in items:
        parts.append("<item>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items()) + "</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def seed_rss(base: str = "http://news.test") -> bytes:
    """An RSS feed whose two items are the seed articles."""
    when = format_datetime(datetime(2019, 5, 27, 9, 0, tzinfo=timezone.utc))
    return rss([
        {"title": title, "link": f"{base}/{name}", "guid": f"{base}/{name}", "description": body, "pubDate": when}
        for name, title, body in seed_articles()
    ])


# -- configuration and the CLI ---------------------------------------------------


def allow_private_networks(text: str) -> str:
    """``text`` with ``[fetch] allow_private_networks = true``, unless it sets the network policy itself.

    Every test server listens on 127.0.0.1, which the default policy refuses;
    the tests of the policy (tests/test_network_policy.py) write their own.
    """
    if "allow_private_networks" in text or "allow_networks" in text:
        return text
    line = "allow_private_networks = true\n"
    fetch = re.search(r"^\[fetch\][^\n]*\n", text, re.M)
    if fetch:
        return text[:fetch.end()] + line + text[fetch.end():]
    return text + ("" if text.endswith("\n") or not text else "\n") + "\n[fetch]\n" + line


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a TOML config into the test's folder; its database is ``tmp_path/monitor.db``.

    Feeds may connect to the loopback test servers (see :func:`allow_private_networks`).
    """

    def write(text: str, name: str = "monitor.toml") -> Path:
        path = tmp_path / name
        text = allow_private_networks(text)
        db_line = f'db = "{tmp_path / "monitor.db"}"\n'
        if "db =" in text:
            body = text
        elif "[monitor]\n" in text:
            body = text.replace("[monitor]\n", "[monitor]\n" + db_line, 1)
        else:
            body = "[monitor]\n" + db_line + text
        path.write_text(body, encoding="utf-8")
        return path

    return write


@pytest.fixture
def open_monitor(make_config: Callable[[str], Path]) -> Iterator[Callable[[str], Monitor]]:
    """Open a real :class:`Monitor` on a config written from TOML text; all are closed after the test."""
    opened: list[Monitor] = []

    def open_(text: str) -> Monitor:
        monitor = Monitor.open(load_config(make_config(text), env={}))
        opened.append(monitor)
        return monitor

    yield open_
    for monitor in opened:
        monitor.close()


@pytest.fixture
def cli_run() -> Callable[..., Result]:
    """Invoke the real ``monitor`` CLI in-process."""
    from monitor.cli import cli

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


def monitor_process(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m monitor ARGS`` as a real process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", *args], cwd=cwd, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.1) -> object:
    """Poll ``predicate`` until truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
