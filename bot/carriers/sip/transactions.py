"""RFC 3261 section 17 transactions over an unreliable transport, on asyncio timers.

Server side: a request's answer is kept so a retransmission gets it again instead of
reaching the dialog twice; an INVITE's non-2xx final is retransmitted on Timer G (T1
doubling to T2) until its ACK or Timer H (64*T1); other finals are kept for Timer J.
The 2xx to an INVITE is the dialog's to retransmit (``Retransmit``), as 13.3.1.4 asks.
Client side: ``ClientTransactions.send`` retransmits on Timer A/E until a response
and gives up on Timer B/F. Over TCP nothing is retransmitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from sipmessage import Request, Response

from bot.carriers.sip.message import Peer, txn_key

T1, T2, T4 = 0.5, 4.0, 5.0
TIMER_B = 64 * T1  # also F, H, J
MAX_SERVER_TXNS = 20000  # a flood fills this, not the memory

Send = Callable[[bytes, Peer], None]


@dataclass
class ServerTxn:
    peer: Peer
    invite: bool
    last: bytes = b""
    final: bool = False
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


class ServerTransactions:
    def __init__(self, send: Send) -> None:
        self.send = send
        self.txns: dict[tuple[str, str], ServerTxn] = {}

    def receive(self, req: Request, peer: Peer) -> str:
        """"new": hand to the dialog layer; "absorbed": a retransmission or the ACK of a
        non-2xx (answered here); "full": too many open transactions (drop it)."""
        key = txn_key(req)
        if req.method == "ACK":
            txn = self.txns.get((key[0], "INVITE"))
            if txn is not None and txn.final and not txn.last.startswith(b"SIP/2.0 2"):
                self._end(key[0], "INVITE", linger=T4 if peer.proto == "udp" else 0)
                return "absorbed"
            return "new"  # the ACK of a 2xx: a transaction of its own, for the dialog
        txn = self.txns.get(key)
        if txn is not None:
            if txn.last:
                self.send(txn.last, txn.peer)
            return "absorbed"
        if len(self.txns) >= MAX_SERVER_TXNS:
            return "full"
        self.txns[key] = ServerTxn(peer=peer, invite=req.method == "INVITE")
        return "new"

    def exists(self, req: Request, method: str) -> bool:
        return (txn_key(req)[0], method) in self.txns

    def is_final(self, req: Request, method: str) -> bool:
        txn = self.txns.get((txn_key(req)[0], method))
        return txn is None or txn.final

    def respond(self, req: Request, data: bytes, *, method: str | None = None) -> None:
        """Send ``data`` (a response to ``req``) and keep it for retransmissions."""
        b, m = txn_key(req)
        m = method or m
        txn = self.txns.get((b, m))
        if txn is None:  # answered after it ended (e.g. a late 200 to a cancelled INVITE): just send
            return
        if txn.final:
            return
        txn.last = data
        self.send(data, txn.peer)
        code = int(data[8:11])
        if code < 200:
            return
        txn.final = True
        udp = txn.peer.proto == "udp"
        loop = asyncio.get_running_loop()
        if txn.invite and code >= 300:
            if udp:
                txn.timers.append(loop.call_later(T1, self._retransmit, b, m, T1))
            txn.timers.append(loop.call_later(TIMER_B, self._end, b, m))
        elif txn.invite:  # a 2xx ends the INVITE transaction; the dialog retransmits it
            self._end(b, m, linger=TIMER_B if udp else 0)
        else:
            self._end(b, m, linger=TIMER_B if udp else 0)

    def _retransmit(self, b: str, m: str, interval: float) -> None:
        txn = self.txns.get((b, m))
        if txn is None or not txn.last:
            return
        self.send(txn.last, txn.peer)
        nxt = min(2 * interval, T2)
        txn.timers.append(asyncio.get_running_loop().call_later(nxt, self._retransmit, b, m, nxt))

    def _end(self, b: str, m: str, linger: float = 0) -> None:
        txn = self.txns.get((b, m))
        if txn is None:
            return
        for t in txn.timers:
            t.cancel()
        txn.timers.clear()
        if linger:  # keep absorbing retransmissions, with nothing left to resend on a timer
            txn.timers.append(asyncio.get_running_loop().call_later(linger, self._end, b, m))
        else:
            del self.txns[(b, m)]

    def close(self) -> None:
        for txn in self.txns.values():
            for t in txn.timers:
                t.cancel()
        self.txns.clear()


class ClientTransactions:
    def __init__(self, send: Send) -> None:
        self.send = send
        self.waiting: dict[tuple[str, str], asyncio.Queue[Response]] = {}

    async def send_request(self, data: bytes, req_branch_key: tuple[str, str], peer: Peer, *,
                           on_provisional: Callable[[Response], None] | None = None) -> Response:
        """Send a request and return its final response; ``TimeoutError`` after Timer B/F."""
        q: asyncio.Queue[Response] = asyncio.Queue()
        self.waiting[req_branch_key] = q
        invite = req_branch_key[1] == "INVITE"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMER_B
        interval = T1
        retransmit = peer.proto == "udp"
        self.send(data, peer)
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                try:
                    resp = await asyncio.wait_for(q.get(), min(interval, left) if retransmit else left)
                except TimeoutError:
                    if retransmit:
                        self.send(data, peer)
                        interval = min(2 * interval, T2) if not invite else 2 * interval
                    continue
                if resp.code >= 200:
                    return resp
                if on_provisional is not None:
                    on_provisional(resp)
                if invite:
                    retransmit = False  # Timer A stops on a provisional; Timer B still runs
                    deadline = float("inf") if resp.code >= 180 else deadline
                else:
                    interval = T2
        finally:
            self.waiting.pop(req_branch_key, None)

    def receive(self, resp: Response) -> bool:
        q = self.waiting.get(txn_key(resp))
        if q is None:
            return False
        q.put_nowait(resp)
        return True
