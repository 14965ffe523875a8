"""A simulated Twilio call against our own server: what Twilio does, with the carrier's codec.

    python -m bot call A.wav [--dtmf 1] [B.wav ...] --url http://127.0.0.1:8080 [--out heard.wav]

Signed voice webhook, reads the TwiML, signed websocket, then the caller's script
(``bot.simulator.run_script``) on a ``TwilioLeg``: ``connected``/``start`` and every
message after them written and read by ``MediaStreamClient``, the client role of the
sans-I/O codec the bot itself uses (media_stream.py). Used by tests and benchmarks as a
library (``simulate_call``), and by hand from the CLI.
"""

from __future__ import annotations

import binascii
import functools
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from twilio.request_validator import RequestValidator

from bot.carriers.twilio.media_client import MediaStreamClient
from bot.carriers.twilio.media_stream import Clear, Mark, Media
from bot.simulator import BotAudio, BotClear, BotMark, CallReport, Dtmf, load_ulaw, run_script


@functools.lru_cache(maxsize=1 << 16)
def _b64(frame: bytes) -> str:
    """A caller frame's payload, encoded once per process: the callers of a benchmark speak
    the same few WAVs (and silence), hundreds of calls at once on the bot's cores."""
    return binascii.b2a_base64(frame, newline=False).decode("ascii")


class TwilioLeg:
    """The caller's end of a Media Streams websocket (``bot.simulator.CallerLeg``)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, client: MediaStreamClient, custom: dict[str, str]) -> None:
        self.ws, self.client, self.custom = ws, client, custom

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def start(self) -> None:
        await self.ws.send_str(self.client.connected())
        await self.ws.send_str(self.client.start(self.custom))

    async def bot_events(self) -> AsyncIterator[BotAudio | BotMark | BotClear]:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            ev = self.client.receive(msg.data)  # anything else is counted in client.stats
            if isinstance(ev, Media):
                yield BotAudio(ev.payload)
            elif isinstance(ev, Mark):
                yield BotMark(ev.name)
            elif isinstance(ev, Clear):
                yield BotClear()

    async def send_frame(self, frame: bytes) -> None:
        await self.ws.send_str(self.client.media_b64(_b64(frame)))

    async def send_dtmf(self, digit: str) -> None:
        await self.ws.send_str(self.client.dtmf(digit))

    async def send_mark(self, name: str) -> None:
        await self.ws.send_str(self.client.mark(name))

    async def hang_up(self) -> None:
        await self.ws.send_str(self.client.stop())
        await self.ws.close()


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


async def simulate_call(
    url: str,
    utterances: Sequence[bytes | str | Path | Dtmf],
    *,
    public_url: str | None = None,
    auth_token: str | None = None,
    from_number: str = "+15551234567",
    to_number: str = "+15557654321",
    gap_s: float = 0.6,
    barge_in_after_ms: int | None = None,
    max_wait_s: float = 20.0,
    quiet_s: float = 1.0,
    dtmf: dict[int, str] | None = None,
    session: aiohttp.ClientSession | None = None,
    separate_connections: bool = False,
    stream_to: str | None = None,
    follow_action: bool = False,
    action_to: str | None = None,
) -> CallReport:
    """Place one simulated call. ``barge_in_after_ms``: start each next utterance that
    long after the bot's reply audio begins (interrupting it), instead of waiting for
    the bot to finish. ``dtmf``: {utterance index: digits} sent after that utterance; a
    ``Dtmf`` among ``utterances`` is a step of its own (keys pressed, then the reply).

    As Twilio does, ``separate_connections`` sends the webhook, the websocket and the
    <Connect action> request each on a new connection (by default they share the
    session's pool, so one server process may see them all). ``stream_to`` /
    ``action_to``: another server (instance) for the websocket / the action request.
    ``follow_action``: once the stream ends, ask the <Connect action> URL what to do
    (``report.action_twiml``), as Twilio does."""
    url = url.rstrip("/")
    public = (public_url or url).rstrip("/")
    report = CallReport(call_sid=_sid("CA"), stream_sid=_sid("MZ"))
    account = _sid("AC")
    validator = RequestValidator(auth_token or "")
    own = session is None
    if separate_connections and own:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    http = session or aiohttp.ClientSession()
    try:
        params = {
            "CallSid": report.call_sid, "AccountSid": account, "From": from_number, "To": to_number,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01",
        }
        headers = {"X-Twilio-Signature": validator.compute_signature(public + "/twilio/voice", params)} if auth_token else {}
        try:
            r = await http.post(url + "/twilio/voice", data=params, headers=headers)
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as exc:  # refused, no route, no such host; not a URL
            report.rejected, report.unreachable = True, True
            report.error = f"nothing answers at {url} ({type(exc).__name__}: {exc})"
            return report
        async with r:
            if r.status != 200:
                report.rejected, report.error = True, f"webhook answered {r.status}"
                return report
            twiml = await r.text()
        stream_url, custom = _parse_twiml(twiml)
        if stream_url is None:
            report.rejected, report.error = True, "no <Connect><Stream> in TwiML"
            return report
        to = (stream_to or url).rstrip("/")
        ws_url = ("wss" if to.startswith("https") else "ws") + "://" + urlsplit(to).netloc + urlsplit(stream_url).path
        headers = {"X-Twilio-Signature": validator.compute_signature(stream_url, {})} if auth_token else {}
        async with http.ws_connect(ws_url, headers=headers, max_msg_size=0) as ws:
            leg = TwilioLeg(ws, MediaStreamClient(report.stream_sid, report.call_sid, account), custom)
            await run_script(
                leg, report, [u if isinstance(u, Dtmf) else load_ulaw(u) for u in utterances],
                gap_s=gap_s, barge_in_after_ms=barge_in_after_ms, max_wait_s=max_wait_s, quiet_s=quiet_s, dtmf=dtmf or {},
            )
        action = _action_url(twiml)
        if (follow_action or action_to) and action:
            status = "in-progress" if report.hung_up_by_bot else "completed"  # the bot ended the stream, or the caller hung up
            form = {"CallSid": report.call_sid, "AccountSid": account, "CallStatus": status, "ApiVersion": "2010-04-01"}
            headers = {"X-Twilio-Signature": validator.compute_signature(action, form)} if auth_token else {}
            target = (action_to or url).rstrip("/") + urlsplit(action).path
            async with http.post(target, data=form, headers=headers) as r:
                report.action_twiml = await r.text() if r.status == 200 else f"HTTP {r.status}"
    except aiohttp.WSServerHandshakeError as exc:
        report.rejected, report.error = True, f"websocket refused: {exc.status}"
    except (aiohttp.ClientError, OSError, ET.ParseError) as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        if own:
            await http.close()
    return report


def _action_url(text: str) -> str:
    connect = ET.fromstring(text).find("./Connect")
    return connect.get("action", "") if connect is not None else ""


def _parse_twiml(text: str) -> tuple[str | None, dict[str, str]]:
    root = ET.fromstring(text)
    stream = root.find("./Connect/Stream")
    if stream is None:
        return None, {}
    return stream.get("url"), {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}


