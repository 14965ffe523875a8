"""The SIP sockets: UDP and TCP listeners that frame, parse, screen and route messages.

Each inbound message is rate-limited per source, parsed (``message.parse``), screened
(the allow-list), matched to a transaction and handed to the dialog layer (``on_request``),
or for a response to the client transaction waiting for it. Garbage is counted and
dropped (or answered 400 when its headers allow); nothing a peer sends raises here.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Callable

from sipmessage import Request, Response

from bot.carriers.sip import message as sipmsg
from bot.carriers.sip.guard import Allow, RateLimit
from bot.carriers.sip.message import Peer, SipError
from bot.carriers.sip.transactions import ClientTransactions, ServerTransactions
from bot.logs import kv

log = logging.getLogger("bot.sip")

OnRequest = Callable[[Request, Peer], None]
TCP_IDLE_S = 300.0
MAX_TCP_CONNECTIONS = 512


class Endpoint:
    def __init__(
        self, *, allow: Allow, rate: RateLimit, trusted_rate: RateLimit | None = None, on_request: OnRequest | None = None,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.allow, self.rate = allow, rate
        self.on_drop = on_drop  # the app's phonebot_sip_dropped_total{reason}
        self.trusted_rate = trusted_rate or rate  # a trunk or PBX carries many calls from one address
        self.on_request = on_request
        self.server = ServerTransactions(self._send)
        self.client = ClientTransactions(self._send)
        self.counts: Counter[str] = Counter()  # dropped/refused messages by reason (metrics, tests)
        self._udp: dict[str, asyncio.DatagramTransport] = {}  # local host -> transport (one per family)
        self._udp_addr: tuple[str, int] | None = None
        self._tcp_servers: list[asyncio.Server] = []
        self._tcp: dict[Peer, asyncio.StreamWriter] = {}
        self._tcp_addr: tuple[str, int] | None = None
        self._local_ips: dict[str, str] = {}

    def drop(self, reason: str) -> None:
        """A message dropped or refused before any call (forbidden, rate_limited, malformed...):
        counted here and in the app's metrics."""
        self.counts[reason] += 1
        if self.on_drop is not None:
            self.on_drop(reason)

    # --- listening ----------------------------------------------------------------------------
    async def listen(self, specs: tuple[tuple[str, str, int], ...], *, reuse_port: bool = False) -> None:
        """Bind each ``(proto, host, port)``. ``reuse_port``: the workers of one instance share
        the port (SO_REUSEPORT; the kernel keeps one peer's datagrams, and a TCP connection,
        on one worker, so a dialog stays where it started)."""
        loop = asyncio.get_running_loop()
        for proto, host, port in specs:
            if proto == "udp":
                tr, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(host, port), reuse_port=reuse_port or None)
                self._udp["udp"] = tr
                self._udp_addr = tr.get_extra_info("sockname")[:2]
            else:
                srv = await asyncio.start_server(self._tcp_conn, host, port, limit=sipmsg.MAX_MESSAGE * 2, reuse_port=reuse_port or None)
                self._tcp_servers.append(srv)
                self._tcp_addr = srv.sockets[0].getsockname()[:2]

    def local_addr(self, proto: str) -> tuple[str, int]:
        addr = self._udp_addr if proto == "udp" else self._tcp_addr
        if addr is None:
            raise RuntimeError(f"not listening on {proto}")
        return addr

    def local_ip_for(self, host: str) -> str:
        """The address of this host that routes to ``host`` (for SDP, Contact and Via)."""
        ip = self._local_ips.get(host)
        if ip is None:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.connect((host, 9))
                    ip = s.getsockname()[0]
                except OSError:
                    ip = "127.0.0.1"
            if len(self._local_ips) < 1024:
                self._local_ips[host] = ip
        return ip

    async def close(self) -> None:
        self.server.close()
        for tr in self._udp.values():
            tr.close()
        for srv in self._tcp_servers:
            srv.close()
        for w in list(self._tcp.values()):
            w.close()
        for srv in self._tcp_servers:
            await srv.wait_closed()

    # --- sending ------------------------------------------------------------------------------
    def _send(self, data: bytes, peer: Peer) -> None:
        if peer.proto == "udp":
            tr = self._udp.get("udp")
            if tr is not None and not tr.is_closing():
                tr.sendto(data, (peer.host, peer.port))
            return
        w = self._tcp.get(peer)
        if w is not None and not w.is_closing():
            w.write(data)
        else:
            asyncio.get_running_loop().create_task(self._tcp_connect_send(data, peer))

    send = _send

    async def _tcp_connect_send(self, data: bytes, peer: Peer) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(peer.host, peer.port), 5)
        except (OSError, TimeoutError):
            self.drop("tcp_connect_failed")
            return
        self._tcp[peer] = writer
        writer.write(data)
        asyncio.get_running_loop().create_task(self._tcp_read(reader, writer, peer))

    # --- receiving ----------------------------------------------------------------------------
    def _take(self, host: str) -> bool:
        return (self.trusted_rate if self.allow(host) else self.rate).take(host)

    def datagram(self, data: bytes, peer: Peer) -> None:
        if not self._take(peer.host):
            self.drop("rate_limited")
            return
        if data.strip(b"\r\n") == b"":  # keep-alive
            return
        self._message(data, peer)

    async def _tcp_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        peer = Peer("tcp", host, port)
        if len(self._tcp) >= MAX_TCP_CONNECTIONS or not self.allow(host):
            self.drop("tcp_refused")
            writer.close()
            return
        self._tcp[peer] = writer
        await self._tcp_read(reader, writer, peer)

    async def _tcp_read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(8192), TCP_IDLE_S)
                if not chunk:
                    return
                buf += chunk
                while True:
                    data = sipmsg.frame_stream(buf)
                    if data is None:
                        break
                    if not self._take(peer.host):
                        self.drop("rate_limited")
                        continue
                    self._message(data, peer)
        except SipError as exc:
            self.drop("malformed")
            log.info("sip stream dropped", extra=kv(peer=peer.host, reason=exc.reason))
        except (TimeoutError, OSError):
            pass
        finally:
            self._tcp.pop(peer, None)
            writer.close()

    def _message(self, data: bytes, peer: Peer) -> None:
        try:
            msg = sipmsg.parse(data)
        except SipError as exc:
            self.drop("malformed")
            if exc.answerable and self.allow(peer.host):
                self._bad_request(data, peer, exc.reason)
            return
        if isinstance(msg, Response):
            if not self.allow(peer.host) and not self.client.waiting:
                self.drop("forbidden")
                return
            if not self.client.receive(msg):
                self.drop("stray_response")
            return
        self._request(msg, peer)

    def _request(self, msg: Request, peer: Peer) -> None:
        if not self.allow(peer.host):
            self.drop("forbidden")
            if msg.method != "ACK":
                self._send(sipmsg.response(msg, 403, peer=peer), peer)
            return
        state = self.server.receive(msg, peer)
        if state == "full":
            self.drop("txn_table_full")
            return
        if state == "absorbed":
            return
        if self.on_request is None:
            return
        try:
            self.on_request(msg, peer)
        except Exception:  # noqa: BLE001 - one bad request never takes the listener down
            self.drop("handler_error")
            log.exception("sip request failed", extra=kv(method=msg.method, peer=peer.host))
            if msg.method != "ACK":
                self.respond(msg, sipmsg.response(msg, 500, peer=peer))

    def _bad_request(self, data: bytes, peer: Peer, reason: str) -> None:
        """400 to a message whose Via/From/To/Call-ID/CSeq parsed but something else did not."""
        try:
            req = sipmsg.Message.parse(data.partition(b"\r\n\r\n")[0] + b"\r\n\r\n")
            if isinstance(req, Request) and req.method != "ACK":
                self._send(sipmsg.response(req, 400, peer=peer, reason=f"Bad Request ({reason})"[:60]), peer)
        except Exception:  # noqa: BLE001
            pass

    def respond(self, req: Request, data: bytes, *, method: str | None = None) -> None:
        self.server.respond(req, data, method=method)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.ep.datagram(data, Peer("udp", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # noqa: ARG002 - asyncio.DatagramProtocol: ICMP port unreachable and the like
        self.ep.drop("udp_error")
