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

import numpy as np
from sipmessage import Request

from bot.carriers.sip import message as sipmsg
from bot.carriers.sip.endpoint import Endpoint
from bot.carriers.sip.guard import Allow, RateLimit, answer_challenge
from bot.carriers.sip.message import Peer
from bot.transport import AudioIn
from media import mulaw

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
    from bot.carriers.sip.sdp import SdpError, accept_answer, make_offer, parse_sdp

    report = SipCallReport()
    byes: asyncio.Queue[Request] = asyncio.Queue()
    ep = Endpoint(allow=Allow(()), rate=RateLimit(1000, 5000))

    def on_request(req: Request, peer: Peer) -> None:
        ep.respond(req, sipmsg.response(req, 200 if req.method in ("BYE", "OPTIONS", "NOTIFY") else 405, peer=peer))
        if req.method == "BYE":
            byes.put_nowait(req)

    ep.on_request = on_request
    await ep.listen((("udp", "0.0.0.0", 0),))
    peer = Peer("udp", host, port)
    local_ip = ep.local_ip_for(host)
    media = await RtpMedia.open(host="0.0.0.0", port_min=40000, port_max=49999)
    call_id, from_tag, cseq = secrets.token_hex(10) + "@phonebot-caller", sipmsg.tag(), 1
    uri = f"sip:bot@{host}:{port}"
    offer = make_offer(local_ip=local_ip, local_port=media.local_port).encode()
    auth: tuple[str, str] | None = None
    try:
        while True:
            via = f"SIP/2.0/UDP {local_ip}:{ep.local_addr('udp')[1]};branch={sipmsg.branch()};rport"
            headers = [("Via", via), ("From", f"<sip:{from_number}@{local_ip}>;tag={from_tag}"), ("To", f"<{uri}>"),
                       ("Call-ID", call_id), ("CSeq", f"{cseq} INVITE"), ("Contact", f"<sip:caller@{local_ip}:{ep.local_addr('udp')[1]}>")]
            if auth:
                headers.append(auth)
            data = sipmsg.request("INVITE", uri, headers, offer)
            try:
                resp = await asyncio.wait_for(ep.client.send_request(data, sipmsg.txn_key(sipmsg.parse(data)), peer,
                                                                     on_provisional=lambda r: report.events.append(f"{r.code} {r.phrase}")), max_wait_s)
            except TimeoutError:
                report.error = "no answer to the INVITE (is the bot's SIP_LISTEN reachable, and this address in its SIP_ALLOW?)"
                return report
            report.code = resp.code
            if resp.code >= 300:  # the INVITE transaction's ACK: same branch, the response's To
                ack = [("Via", via), ("From", f"<sip:{from_number}@{local_ip}>;tag={from_tag}"), ("To", resp.headers["To"]),
                       ("Call-ID", call_id), ("CSeq", f"{cseq} ACK")]
                ep.send(sipmsg.request("ACK", uri, ack), peer)
            if resp.code in (401, 407) and auth is None and username:
                name = "WWW-Authenticate" if resp.code == 401 else "Proxy-Authenticate"
                value = answer_challenge(resp.headers.get(name) or "", method="INVITE", uri=uri, username=username, password=password)
                auth = ("Authorization" if resp.code == 401 else "Proxy-Authorization", value)
                cseq += 1
                continue
            break
        if resp.code >= 300:
            report.error = f"the bot answered {resp.code} {resp.phrase}"
            return report
        to = resp.headers["To"]
        target = str(resp.contact[0].uri) if resp.contact else uri
        routes = list(reversed(resp.headers.getlist("Record-Route")))
        dialog = [("From", f"<sip:{from_number}@{local_ip}>;tag={from_tag}"), ("To", to), ("Call-ID", call_id)]
        via0 = f"SIP/2.0/UDP {local_ip}:{ep.local_addr('udp')[1]}"
        ep.send(sipmsg.request("ACK", target, [("Via", f"{via0};branch={sipmsg.branch()};rport"), *[("Route", r) for r in routes],
                                               *dialog, ("CSeq", f"{cseq} ACK")]), peer)
        try:
            media.configure(accept_answer(parse_sdp(resp.body.decode("utf-8", "replace"))), peer_host=host)
        except SdpError as exc:
            report.error = f"unusable SDP answer: {exc}"
            return report
        report.answered = True
        listener = _Listener(media, report)
        listen = asyncio.get_running_loop().create_task(listener.run())
        bye_wait = asyncio.get_running_loop().create_task(byes.get())
        try:
            await listener.quiet_after_speech(quiet_s, max_wait_s, bye_wait)
            report.events.append(f"greeting heard ({listener.spoken_s:.1f} s)")
            for step in steps:
                if bye_wait.done():
                    break
                if isinstance(step, str):  # keys as SIP INFO (application/dtmf-relay), one request each
                    for digit in step:
                        cseq += 1
                        info = sipmsg.request("INFO", target, [("Via", f"{via0};branch={sipmsg.branch()};rport"), *[("Route", r) for r in routes],
                                                               *dialog, ("CSeq", f"{cseq} INFO")], f"Signal={digit}\r\nDuration=160\r\n".encode(),
                                              content_type="application/dtmf-relay")
                        try:
                            await ep.client.send_request(info, sipmsg.txn_key(sipmsg.parse(info)), peer)
                        except TimeoutError:
                            report.events.append(f"no answer to INFO {digit}")
                        await asyncio.sleep(0.2)
                    report.events.append(f"keyed {step}")
                else:
                    media.play(step[: len(step) // 160 * 160])
                    await asyncio.sleep(len(step) / 8000)
                    report.events.append(f"said {len(step) / 8000:.1f} s of audio")
                t_end = time.monotonic()
                first = await listener.quiet_after_speech(quiet_s, max_wait_s, bye_wait)
                if first is not None:
                    report.latencies_ms.append((first - t_end) * 1000)
                    report.events.append(f"reply after {(first - t_end) * 1000:.0f} ms ({listener.spoken_s:.1f} s)")
            if bye_wait.done():
                report.hung_up_by = "bot"
            else:
                report.hung_up_by = "caller"
                cseq += 1
                bye = sipmsg.request("BYE", target, [("Via", f"{via0};branch={sipmsg.branch()};rport"), *[("Route", r) for r in routes],
                                                     *dialog, ("CSeq", f"{cseq} BYE")])
                try:
                    await ep.client.send_request(bye, sipmsg.txn_key(sipmsg.parse(bye)), peer)
                except TimeoutError:
                    report.error = "no answer to BYE"
        finally:
            listen.cancel()
            bye_wait.cancel()
        return report
    finally:
        await media.close()
        await ep.close()


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
