"""Network failures in words: one sentence a person can act on, for feeds and alert channels alike.

``ConnectError: [Errno 111] Connection refused`` says which Python class
failed; "connection refused by 127.0.0.1:8080" says what happened and where.
The http source, the webhook and Slack channels (through
:func:`monitor.post_alert`) and the email channel all describe failures with
:func:`network_error_words`, so ``monitor sources``, ``monitor alerts`` and
the logs speak the same way.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl

import httpcore
import httpx

_REFUSED = (errno.ECONNREFUSED,)
_RESET = (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED)
_UNREACHABLE = (errno.ENETUNREACH, errno.EHOSTUNREACH)
_NAME_ERRORS = re.compile(r"name or service not known|nodename nor servname|temporary failure in name resolution|"
                          r"no address associated|getaddrinfo failed|has no address|name resolution", re.I)
_TLS_WORDS = re.compile(r"ssl|tls|certificate", re.I)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or during, outermost first."""
    out: list[BaseException] = []
    while exc is not None and exc not in out and len(out) < 10:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return out


def _where(host: str | None, port: int | None) -> str:
    if not host:
        return "the server"
    return f"{host}:{port}" if port else host


def network_error_words(exc: BaseException, host: str | None = None, port: int | None = None,
                        timeout: float | None = None) -> str:
    """One sentence for a failed connection, request or TLS handshake.

    :param host: the host that was being reached (the message names it, never the path or query).
    :param port: its port, when known.
    :param timeout: the timeout in seconds that ran out, when the failure is a timeout.
    """
    where = _where(host, port)
    seconds = f" after {timeout:g} s" if timeout is not None else ""
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    for e in chain:
        if isinstance(e, (httpx.ConnectTimeout, httpcore.ConnectTimeout)):
            return f"timed out{seconds} connecting to {where}"
        if isinstance(e, (httpx.ReadTimeout, httpcore.ReadTimeout)):
            return f"timed out{seconds} waiting for {where} to answer"
        if isinstance(e, (httpx.WriteTimeout, httpcore.WriteTimeout)):
            return f"timed out{seconds} sending to {where}"
        if isinstance(e, (httpx.PoolTimeout, httpcore.PoolTimeout)):
            return f"timed out{seconds} waiting for a free connection to {where}"
        if isinstance(e, ssl.SSLCertVerificationError):
            reason = getattr(e, "verify_message", None) or getattr(e, "reason", None) or "not trusted"
            return f"TLS certificate of {host or 'the server'} not accepted: {reason}"
        if isinstance(e, ssl.SSLError):
            reason = (e.reason or str(e)).replace("_", " ").lower()
            hint = " (is it plain http?)" if "wrong version number" in reason else ""
            return f"TLS handshake with {where} failed: {reason}{hint}"
        if isinstance(e, socket.gaierror):
            return f"name not resolved: {host or 'the server'}"
        if isinstance(e, OSError) and e.errno is not None:
            if e.errno in _REFUSED:
                return f"connection refused by {where}"
            if e.errno in _RESET:
                return f"connection reset by {where}"
            if e.errno in _UNREACHABLE:
                return f"no route to {where} (network unreachable)"
        if isinstance(e, (TimeoutError, socket.timeout)):
            return f"timed out{seconds} talking to {where}"
    if _NAME_ERRORS.search(text):
        return f"name not resolved: {host or 'the server'}"
    if "connection refused" in text.lower():
        return f"connection refused by {where}"
    if "connection reset" in text.lower():
        return f"connection reset by {where}"
    if isinstance(exc, (httpx.RemoteProtocolError, httpcore.RemoteProtocolError)):
        if "complete message body" in text or "incomplete" in text.lower():
            return f"{where} closed the connection before the whole response arrived"
        if "without sending" in text or "disconnected" in text.lower():
            return f"{where} closed the connection without answering"
        return f"{where} broke the HTTP protocol: {_first_words(str(exc))}"
    if _TLS_WORDS.search(text) and isinstance(exc, (httpx.ConnectError, httpcore.ConnectError)):
        return f"TLS handshake with {where} failed: {_first_words(str(exc))}"
    if isinstance(exc, (httpx.TimeoutException, httpcore.TimeoutException)):
        return f"timed out{seconds} talking to {where}"
    detail = _first_words(str(exc))
    return f"cannot reach {where}: {detail}" if detail else f"cannot reach {where}"


def _first_words(text: str, limit: int = 160) -> str:
    """The message without ``[Errno N]`` and Python's class names, on one line, cut to ``limit``."""
    text = re.sub(r"\[Errno -?\d+\]\s*", "", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
