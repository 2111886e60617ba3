"""The real scheduler polls each source only when its next_poll_at has come."""

from __future__ import annotations


import faults
from conftest import seed_rss, wait_for
from faults import FaultServer
from monitor import Monitor, load_config
from monitor.scheduler import build_scheduler


def test_scheduler_honours_next_poll_at_and_a_stuck_source_slows_no_one(make_config):
    server = FaultServer().start()
    try:
        fast = server.route("/fast", faults.feed(seed_rss()))
        cached = server.route("/cached", faults.feed(seed_rss(), headers={"Cache-Control": "max-age=3600"}))
        limited = server.route("/limited", faults.status(429, {"Retry-After": "3600"}))
        stuck = server.route("/stuck", faults.drip(every=0.1))
        text = ('[schedule]\ninterval = "1s"\nmin_interval = "1s"\nadaptive = false\njitter = 0\nmax_workers = 2\n'
                '[fetch]\ntimeout = 1\ndeadline = 3\n')
        for name, url in (("fast", fast), ("cached", cached), ("limited", limited), ("stuck", stuck)):
            text += f'[sources.{name}]\nurl = "{url}"\ninterval = "1s"\n'
        with Monitor.open(load_config(make_config(text))) as monitor:
            scheduler = build_scheduler(monitor)
            scheduler.start()
            try:
                wait_for(lambda: server.hits("/fast") >= 4, timeout=15)
            finally:
                scheduler.shutdown(wait=True)
            assert server.hits("/cached") == 1  # max-age pushed its next poll an hour out
            assert server.hits("/limited") == 1  # Retry-After likewise
            assert server.hits("/stuck") <= 2  # cut by the deadline each time, never hanging the others
            row = monitor.store.source_row("stuck")
            assert row["status"] == "error" and "fetch.deadline" in row["last_error"]
    finally:
        server.stop()
