"""The guards every response passes through: credentials, CSRF, security headers, safe links.

Story text comes from servers we do not control, so pages treat it as
hostile: templates escape everything, the Content-Security-Policy allows no
inline script or style, and only http(s) URLs ever become links.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..access import Credentials

CSRF_COOKIE = "monitor_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
# No inline script or style anywhere: the one script is /static/app.js.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer Chromium sends form posts as from origin "null",
    # without the SameSite cookie. Links to stories carry rel="noreferrer" themselves.
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
OPEN_PATHS = ("/healthz",)  # a liveness probe carries no credentials and learns nothing


class CsrfError(Exception):
    """A state-changing request without the token of this browser's session."""


def safe_href(url: str | None) -> str | None:
    """``url`` if it is an http(s) URL with a host, else ``None`` (shown as text, never as a link)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this server (for redirects after a form), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def csrf_token(request: HTTPConnection) -> str:
    """This browser's CSRF token (set as a cookie on the response by :class:`GuardMiddleware`)."""
    return request.scope["state"]["csrf"]


async def check_csrf(request: Request) -> None:
    """Refuse a POST whose form field or header does not repeat the CSRF cookie (double submit),
    or that comes from another origin.

    A request that carries the configured bearer token is exempt: browsers never add one by
    themselves (:class:`GuardMiddleware` has checked it).

    :raises CsrfError: the token is missing or wrong.
    """
    credentials: Credentials = request.app.state.credentials
    if credentials.token and request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise CsrfError(f"a form from another site ({origin}) may not change anything here")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        given = str((await request.form()).get(CSRF_FIELD) or "")
    if not cookie or not given or not hmac.compare_digest(cookie.encode(), given.encode()):
        raise CsrfError("the form's security token is missing or stale: reload the page and try again")


class GuardMiddleware:
    """Credentials (when configured), a CSRF cookie for every browser, security headers on every response."""

    def __init__(self, app: ASGIApp, credentials: Credentials):
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        if scope["path"] not in OPEN_PATHS and not self.credentials.allows(conn.headers.get("authorization")):
            response: Response = PlainTextResponse(
                "credentials required", status_code=401, headers={"WWW-Authenticate": 'Basic realm="news-monitor"'})
            for key, value in SECURITY_HEADERS.items():
                response.headers[key] = value
            await response(scope, receive, send)
            return
        existing = conn.cookies.get(CSRF_COOKIE)
        token = existing if existing and len(existing) >= 32 else secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf"] = token

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in SECURITY_HEADERS.items():
                    if key.encode() not in present:
                        headers.append((key.encode(), value.encode()))
                if token != existing:
                    cookie = f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append((b"set-cookie", cookie.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_guarded)
