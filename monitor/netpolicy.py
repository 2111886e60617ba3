"""Which addresses a feed fetch may connect to: the ``[fetch]`` network policy.

A feed URL, and every redirect it answers with, is written by someone else.
Without a policy a feed could make the daemon read a cloud metadata service
(169.254.169.254), a router's admin page or a service on the daemon's own
host, store the page as stories and alert on it. So by default only public
internet addresses are connected to; ``fetch.allow_private_networks = true``
lifts that, ``fetch.allow_networks`` lists the exceptions (addresses, CIDR
networks, host names).

This module decides; ``plugins/http_source.py`` enforces it on the address a
socket actually connects to (after DNS, on every redirect hop), so numeric
spellings (``2130706433``, ``0x7f000001``) and DNS rebinding are judged by
where they lead, not by how the URL reads.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

LOOPBACK = "loopback"
PRIVATE = "private network"
CGNAT = "carrier-grade NAT"
LINK_LOCAL = "link-local"
MULTICAST = "multicast"
UNSPECIFIED = "unspecified address"
RESERVED = "reserved address"

# Checked in order; the first network holding the address names why it is refused.
_V4_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple((ipaddress.ip_network(net), why) for net, why in (
    ("0.0.0.0/8", UNSPECIFIED),         # "this network"; 0.0.0.0 reaches the local host on Linux
    ("10.0.0.0/8", PRIVATE),
    ("100.64.0.0/10", CGNAT),
    ("127.0.0.0/8", LOOPBACK),
    ("169.254.0.0/16", LINK_LOCAL),     # cloud metadata services live here
    ("172.16.0.0/12", PRIVATE),
    ("192.0.0.0/24", RESERVED),         # IETF protocol assignments
    ("192.0.2.0/24", RESERVED),         # documentation
    ("192.88.99.0/24", RESERVED),       # the retired 6to4 relay anycast
    ("192.168.0.0/16", PRIVATE),
    ("198.18.0.0/15", RESERVED),        # benchmarking
    ("198.51.100.0/24", RESERVED),      # documentation
    ("203.0.113.0/24", RESERVED),       # documentation
    ("224.0.0.0/4", MULTICAST),
    ("240.0.0.0/4", RESERVED),          # includes the broadcast address
))

_V6_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple((ipaddress.ip_network(net), why) for net, why in (
    ("::/128", UNSPECIFIED),
    ("::1/128", LOOPBACK),
    ("64:ff9b:1::/48", PRIVATE),        # local-use NAT64 (RFC 8215)
    ("100::/64", RESERVED),             # discard-only
    ("2001:db8::/32", RESERVED),        # documentation
    ("fc00::/7", PRIVATE),              # unique-local
    ("fe80::/10", LINK_LOCAL),
    ("fec0::/10", PRIVATE),             # the deprecated site-local
    ("ff00::/8", MULTICAST),
))
_V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")

SETTINGS_HINT = "set [fetch] allow_private_networks = true or add {entry} to [fetch] allow_networks"


def classify(address: IPAddress) -> str | None:
    """Why ``address`` is not a public internet address (``"loopback"``, ``"private network"`` ...), or ``None``.

    IPv6 forms that carry an IPv4 address (IPv4-mapped and -compatible, NAT64,
    6to4, Teredo) are judged by the IPv4 address inside them as well, since
    that is where the packets end up.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return _first(address, _V4_REFUSED)
    reason = _first(address, _V6_REFUSED)
    if reason is not None:
        return reason
    for label, inner in _embedded_ipv4(address):
        inner_reason = classify(inner)
        if inner_reason is not None:
            return f"{inner_reason}, {label} {inner}"
    if address not in _V6_GLOBAL_UNICAST and address.ipv4_mapped is None and address not in _NAT64 \
            and address not in _V4_COMPATIBLE:
        return RESERVED
    return None


def _first(address: IPAddress, table: tuple[tuple[IPNetwork, str], ...]) -> str | None:
    for network, reason in table:
        if address in network:
            return reason
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of the form."""
    if address.ipv4_mapped is not None:
        return [("IPv4-mapped", address.ipv4_mapped)]
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return [("NAT64 of", low32)]
    if address in _V4_COMPATIBLE:
        return [("IPv4-compatible", low32)]
    if address.sixtofour is not None:
        return [("6to4 of", address.sixtofour)]
    if address.teredo is not None:
        server, client = address.teredo
        return [("Teredo client", client), ("Teredo server", server)]
    return []


def parse_allow_entry(text: str) -> IPNetwork | str:
    """One ``fetch.allow_networks`` entry: an address or CIDR network, or a host name (lower-cased).

    :raises ValueError: saying what is wrong with ``text``.
    """
    value = text.strip()
    if "/" in value or ":" in value or _looks_numeric(value):
        try:
            return ipaddress.ip_network(value.strip("[]"), strict=True)
        except ValueError as exc:
            if "has host bits set" in str(exc):
                network = ipaddress.ip_network(value.strip("[]"), strict=False)
                raise ValueError(f"{text!r} has host bits set; did you mean {str(network)!r}?") from None
            raise ValueError(f"{text!r} is not an IP address or CIDR network ({exc})") from None
    if _is_numeric_host(value):
        raise ValueError(f"{text!r} reads as an IP address in an unusual notation; write it as "
                         "dotted decimal (\"127.0.0.1\") or a CIDR network")
    name = _host_key(value)
    try:
        name = name.encode("idna").decode("ascii")  # as the URL's host reaches the connection
    except UnicodeError:
        pass  # the pattern below says what is wrong
    if not _HOST_NAME.match(name):
        raise ValueError(f"{text!r} is not an IP address, a CIDR network (\"10.1.0.0/16\") or a host name "
                         "(\"feeds.internal.example\")")
    return name


def _looks_numeric(value: str) -> bool:
    return bool(value) and all(part.isdigit() for part in value.split("."))


def _host_key(host: str) -> str:
    return host.strip().rstrip(".").lower()


@dataclass(frozen=True)
class Refusal:
    """A connection the policy refuses: to ``address`` (``reason``), asked for as ``host``."""

    host: str
    address: IPAddress
    reason: str

    def message(self, url: str) -> str:
        """The one-line error for a source's row: what was refused, for which URL, and how to allow it."""
        numeric = _is_numeric_host(self.host)
        via = "" if numeric else f"; {self.host} resolves to it"
        entry = shown(self.address) if numeric else self.host
        return (f"refused to connect to {shown(self.address)} ({self.reason}{via}) for {url}; "
                + SETTINGS_HINT.format(entry=entry))


class RefusedAddress(Exception):
    """Raised where a connection would be made to an address the policy refuses."""

    def __init__(self, refusal: Refusal):
        self.refusal = refusal
        super().__init__(f"refused to connect to {shown(refusal.address)} ({refusal.reason})")


@dataclass(frozen=True)
class NetworkPolicy:
    """The addresses fetches may connect to, from the ``[fetch]`` settings.

    :param allow_private: ``fetch.allow_private_networks``: connect anywhere.
    :param networks: addresses and networks of ``fetch.allow_networks``, allowed although not public.
    :param hosts: host names of ``fetch.allow_networks``, allowed whatever they resolve to.
    """

    allow_private: bool = False
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, fetch: Mapping[str, Any]) -> NetworkPolicy:
        """The policy of a validated ``[fetch]`` table."""
        entries = [parse_allow_entry(e) for e in fetch.get("allow_networks") or ()]
        return cls(
            allow_private=bool(fetch.get("allow_private_networks")),
            networks=tuple(e for e in entries if not isinstance(e, str)),
            hosts=frozenset(e for e in entries if isinstance(e, str)),
        )

    @property
    def checks(self) -> bool:
        """False when every address is allowed (nothing to resolve or check)."""
        return not self.allow_private

    def allows_host(self, host: str) -> bool:
        """True when ``host`` may be connected to whatever it resolves to (the policy is lifted, or lists it)."""
        return self.allow_private or _host_key(host) in self.hosts

    def refusal(self, host: str, address: IPAddress) -> Refusal | None:
        """Why connecting to ``address`` (an address of ``host``) is refused, or ``None`` if it is allowed."""
        if self.allows_host(host):
            return None
        reason = classify(address)
        if reason is None or self._listed(address):
            return None
        return Refusal(host=host, address=address, reason=reason)

    def _listed(self, address: IPAddress) -> bool:
        # An allowed IPv4 address stays allowed when reached through its IPv6 forms.
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address):
            candidates += [inner for _, inner in _embedded_ipv4(address)]
        return any(a in net for a in candidates for net in self.networks if a.version == net.version)

    def addresses(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and return its addresses, every one of them allowed, to connect to as they are.

        Connecting to these literals (not to ``host`` again) is what makes the
        check hold: a second lookup could answer differently (DNS rebinding).
        A host with any refused address is refused as a whole.

        :raises RefusedAddress: naming the first refused address.
        :raises OSError: the host does not resolve.
        """
        found = []
        for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            literal = str(sockaddr[0]).split("%", 1)[0]
            address = ipaddress.ip_address(literal)
            refusal = self.refusal(host, address)
            if refusal is not None:
                raise RefusedAddress(refusal)
            if sockaddr[0] not in found:
                found.append(sockaddr[0])
        return found


def shown(address: IPAddress) -> str:
    """``address`` as people write it: ``::ffff:127.0.0.1``, not ``::ffff:7f00:1``."""
    mapped = getattr(address, "ipv4_mapped", None)
    return f"::ffff:{mapped}" if mapped is not None else str(address)


def _is_numeric_host(host: str) -> bool:
    """True for any spelling the resolver reads as an address without DNS (``127.1``, ``0x7f000001`` ...)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(host)  # the C library's reading of numeric IPv4, the one getaddrinfo applies
    except (OSError, UnicodeError, ValueError):
        return False
    return True
