"""A loopback feed farm: many feeds on many hosts, counting what a fleet does to them.

``python -m bench.feedfarm --hosts 50 --feeds 10000`` serves ``/feed/<n>.xml``
on 127.0.0.2 … 127.0.0.51 (one port for all hosts, printed as a JSON line on
standard output), feed ``n`` on host ``2 + n % hosts``. Each feed has
``--items`` entries with stable GUIDs, so a story stored twice is a bug of
the poller, not of the farm. ``--delay`` holds every feed response that many
seconds (slow servers), ``--hook-delay`` every webhook answer. The first
entry of every tenth feed carries the word "embargo" (what the benchmark's
watchlist alerts on).

It records, per host, the requests in flight at once (the maximum seen and
how many requests found more than ``--cap`` in flight: the per-host cap
broken), how often each feed was fetched, and takes webhook POSTs on
``/hook`` on 127.0.0.1 counting them by ``Idempotency-Key``. ``GET /_stats``
on 127.0.0.1 answers all of it as JSON; ``GET /_reset`` zeroes it. It stops
on SIGTERM or when its standard input closes.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LAST_MODIFIED = formatdate(1_700_000_000, usegmt=True)


def host_address(index: int) -> str:
    """The loopback address of host ``index`` (0 → 127.0.0.2)."""
    return f"127.0.0.{2 + index}"


def feed_url(n: int, hosts: int, port: int) -> str:
    """Where feed ``n`` is served."""
    return f"http://{host_address(n % hosts)}:{port}/feed/{n}.xml"


ALERT_WORD = "embargo"


def alerting(n: int, i: int) -> bool:
    """Whether entry ``i`` of feed ``n`` carries :data:`ALERT_WORD` (the first entry of every tenth feed)."""
    return i == 0 and n % 10 == 0


def expected_alerts(feeds: int) -> int:
    """How many entries of the farm carry :data:`ALERT_WORD`."""
    return sum(1 for n in range(feeds) if alerting(n, 0))


def feed_body(n: int, items: int) -> bytes:
    """Feed ``n``'s RSS: ``items`` entries with GUIDs unique across the farm."""
    entries = "".join(
        f"<item><title>Report {n}-{i}: a note on the local weather{' and an ' + ALERT_WORD if alerting(n, i) else ''}</title>"
        f"<link>http://farm.invalid/{n}/{i}</link><guid isPermaLink=\"false\">farm-{n}-{i}</guid>"
        f"<description>Story {i} of feed {n} about the local weather.</description>"
        f"<pubDate>{formatdate(1_700_000_000 + i, usegmt=True)}</pubDate></item>"
        for i in range(items)
    )
    return (f"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Feed {n}</title>"
            f"<link>http://farm.invalid/{n}</link><description>farm</description>{entries}</channel></rss>").encode()


class Farm:
    """The shared counters of every host's server."""

    def __init__(self, *, hosts: int, feeds: int, items: int, delay: float, cap: int, hook_delay: float = 0.0):
        self.hosts, self.feeds, self.items, self.delay, self.cap = hosts, feeds, items, delay, cap
        self.hook_delay = hook_delay
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.in_flight: Counter[str] = Counter()
            self.max_in_flight: Counter[str] = Counter()
            self.over_cap = 0
            self.fetches: Counter[int] = Counter()
            self.hooks: Counter[str] = Counter()
            self.hooks_in_flight = 0
            self.hook_times: list[float] = []  # wall-clock arrival of each webhook POST
            self.requests = 0

    def enter(self, host: str, feed: int) -> None:
        with self.lock:
            self.requests += 1
            self.fetches[feed] += 1
            self.in_flight[host] += 1
            now = self.in_flight[host]
            self.max_in_flight[host] = max(self.max_in_flight[host], now)
            if now > self.cap:
                self.over_cap += 1

    def leave(self, host: str) -> None:
        with self.lock:
            self.in_flight[host] -= 1

    def hook(self, key: str, arrived: bool) -> None:
        """A webhook POST arrived (``arrived``) or was answered: counted on arrival, a sender
        that dies waiting for the answer has still delivered it."""
        with self.lock:
            if arrived:
                self.hooks[key] += 1
                self.hook_times.append(time.time())
                self.hooks_in_flight += 1
            else:
                self.hooks_in_flight -= 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "feeds_fetched": len(self.fetches),
                "duplicate_fetches": sum(c - 1 for c in self.fetches.values() if c > 1),
                "max_in_flight": max(self.max_in_flight.values(), default=0),
                "over_cap": self.over_cap,
                "hooks": sum(self.hooks.values()),
                "hook_keys": len(self.hooks),
                "duplicate_hooks": sum(c - 1 for c in self.hooks.values() if c > 1),
                "hooks_in_flight": self.hooks_in_flight,
                "hook_times": list(self.hook_times),
            }


class FarmServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], farm: Farm):
        super().__init__(address, Handler)
        self.farm = farm

    def handle_error(self, request: object, client_address: object) -> None:
        # A client killed mid-request (the fault tests do that) is no error of the farm's.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FarmServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, media_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        if media_type.endswith("xml"):
            self.send_header("Last-Modified", LAST_MODIFIED)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        farm = self.server.farm
        path = self.path.split("?", 1)[0]
        if path == "/_stats":
            return self._send(200, json.dumps(farm.stats()).encode())
        if path == "/_reset":
            farm.reset()
            return self._send(200, b"{}")
        if not (path.startswith("/feed/") and path.endswith(".xml")):
            return self._send(404, b"{}")
        try:
            n = int(path[len("/feed/"):-len(".xml")])
        except ValueError:
            return self._send(404, b"{}")
        host = self.server.server_address[0]
        farm.enter(host, n)
        try:
            if farm.delay:
                time.sleep(farm.delay)
            self._send(200, feed_body(n, farm.items), "application/rss+xml")
        finally:
            farm.leave(host)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.split("?", 1)[0] != "/hook":
            return self._send(404, b"{}")
        farm = self.server.farm
        farm.hook(self.headers.get("Idempotency-Key") or "", arrived=True)
        try:
            if farm.hook_delay:
                time.sleep(farm.hook_delay)
            self._send(200, b"{}")
        finally:
            farm.hook("", arrived=False)


def start(farm: Farm) -> tuple[int, list[FarmServer]]:
    """One server per host plus the control server on 127.0.0.1, all on one free port."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        servers: list[FarmServer] = []
        try:
            for address in ["127.0.0.1", *(host_address(i) for i in range(farm.hosts))]:
                servers.append(FarmServer((address, port), farm))
        except OSError:
            for server in servers:
                server.server_close()
            continue
        for server in servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        return port, servers
    raise SystemExit("feedfarm: no port is free on every loopback address")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each feed response is held")
    parser.add_argument("--hook-delay", type=float, default=0.0, help="seconds each webhook POST is held")
    parser.add_argument("--cap", type=int, default=2, help="requests in flight per host that count as over the cap")
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 250:
        raise SystemExit("feedfarm: --hosts must be 1 to 250 (127.0.0.2 upwards)")
    farm = Farm(hosts=args.hosts, feeds=args.feeds, items=args.items, delay=args.delay, cap=args.cap,
                hook_delay=args.hook_delay)
    port, servers = start(farm)
    print(json.dumps({"port": port, "hosts": args.hosts, "feeds": args.feeds}), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    for server in servers:
        server.shutdown()


if __name__ == "__main__":
    main()
