"""Deepgram live STT through the real SDK, against a wire-level fake on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bot.providers.deepgram_live import DeepgramLive, LiveOptions, LiveTranscriber
from bot.providers.stt_stream import Failed, Final, Interim, Reconnected, SpeechStarted, UtteranceEnd
from bot.providers.stt_stream import STTEvent as LiveEvent
from bot.settings import Settings
from media import mulaw, wav
from tests.conftest import caller_wav, eventually
from tests.fakes.deepgram_live import LiveBehaviour, deepgram_live_app

# deepgram-sdk's live client imports websockets' deprecated legacy names.
pytestmark = [pytest.mark.filterwarnings(r"ignore:websockets\.\S+ is deprecated:DeprecationWarning"), pytest.mark.virtual_time]  # virtual_time: tests/virtual_time.py

KEY = "dg-live-secret-0001"
TIMEOUT = 0.3
OPEN_TOMORROW = "What time do you open tomorrow morning?"
FRAME = 160  # 20 ms of 8 kHz mu-law


# The socket's finer knobs are LiveOptions, not settings: short ones for the tests.
SOCKET_KNOBS = {"deepgram_keepalive_s": "keepalive_s", "deepgram_replay_s": "replay_s", "deepgram_reconnect_attempts": "reconnect_attempts",
                "deepgram_close_timeout_s": "close_timeout"}


def live_adapter(s: Settings, **knobs: Any) -> DeepgramLive:
    opts = replace(DeepgramLive.from_settings(s).options, close_timeout=0.5)
    opts = replace(opts, **{SOCKET_KNOBS[k]: v for k, v in knobs.items()})
    return DeepgramLive(api_key=s.deepgram_api_key, base_url=s.deepgram_base_url, options=opts)


def _utterance() -> bytes:
    """open_tomorrow_joe.wav (2.8 s; speech ~0.34-2.2 s) as raw mu-law."""
    return mulaw.encode(wav.read(caller_wav("open_tomorrow_joe.wav")).pcm16)


UTTERANCE = _utterance()
TAIL = mulaw.silence(12000)  # 1.5 s: past endpointing (0.3 s) and utterance_end (1 s)


async def feed(t: LiveTranscriber, audio: bytes, pace: float = 0.0) -> None:
    """Send in 20 ms frames; ``pace`` seconds between frames (0 = as fast as the loop)."""
    for i in range(0, len(audio), FRAME):
        t.send(audio[i : i + FRAME])
        await asyncio.sleep(pace)


async def collect(t: LiveTranscriber, until: Callable[[LiveEvent], bool], timeout: float = 5.0) -> list[LiveEvent]:
    got: list[LiveEvent] = []

    async def run() -> None:
        async for ev in t.events():
            got.append(ev)
            if until(ev):
                return

    await asyncio.wait_for(run(), timeout)
    return got


def finals(events: list[LiveEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, Final) and e.text]


@dataclass
class Rig:
    state: LiveBehaviour
    live: DeepgramLive
    settings: Settings

    async def open(self) -> LiveTranscriber:
        return await self.live.open(call_sid="CA" + "0" * 32)


@pytest.fixture
async def rig(aiohttp_server) -> Any:
    made: list[Rig] = []

    async def make(key: str = KEY, **behaviour: Any) -> Rig:
        knobs = {k: behaviour.pop(k) for k in list(behaviour) if k in SOCKET_KNOBS}
        settings_kw = {k: behaviour.pop(k) for k in list(behaviour) if k.startswith(("deepgram_", "stt_"))}
        state = LiveBehaviour(**behaviour)
        server = await aiohttp_server(deepgram_live_app(state))
        s = Settings(
            deepgram_api_key=key,
            deepgram_base_url=str(server.make_url("")),
            stt_timeout=settings_kw.pop("stt_timeout", TIMEOUT),
            deepgram_reconnect_backoff_s=settings_kw.pop("deepgram_reconnect_backoff_s", 0.02),
            **settings_kw,
        )
        live = live_adapter(s, **knobs)
        await live.start()
        r = Rig(state, live, s)
        made.append(r)
        return r

    yield make
    for r in made:
        await r.live.close()


# ------------------------------------------------------------------ happy path


async def test_speech_gives_interims_then_speech_final_then_utterance_end(rig):
    r = await rig()
    t = await r.open()
    assert t.error is None and t.connected
    await feed(t, UTTERANCE + TAIL, pace=0.001)
    events = await collect(t, lambda e: isinstance(e, UtteranceEnd))
    kinds = [type(e) for e in events]
    assert kinds[0] is SpeechStarted
    final_at = kinds.index(Final)
    assert Interim in kinds[:final_at], "interims come before the final"
    assert all(OPEN_TOMORROW.startswith(e.text) for e in events if isinstance(e, Interim))
    final = events[final_at]
    assert final == Final(OPEN_TOMORROW, speech_final=True, from_finalize=False)
    assert isinstance(events[-1], UtteranceEnd) and kinds.index(UtteranceEnd) > final_at
    assert 1.9 < events[-1].last_word_end < 2.4  # the wav's speech ends near 2.2 s
    await t.aclose()
    seen = r.state.last
    assert seen.controls == ["CloseStream"] and seen.closed == "CloseStream"
    assert seen.audio_bytes == len(UTTERANCE + TAIL) == t.stats.sent_bytes
    assert t.stats.garbage == t.stats.dropped_bytes == t.stats.reconnects == 0


async def test_query_params_and_auth_header(rig):
    r = await rig()
    t = await r.open()
    await t.aclose()
    seen = r.state.last
    assert seen.authorization == f"Token {KEY}"
    assert seen.query == {
        "model": "nova-3",
        "encoding": "mulaw",
        "sample_rate": "8000",
        "channels": "1",
        "interim_results": "true",
        "endpointing": "200",
        "utterance_end_ms": "1000",
        "vad_events": "true",
        "smart_format": "true",
    }


async def test_options_come_from_settings_and_utterance_end_is_at_least_1000(rig):
    r = await rig(deepgram_endpointing_ms=450, deepgram_utterance_end_ms=600)
    assert DeepgramLive.from_settings(r.settings.with_(deepgram_model="nova-2")).options.model == "nova-2"
    assert DeepgramLive.from_settings(Settings()).options == LiveOptions()  # plain Settings: the defaults
    t = await r.open()
    await t.aclose()
    assert r.state.last.query["endpointing"] == "450"
    assert r.state.last.query["utterance_end_ms"] == "1000"  # Deepgram's minimum


# ------------------------------------------------------------------ control messages


async def test_keepalive_only_when_idle(rig):
    r = await rig(deepgram_keepalive_s=0.15, idle_close_s=0.5)
    t = await r.open()
    await asyncio.sleep(0.7)  # idle: KeepAlives keep the fake's idle timer from closing
    idle_keepalives = r.state.controls("KeepAlive")
    assert idle_keepalives >= 3
    assert t.stats.keepalives == idle_keepalives
    assert r.state.last.closed == "" and len(r.state.connections) == 1
    # Audio in real time (20 ms frames) for 0.6 s: no KeepAlive while it flows.
    await feed(t, mulaw.silence(4800), pace=0.02)
    assert r.state.controls("KeepAlive") == idle_keepalives
    await t.aclose()


async def test_audio_is_batched_while_voiced_and_goes_at_once_after_the_voice_stops(rig):
    r = await rig(deepgram_keepalive_s=30.0)  # held audio would wait for this: far past eventually()'s 10 s
    t = await r.open()
    seen = r.state.last
    speech = UTTERANCE[8000 : 8000 + 50 * FRAME]  # 1 s the local VAD called voiced
    for i in range(0, len(speech), FRAME):
        t.send(speech[i : i + FRAME], voiced=True)
        await asyncio.sleep(0)
    chunk = t._sopts.chunk_bytes
    await eventually(lambda: seen.audio_bytes >= len(speech) - chunk)
    assert seen.audio_frames <= len(speech) // chunk  # whole messages, never one per 20 ms frame
    assert seen.audio_bytes % chunk == 0  # what is still held is less than a message
    # The first half of the endpointing's silence is held too (a gap between words) ...
    hold = t._sopts.quiet_hold_bytes
    assert hold == r.settings.deepgram_endpointing_ms // 2 * 8
    sent = len(speech) // chunk * chunk
    await eventually(lambda: seen.audio_bytes == sent)
    for _ in range(hold // FRAME):
        t.send(mulaw.silence(FRAME), voiced=False)
    for _ in range(50):  # the writer has every chance to run: it must not take it
        await asyncio.sleep(0)
    assert seen.audio_bytes == sent and t._pending_bytes == len(speech) + hold - sent
    # ... the frame past it sends everything held with it ...
    t.send(mulaw.silence(FRAME), voiced=False)
    await eventually(lambda: seen.audio_bytes == len(speech) + hold + FRAME)
    # ... and every later frame of the silence after speech goes up on its own, at once
    for k in range(1, 6):
        t.send(mulaw.silence(FRAME), voiced=False)
        await eventually(lambda k=k: seen.audio_bytes == len(speech) + hold + (k + 1) * FRAME)
    assert t.stats.sent_bytes == seen.audio_bytes
    await t.aclose()


async def test_once_the_engine_has_found_the_endpoint_the_silence_is_batched_again(rig):
    r = await rig(deepgram_keepalive_s=30.0)
    t = await r.open()
    seen = r.state.last
    speech_end = int(2.25 * 8000)  # open_tomorrow_joe: speech ~0.34-2.2 s
    for i in range(0, speech_end, FRAME):
        t.send(UTTERANCE[i : i + FRAME], voiced=i >= int(0.3 * 8000))
        await asyncio.sleep(0)
    for _ in range(25):  # 0.5 s of silence after the voice: past the endpointing (0.3 s)
        t.send(mulaw.silence(FRAME), voiced=False)
        await asyncio.sleep(0)
    await collect(t, lambda e: isinstance(e, Final) and e.speech_final)
    before = seen.audio_frames
    for _ in range(10):  # still inside 1.2 s of the voice, but the endpoint is found
        t.send(mulaw.silence(FRAME), voiced=False)
        await asyncio.sleep(0)
    total = -(-speech_end // FRAME) * FRAME + 35 * FRAME
    await eventually(lambda: seen.audio_bytes + t._pending_bytes == total)
    assert t._pending_bytes < t._sopts.chunk_bytes  # held: less than a message
    assert seen.audio_frames - before <= 2  # 200 ms in at most two messages, not ten 20 ms ones
    await t.aclose()


async def test_silence_not_after_a_voice_is_batched_and_held_audio_never_waits_past_a_keepalive(rig):
    r = await rig(deepgram_keepalive_s=0.15)
    t = await r.open()
    seen = r.state.last
    silence = mulaw.silence(40 * FRAME)  # 0.8 s before the caller has said anything
    for i in range(0, len(silence), FRAME):
        t.send(silence[i : i + FRAME], voiced=False)
        await asyncio.sleep(0)
    await eventually(lambda: seen.audio_bytes == len(silence))
    assert seen.audio_frames <= len(silence) // t._sopts.chunk_bytes
    t.send(mulaw.silence(2 * FRAME), voiced=False)  # 40 ms more: held ...
    for _ in range(50):  # the writer has every chance to run: it must not take it
        await asyncio.sleep(0)
    assert t._pending_bytes == 2 * FRAME and seen.audio_bytes == len(silence)
    # ... until a keep-alive would be due: then it goes up instead of the keep-alive
    await eventually(lambda: seen.audio_bytes == len(silence) + 2 * FRAME)
    assert r.state.controls("KeepAlive") == 0
    await t.aclose()


async def test_without_keepalive_the_fake_closes_an_idle_socket_and_we_reconnect(rig):
    r = await rig(deepgram_keepalive_s=60.0, idle_close_s=0.2)
    t = await r.open()
    events = await collect(t, lambda e: isinstance(e, Reconnected), timeout=2.0)
    assert isinstance(events[-1], Reconnected)
    assert r.state.connections[0].closed == "idle"
    await t.aclose()


async def test_finalize_flushes_the_unfinished_utterance(rig):
    r = await rig()
    t = await r.open()
    await feed(t, UTTERANCE[: 2 * 8000])  # speech still going at 2.0 s: no endpoint yet
    await t.finalize()
    events = await collect(t, lambda e: isinstance(e, Final))
    assert events[-1] == Final(OPEN_TOMORROW, speech_final=False, from_finalize=True)
    assert r.state.last.controls == ["Finalize"]
    await t.aclose()


# ------------------------------------------------------------------ reconnects


async def test_dropped_socket_mid_utterance_reconnects_and_replays(rig):
    r = await rig(script=["drop"], drop_after_messages=3)  # only the first socket is cut
    t = await r.open()
    await feed(t, UTTERANCE + TAIL, pace=0.001)
    events = await collect(t, lambda e: isinstance(e, UtteranceEnd))
    first, second = r.state.connections
    assert first.closed == "drop" and first.sent == ["SpeechStarted", "Results", "Results"]
    recon = [e for e in events if isinstance(e, Reconnected)]
    assert len(recon) == 1 and recon[0].attempts == 1
    # Nothing was finalised before the drop: everything sent so far went up again.
    assert second.audio_bytes == len(UTTERANCE + TAIL)
    assert t.stats.replayed_bytes >= first.audio_bytes > 0
    assert recon[0].replayed_ms == pytest.approx(t.stats.replayed_bytes / 8, abs=1)
    assert finals(events) == [OPEN_TOMORROW]
    assert [e for e in events if isinstance(e, Final)][0].speech_final
    await t.aclose()


async def test_finalised_text_is_neither_lost_nor_repeated_across_a_drop(rig):
    second_text = "And are you open on Sunday?"
    # Cut the first socket with a close frame during the second utterance.
    r = await rig(
        script=["drop"], drop_at_audio_s=5.0, drop_how="close", transcripts=[OPEN_TOMORROW, second_text]
    )
    t = await r.open()
    first_turn = UTTERANCE + TAIL  # 4.3 s; its final ends near 2.5 s
    await feed(t, first_turn + UTTERANCE + TAIL, pace=0.001)
    ends = 0

    def second_utterance_end(e: LiveEvent) -> bool:
        nonlocal ends
        ends += isinstance(e, UtteranceEnd)
        return ends == 2

    events = await collect(t, second_utterance_end)
    assert finals(events) == [OPEN_TOMORROW, second_text]
    assert sum(isinstance(e, Reconnected) for e in events) == 1
    first, second = r.state.connections
    assert first.closed == "drop"
    # Only audio after the first final (~2.5 s) was replayed, not the whole call.
    sent = len(first_turn + UTTERANCE + TAIL)
    assert second.audio_bytes < sent - 2 * 8000
    assert second.audio_bytes >= sent - int(2.6 * 8000)
    await t.aclose()


async def test_reconnect_gives_up_after_bounded_attempts(rig):
    r = await rig(script=["drop", "500", "500", "500"], drop_after_messages=1)
    t = await r.open()
    t0 = asyncio.get_running_loop().time()
    await feed(t, UTTERANCE)
    events = await collect(t, lambda e: isinstance(e, Failed))
    err = events[-1].error
    assert (err.stage, err.code, err.retryable, err.provider) == ("stt", "upstream_error", True, "deepgram")
    assert "after 3 attempts" in err.message and "500" in err.message
    # the fake records a refused handshake as it answers: the client may see the refusal first
    await eventually(lambda: len(r.state.connections) == 4)
    assert asyncio.get_running_loop().time() - t0 < 10.0  # back-off 0.2 s doubling: well under this on any machine
    assert t.error is err
    t.send(b"\xff" * FRAME)  # ignored after failure, does not raise
    await t.aclose()


async def test_reconnect_refused_with_401_fails_at_once(rig):
    r = await rig(script=["drop", "401"], drop_after_messages=1)
    t = await r.open()
    await feed(t, UTTERANCE)
    events = await collect(t, lambda e: isinstance(e, Failed))
    assert (events[-1].error.code, events[-1].error.retryable) == ("auth", False)
    assert len(r.state.connections) == 2
    await t.aclose()


async def test_close_1008_bad_audio_is_not_retried(rig):
    r = await rig(script=["drop"], drop_after_messages=1, drop_how="close", drop_close_code=1008)
    t = await r.open()
    await feed(t, UTTERANCE)
    events = await collect(t, lambda e: isinstance(e, Failed))
    assert (events[-1].error.code, events[-1].error.retryable) == ("bad_request", False)
    assert len(r.state.connections) == 1
    await t.aclose()


# ------------------------------------------------------------------ handshake failures


@pytest.mark.parametrize(
    ("mode", "code", "retryable"),
    [("401", "auth", False), ("403", "auth", False), ("429", "rate_limited", True), ("500", "upstream_error", True)],
)
async def test_refused_handshake_is_a_failed_event(rig, mode, code, retryable):
    r = await rig(mode=mode)
    t = await r.open()
    assert t.error is not None and not t.connected
    events = await collect(t, lambda e: False, timeout=1.0)  # the stream ends by itself
    assert len(events) == 1 and isinstance(events[0], Failed)
    err = events[0].error
    assert err is t.error
    assert (err.stage, err.code, err.retryable, err.provider) == ("stt", code, retryable, "deepgram")
    assert mode in err.message and KEY not in str(err) and KEY not in repr(err.to_dict())
    assert len(r.state.connections) == 1  # the first handshake is not retried: fail over fast
    await t.aclose()


async def test_wrong_key_is_auth_error(rig):
    r = await rig(key="wrong-key-123")
    r.state.key = KEY + "-other"
    t = await r.open()
    assert (t.error.code, t.error.retryable) == ("auth", False)
    assert "wrong-key-123" not in str(t.error)
    await t.aclose()


async def test_hanging_handshake_times_out_within_budget(rig):
    r = await rig(mode="hang")
    t0 = asyncio.get_running_loop().time()
    t = await r.open()
    elapsed = asyncio.get_running_loop().time() - t0
    assert TIMEOUT <= elapsed < TIMEOUT + 1.0  # bounded; slack for a busy machine
    assert (t.error.code, t.error.retryable) == ("timeout", True)
    events = await collect(t, lambda e: False, timeout=1.0)
    assert [type(e) for e in events] == [Failed]
    await t.aclose()


async def test_no_server_at_all_is_upstream_error(unused_tcp_port):
    s = Settings(deepgram_api_key=KEY, deepgram_base_url=f"http://127.0.0.1:{unused_tcp_port}", stt_timeout=TIMEOUT)
    live = live_adapter(s)
    t = await live.open()
    assert (t.error.code, t.error.retryable) == ("upstream_error", True)
    await live.close()


# ------------------------------------------------------------------ robustness


async def test_garbage_messages_are_counted_and_ignored(rig):
    r = await rig(mode="garbage")
    t = await r.open()
    await feed(t, UTTERANCE + TAIL, pace=0.001)
    events = await collect(t, lambda e: isinstance(e, UtteranceEnd))
    assert finals(events) == [OPEN_TOMORROW]
    assert not any(isinstance(e, (Failed, Reconnected)) for e in events)
    assert t.stats.garbage >= 5
    assert len(r.state.connections) == 1
    await t.aclose()


async def test_send_never_blocks_and_drops_oldest_when_full(rig):
    r = await rig(deepgram_replay_s=1.0)
    t = await r.open()
    for _ in range(100):  # 2 s of audio with no chance for the writer to run
        t.send(b"\xff" * FRAME)
    assert t.stats.dropped_bytes == 100 * FRAME - 8000
    await asyncio.sleep(0.1)
    assert r.state.last.audio_bytes == 8000  # the newest second went up
    await t.aclose()


async def test_aclose_leaves_no_tasks_and_ends_events(rig):
    r = await rig()
    before = asyncio.all_tasks()
    t = await r.open()
    await feed(t, UTTERANCE[:8000])
    consumer = asyncio.create_task(collect(t, lambda e: False))
    await asyncio.sleep(0.05)
    t0 = asyncio.get_running_loop().time()
    await t.aclose()
    await t.aclose()  # idempotent
    assert asyncio.get_running_loop().time() - t0 < 0.5
    events = await asyncio.wait_for(consumer, 1.0)  # events() ended
    assert all(not isinstance(e, Failed) for e in events)
    assert r.state.last.controls == ["CloseStream"]
    await t.finalize()  # after close: a no-op
    left = [task for task in asyncio.all_tasks() - before if task is not asyncio.current_task()]
    ours = [task for task in left if "aiohttp" not in task.get_coro().cr_code.co_filename]
    assert ours == []


async def test_app_close_closes_open_transcribers(rig):
    r = await rig(deepgram_reconnect_backoff_s=5.0, script=["drop", "500"], drop_after_messages=1)
    before = asyncio.all_tasks()
    t1 = await r.open()
    await feed(t1, UTTERANCE[:8000])  # dropped, then waiting 5 s to retry
    t2 = await r.open()
    await asyncio.sleep(0.1)
    t0 = asyncio.get_running_loop().time()
    await r.live.close()
    assert asyncio.get_running_loop().time() - t0 < 1.0
    assert not t1.connected and not t2.connected
    left = [task for task in asyncio.all_tasks() - before if task is not asyncio.current_task()]
    assert [task for task in left if "aiohttp" not in task.get_coro().cr_code.co_filename] == []
