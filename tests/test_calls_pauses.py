"""A caller who pauses mid-sentence, on the batch STT path (local VAD), over real
websockets with scripted providers: with TURN_COMPLETENESS the bot judges the words
of the speculative turn and waits for the rest; without it, it answers the half."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.providers.registry import Providers
from handlers.app import create_app
from tests.conftest import trimmed_speech
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

TOKEN = "test-auth-token"
FIRST, WHOLE = "I want to", "I want to know what time you open tomorrow."


@dataclass
class HalfOrWholeSTT(ScriptedSTT):
    """Hears the first half alone as unfinished words, anything longer as the whole sentence."""

    whole_after_bytes: int = 0

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        await super().transcribe(pcm16, rate)
        return WHOLE if len(pcm16) > self.whole_after_bytes else FIRST


def paused_sentence(pause_ms: int) -> tuple[bytes, int]:
    """One caller turn: speech, a ``pause_ms`` pause, speech (8 kHz WAV), and the PCM
    length of the first half with its pre-roll (what a speculative turn on it holds)."""
    from media import wav

    a, b = trimmed_speech("open_tomorrow_joe.wav"), trimmed_speech("address_joe.wav")
    silence = b"\0\0" * (8 * 300)
    return wav.write_pcm16(silence + a + b"\0\0" * (8 * pause_ms) + b + silence, 8000), len(a) + len(silence)


@pytest.mark.parametrize("completeness", [True, False], ids=["completeness", "off"])
async def test_a_pause_past_the_end_silence_gets_one_answer_to_the_whole_sentence(aiohttp_server, settings, completeness):
    # END_SILENCE_MS 700, a 1.1 s pause: past the end of turn, short of the 1.4 s unfinished words wait
    utterance, first_len = paused_sentence(1100)
    stt = HalfOrWholeSTT(whole_after_bytes=first_len + 8 * 2 * 600)
    p = Providers(stt=stt, llm=ScriptedLLM(), tts=ScriptedTTS())
    s = settings.with_(twilio_validate=True, twilio_auth_token=TOKEN, end_silence_ms=700, early_turn_ms=300,
                       turn_completeness=completeness, stt_timeout=2.0, llm_timeout=2.0, tts_timeout=2.0)
    server = await aiohttp_server(create_app(s, providers=p, embedded_prompt_fallback=False))
    report = await simulate_call(str(server.make_url("")).rstrip("/"), [utterance], auth_token=TOKEN, max_wait_s=10)
    assert not report.error and len(report.turns) == 1
    turn = report.turns[0]
    during = [x for x in report.bot_media_s if turn.speech_start_s < x <= turn.speech_end_s]
    last_request = p.llm.seen[-1]
    if completeness:
        assert during == [], f"bot audio while the caller still spoke: {len(during)} messages"
        assert turn.first_audio_ms is not None  # answered after the caller finished
        assert last_request == [{"role": "user", "content": WHOLE}]  # one answer, to the whole sentence
        assert any(n > first_len + 8 * 2 * 600 for n, _ in stt.calls)  # its STT heard both halves at once
    else:  # today's behaviour, so the test above can fail: the half is answered during the pause
        assert [m["role"] for m in last_request][:2] == ["user", "assistant"] and last_request[0]["content"] == FIRST
