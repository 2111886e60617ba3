"""The daemon's own ``/metrics``, ``/healthz`` and ``/readyz``: a small HTTP server in a thread.

``monitor run`` starts it when ``[metrics] port`` is set, so every worker of
a fleet can be scraped; ``monitor serve`` answers the same paths itself.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .access import Credentials, check_bind
from .config import Config
from .health import readiness

log = logging.getLogger("monitor.metrics")


class MetricsServer:
    """Serves ``registry`` and the health checks of ``config`` on ``host:port`` until :meth:`stop`."""

    def __init__(self, config: Config, registry: CollectorRegistry, host: str, port: int):
        config.require_env("web")
        credentials = Credentials.from_config(config.web)
        check_bind(host, credentials, "the metrics server ([metrics] host)", config.where)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass  # scrapes every few seconds would drown the daemon's log

            def do_GET(self) -> None:
                if not credentials.allows(self.headers.get("Authorization")):
                    self._send(401, "text/plain; charset=utf-8", b"credentials required\n",
                               {"WWW-Authenticate": 'Basic realm="news-monitor"'})
                    return
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    self._send(200, "application/json", b'{"status": "ok"}')
                elif path == "/readyz":
                    state = readiness(config)
                    body = json.dumps({"ready": state.ready, "checks": state.checks}).encode("utf-8")
                    self._send(200 if state.ready else 503, "application/json", body)
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz or /readyz\n")

            def _send(self, status: int, media_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self.httpd.server_address[1]

    def start(self) -> "MetricsServer":
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self.httpd.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
