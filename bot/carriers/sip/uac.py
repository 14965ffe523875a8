"""A SIP caller for ``python -m bot call --sip HOST:PORT``: the client role on the carrier's
own pieces (the endpoint's client transactions, digest answers, SDP offer/answer and
``RtpMedia``). It dials, answers a digest challenge, waits for the greeting to end, says
each WAV over RTP (keys ``--dtmf`` digits as SIP INFO in between), waits for each
reply, hangs up by BYE, and reports what it heard and how soon each reply started."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sipmessage import Request, Response

from bot.carriers.sip import message as sipmsg
from bot.carriers.sip.endpoint import Endpoint
from bot.carriers.sip.guard import Allow, RateLimit, answer_challenge
from bot.carriers.sip.message import Peer
from bot.transport import AudioIn
from media import mulaw

if TYPE_CHECKING:
    from bot.carriers.sip.media_session import RtpMedia

LOUD_RMS = 300  # a 20 ms frame over this (16-bit) is the bot speaking
FRAME_S = 0.02


@dataclass
class SipCallReport:
    answered: bool = False
    code: int | None = None
    error: str = ""
    heard: bytearray = field(default_factory=bytearray)  # mu-law, what the caller heard
    latencies_ms: list[float] = field(default_factory=list)  # end of each step -> the bot's first loud frame
    hung_up_by: str = ""
    events: list[str] = field(default_factory=list)


async def place_call(host: str, port: int, steps: list[bytes | str], *, from_number: str = "+15551234567",
                     username: str = "", password: str = "", quiet_s: float = 1.0, max_wait_s: float = 30.0) -> SipCallReport:
    """``steps``: mu-law utterances (bytes) or DTMF digit strings, in order."""
    from bot.carriers.sip.media_session import RtpMedia

    report = SipCallReport()
    byes: asyncio.Queue[Request] = asyncio.Queue()
    ep = Endpoint(allow=Allow(()), rate=RateLimit(1000, 5000))

    def on_request(req: Request, peer: Peer) -> None:
        ep.respond(req, sipmsg.response(req, 200 if req.method in ("BYE", "OPTIONS", "NOTIFY") else 405, peer=peer))
        if req.method == "BYE":
            byes.put_nowait(req)

    ep.on_request = on_request
    await ep.listen((("udp", "0.0.0.0", 0),))
    media = await RtpMedia.open(host="0.0.0.0", port_min=40000, port_max=49999)
    call = _Call(ep, media, report, Peer("udp", host, port), from_number=from_number, max_wait_s=max_wait_s)
    try:
        resp = await call.invite(username, password)
        if resp is not None and call.answered(resp):
            await call.converse(steps, byes, quiet_s)
        return report
    finally:
        await media.close()
        await ep.close()


class _Call:
    """The caller's side of one dialog, step by step: INVITE (with a digest answer), ACK, the
    conversation, BYE."""

    def __init__(self, ep: Endpoint, media: RtpMedia, report: SipCallReport, peer: Peer, *, from_number: str, max_wait_s: float) -> None:
        self.ep, self.media, self.report, self.peer, self.max_wait_s = ep, media, report, peer, max_wait_s
        self.local_ip = ep.local_ip_for(peer.host)
        self.call_id, self.cseq = secrets.token_hex(10) + "@phonebot-caller", 1
        self.uri = self.target = f"sip:bot@{peer.host}:{peer.port}"
        self.from_ = f"<sip:{from_number}@{self.local_ip}>;tag={sipmsg.tag()}"
        self.via0 = f"SIP/2.0/UDP {self.local_ip}:{ep.local_addr('udp')[1]}"
        self.routes: list[str] = []
        self.dialog: list[tuple[str, str]] = []

    async def invite(self, username: str, password: str) -> Response | None:
        """The final 2xx to our INVITE (answering one digest challenge), or None (report.error says why)."""
        from bot.carriers.sip.sdp import make_offer

        offer = make_offer(local_ip=self.local_ip, local_port=self.media.local_port).encode()
        auth: tuple[str, str] | None = None
        while True:
            via = f"{self.via0};branch={sipmsg.branch()};rport"
            headers = [("Via", via), ("From", self.from_), ("To", f"<{self.uri}>"), ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} INVITE"),
                       ("Contact", f"<sip:caller@{self.local_ip}:{self.ep.local_addr('udp')[1]}>")]
            if auth:
                headers.append(auth)
            data = sipmsg.request("INVITE", self.uri, headers, offer)
            try:
                resp = await asyncio.wait_for(self.ep.client.send_request(data, sipmsg.txn_key(sipmsg.parse(data)), self.peer,
                                                                          on_provisional=self._provisional), self.max_wait_s)
            except TimeoutError:
                self.report.error = "no answer to the INVITE (is the bot's SIP_LISTEN reachable, and this address in its SIP_ALLOW?)"
                return None
            self.report.code = resp.code
            if resp.code >= 300:  # the INVITE transaction's ACK: same branch, the response's To
                ack = [("Via", via), ("From", self.from_), ("To", resp.headers["To"]), ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} ACK")]
                self.ep.send(sipmsg.request("ACK", self.uri, ack), self.peer)
            if resp.code in (401, 407) and auth is None and username:
                name = "WWW-Authenticate" if resp.code == 401 else "Proxy-Authenticate"
                value = answer_challenge(resp.headers.get(name) or "", method="INVITE", uri=self.uri, username=username, password=password)
                auth = ("Authorization" if resp.code == 401 else "Proxy-Authorization", value)
                self.cseq += 1
                continue
            if resp.code >= 300:
                self.report.error = f"the bot answered {resp.code} {resp.phrase}"
                return None
            return resp

    def _provisional(self, r: Response) -> None:
        self.report.events.append(f"{r.code} {r.phrase}")

    def answered(self, resp: Response) -> bool:
        """ACK the 2xx and take its SDP answer (False: unusable, report.error says why)."""
        from bot.carriers.sip.sdp import SdpError, accept_answer, parse_sdp

        self.target = str(resp.contact[0].uri) if resp.contact else self.uri
        self.routes = list(reversed(resp.headers.getlist("Record-Route")))
        self.dialog = [("From", self.from_), ("To", resp.headers["To"]), ("Call-ID", self.call_id)]
        self.ep.send(self._in_dialog("ACK"), self.peer)
        try:
            self.media.configure(accept_answer(parse_sdp(resp.body.decode("utf-8", "replace"))), peer_host=self.peer.host)
        except SdpError as exc:
            self.report.error = f"unusable SDP answer: {exc}"
            return False
        self.report.answered = True
        return True

    def _in_dialog(self, method: str, body: bytes = b"", content_type: str = "application/sdp") -> bytes:
        headers = [("Via", f"{self.via0};branch={sipmsg.branch()};rport"), *[("Route", r) for r in self.routes], *self.dialog,
                   ("CSeq", f"{self.cseq} {method}")]
        return sipmsg.request(method, self.target, headers, body, content_type=content_type)

    async def converse(self, steps: list[bytes | str], byes: asyncio.Queue[Request], quiet_s: float) -> None:
        """Wait out the greeting, then each step and its reply; hang up unless the bot did."""
        listener = _Listener(self.media, self.report)
        loop = asyncio.get_running_loop()
        listen = loop.create_task(listener.run())
        bye_wait = loop.create_task(byes.get())
        try:
            await listener.quiet_after_speech(quiet_s, self.max_wait_s, bye_wait)
            self.report.events.append(f"greeting heard ({listener.spoken_s:.1f} s)")
            for step in steps:
                if bye_wait.done():
                    break
                await (self._key(step) if isinstance(step, str) else self._say(step))
                t_end = time.monotonic()
                first = await listener.quiet_after_speech(quiet_s, self.max_wait_s, bye_wait)
                if first is not None:
                    self.report.latencies_ms.append((first - t_end) * 1000)
                    self.report.events.append(f"reply after {(first - t_end) * 1000:.0f} ms ({listener.spoken_s:.1f} s)")
            if bye_wait.done():
                self.report.hung_up_by = "bot"
            else:
                await self._hang_up()
        finally:
            listen.cancel()
            bye_wait.cancel()

    async def _key(self, digits: str) -> None:
        """Keys as SIP INFO (application/dtmf-relay), one request each."""
        for digit in digits:
            self.cseq += 1
            info = self._in_dialog("INFO", f"Signal={digit}\r\nDuration=160\r\n".encode(), content_type="application/dtmf-relay")
            try:
                await self.ep.client.send_request(info, sipmsg.txn_key(sipmsg.parse(info)), self.peer)
            except TimeoutError:
                self.report.events.append(f"no answer to INFO {digit}")
            await asyncio.sleep(0.2)
        self.report.events.append(f"keyed {digits}")

    async def _say(self, audio: bytes) -> None:
        self.media.play(audio[: len(audio) // 160 * 160])
        await asyncio.sleep(len(audio) / 8000)
        self.report.events.append(f"said {len(audio) / 8000:.1f} s of audio")

    async def _hang_up(self) -> None:
        self.report.hung_up_by = "caller"
        self.cseq += 1
        bye = self._in_dialog("BYE")
        try:
            await self.ep.client.send_request(bye, sipmsg.txn_key(sipmsg.parse(bye)), self.peer)
        except TimeoutError:
            self.report.error = "no answer to BYE"


class _Listener:
    """Collects what the caller hears and tells when the bot starts and stops speaking."""

    def __init__(self, media, report: SipCallReport) -> None:
        self.media, self.report = media, report
        self.loud_at: float | None = None  # last loud frame
        self.first_loud: float | None = None
        self.spoken_s = 0.0
        self.changed = asyncio.Event()

    async def run(self) -> None:
        async for ev in self.media.events():
            if isinstance(ev, AudioIn):
                self.report.heard += ev.frame
                x = np.frombuffer(mulaw.decode(ev.frame), dtype="<i2").astype(np.float32)
                if float(np.sqrt((x * x).mean())) > LOUD_RMS:
                    now = time.monotonic()
                    self.first_loud = self.first_loud or now
                    self.loud_at = now
                    self.spoken_s += FRAME_S
                self.changed.set()

    async def quiet_after_speech(self, quiet_s: float, max_wait_s: float, bye: asyncio.Task) -> float | None:
        """Wait for the bot to speak and then be quiet ``quiet_s``; when it started (None: it never did)."""
        self.first_loud, self.loud_at, self.spoken_s = None, None, 0.0
        deadline = time.monotonic() + max_wait_s
        while time.monotonic() < deadline and not bye.done():
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.5)
            except TimeoutError:
                pass
            if self.loud_at is not None and time.monotonic() - self.loud_at >= quiet_s:
                return self.first_loud
        return self.first_loud


def run_cli(target: str, steps: list, *, from_number: str, username: str, password: str, quiet_s: float, out: str) -> int:
    """``python -m bot call --sip HOST:PORT ...``: place the call, print what happened, write
    what the caller heard to ``out``. ``steps``: WAV paths and ``Dtmf`` steps, in order."""
    from pathlib import Path

    from media import wav

    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        print(f"error: --sip {target!r}: expected HOST:PORT, e.g. 127.0.0.1:5060")
        return 2
    said: list[bytes | str] = []
    for step in steps:
        if isinstance(step, str):
            a = wav.read(Path(step).read_bytes())
            from media.resample import resample

            said.append(mulaw.encode(a.pcm16 if a.rate == 8000 else resample(a.pcm16, a.rate, 8000)))
        else:
            said.append(step.digits)
    report = asyncio.run(place_call(host.strip("[]"), int(port), said, from_number=from_number, username=username,
                                    password=password, quiet_s=quiet_s))
    for line in report.events:
        print(f"  {line}")
    if report.error:
        print(f"error: {report.error}")
    if report.answered:
        print(f"  hung up by the {report.hung_up_by}; reply latency (end of speech to the bot's first sound) "
              + (", ".join(f"{x:.0f} ms" for x in report.latencies_ms) or "-"))
    if report.heard:
        Path(out).write_bytes(wav.write_mulaw(bytes(report.heard)))
        print(f"  wrote {out}")
    return 0 if report.answered and not report.error else 1
