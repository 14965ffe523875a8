"""The bench pieces the Pipecat side-by-side needs: talk-over counting, and the fakes'
additions (Deepgram live linear16, ElevenLabs /stream/with-timestamps)."""

from __future__ import annotations

import base64
import json

import numpy as np

from bench.calls import talk_over
from bench.fakes_server import Profile, build
from bot.simulator import CallReport, TurnReport
from tests.fakes.deepgram_live import LiveBehaviour, _Stream


def _report() -> CallReport:
    r = CallReport()
    r.turns = [TurnReport(1, 10.0, 13.0), TurnReport(2, 20.0, 23.0)]
    r.turns[1].clears_ms = [100.0, 600.0]  # the first clear comes before the caller's first word
    # turn 1: two bot messages inside the utterance (after its 300 ms lead-in); turn 2: one before
    # the clear at 600 ms (20.6 s), three after it, one after the utterance
    r.bot_media_s = [9.0, 10.1, 11.5, 12.9, 20.4, 20.7, 22.0, 22.5, 23.5]
    return r


def test_talk_over_counts_bot_audio_inside_the_utterance() -> None:
    over, clears = talk_over(_report(), barge=False, onsets_ms=[300.0, 300.0])
    assert over == [2, 4]  # 10.1 is in the lead-in silence, 9.0 and 23.5 are outside
    assert clears == [None, 300.0]  # from the first word (300 ms) to the first clear after it


def test_talk_over_in_barge_in_calls_counts_only_after_the_clear() -> None:
    over, clears = talk_over(_report(), barge=True, onsets_ms=[300.0, 300.0])
    assert over == [0, 3]  # no clear in turn 1: nothing counts; turn 2: 20.7, 22.0 and 22.5
    assert clears[1] == 300.0


def _tone_pcm(ms: int, rate: int, amp: int = 8000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (amp * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def test_live_fake_hears_linear16_at_its_sample_rate() -> None:
    state = LiveBehaviour(transcripts=["Hello there."])
    s = _Stream(state, {"encoding": "linear16", "sample_rate": "16000", "endpointing": "300", "vad_events": "true"})
    out = s.audio(_tone_pcm(600, 16000)) + s.audio(bytes(16000 * 2 * 400 // 1000))
    assert out[0]["type"] == "SpeechStarted"
    finals = [m for m in out if m["type"] == "Results" and m["is_final"]]
    assert len(finals) == 1 and finals[0]["channel"]["alternatives"][0]["transcript"] == "Hello there."
    assert abs(s.now - 1.0) < 1e-9  # 1 s of audio at 16 kHz, not 4 s of "mu-law"


def test_live_fake_mulaw_unchanged() -> None:
    from media import mulaw

    s = _Stream(LiveBehaviour(transcripts=["Hi."]), {"endpointing": "300"})
    out = s.audio(mulaw.encode(_tone_pcm(400, 8000))) + s.audio(b"\xff" * (8000 // 2))
    assert abs(s.now - 0.9) < 1e-9
    assert any(m["type"] == "Results" and m["speech_final"] for m in out)


async def test_elevenlabs_with_timestamps_stream(aiohttp_client) -> None:
    app, _ = build(Profile(tts_first_s=0.0, tts_chunk_delay_s=0.0))
    client = await aiohttp_client(app)
    text = "We open at nine."
    r = await client.post("/v1/text-to-speech/v1/stream/with-timestamps", params={"output_format": "pcm_8000"},
                          json={"text": text, "model_id": "eleven_flash_v2_5"}, headers={"xi-api-key": "k"})
    assert r.status == 200
    lines = [json.loads(x) for x in (await r.text()).splitlines() if x.strip()]
    audio = b"".join(base64.b64decode(x["audio_base64"]) for x in lines)
    assert len(audio) == 8000 * 2 * 60 * len(text) // 1000  # 60 ms of pcm_8000 per character
    assert "".join(c for x in lines for c in x.get("alignment", {}).get("characters", [])) == text
    bad = await client.post("/v1/text-to-speech/v1/stream/with-timestamps", params={"output_format": "mp3_44100_128"},
                            json={"text": text}, headers={"xi-api-key": "k"})
    assert bad.status == 422


def test_summarize_counts_frames_not_messages_when_a_message_carries_several() -> None:
    """With MEDIA_FRAMES_PER_MESSAGE=3 a reply of 9 frames is 3 messages 60 ms apart:
    no frame dropped, pacing on time, no gap; one late message is a gap."""
    from bench.calls import summarize

    def report(arrivals: list[float]) -> CallReport:
        r = CallReport(call_sid="CA1", greeting_ms=100.0)
        r.turns = [TurnReport(1, 1.0, 2.0)]
        r.turns[0].first_audio_ms = 500.0
        r.bot_media_s = [0.1, 0.16, 0.22, *arrivals]  # the greeting, then the reply
        r.bot_media_frames = [3] * len(r.bot_media_s)
        return r

    s = summarize(report([2.5, 2.56, 2.62, 2.68]), greeting_frames=9, reply_frames=12, planned=1)
    assert s["ok"] and s["dropped"] == 0 and s["underruns"] == 0 and s["turns"][0]["frames"] == 12
    assert max(s["pace"]) < 1.0
    late = summarize(report([2.5, 2.56, 2.62, 2.80]), greeting_frames=9, reply_frames=12, planned=1)
    assert late["underruns"] == 1 and max(late["pace"]) > 50
    short = summarize(report([2.5, 2.56]), greeting_frames=9, reply_frames=12, planned=1)
    assert short["dropped"] == 6
