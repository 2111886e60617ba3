"""Test helpers for plugin authors (and for our own suite): a real monitor, a real feed server.

Installing news-monitor makes these pytest fixtures available everywhere
(the ``pytest11`` entry point ``news_monitor``):

``monitor_feed_server``
    A :class:`FeedServer` on 127.0.0.1, stopped after the test.
``monitor_config``
    ``monitor_config(toml_text)`` writes a configuration into the test's
    folder (its database beside it, loopback feeds allowed) and returns its path.
``make_monitor``
    ``make_monitor(toml_text, plugins=[my_plugin])`` opens a real
    :class:`~monitor.Monitor` on such a configuration with the installed
    plugins and ``plugins`` registered (so a plugin under test need not be
    installed); every monitor is closed after the test.

``monitor_db``
    Parametrised over both stores: a SQLite file in the test's folder, then a
    PostgreSQL URL naming a schema of its own (see ``monitor_postgres_url``).
    Use it as ``db`` in a configuration (:func:`write_config`) or open it with
    :func:`monitor.storage.open_store`: a test written once runs on both.
``monitor_postgres_url``
    A fresh, empty PostgreSQL schema for the test, dropped after it, in a
    database created for the test module (dropped after the module), on the
    server named by ``MONITOR_TEST_POSTGRES_URL``. Skips, saying why, when the
    variable is unset or the server cannot be reached.

Plain functions (:func:`rss`, :func:`write_config`, :func:`allow_private_networks`)
work without pytest.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit
from xml.sax.saxutils import escape

import pytest

from .app import Monitor
from .config import load_config
from .plugins import load_plugins, make_plugin_manager

__all__ = [
    "FeedServer", "RequestRecord", "Response", "allow_private_networks", "open_test_monitor", "rss", "write_config",
]


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


def rss(items: list[dict[str, str]], title: str = "Test feed", language: str | None = None) -> bytes:
    """RSS 2.0 bytes; each item may have title, link, guid, description, pubDate.

    :param language: the channel's ``<language>``, e.g. ``sv``.
    """
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
             "<link>http://127.0.0.1/</link><description>test</description>"
             + (f"<language>{escape(language)}</language>" if language else "")]
    for item in items:
        parts.append("<item>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items()) + "</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def allow_private_networks(text: str) -> str:
    """``text`` with ``[fetch] allow_private_networks = true``, unless it sets the network policy itself.

    Every test server listens on 127.0.0.1, which the default policy refuses;
    a test of the policy itself writes its own.
    """
    if "allow_private_networks" in text or "allow_networks" in text:
        return text
    line = "allow_private_networks = true\n"
    fetch = re.search(r"^\[fetch\][^\n]*\n", text, re.M)
    if fetch:
        return text[:fetch.end()] + line + text[fetch.end():]
    return text + ("" if text.endswith("\n") or not text else "\n") + "\n[fetch]\n" + line


def write_config(folder: Path, text: str, name: str = "monitor.toml", db: str | Path | None = None) -> Path:
    """Write ``text`` as ``folder/name`` with ``db = "folder/monitor.db"`` (or ``db``; unless the text
    sets ``db``) and loopback feeds allowed (see :func:`allow_private_networks`); returns the path."""
    path = folder / name
    text = allow_private_networks(text)
    db_line = f'db = "{db or folder / "monitor.db"}"\n'
    if "db =" in text:
        body = text
    elif "[monitor]\n" in text:
        body = text.replace("[monitor]\n", "[monitor]\n" + db_line, 1)
    else:
        body = "[monitor]\n" + db_line + text
    path.write_text(body, encoding="utf-8")
    return path


def open_test_monitor(config_path: Path, plugins: Sequence[object] = (), env: dict[str, str] | None = None) -> Monitor:
    """A real :class:`Monitor` on ``config_path``: installed plugins as configured, then ``plugins``.

    A plugin in ``plugins`` that is installed already (same module) is not registered twice.
    """
    config = load_config(config_path, env={} if env is None else env)
    pm = make_plugin_manager()
    load_plugins(pm, disable=config.disable_plugins, plugins_dir=config.plugins_dir, redact=config.redact)
    for plugin in plugins:
        if not pm.is_registered(plugin):
            pm.register(plugin, name=getattr(plugin, "__name__", None))
    return Monitor.open(config, pm=pm)


@pytest.fixture
def monitor_feed_server() -> Iterator[FeedServer]:
    """A :class:`FeedServer` on 127.0.0.1 for the test."""
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def monitor_config(tmp_path: Path) -> Callable[..., Path]:
    """``monitor_config(text, name="monitor.toml")``: a configuration file in the test's folder (see :func:`write_config`)."""

    def write(text: str, name: str = "monitor.toml") -> Path:
        return write_config(tmp_path, text, name)

    return write


@pytest.fixture
def make_monitor(monitor_config: Callable[..., Path]) -> Iterator[Callable[..., Monitor]]:
    """``make_monitor(text, plugins=())``: a real monitor with a temporary database, closed after the test."""
    opened: list[Monitor] = []

    def open_(text: str, plugins: Sequence[object] = ()) -> Monitor:
        monitor = open_test_monitor(monitor_config(text), plugins)
        opened.append(monitor)
        return monitor

    yield open_
    for monitor in opened:
        monitor.close()


# -- PostgreSQL ----------------------------------------------------------------------

POSTGRES_ENV = "MONITOR_TEST_POSTGRES_URL"


def postgres_server_url() -> str:
    """The server the PostgreSQL tests use (``MONITOR_TEST_POSTGRES_URL``), or skip saying why."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: the PostgreSQL store's tests need a server "
                    "(e.g. postgresql://postgres@127.0.0.1:5432/test; .ci/postgres.sh starts one)")
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed: pip install -e '.[postgres]'")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        from .storage import redact_url

        pytest.skip(f"PostgreSQL at {redact_url(url)} ({POSTGRES_ENV}) cannot be reached: {' '.join(str(exc).split())}")
    return url


def with_database(url: str, dbname: str, schema: str | None = None) -> str:
    """``url`` naming database ``dbname`` (and, if given, ``schema`` as its search path)."""
    parts = urlsplit(url)
    query = f"options={quote(f'-csearch_path={schema}')}" if schema else ""
    return urlunsplit(parts._replace(path=f"/{dbname}", query=query))


@pytest.fixture(scope="module")
def monitor_postgres_database() -> Iterator[str]:
    """A PostgreSQL database created for the test module and dropped after it; its URL."""
    import psycopg

    server = postgres_server_url()
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def monitor_postgres_url(monitor_postgres_database: str) -> Iterator[str]:
    """An empty schema of the module's database for this test, dropped after it; a URL naming it."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(monitor_postgres_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_database(monitor_postgres_database, urlsplit(monitor_postgres_database).path.lstrip("/"), schema)
    finally:
        with psycopg.connect(monitor_postgres_database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def monitor_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database location of a test that runs on both stores: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "monitor.db")
    return request.getfixturevalue("monitor_postgres_url")

