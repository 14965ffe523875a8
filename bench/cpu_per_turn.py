"""CPU the bot spends per turn on the cloud path, by stage.

    uv run --extra local [--extra fast] python -m bench.cpu_per_turn [--turns 200] [--concurrency 10]
        [--loop auto|asyncio|uvloop] [--profile] [--floor]

The wire fakes (bench.fakes_server: Deepgram, OpenAI, ElevenLabs) run in their own
process with no delays, so ``time.process_time()`` here counts only the bot's side:
the SDK clients, the HTTP transport, parsing. Each stage is run on its own (STT on one
caller utterance, the LLM reply streamed to the end, TTS of one reply sentence in
mu-law), then whole turns through the Orchestrator (transcribe + respond), with
``--concurrency`` turns in flight at once. Prints ms of CPU per call of each, and the
calibration line of bench.calls (what machine, how loaded). The event loop is the
server's: uvloop when it is installed (the ``fast`` extra), else asyncio's (``--loop``).

``--profile`` runs each stage a second time under cProfile (its overhead inflates
the times, so the CPU figures above come from the unprofiled run) and prints, per
stage, where the time goes: own time summed by area (SDK, pydantic, httpx, aiohttp,
asyncio, this bot, ...) and the top functions by cumulative and by own time.

``--floor`` also runs the same wire exchanges with a bare aiohttp session: no SDK, no
httpx, no orchestrator, the least parsing that still reads every byte (the STT JSON,
each SSE event's JSON, every audio chunk). That is what the transport alone costs on
this machine, the floor under any SDK-based turn.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.calls import calibration
from bot.conversation import Conversation
from bot.orchestrator import Orchestrator, Timings
from bot.providers.deepgram import DeepgramSTT
from bot.providers.elevenlabs import ElevenLabsTTS
from bot.providers.openai_llm import OpenAILLM
from bot.settings import Settings
from media import wav

REPO = Path(__file__).resolve().parent.parent
UTTERANCE = REPO / "examples" / "callers" / "open_tomorrow_joe.wav"
SENTENCE = "We are open tomorrow from nine in the morning until five in the afternoon."


async def per_call(label: str, n: int, conc: int, make: Callable[[], Awaitable[object]]) -> float:
    """CPU ms per call of ``make`` over n calls, conc at a time (after 5 warm-up calls)."""
    for _ in range(5):
        await make()
    c0, w0 = time.process_time(), time.perf_counter()
    await _calls(n, conc, make)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    ms = cpu / n * 1000
    print(f"{label:<28} {ms:7.2f} ms CPU/call   ({n} calls, {conc} at once, {wall:.1f} s wall)")
    return ms


async def _calls(n: int, conc: int, make: Callable[[], Awaitable[object]]) -> None:
    sem = asyncio.Semaphore(conc)

    async def one() -> None:
        async with sem:
            await make()

    await asyncio.gather(*(one() for _ in range(n)))


# where a function lives -> the area its own time is charged to (first match wins)
AREAS = (
    ("openai", "/openai/"), ("deepgram sdk", "/deepgram/"), ("elevenlabs sdk", "/elevenlabs/"),
    ("pydantic", "/pydantic"), ("httpx-aiohttp", "/httpx_aiohttp/"), ("httpx", "/httpx/"),
    ("aiohttp", "/aiohttp/"), ("yarl/multidict", "/yarl/"), ("yarl/multidict", "/multidict/"),
    ("bot", "/bot/"), ("media", "/media/"), ("asyncio", "/asyncio/"), ("json", "/json/"),
)


def _area(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    for name, part in AREAS:
        if part in filename:
            return name
    return "other python"


async def profile(label: str, n: int, conc: int, make: Callable[[], Awaitable[object]], top: int) -> None:
    """Run ``make`` n times under cProfile; print own time by area and the top functions."""
    prof = cProfile.Profile()
    prof.enable()
    await _calls(n, conc, make)
    prof.disable()
    st = pstats.Stats(prof)
    raw = st.stats  # type: ignore[attr-defined]  # {(file, line, fn): (cc, nc, tt, ct, callers)}
    total = sum(v[2] for v in raw.values()) or 1e-9
    areas: dict[str, float] = {}
    for (filename, _, _), (_, _, tt, _, _) in raw.items():
        areas[_area(filename)] = areas.get(_area(filename), 0.0) + tt
    print(f"\n== {label}: own time by area (cProfile, {n} calls; profiled ms/call {total / n * 1000:.2f})")
    for name, tt in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"   {name:<16} {tt / total * 100:5.1f} %")
    for title, col in (("cumulative", 3), ("own", 2)):
        print(f"-- top {top} by {title} time (a coroutine counts once per resumption)")
        for (filename, line, fn), (_, nc, tt, ct, _) in sorted(raw.items(), key=lambda kv: -kv[1][col])[:top]:
            where = "/".join(Path(filename).parts[-2:]) if not filename.startswith(("~", "<")) else filename
            print(f"   {ct / n * 1000:7.3f} ms/call cum {tt / n * 1000:7.3f} own {nc / n:6.1f} calls/call  {fn} ({where}:{line})")


async def run(args: argparse.Namespace) -> None:
    fakes = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.fakes_server", "--stt-delay", "0", "--llm-first", "0",
                                                 "--tts-first", "0", "--tts-chunk-delay", "0", "--llm-tps", "100000", cwd=REPO,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{json.loads(await asyncio.wait_for(fakes.stdout.readline(), 60))['port']}"
        s = Settings(deepgram_api_key="dg", openai_api_key="sk", elevenlabs_api_key="el", deepgram_base_url=base,
                     openai_base_url=base + "/v1", elevenlabs_base_url=base, stt_provider="deepgram", llm_provider="openai",
                     tts_provider="elevenlabs", twilio_validate=False, stt_timeout=30, llm_timeout=30, tts_timeout=30)
        stt, llm, tts = DeepgramSTT.from_settings(s), OpenAILLM.from_settings(s), ElevenLabsTTS.from_settings(s)
        for p in (stt, llm, tts):
            await p.start()
        pcm, rate = _pcm16(UTTERANCE)

        async def do_stt() -> None:
            await stt.transcribe(pcm, rate)

        async def do_llm() -> None:
            conv = Conversation(call_id="CAbench", messages=[{"role": "user", "content": "When are you open tomorrow?"}])
            async for _ in llm.reply(conv):
                pass

        async def do_tts() -> None:
            async for _ in tts.synthesize(SENTENCE, mulaw=True):
                pass

        orch = Orchestrator(stt, llm, tts, stt_timeout=30, llm_timeout=30, tts_timeout=30)

        async def do_turn() -> None:
            t = Timings()
            text = await orch.transcribe(pcm, rate, t)
            conv = Conversation(call_id="CAbench", messages=[{"role": "user", "content": text}])
            async for _ in orch.respond(conv, mulaw=True, timings=t):
                pass

        print(calibration() + f"  loop {type(asyncio.get_running_loop()).__module__.split('.')[0]}"
              "  (busy shared machine: compare runs made back to back)")
        n, conc = args.turns, args.concurrency
        got = {
            "stt (deepgram batch)": await per_call("stt (deepgram batch)", n, conc, do_stt),
            "llm (openai stream)": await per_call("llm (openai stream)", n, conc, do_llm),
            "tts (elevenlabs mu-law)": await per_call("tts (elevenlabs mu-law)", n, conc, do_tts),
        }
        turn = await per_call("whole turn (orchestrator)", n, conc, do_turn)
        print(f"{'sum of stages':<28} {sum(got.values()):7.2f} ms;  whole turn {turn:.2f} ms  (target <= 2 ms, issue 13)")
        if args.floor:
            await floor(base, s, pcm, rate, n, conc, turn)
        if args.profile:
            for label, make in (("stt (deepgram batch)", do_stt), ("llm (openai stream)", do_llm),
                                ("tts (elevenlabs mu-law)", do_tts), ("whole turn (orchestrator)", do_turn)):
                await profile(label, n, conc, make, args.top)
        for p in (stt, llm, tts):
            await p.close()
    finally:
        fakes.terminate()
        await fakes.wait()


async def floor(base: str, s: Settings, pcm: bytes, rate: int, n: int, conc: int, turn: float) -> None:
    """The same requests over a bare aiohttp session (see the module docstring)."""
    import aiohttp

    from bot.orchestrator import SentenceSplitter
    from media.wav import write_pcm16

    body = write_pcm16(pcm, rate)
    async with aiohttp.ClientSession() as http:

        async def stt() -> str:
            async with http.post(f"{base}/v1/listen", params={"model": s.deepgram_model, "smart_format": "true"}, data=body,
                                 headers={"Authorization": "Token dg", "Content-Type": "application/octet-stream"}) as r:
                return json.loads(await r.read())["results"]["channels"][0]["alternatives"][0]["transcript"]

        async def llm(text: str = "When are you open tomorrow?") -> list[str]:
            req = {"model": s.openai_model, "stream": True, "stream_options": {"include_usage": True},
                   "messages": [{"role": "user", "content": text}]}
            out = []
            async with http.post(f"{base}/v1/chat/completions", json=req, headers={"Authorization": "Bearer sk"}) as r:
                async for line in r.content:
                    if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                        out += [c["delta"].get("content") or "" for c in json.loads(line[5:])["choices"]]
            return out

        async def tts(text: str = SENTENCE) -> int:
            got = 0
            async with http.post(f"{base}/v1/text-to-speech/{s.elevenlabs_voice_id}/stream",
                                 params={"output_format": "ulaw_8000", "optimize_streaming_latency": "3"},
                                 json={"text": text, "model_id": s.elevenlabs_model}, headers={"xi-api-key": "el"}) as r:
                async for chunk in r.content.iter_any():
                    got += len(chunk)
            return got

        async def whole() -> None:
            splitter = SentenceSplitter(first_clause=True)
            sentences = [x for d in await llm(await stt()) for x in splitter.feed(d)] + splitter.flush()
            for sentence in sentences:
                await tts(sentence)

        print("floor: the same exchanges over bare aiohttp (no SDK, no httpx, no orchestrator)")
        ms = [await per_call(f"  {label}", n, conc, f) for label, f in
              (("stt", stt), ("llm", llm), ("tts", tts), ("whole turn", whole))]
        print(f"{'  floor whole turn':<28} {ms[-1]:7.2f} ms;  ours {turn:.2f} ms = {turn / ms[-1]:.1f}x the floor")


def _pcm16(path: Path) -> tuple[bytes, int]:
    audio = wav.read(path.read_bytes())
    return audio.pcm16, audio.rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--profile", action="store_true", help="then profile each stage: own time by area, top functions")
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="auto: uvloop if installed, as the server")
    ap.add_argument("--floor", action="store_true", help="also time the same exchanges over bare aiohttp")
    ap.add_argument("--top", type=int, default=25, help="functions listed per stage with --profile")
    args = ap.parse_args()
    runner = asyncio.run
    if args.loop != "asyncio":
        try:
            import uvloop  # type: ignore[import-not-found,unused-ignore]

            runner = uvloop.run
        except ImportError:
            if args.loop == "uvloop":
                ap.error("uvloop is not installed: uv run --extra local --extra fast ...")
    runner(run(args))


if __name__ == "__main__":
    main()
