"""Direct SIP options (bot/carriers/sip): where to listen, who may call, digest
credentials, an optional registrar, the public address for SDP/Contact and the RTP ports."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from bot.config.values import Get, fail, networks, number

if TYPE_CHECKING:
    from bot.settings import Settings

TRANSPORTS = ("udp", "tcp")


def listen_spec(name: str, raw: str) -> tuple[tuple[str, str, int], ...]:
    """``udp:0.0.0.0:5060,tcp:0.0.0.0:5060`` -> (("udp", "0.0.0.0", 5060), ...); empty = off."""
    out: list[tuple[str, str, int]] = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        proto, _, rest = item.partition(":")
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            port_no = int(port)
        except ValueError:
            return fail(f"{name}={raw!r}: {item!r} is not transport:ip:port (e.g. udp:0.0.0.0:5060)", ())
        if proto.lower() not in TRANSPORTS or not 0 <= port_no <= 65535:
            return fail(f"{name}={raw!r}: {item!r}: transport is udp or tcp, port 0-65535", ())
        out.append((proto.lower(), host, port_no))
    return tuple(out)


def port_range(name: str, raw: str) -> tuple[int, int]:
    lo, _, hi = raw.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        return fail(f"{name}={raw!r}: expected a range like 10000-20000", (10000, 20000))
    if not (1024 <= a < b <= 65535) or b - a < 2:
        return fail(f"{name}={raw!r}: expected LOW-HIGH within 1024-65535 with room for one even/odd pair", (10000, 20000))
    return (a, b)


def read(get: Get, defaults: type[Settings]) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "sip_listen": listen_spec("SIP_LISTEN", get("SIP_LISTEN")),
        "sip_allow": networks("SIP_ALLOW", get("SIP_ALLOW")),
        "sip_username": get("SIP_USERNAME").strip(),
        "sip_password": get("SIP_PASSWORD").strip(),
        "sip_registrar": get("SIP_REGISTRAR").strip(),
        "sip_public_ip": get("SIP_PUBLIC_IP").strip(),
        "rtp_ports": port_range("RTP_PORTS", get("RTP_PORTS", "{}-{}".format(*defaults.rtp_ports))),
        "sip_rate_per_s": number("SIP_RATE_PER_S", get("SIP_RATE_PER_S", str(defaults.sip_rate_per_s)), float, 1, 10000),
    }
    if kw["sip_public_ip"]:
        try:
            ipaddress.ip_address(kw["sip_public_ip"])
        except ValueError:
            kw["sip_public_ip"] = fail(f"SIP_PUBLIC_IP={kw['sip_public_ip']!r}: expected an IP address", "")
    if bool(kw["sip_username"]) != bool(kw["sip_password"]):
        fail("SIP_USERNAME and SIP_PASSWORD go together (digest authentication of inbound calls)")
    if kw["sip_registrar"] and not kw["sip_username"]:
        fail("SIP_REGISTRAR needs SIP_USERNAME and SIP_PASSWORD (the registrar's credentials)")
    if kw["sip_listen"] and not kw["sip_allow"] and not kw["sip_username"]:
        fail("SIP_LISTEN is set but nobody may call: set SIP_ALLOW (the trunk's or PBX's addresses) and/or SIP_USERNAME/SIP_PASSWORD")
    return kw


def with_sip(carriers: tuple[str, ...], listen: tuple[tuple[str, str, int], ...]) -> tuple[str, ...]:
    """``SIP_LISTEN`` switches the SIP carrier on (it joins ``CARRIERS``); naming ``sip`` in
    ``CARRIERS`` without an address to listen on is a settings error."""
    if listen and "sip" not in carriers:
        return (*carriers, "sip")
    if "sip" in carriers and not listen:
        return fail("CARRIERS names sip but SIP_LISTEN is empty: set SIP_LISTEN (e.g. udp:0.0.0.0:5060)",
                    tuple(c for c in carriers if c != "sip"))
    return carriers
