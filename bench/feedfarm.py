"""A loopback feed farm: many feeds on many hosts, counting what a fleet does to them.

``python -m bench.feedfarm --hosts 50 --feeds 10000`` serves ``/feed/<n>.xml``
on 127.0.0.2 … 127.0.0.51 (one port for all hosts, printed as a JSON line on
standard output), feed ``n`` on host ``2 + n % hosts``. Each feed has
``--items`` entries with stable GUIDs, so a story stored twice is a bug of
the poller, not of the farm; every entry is a story of its own (its own words
and made-up place names), and with ``--wire`` feeds 0-2 also carry one wire
story as three agencies reworded it (one cluster). ``--delay`` holds every feed response that many
seconds (slow servers), ``--hook-delay`` every webhook answer. The first
entry of every tenth feed carries the word "embargo" (what the benchmark's
watchlist alerts on).

It records, per host, the requests in flight at once (the maximum seen and
how many requests found more than ``--cap`` in flight: the per-host cap
broken), how often each feed was fetched, and takes webhook POSTs on
``/hook`` (or ``/hook/<channel>``) on 127.0.0.1 counting them by
``Idempotency-Key``, with their arrival times and how many were in flight at
once, per receiver. ``GET /_stats``
on 127.0.0.1 answers all of it as JSON; ``GET /_reset`` zeroes it. It stops
on SIGTERM or when its standard input closes.
"""

from __future__ import annotations

import argparse
import json
import random
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


def expected_alerts(feeds: int, wire: bool = False) -> int:
    """How many alerts per channel the farm's entries carrying :data:`ALERT_WORD` make: one per
    story, and one for the wire story's cluster."""
    return sum(1 for n in range(feeds) if alerting(n, 0)) + (1 if wire and feeds else 0)


# Words the farm's stories are written with: each story draws its own, and carries two made-up
# place names of its own, so no two farm stories are one story to the cluster stage.
_VOCABULARY = """
harbour council budget bridge railway school hospital farmers market festival drought flood river
museum library stadium airport tunnel factory workers union strike election mayor court judge police
fire storm snow heatwave wildfire vaccine clinic nurses teachers students rent housing tenants water
power grid solar wind turbine pipeline mine coal timber fishing quota ferry harbourmaster cathedral
bakery brewery vineyard orchard harvest cattle sheep dairy bicycle tram bus motorway toll parking
""".split()
_SYLLABLES = "ba be bo ka ke ko la le lo ma me mo na ne no ra re ro sa se so ta te to va ve vo za ze zo".split()


def _name(k: int) -> str:
    """A made-up place name unique to ``k`` (``Bakelo``, ``Zorate``...)."""
    out = ""
    for _ in range(4):
        k, syllable = divmod(k, len(_SYLLABLES))
        out += _SYLLABLES[syllable]
    return out.capitalize()


def _story(n: int, i: int) -> tuple[str, str]:
    """Feed ``n``'s entry ``i``: a title and a description no other farm entry shares."""
    k = n * 16 + i
    words = random.Random(k).sample(_VOCABULARY, 10)
    town, river = _name(2 * k), _name(2 * k + 1)
    title = f"{town} {words[0]} and {words[1]} plans for {river}"
    if alerting(n, i):
        title += f" under an {ALERT_WORD}"
    text = (f"Officials in {town} discussed the {words[2]} and the {words[3]} on the {river} side, with "
            f"{words[4]} and {words[5]} next; the {words[6]} {words[7]} waits for {words[8]} {words[9]}.")
    return title, text


# One wire story as three agencies wrote it (the wording of tests/test_clusters.py): with
# ``--wire``, feeds 0, 1 and 2 (three hosts when there are three) each carry one version.
WIRE = (
    ("North Korea fires ballistic missile into sea off its east coast, defying arms embargo, Seoul says",
     "SEOUL, Nov 29 (Reuters) - North Korea fired a ballistic missile into the sea off its east coast on Sunday, "
     "South Korea's Joint Chiefs of Staff said, the latest in a series of weapons tests by Pyongyang under a UN "
     "arms embargo. The missile was launched from the Sunan area near Pyongyang and flew about 600 km before "
     "landing in the sea, the JCS said in a statement. Japan's defence ministry also reported the launch."),
    ("North Korea launches ballistic missile toward sea despite embargo, South Korea military says",
     "SEOUL, South Korea (AP) — North Korea launched a ballistic missile toward its eastern waters Sunday, "
     "South Korea's military said, extending a run of weapons demonstrations banned by the UN arms embargo. "
     "South Korea's Joint Chiefs of Staff said the missile was fired from the Sunan area of Pyongyang and "
     "travelled about 600 kilometers. Japan's Defense Ministry said it appeared to have landed outside Japan's "
     "exclusive economic zone."),
    ("N. Korea fires ballistic missile in breach of embargo: Seoul",
     "North Korea fired a ballistic missile off its east coast on Sunday, Seoul's military said, in Pyongyang's "
     "latest launch this year in breach of the UN arms embargo. \"North Korea fired a ballistic missile from the "
     "Sunan area into the East Sea,\" the Joint Chiefs of Staff said, adding it flew around 600 kilometres. Tokyo "
     "confirmed the launch, the Japanese defence ministry said."),
)


WIRE_WAIT = 15.0  # seconds a wire copy's answer waits for the other copies to be asked for


def _item(title: str, link: str, guid: str, text: str, when: int) -> str:
    return (f"<item><title>{title}</title><link>{link}</link><guid isPermaLink=\"false\">{guid}</guid>"
            f"<description>{text}</description><pubDate>{formatdate(when, usegmt=True)}</pubDate></item>")


def feed_body(n: int, items: int, wire: bool = False, published: int = 1_700_000_000) -> bytes:
    """Feed ``n``'s RSS: ``items`` entries with GUIDs unique across the farm (and a version of the wire story
    for feeds 0-2 when ``wire``), published from ``published`` (epoch seconds) on."""
    entries = "".join(_item(*_story(n, i)[:1], f"http://farm.invalid/{n}/{i}", f"farm-{n}-{i}", _story(n, i)[1],
                            published + i) for i in range(items))
    if wire and n < len(WIRE):
        title, text = WIRE[n]
        entries += _item(title, f"http://agency{n}.invalid/world/missile", f"wire-{n}", text, published)
    return (f"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Feed {n}</title>"
            f"<link>http://farm.invalid/{n}</link><description>farm</description>{entries}</channel></rss>").encode()


def expected_stories(feeds: int, items: int, wire: bool = False) -> int:
    """How many stories the farm's feeds hold."""
    return feeds * items + (min(feeds, len(WIRE)) if wire else 0)


class Farm:
    """The shared counters of every host's server."""

    def __init__(self, *, hosts: int, feeds: int, items: int, delay: float, cap: int, hook_delay: float = 0.0,
                 wire: bool = False):
        self.hosts, self.feeds, self.items, self.delay, self.cap = hosts, feeds, items, delay, cap
        self.wire = wire
        # The wire copies are answered together, once all three were asked for (or after WIRE_WAIT):
        # workers then cluster them at the same moment, the case a shared cluster stage must get right.
        self.wire_asked = 0
        self.wire_all_asked = threading.Event()
        # Entries are dated from the farm's start: inside the cluster stage's window, as live news is.
        self.published = int(time.time()) - 60
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
            self.max_hooks_in_flight = 0
            self.hook_times: list[float] = []  # wall-clock arrival of each webhook POST
            # Per receiver path (/hook, /hook/<name>): arrivals, POSTs in flight and the most at once.
            self.channel_times: dict[str, list[float]] = {}
            self.channel_in_flight: Counter[str] = Counter()
            self.channel_max_in_flight: Counter[str] = Counter()
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

    def hook(self, key: str, arrived: bool, channel: str = "hook") -> None:
        """A webhook POST to receiver ``channel`` arrived (``arrived``) or was answered: counted on
        arrival, a sender that dies waiting for the answer has still delivered it."""
        with self.lock:
            if arrived:
                self.hooks[key] += 1
                self.hook_times.append(time.time())
                self.channel_times.setdefault(channel, []).append(time.time())
                self.hooks_in_flight += 1
                self.max_hooks_in_flight = max(self.max_hooks_in_flight, self.hooks_in_flight)
                self.channel_in_flight[channel] += 1
                self.channel_max_in_flight[channel] = max(self.channel_max_in_flight[channel],
                                                          self.channel_in_flight[channel])
            else:
                self.hooks_in_flight -= 1
                self.channel_in_flight[channel] -= 1

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
                "max_hooks_in_flight": self.max_hooks_in_flight,
                "hook_times": list(self.hook_times),
                "channel_times": {name: list(times) for name, times in self.channel_times.items()},
                "channel_max_in_flight": dict(self.channel_max_in_flight),
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
            if farm.wire and n < len(WIRE):
                with farm.lock:
                    farm.wire_asked += 1
                    if farm.wire_asked >= min(farm.feeds, len(WIRE)):
                        farm.wire_all_asked.set()
                farm.wire_all_asked.wait(WIRE_WAIT)
            if farm.delay:
                time.sleep(farm.delay)
            self._send(200, feed_body(n, farm.items, farm.wire, farm.published), "application/rss+xml")
        finally:
            farm.leave(host)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        if path != "/hook" and not path.startswith("/hook/"):
            return self._send(404, b"{}")
        channel = path[len("/hook/"):] or "hook"
        farm = self.server.farm
        farm.hook(self.headers.get("Idempotency-Key") or "", arrived=True, channel=channel)
        try:
            if farm.hook_delay:
                time.sleep(farm.hook_delay)
            self._send(200, b"{}")
        finally:
            farm.hook("", arrived=False, channel=channel)


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
    parser.add_argument("--wire", action="store_true", help="feeds 0-2 also carry one wire story, reworded by each")
    parser.add_argument("--cap", type=int, default=2, help="requests in flight per host that count as over the cap")
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 250:
        raise SystemExit("feedfarm: --hosts must be 1 to 250 (127.0.0.2 upwards)")
    farm = Farm(hosts=args.hosts, feeds=args.feeds, items=args.items, delay=args.delay, cap=args.cap,
                hook_delay=args.hook_delay, wire=args.wire)
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
