"""Shared fixtures: real loopback HTTP servers, config files, the CLI."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from faults import FaultServer
from monitor import Monitor
from monitor.plugins import LOAD_ENV
from monitor.testing import FeedServer, Response, rss, write_config  # noqa: F401  (tests import Response from here)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"
CORPORA = SHARED / "corpora"


# -- only our own plugins ------------------------------------------------------

# A third-party plugin installed in the same environment (another classifier,
# a channel) would otherwise load into every monitor the tests open and change
# what they see. The suite loads the entry points this project declares and no
# others; set for the whole process, so `monitor` subprocesses inherit it.
# A test that wants the foreign ones deletes it (monkeypatch.delenv(LOAD_ENV)).
OWN_PLUGINS = tuple(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["news_monitor"])
os.environ[LOAD_ENV] = ",".join(OWN_PLUGINS)


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


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A loopback server whose paths answer with the faults of tests/faults.py."""
    server = FaultServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def feed_server(monitor_feed_server: FeedServer) -> FeedServer:
    """The loopback feed server of monitor.testing, under the name the suite uses."""
    return monitor_feed_server


# -- feeds built from the seed articles ----------------------------------------


def seed_articles() -> list[tuple[str, str, str]]:
    """``(file name, title, body)`` of each seed article."""
    out = []
    for path in sorted(SEEDS.glob("*.txt")):
        title, _, body = path.read_text(encoding="utf-8").strip().partition("\n")
        out.append((path.name, title.strip(), body.strip()))
    return out


def seed_rss(base: str = "http://news.test") -> bytes:
    """An RSS feed whose two items are the seed articles."""
    when = format_datetime(datetime(2019, 5, 27, 9, 0, tzinfo=timezone.utc))
    return rss([
        {"title": title, "link": f"{base}/{name}", "guid": f"{base}/{name}", "description": body, "pubDate": when}
        for name, title, body in seed_articles()
    ])


# -- configuration and the CLI ---------------------------------------------------


@pytest.fixture
def make_config(monitor_config: Callable[..., Path]) -> Callable[..., Path]:
    """The ``monitor_config`` fixture of monitor.testing, under the name the suite uses: a TOML config
    in the test's folder, its database ``tmp_path/monitor.db``, loopback feeds allowed."""
    return monitor_config


@pytest.fixture
def open_monitor(make_monitor: Callable[..., Monitor]) -> Callable[..., Monitor]:
    """The ``make_monitor`` fixture of monitor.testing, under the name the suite uses: a real
    :class:`Monitor` on a config written from TOML text; all are closed after the test."""
    return make_monitor


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
