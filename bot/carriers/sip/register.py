"""Registration to a registrar (``SIP_REGISTRAR``) for trunks that send calls only to a
registered contact: REGISTER with digest credentials (``SIP_USERNAME``/``SIP_PASSWORD``),
refreshed before it expires, retried with back-off when the registrar fails."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket

from bot.carriers.sip import message as sipmsg
from bot.carriers.sip.endpoint import Endpoint
from bot.carriers.sip.guard import answer_challenge
from bot.carriers.sip.message import Peer
from bot.logs import kv

log = logging.getLogger("bot.sip")

EXPIRES_S = 300
RETRY_S = (5, 15, 30, 60, 120)


def registrar_peer(spec: str) -> tuple[Peer, str]:
    """``sip:host[:port][;transport=tcp]`` or ``host[:port]`` -> where to send, and the domain."""
    v = spec.strip()
    if v.lower().startswith("sip:"):
        v = v[4:]
    v, _, params = v.partition(";")
    proto = "tcp" if "transport=tcp" in params.lower() else "udp"
    host, _, port = v.rpartition(":") if v.count(":") == 1 else (v, "", "")
    ip = socket.gethostbyname(host)
    return Peer(proto, ip, int(port or 5060)), host


class Registration:
    def __init__(self, endpoint: Endpoint, *, registrar: str, username: str, password: str, public_ip: str = "") -> None:
        self.endpoint, self.registrar, self.username, self.password = endpoint, registrar, username, password
        self.public_ip = public_ip
        self.call_id = secrets.token_hex(12)
        self.tag = sipmsg.tag()
        self.cseq = 0
        self.registered = False
        self.last_code: int | None = None

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                expires = await self.register_once()
            except (OSError, ValueError) as exc:  # an unresolvable name, a bad answer
                log.warning("sip registration failed", extra=kv(error=type(exc).__name__))
                expires = None
            if expires:
                failures = 0
                await asyncio.sleep(max(30.0, expires * 0.8))
            else:
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1

    async def register_once(self, expires: int = EXPIRES_S) -> int | None:
        """One REGISTER (answering one challenge); the granted expiry, or None."""
        peer, domain = await asyncio.get_running_loop().run_in_executor(None, registrar_peer, self.registrar)
        auth: str | None = None
        for _ in range(2):
            self.cseq += 1
            data = self._request(peer, domain, expires, auth)
            try:
                resp = await self.endpoint.client.send_request(data, sipmsg.txn_key(sipmsg.parse(data)), peer)
            except TimeoutError:
                self.last_code = None
                log.warning("sip registrar did not answer", extra=kv(registrar=peer.host))
                return None
            self.last_code = resp.code
            if resp.code in (401, 407) and auth is None:
                challenge = resp.headers.get("WWW-Authenticate" if resp.code == 401 else "Proxy-Authenticate") or ""
                auth = answer_challenge(challenge, method="REGISTER", uri=f"sip:{domain}", username=self.username, password=self.password)
                continue
            if 200 <= resp.code < 300:
                self.registered = True
                granted = resp.expires or expires
                log.info("sip registered", extra=kv(registrar=peer.host, expires=granted))
                return granted
            break
        self.registered = False
        log.warning("sip registration refused", extra=kv(registrar=peer.host, code=self.last_code))
        return None

    def _request(self, peer: Peer, domain: str, expires: int, auth: str | None) -> bytes:
        host, port = self.endpoint.local_addr(peer.proto)
        if host in ("0.0.0.0", "::"):
            host = self.endpoint.local_ip_for(peer.host)
        c_host, c_port = (self.public_ip or host), port
        aor = f"sip:{self.username}@{domain}"
        headers = [
            ("Via", f"SIP/2.0/{peer.proto.upper()} {host}:{port};branch={sipmsg.branch()};rport"),
            ("From", f"<{aor}>;tag={self.tag}"),
            ("To", f"<{aor}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", f"<sip:{self.username}@{c_host}:{c_port}>"),
            ("Expires", str(expires)),
        ]
        if auth:
            headers.append(("Proxy-Authorization" if self.last_code == 407 else "Authorization", auth))
        return sipmsg.request("REGISTER", f"sip:{domain}", headers)
