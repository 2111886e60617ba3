"""Network failures and receivers' answers become one sentence each, for feeds and channels alike."""

import json
import socket
import ssl
import threading

import httpcore
import httpx
import pytest

from conftest import seed_rss
from monitor.neterrors import network_error_words

HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title><style>body{color:red}</style>"
             b"</head>\n<body><h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>"
             + b"<p>" + b"x" * 5000 + b"</p></body></html>")


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def silent_server():
    """Accepts connections and never answers (a hung receiver)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


def test_sources_shows_a_refused_connection_as_a_sentence(make_config, cli_run):
    port = closed_port()
    path = make_config(f'[sources.dead]\nurl = "http://127.0.0.1:{port}/feed"\n')
    cli_run("once", "--config", path)
    out = cli_run("sources", "--config", path).output
    assert f"    error: connection refused by 127.0.0.1:{port}\n" in out
    assert "ConnectError" not in out and "Errno" not in out


def test_a_hung_feed_times_out_in_words(silent_server, make_config, cli_run):
    path = make_config(f'[fetch]\ntimeout = 1\n[sources.slow]\nurl = "http://127.0.0.1:{silent_server}/feed"\n')
    out = cli_run("once", "--config", path).output
    assert f"timed out after 1 s waiting for 127.0.0.1:{silent_server} to answer (fetch.timeout)" in out


def test_https_to_a_plain_http_server_is_a_tls_sentence(feed_server, make_config, cli_run):
    feed_server.serve("/feed.xml", seed_rss())
    url = feed_server.url("/feed.xml").replace("http://", "https://")
    path = make_config(f'[sources.tls]\nurl = "{url}"\n')
    out = cli_run("once", "--config", path).output
    port = feed_server.httpd.server_address[1]
    assert f"TLS handshake with 127.0.0.1:{port} failed: " in out, out
    assert "SSLError" not in out and "ConnectError" not in out


def test_a_receivers_html_error_page_is_cut_to_its_first_line(feed_server, make_config, cli_run):
    feed = feed_server.serve("/feed.xml", seed_rss())
    hook = feed_server.serve("/hook", HTML_PAGE, status=500, headers={"Content-Type": "text/html; charset=utf-8"})
    path = make_config(f'[alerts]\nnew_source_window = 0\n[sources.wire]\nurl = "{feed}"\n'
                       f'[channels.hook]\ntype = "webhook"\nurl = "{hook}"\n'
                       '[watchlists.trade]\nchannels = ["hook"]\n')
    cli_run("once", "--config", path)
    out = cli_run("alerts", "--config", path).output
    errors = [line.strip() for line in out.splitlines() if "last error:" in line]
    assert errors
    for line in errors:
        assert line == "last error: webhook channel hook: HTTP 500 Internal Server Error", line
    assert "<" not in out and "xxxx" not in out


def test_a_receivers_text_answer_is_quoted_up_to_its_first_line(feed_server, make_config, cli_run):
    feed = feed_server.serve("/feed.xml", seed_rss())
    hook = feed_server.serve("/hook", b"invalid_token\nsecond line\n" + b"y" * 500, status=403,
                             headers={"Content-Type": "text/plain"})
    path = make_config(f'[alerts]\nnew_source_window = 0\n[sources.wire]\nurl = "{feed}"\n'
                       f'[channels.hook]\ntype = "webhook"\nurl = "{hook}"\n'
                       '[watchlists.trade]\nchannels = ["hook"]\n')
    cli_run("once", "--config", path)
    rows = [r for r in json.loads(cli_run("alerts", "--config", path, "--json").output) if r["channel"] == "hook"]
    assert rows and all(r["last_error"] == "webhook channel hook: HTTP 403 Forbidden (invalid_token)" for r in rows)


def test_a_refused_receiver_is_a_sentence(feed_server, make_config, cli_run):
    port = closed_port()
    feed = feed_server.serve("/feed.xml", seed_rss())
    path = make_config(f'[alerts]\nnew_source_window = 0\n[sources.wire]\nurl = "{feed}"\n'
                       f'[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:{port}/hook"\n'
                       '[watchlists.trade]\nchannels = ["hook"]\n')
    cli_run("once", "--config", path)
    out = cli_run("alerts", "--config", path).output
    assert f"last error: webhook channel hook: connection refused by 127.0.0.1:{port}" in out


@pytest.mark.parametrize("exc, words", [
    (httpx.ConnectError("[Errno -2] Name or service not known"), "name not resolved: feeds.example"),
    (socket.gaierror(-3, "Temporary failure in name resolution"), "name not resolved: feeds.example"),
    (httpx.ConnectTimeout("timed out"), "timed out after 10 s connecting to feeds.example:443"),
    (ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
     "TLS certificate of feeds.example not accepted"),
    (httpcore.RemoteProtocolError("Server disconnected without sending a response."),
     "feeds.example:443 closed the connection without answering"),
    (ConnectionRefusedError(111, "Connection refused"), "connection refused by feeds.example:443"),
])
def test_network_error_words(exc, words):
    assert network_error_words(exc, "feeds.example", 443, 10).startswith(words)
