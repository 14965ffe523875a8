"""CPU per 20 ms frame, in and out, by step, with the bot's own objects.

    uv run --extra local python -m bench.frames               # ~20 s
    uv run --extra local python -m bench.frames --calls 200   # more concurrent playouts in the pacing step

Inbound (Twilio -> bot), per 20 ms media message:
  ws receive   aiohttp reading the frame off a real loopback socket (syscalls, unmasking,
               UTF-8, the reader queue); measured on the server thread with thread_time while
               a client thread sends, minus the protocol step
  json, base64 the two library calls inside the protocol (shown for scale; part of "protocol")
  protocol     MediaStreamProtocol.receive: validation, events (json and base64 included)
  vad          Vad.is_speech_ulaw (mu-law decode + WebRTC VAD)
  controller   TurnController.on_frame (the turn detector, listening)
  stt send     the live STT stream's send() (queueing; the socket write is like "ws send")
Outbound (bot -> Twilio), per 20 ms frame:
  framing      Framer.feed of 200 ms TTS chunks, per frame
  base64, json the library calls a naive renderer makes (shown for scale)
  protocol     MediaStreamProtocol.send_media (the text of one media message)
  ws send      TwilioTransport.send_audio onto a real loopback socket (thread_time)
  pacing       Playout.run for --calls concurrent calls with a no-op send: the timer
               wake-ups and the loop, per frame (process_time / frames)

Every figure is the median of 5 repeats, in microseconds of CPU. The calibration line
is bench.calls's (the same 10M-step loop), so tables from different machines compare.

``--spy FILE [FILE ...]`` instead reads py-spy raw profiles of the bot under bench.calls
(``--profile-cmd``, see bench/README.md) and prints, side by side, the share of samples in
each per-frame step (inclusive), so a before/after pair shows where the frame time went.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import inspect
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.calls import calibration  # noqa: E402
from bot.carriers.twilio import media_stream as tp  # noqa: E402
from bot.playout import Playout  # noqa: E402
from bot.providers.live_socket import LiveSocketStream, SocketOptions  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.turns.controller import TurnController, TurnOptions  # noqa: E402
from media import frames, mulaw  # noqa: E402
from media.vad import Vad  # noqa: E402

AUDIO = REPO.parent / "shared" / "audio" / "callers"
SID = "MZ" + "0" * 32
CALL = "CA" + "1" * 32
REPEATS = 5


def caller_frames() -> list[bytes]:
    """Real caller speech with its pauses, as 160-byte mu-law frames (a synthetic tone if
    the corpus is missing)."""
    from bot.simulator import load_ulaw

    paths = sorted(AUDIO.glob("*.wav"))[:4]
    if paths:
        return frames.split(b"".join(load_ulaw(p) for p in paths))
    import numpy as np

    t = np.arange(8000 * 3) / 8000
    pcm = (3000 * np.sin(2 * np.pi * 220 * t) * (t % 1 < 0.6)).astype("<i2").tobytes()
    return frames.split(mulaw.encode(pcm))


def media_text(seq: int, frame: bytes) -> str:
    """One inbound message as Twilio writes it (docs/wire-facts)."""
    return json.dumps({
        "event": "media", "sequenceNumber": str(seq), "streamSid": SID,
        "media": {"track": "inbound", "chunk": str(seq), "timestamp": str(seq * 20), "payload": base64.b64encode(frame).decode()},
    })


def start_text() -> str:
    return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": SID,
                       "start": {"streamSid": SID, "callSid": CALL, "accountSid": "AC" + "2" * 32, "tracks": ["inbound"],
                                 "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})


def per_call_us(fn: Callable[[int], object], n: int) -> float:
    """Median over REPEATS of CPU microseconds per call of ``fn(i)``, i in range(n)."""
    runs = []
    for _ in range(REPEATS):
        t = time.thread_time()
        for i in range(n):
            fn(i)
        runs.append((time.thread_time() - t) / n * 1e6)
    return statistics.median(runs)


# ----------------------------------------------------------------------------- in-process steps


def inbound_steps(fr: list[bytes]) -> dict[str, float]:
    n = len(fr)
    texts = [media_text(i + 2, f) for i, f in enumerate(fr)]
    b64s = [base64.b64encode(f).decode() for f in fr]
    out: dict[str, float] = {}
    out["json"] = per_call_us(lambda i: json.loads(texts[i]), n)
    out["base64"] = per_call_us(lambda i: base64.b64decode(b64s[i], validate=True), n)

    def fresh() -> tp.MediaStreamProtocol:
        p = tp.MediaStreamProtocol()
        assert isinstance(p.receive(start_text()), tp.Start)
        return p

    protos = [fresh() for _ in range(REPEATS + 1)]
    k = iter(protos)
    cur = [next(k)]

    def recv(i: int) -> None:
        if i == 0:
            cur[0] = next(k)  # sequence numbers restart: a fresh stream per repeat
        cur[0].receive(texts[i])

    out["protocol"] = per_call_us(recv, n)
    assert not protos[1].stats, protos[1].stats  # every message was valid media
    vad = Vad(2)
    out["vad"] = per_call_us(lambda i: vad.is_speech_ulaw(fr[i]), n)
    speech = [vad.is_speech_ulaw(f) for f in fr]
    c = TurnController(TurnOptions.from_settings(Settings.from_env({"TWILIO_VALIDATE": "false"})), t0=0.0)
    out["controller"] = per_call_us(lambda i: c.on_frame(fr[i], speech[i], i * 0.02), n)
    stream = LiveSocketStream(SocketOptions())

    def stt_send(i: int) -> None:
        stream.send(fr[i])
        if i % 50 == 49:  # the runner takes what is queued; here we just empty it
            stream._pending.clear()
            stream._pending_bytes = 0

    out["stt send"] = per_call_us(stt_send, n)
    return out


def outbound_steps(fr: list[bytes]) -> dict[str, float]:
    n = len(fr)
    chunk = b"".join(fr)[: 1600 * (len(fr) // 10)]  # 200 ms TTS chunks
    chunks = [chunk[i : i + 1600] for i in range(0, len(chunk), 1600)]
    out: dict[str, float] = {}
    framer = frames.Framer()

    def frame_all(_: int) -> None:
        for ch in chunks:
            for _f in framer.feed(ch):
                pass

    out["framing"] = per_call_us(frame_all, 1) / (len(chunk) // 160)
    b64s = [base64.b64encode(f).decode() for f in fr]
    out["base64"] = per_call_us(lambda i: base64.b64encode(fr[i]).decode("ascii"), n)
    out["json"] = per_call_us(
        lambda i: json.dumps({"event": "media", "streamSid": SID, "media": {"payload": b64s[i]}}, separators=(",", ":")), n)
    p = tp.MediaStreamProtocol()
    p.receive(start_text())
    out["protocol"] = per_call_us(lambda i: p.send_media(fr[i]), n)
    return out


# ----------------------------------------------------------------------------- over a real socket


async def socket_steps(fr: list[bytes], n_msgs: int) -> dict[str, float]:
    """The server side of one loopback Media Streams socket, CPU of the server thread only:
    reading ``n_msgs`` media messages through TwilioTransport.inbound(), then sending
    ``n_msgs`` frames through TwilioTransport.send_audio()."""
    from aiohttp import web

    from bot.carriers.twilio.media_ws import TwilioTransport

    texts = [start_text()] + [media_text(i + 2, fr[i % len(fr)]) for i in range(n_msgs)]
    result: dict[str, float] = {}
    done = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        proto = tp.MediaStreamProtocol()
        first = await ws.receive()
        start = proto.receive(first.data)
        assert isinstance(start, tp.Start)
        transport = TwilioTransport(ws, proto, start, metrics=None)
        got = 0
        t = time.thread_time()
        async for _ev in transport.inbound():
            got += 1
            if got == n_msgs:
                break
        result["ws receive+protocol"] = (time.thread_time() - t) / n_msgs * 1e6
        out = [fr[i % len(fr)] for i in range(n_msgs)]
        t = time.thread_time()
        for f in out:
            await transport.send_audio(f)
        result["ws send+protocol"] = (time.thread_time() - t) / n_msgs * 1e6
        await ws.close()
        done.set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    def client() -> None:
        import aiohttp

        async def go() -> None:
            async with aiohttp.ClientSession() as s, s.ws_connect(f"http://127.0.0.1:{port}/ws", max_msg_size=1 << 20) as ws:
                for k, text in enumerate(texts):
                    await ws.send_str(text)
                    if k % 50 == 0:
                        await asyncio.sleep(0.001)  # in bursts, as a busy carrier would; the server keeps up
                async for _m in ws:
                    pass

        asyncio.run(go())

    th = threading.Thread(target=client, daemon=True)
    th.start()
    await asyncio.wait_for(done.wait(), 120)
    th.join(30)
    await runner.cleanup()
    return result


async def pacing_step(calls: int, seconds: float, per_message: int = 1) -> tuple[float, float]:
    """``calls`` playouts, each fed a long reply, sending to a no-op for ``seconds``:
    CPU per frame sent (process_time: this is the only thread working) and the
    late-frame p99 (ms past each frame's due time, the loop's own lateness)."""
    late: list[float] = []
    sent = [0]

    async def nop(audio: bytes = b"") -> None:
        sent[0] += len(audio) // 160

    plays = []
    for _ in range(calls):
        kw = {"frames_per_message": per_message} if per_message > 1 else {}  # (the same script runs on older versions)
        p = Playout(nop, nop, nop, **kw)  # type: ignore[arg-type]
        p.enqueue_audio(bytes(160 * int(seconds * 50 + 100)))
        plays.append(p)
    tasks = [asyncio.create_task(p.run()) for p in plays]
    await asyncio.sleep(0.2)  # all started; their media clocks run
    t, s0 = time.process_time(), sent[0]
    t_wall = time.monotonic()
    while time.monotonic() - t_wall < seconds:
        before = time.monotonic()
        await asyncio.sleep(0.02)
        late.append((time.monotonic() - before - 0.02) * 1000)
    cpu = time.process_time() - t
    frames_sent = sent[0] - s0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    late.sort()
    return cpu / max(1, frames_sent) * 1e6, late[int(len(late) * 0.99) - 1] if late else float("nan")


# ----------------------------------------------------------------------------- py-spy profiles

SPY_STEPS = (  # (label, function as py-spy names it); inclusive shares, so they nest
    ("inbound: socket read + ws parse", "_SelectorSocketTransport._read_ready"),
    ("  aiohttp ws frame parser", "RequestHandler.data_received"),
    ("inbound: transport loop", "TwilioTransport.inbound"),
    ("  protocol receive", "MediaStreamProtocol.receive"),
    ("session on_audio", "CallSession.on_audio"),
    ("  vad", "Vad.is_speech_ulaw"),
    ("  controller", "TurnController.on_frame"),
    ("outbound: playout writer", "Playout.run"),
    ("  transport send_audio", "TwilioTransport.send_audio"),
    ("  protocol send_media", "MediaStreamProtocol.send_media"),
    ("  ws send + socket write", "WebSocketResponse.send_str"),
    ("  shared ticker", "Ticker._fire"),
    ("turns (STT, LLM, TTS)", "TurnPipeline.run"),
    ("store thread (aiosqlite)", "_connection_worker_thread"),
)


def spy_shares(path: str) -> tuple[int, dict[str, float]]:
    total, incl = 0, dict.fromkeys((f for _, f in SPY_STEPS), 0)
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        total += int(n)
        names = {f.split(" (")[0] for f in stack.split(";")}
        for f in incl:
            if f in names:
                incl[f] += int(n)
    return total, {f: v / total * 100 if total else float("nan") for f, v in incl.items()}


def spy_report(paths: list[str]) -> None:
    got = [spy_shares(p) for p in paths]
    print(f"{'% of the bot samples (inclusive)':34s}" + "".join(f"{Path(p).name[-18:]:>19s}" for p in paths))
    print(f"{'samples':34s}" + "".join(f"{t:19d}" for t, _ in got))
    for label, f in SPY_STEPS:
        print(f"{label:34s}" + "".join(f"{s[f]:19.1f}" for _, s in got))


# ----------------------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.frames", description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100, help="concurrent playouts in the pacing step")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long the pacing step runs")
    ap.add_argument("--messages", type=int, default=5000, help="messages each way over the loopback socket")
    ap.add_argument("--spy", nargs="+", default=None, help="py-spy raw profiles to compare instead (see the module doc)")
    args = ap.parse_args(argv)
    if args.spy:
        spy_report(args.spy)
        return 0
    print(calibration())
    fr = caller_frames()
    inn = inbound_steps(fr)
    out = outbound_steps(fr)
    sock = asyncio.run(socket_steps(fr, args.messages))
    pace_us, late99 = asyncio.run(pacing_step(args.calls, args.seconds))
    bigger = {}
    if "frames_per_message" in inspect.signature(Playout).parameters:
        bigger = {k: asyncio.run(pacing_step(args.calls, args.seconds / 2, k))[0] for k in (2, 3, 5)}
    ws_in = max(0.0, sock["ws receive+protocol"] - inn["protocol"])
    ws_out = max(0.0, sock["ws send+protocol"] - out["protocol"])
    w = 28
    print(f"\nCPU per 20 ms frame, microseconds (median of {REPEATS}; {len(fr)} caller frames)")
    print("inbound (Twilio -> bot)")
    rows_in = [("ws receive (loopback socket)", ws_in), ("  json.loads (in protocol)", inn["json"]),
               ("  base64 decode (in protocol)", inn["base64"]), ("protocol receive", inn["protocol"]),
               ("vad", inn["vad"]), ("controller", inn["controller"]), ("stt send (queue)", inn["stt send"])]
    for name, v in rows_in:
        print(f"  {name:{w}s} {v:7.1f}")
    total_in = ws_in + inn["protocol"] + inn["vad"] + inn["controller"] + inn["stt send"]
    print(f"  {'total':{w}s} {total_in:7.1f}")
    print("outbound (bot -> Twilio)")
    rows_out = [("framing", out["framing"]), ("  base64 encode (naive)", out["base64"]),
                ("  json.dumps (naive)", out["json"]), ("protocol send_media", out["protocol"]),
                ("ws send (loopback socket)", ws_out), (f"pacing ({args.calls} calls)", pace_us)]
    for name, v in rows_out:
        print(f"  {name:{w}s} {v:7.1f}")
    total_out = out["framing"] + out["protocol"] + ws_out + pace_us
    print(f"  {'total':{w}s} {total_out:7.1f}")
    print("  fewer, larger media messages (pacing + protocol + ws send per frame; a setting, see bot/playout.py):")
    for k, us in bigger.items():
        print(f"    {k} frames ({k * 20} ms) a message: {us + (out['protocol'] + ws_out) / k:7.1f}  (vs {pace_us + out['protocol'] + ws_out:.1f})")
    per_call = (total_in + total_out) * 50 / 1e6 * 100
    print(f"\nper call (50 frames in + 50 out a second): {per_call:.3f} % of a core; "
          f"pacing loop lateness p99 {late99:.1f} ms at {args.calls} calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
