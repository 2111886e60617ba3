"""Who may talk to the servers the monitor starts (``monitor serve``, the daemon's metrics).

Both listen on 127.0.0.1 unless told otherwise. Listening anywhere else
needs credentials from ``[web]`` (a bearer token, or a basic-auth user and
password, each best given as ``${VAR}``); without them the server refuses
to start.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    """What a request must carry: ``Authorization: Bearer TOKEN``, or basic auth with the user and password
    (a browser may give any user name with the token as its password)."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_config(cls, web: Mapping[str, Any]) -> "Credentials":
        """The ``[web]`` table's credentials (``None`` for unset keys)."""
        return cls(web.get("token") or None, web.get("username") or None, web.get("password") or None)

    @property
    def required(self) -> bool:
        """Whether any credential is configured (then every request must carry one)."""
        return bool(self.token or (self.username and self.password))

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries a configured credential."""
        if not self.required:
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and self.token:
            return _same(value, self.token)
        if scheme == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            if self.token and _same(password, self.token):
                return True
            if self.username and self.password:
                # Both compared every time, so timing tells nothing about which was wrong.
                return _same(user, self.username) & _same(password, self.password)
        return False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, credentials: Credentials, what: str, where: str) -> None:
    """Refuse to listen beyond loopback without credentials.

    :param what: the server, for the message ("monitor serve").
    :param where: the configuration file, for the message.
    :raises ConfigError: ``host`` is not loopback and no credential is configured.
    """
    if is_loopback(host) or credentials.required:
        return
    raise ConfigError(
        f"{what} will not listen on {host} without credentials: set web.token, or web.username and "
        f"web.password (as \"${{VAR}}\"), or listen on 127.0.0.1",
        file=where, key="web",
    )
