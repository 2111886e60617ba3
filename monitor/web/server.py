"""Run the web application under uvicorn (``monitor serve``)."""

from __future__ import annotations

import logging
import socket

import uvicorn

from ..access import Credentials, check_bind
from ..config import Config
from ..errors import ConfigError
from ..storage import open_store
from .app import create_app

DEFAULT_PORT = 8765
log = logging.getLogger("monitor.web")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port).

    :raises ConfigError: the address cannot be bound (in use, not this machine's).
    """
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as exc:
        raise ConfigError(f"monitor serve cannot listen on {host}:{port}: {exc.strerror or exc}", key="--host/--port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(config: Config, host: str = "127.0.0.1", port: int = DEFAULT_PORT, announce=print) -> None:
    """Serve the UI until interrupted.

    :raises ConfigError: ``host`` is not loopback and ``[web]`` has no credentials, a ``${VAR}``
        of ``[web]`` is unset, or the address cannot be bound.
    """
    config.require_env("web")
    check_bind(host, Credentials.from_config(config.web), "monitor serve", config.where)
    # A damaged or read-only file is still shown (pages read; changes answer 503 in one sentence).
    store = open_store(config.db, config.secrets, for_reading=True)
    if store.warning:
        log.warning("%s", store.warning)
    app = create_app(config, store)
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    announce(f"Serving news-monitor on http://{shown}:{bound_port}/ (database {config.database}); Ctrl-C stops.")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    server.run(sockets=[sock])
