"""Who the client is: the TCP peer, or, when the peer is one of TRUSTED_PROXIES, the
address that proxy forwarded in X-Forwarded-For.

Each proxy appends the address it received the request from, so the list is read from
the right: the first address that is not itself a trusted proxy is the client. Anything
to its left was written by the client and is never believed, and the header of a peer
that is not trusted is ignored outright: nobody picks their own bucket (handlers/
login_limit.py) by sending it. A forwarded entry that is not an IP address makes the
answer the last trusted hop (all clients behind a confused proxy share its bucket, as
with no setting). aiohttp's ``request.remote`` stays the TCP peer, and scheme and host
are not taken from X-Forwarded-* either: Twilio's signatures are checked against
PUBLIC_URL behind a proxy (handlers/signatures.py).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from handlers.state import SETTINGS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES as networks (validated by bot.settings)."""
    return tuple(ipaddress.ip_network(n) for n in trusted)


def parse_ip(text: str) -> IPAddress | None:
    """An address as a proxy may write it ("1.2.3.4", "1.2.3.4:5678", "[::1]:80",
    "::ffff:1.2.3.4" = 1.2.3.4), or None."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, _port = text[1:].partition("]")
        if not bracket:
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IPAddress, nets: tuple[Network, ...]) -> bool:
    return any(ip.version == n.version and ip in n for n in nets)


def client_address(request: web.Request) -> str:
    """The client's address as a string ("?" when the peer is unknown)."""
    peer = parse_ip(request.remote or "")
    nets = networks(request.app[SETTINGS].trusted_proxies)
    if peer is None or not nets or not _trusted(peer, nets):
        return str(peer) if peer is not None else (request.remote or "?")
    hops = [h for header in request.headers.getall("X-Forwarded-For", ()) for h in header.split(",")]
    client = peer
    for hop in reversed(hops):
        ip = parse_ip(hop)
        if ip is None:
            break  # the proxy wrote something that is not an address: stop at the last trusted hop
        client = ip
        if not _trusted(ip, nets):
            break
    return str(client)


def client_scheme(request: web.Request) -> str:
    """The scheme the client used: "https" on our own TLS, or when the TCP peer is one of
    TRUSTED_PROXIES and its last ``X-Forwarded-Proto`` says https (a TLS proxy in front);
    otherwise "http". For the browser's checks (Origin, the cookie's Secure flag) when
    PUBLIC_URL is unset; Twilio's signatures still need PUBLIC_URL."""
    if request.secure:
        return "https"
    peer = parse_ip(request.remote or "")
    nets = networks(request.app[SETTINGS].trusted_proxies)
    if peer is None or not nets or not _trusted(peer, nets):
        return "http"
    protos = [p.strip().lower() for h in request.headers.getall("X-Forwarded-Proto", ()) for p in h.split(",")]
    return "https" if protos and protos[-1] == "https" else "http"
