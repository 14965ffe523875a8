"""The streaming-STT contract: a batch engine behind the VAD adapter is a stream; the
embedded app never imports a cloud SDK; Deepgram's live adapter meets the contract."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from bot.errors import StageError
from bot.providers.stt_stream import Failed, Final, SpeechStarted, StreamingSTT, STTStream
from bot.providers.vad_stream import VadStreamSTT
from media import mulaw, wav
from tests.conftest import caller_wav
from tests.fakes.scripted import ScriptedSTT

SPEECH = mulaw.encode(wav.read(caller_wav("open_tomorrow_joe.wav")).pcm16)
TAIL = mulaw.silence(8000)  # 1 s


async def events_until(stream, n: int, timeout: float = 5.0) -> list:
    got: list = []

    async def run() -> None:
        async for ev in stream.events():
            got.append(ev)
            if len(got) >= n:
                return

    await asyncio.wait_for(run(), timeout)
    return got


async def test_batch_engine_through_vad_is_a_stream_that_ends_turns_itself():
    engine = ScriptedSTT(text=" what time do you open ")
    live = VadStreamSTT(engine)
    assert isinstance(live, StreamingSTT)
    stream = await live.open(call_sid="CA1")
    assert isinstance(stream, STTStream) and stream.error is None
    for i in range(0, len(SPEECH + TAIL), 160):
        stream.send((SPEECH + TAIL)[i : i + 160])
    got = await events_until(stream, 2)
    assert isinstance(got[0], SpeechStarted)
    assert got[1] == Final("what time do you open", speech_final=True, from_finalize=False)
    # the engine got the buffered speech (pre-roll + speech + a short tail), as 8 kHz PCM16
    (nbytes, rate), = engine.calls
    assert rate == 8000 and 2 * 8000 * 1.5 < nbytes < 2 * len(SPEECH + TAIL)
    await stream.aclose()
    assert [ev async for ev in stream.events()] == []


async def test_finalize_mid_speech_transcribes_what_was_heard():
    engine = ScriptedSTT(text="what time")
    stream = await VadStreamSTT(engine).open()
    half = SPEECH[: len(SPEECH) // 2]
    stream.send(half)
    await stream.finalize()
    got = await events_until(stream, 2)
    assert got[-1] == Final("what time", speech_final=True, from_finalize=True)
    await stream.aclose()


async def test_engine_failure_is_failed_and_empty_is_not():
    stream = await VadStreamSTT(ScriptedSTT(error=StageError("stt", "empty_result", "nothing"))).open()
    stream.send(SPEECH + TAIL)
    await stream.finalize()
    got = await events_until(stream, 2)
    assert got[-1] == Final("", speech_final=True, from_finalize=True) and stream.error is None
    await stream.aclose()
    stream = await VadStreamSTT(ScriptedSTT(error=StageError("stt", "upstream_error", "down"))).open()
    stream.send(SPEECH + TAIL)
    got = await events_until(stream, 2)
    assert isinstance(got[-1], Failed) and got[-1].error.code == "upstream_error"
    stream.send(SPEECH)  # after a failure: ignored, no error
    await stream.aclose()


def test_deepgram_live_meets_the_contract():
    from bot.providers.deepgram_live import DeepgramLive
    from bot.settings import Settings

    assert isinstance(DeepgramLive(Settings(deepgram_api_key="k", twilio_validate=False)), StreamingSTT)


def test_the_embedded_app_imports_no_deepgram():
    code = (
        "import sys\n"
        "from bot.settings import Settings\n"
        "from handlers.app import create_app\n"
        "create_app(Settings(twilio_validate=False))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('deepgram', 'openai', 'elevenlabs') or m == 'bot.providers.deepgram_live')\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", out.stdout
