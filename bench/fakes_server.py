"""The three cloud fakes (Deepgram, OpenAI, ElevenLabs) on one local port, with a
latency profile, as a process of their own (so the bot's CPU can be measured alone).

    uv run --extra local python -m bench.fakes_server [--port 0] [--stt-delay 0.15] ...

Prints one JSON line on stdout when listening, e.g. ``{"port": 43121, "profile": {...}}``,
then serves until SIGTERM/SIGINT. Point the bot at it with
DEEPGRAM_BASE_URL=http://127.0.0.1:PORT, OPENAI_BASE_URL=http://127.0.0.1:PORT/v1,
ELEVENLABS_BASE_URL=http://127.0.0.1:PORT.

The default profile: STT final 150 ms after the request, LLM first token 250 ms then
30 tokens/s, TTS first byte 100 ms then 1600-byte chunks (200 ms of audio) every
50 ms, i.e. 4x faster than real time. ``profile_dict`` and ``reply_audio_frames``
are shared with bench/calls/, which computes the critical path from them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes.cloud import FakeBehaviour, cloud_app  # noqa: E402

TRANSCRIPT = "What time do you open tomorrow?"
REPLY = "We open at nine tomorrow morning. Is there anything else I can help you with today?"
KEEP_REQUESTS = 50  # the fakes record every request; trim so a long soak does not grow them


@dataclass(frozen=True)
class Profile:
    stt_delay_s: float = 0.15  # prerecorded Deepgram: request -> final transcript
    llm_first_s: float = 0.25  # OpenAI: request -> first content token
    llm_tokens_per_s: float = 30.0
    tts_first_s: float = 0.10  # ElevenLabs: request -> first audio bytes
    tts_chunk_delay_s: float = 0.05  # between chunks
    tts_chunk_bytes: int = 1600  # 200 ms of 8 kHz mu-law
    tts_ms_per_char: int = 60  # the fake's audio length: 60 ms per character of text
    transcript: str = TRANSCRIPT
    reply: str = REPLY


def profile_dict(p: Profile) -> dict:
    return asdict(p)


def tokens(text: str) -> list[str]:
    """How the OpenAI fake cuts the reply into streamed tokens."""
    return re.findall(r"\s*\S+", text)


def sentences(text: str) -> list[str]:
    """The reply as the bot's splitter cuts it for TTS (first clause, then sentences)."""
    from bot.orchestrator import SentenceSplitter

    try:  # the bot sends the reply's first clause to TTS on its own (bot/orchestrator.py)
        sp = SentenceSplitter(first_clause=True)
    except TypeError:
        sp = SentenceSplitter()
    out = []
    for tok in tokens(text):
        out += sp.feed(tok)
    return out + sp.flush()


def first_sentence_s(p: Profile) -> float:
    """LLM request -> first sentence (or clause) complete, by the fake's pacing: token i
    arrives at first + i/rate; the splitter only closes a unit when the whitespace of the
    next token arrives, unless the reply is a single unit (closed at the end)."""
    toks, first = tokens(p.reply), sentences(p.reply)[0]
    k = len(tokens(first))  # tokens in the first sentence
    gap = 1.0 / p.llm_tokens_per_s if p.llm_tokens_per_s > 0 else 0.0
    closing_token = k if k < len(toks) else k - 1
    return p.llm_first_s + closing_token * gap


def reply_audio_frames(p: Profile) -> int:
    """20 ms frames of bot audio for the whole reply: each sentence's audio is padded
    to whole frames before its mark."""
    total = 0
    for s in sentences(p.reply):
        ms = max(200, p.tts_ms_per_char * len(s))
        total += math.ceil((8000 * ms // 1000) / 160)
    return total


def build(p: Profile, live: bool = False, hear_pauses: bool = False) -> tuple[web.Application, list]:
    """``hear_pauses``: Deepgram (batch and live) transcribes the pause samples by where
    the audio sits in them (bench/pause_ear.py), the scripted transcript otherwise."""
    ear = None
    if hear_pauses:
        from bench.pause_ear import PauseEar

        ear = PauseEar()
    stt = FakeBehaviour(first_delay_s=p.stt_delay_s, transcript=p.transcript, hear=ear.hear_wav if ear else None)
    llm = FakeBehaviour(first_delay_s=p.llm_first_s, tokens_per_s=p.llm_tokens_per_s, reply=p.reply)
    tts = FakeBehaviour(
        first_delay_s=p.tts_first_s, chunk_delay_s=p.tts_chunk_delay_s, chunk_size=p.tts_chunk_bytes, ms_per_char=p.tts_ms_per_char
    )
    app = cloud_app(stt=stt, llm=llm, tts=tts)
    # the real vendors answer HEAD (the bot warms its pools with one); so do we, cheaply
    app.router.add_route("HEAD", "/{tail:.*}", _head)
    app.router.add_post("/v1/text-to-speech/{voice_id}/stream/with-timestamps", _with_timestamps(tts))
    states: list = [stt, llm, tts]
    if live:  # Deepgram's live socket: the final comes after its endpointing silence
        from tests.fakes.deepgram_live import LiveBehaviour, live_routes

        lb = LiveBehaviour(transcripts=[p.transcript], hear=ear.hear if ear else None)
        app.add_routes(live_routes(lb))
        states.append(lb)
    return app, states


def _with_timestamps(tts: FakeBehaviour):
    """ElevenLabs' ``/stream/with-timestamps`` (what Pipecat's HTTP ElevenLabs service
    calls): newline-delimited JSON, each line ``{"audio_base64", "alignment"}``, paced
    like the plain stream: first chunk after ``first_delay_s``, then one chunk of 200 ms
    of audio every ``chunk_delay_s``. Only phonebot-independent peers use it."""
    import base64

    from tests.fakes.cloud import _el_audio, _record

    async def handler(request: web.Request) -> web.StreamResponse:
        seen, _ = await _record(tts, request, as_json=True)
        text = str((seen.json or {}).get("text", "")) if isinstance(seen.json, dict) else ""
        fmt = seen.query.get("output_format", "pcm_16000")
        audio = _el_audio(tts, text, fmt)
        m = re.fullmatch(r"(pcm|ulaw)_(\d+)", fmt)
        if audio is None or m is None or not text:
            return web.json_response({"detail": {"status": "invalid", "message": "unsupported"}}, status=422)
        bytes_per_s = int(m.group(2)) * (2 if m.group(1) == "pcm" else 1)
        size = bytes_per_s // 5  # 200 ms
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await asyncio.sleep(tts.first_delay_s)
        n = max(1, math.ceil(len(audio) / size))
        per = math.ceil(len(text) / n)
        for k, i in enumerate(range(0, len(audio), size)):
            if i and tts.chunk_delay_s:
                await asyncio.sleep(tts.chunk_delay_s)
            chars = list(text[k * per : (k + 1) * per])
            t0, step = i / bytes_per_s, tts.ms_per_char / 1000
            line: dict = {"audio_base64": base64.b64encode(audio[i : i + size]).decode()}
            if chars:
                line["alignment"] = {
                    "characters": chars,
                    "character_start_times_seconds": [round(t0 + j * step, 3) for j in range(len(chars))],
                    "character_end_times_seconds": [round(t0 + (j + 1) * step, 3) for j in range(len(chars))]}
            await resp.write(json.dumps(line).encode() + b"\n")
        await resp.write_eof()
        return resp

    return handler


async def _head(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def serve(p: Profile, host: str, port: int, live: bool = False, hear_pauses: bool = False) -> None:
    app, states = build(p, live, hear_pauses)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"port": bound, "profile": profile_dict(p)}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 5.0)
        except TimeoutError:
            pass
        for s in states:
            del (s.requests if hasattr(s, "requests") else s.connections)[:-KEEP_REQUESTS]
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    d = Profile()
    ap = argparse.ArgumentParser(prog="python -m bench.fakes_server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    ap.add_argument("--stt-delay", type=float, default=d.stt_delay_s)
    ap.add_argument("--llm-first", type=float, default=d.llm_first_s)
    ap.add_argument("--llm-tps", type=float, default=d.llm_tokens_per_s)
    ap.add_argument("--tts-first", type=float, default=d.tts_first_s)
    ap.add_argument("--tts-chunk-delay", type=float, default=d.tts_chunk_delay_s)
    ap.add_argument("--reply", default=d.reply)
    ap.add_argument("--asyncio", action="store_true", help="plain asyncio even if uvloop is installed")
    ap.add_argument("--live", action="store_true", help="also serve Deepgram's live websocket (/v1/listen)")
    ap.add_argument("--hear-pauses", action="store_true",
                    help="Deepgram transcribes the pause samples' words by position (bench/pause_ear.py)")
    args = ap.parse_args(argv)
    p = Profile(
        stt_delay_s=args.stt_delay, llm_first_s=args.llm_first, llm_tokens_per_s=args.llm_tps,
        tts_first_s=args.tts_first, tts_chunk_delay_s=args.tts_chunk_delay, reply=args.reply,
    )
    run = asyncio.run
    if not args.asyncio:
        try:
            import uvloop  # type: ignore

            run = uvloop.run
        except ImportError:
            pass
    run(serve(p, args.host, args.port, args.live, args.hear_pauses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
