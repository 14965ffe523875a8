"""Shared fixtures: caller audio (shipped samples, else ../shared), settings for tests, scripted apps."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
# A few caller utterances ship with the repository (examples/callers); the large
# corpus (four voices, a noisy set) lives next to the checkout in this workspace only.
SAMPLES = REPO / "examples" / "callers"
# The storage backends (``backend``, ``db_url``) are fixtures for every module that asks for them.
pytest_plugins = ["tests.storage_rig"]
NO_CORPUS = f"needs the shared caller corpus at {SHARED_AUDIO} (absent on a plain clone; examples/callers holds the shipped samples)"


async def eventually(cond: Callable[[], object], within_s: float = 10.0, every_s: float = 0.02) -> None:
    """Wait until ``cond()`` holds: the one poll of the suite, for state owned by the system
    under test that offers no event to wait on. TimeoutError after ``within_s`` (generous:
    the machine may be busy), so a condition that never comes fails instead of hanging."""
    async with asyncio.timeout(within_s):
        while True:
            if cond():
                return
            await asyncio.sleep(every_s)


def caller_path(name: str, folder: str = "callers") -> Path:
    """A caller utterance: the shipped sample if there is one, else the shared
    corpus's file; a test asking for a corpus file on a plain clone is skipped."""
    if folder == "callers" and (SAMPLES / name).is_file():
        return SAMPLES / name
    path = SHARED_AUDIO / folder / name
    if not path.is_file():
        pytest.skip(f"{folder}/{name} {NO_CORPUS}")
    return path


def caller_wav(name: str, folder: str = "callers") -> bytes:
    return caller_path(name, folder).read_bytes()


def manifest(folder: str = "callers") -> list[dict]:
    """The corpus manifest when the corpus is here, else (callers) the shipped samples'."""
    path = SHARED_AUDIO / folder / "manifest.json"
    if not path.is_file() and folder == "callers":
        path = SAMPLES / "manifest.json"
    return json.loads(path.read_text())


def trimmed_speech(name: str, folder: str = "callers") -> bytes:
    """A caller file's PCM16 (8 kHz) without its leading and trailing silence
    (20 ms frames under about -40 dBFS RMS), keeping 40 ms either side."""
    import numpy as np

    from media import wav

    a = wav.read(caller_wav(name, folder))
    x = np.frombuffer(a.pcm16, dtype="<i2")
    n = len(x) // 160
    rms = np.sqrt((x[: n * 160].astype(np.float64).reshape(n, 160) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > 300)
    first, last = max(0, loud[0] - 2), min(n, loud[-1] + 3)
    return x[first * 160 : last * 160].tobytes()


@pytest.fixture(scope="session")
def engines():
    """The embedded whisper and piper, loaded once per test process. They own threads,
    not loop state, so any test's event loop may use them."""
    import asyncio

    from bot.providers.piper import PiperTTS
    from bot.providers.whisper import WhisperSTT

    stt, tts = WhisperSTT(), PiperTTS()
    asyncio.run(stt.start())
    asyncio.run(tts.start())
    yield stt, tts
    asyncio.run(stt.close())
    asyncio.run(tts.close())


def piper_speaker(tts, warm: list[str] = ()):
    """A ``speak(text, output_format)`` for the ElevenLabs fake: real speech from piper.
    ``warm``: texts rendered (mu-law) now, so the fake's own piper time is not spent
    inside the bot's TTS budget on a busy machine."""
    from media import mulaw
    from media.resample import resample

    cache: dict[tuple[str, str], bytes] = {}

    def speak(text: str, fmt: str) -> bytes:
        if (text, fmt) not in cache:
            pcm = b"".join(tts._chunks(text))
            if fmt == "ulaw_8000":
                cache[text, fmt] = mulaw.encode(resample(pcm, tts.pcm_rate, 8000))
            else:
                cache[text, fmt] = resample(pcm, tts.pcm_rate, int(fmt.split("_")[1]))
        return cache[text, fmt]

    for text in warm:
        speak(text, "ulaw_8000")
    return speak


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, twilio_validate=False, trial=True, stt_timeout=0.5, llm_timeout=0.5, tts_timeout=0.5)


def without_front_desk(settings: Settings, tmp_path) -> Settings:
    """The bundled business with no front desk: a call that gives up says goodbye at any hour
    (with one, it is put through while the office is open, and the test would hang on the clock)."""
    from bot.profile import DEFAULT_FILE

    text = Path(DEFAULT_FILE).read_text(encoding="utf-8")
    path = tmp_path / "no-front-desk.toml"
    path.write_text(re.sub(r"(?m)^front_desk = .*$", "", text), encoding="utf-8")
    return settings.with_(business_file=str(path))


def stream_token(app, call_sid: str) -> str:
    """A media-stream token for ``call_sid``, as the voice webhook issues it: tests
    that open /twilio/media directly put it in start.customParameters.token."""
    from bot.carriers.twilio.admission import mint_token

    return mint_token(app, call_sid)


def live_call_sids(app) -> set[str]:
    """CallSids of the live calls (the registry is keyed per stream, not by CallSid)."""
    from handlers.state import CALLS

    return {s.call_sid for s in app[CALLS].values()}


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "virtual_time: run on tests/virtual_time.py's loop: idle waits jump the clock, outside work runs in real time")
    config.addinivalue_line("markers", "real_time: a test of a virtual_time module that waits on the wall clock (time.time(): leases, alert ages), on a stock loop")


def pytest_asyncio_loop_factories(config, item):
    """The loop an async test runs on: the virtual-time loop for ``virtual_time`` tests
    (unless marked ``real_time``), a stock one otherwise."""
    from tests.virtual_time import VirtualTimeLoop

    if item.get_closest_marker("virtual_time") is not None and item.get_closest_marker("real_time") is None:
        return {"virtual": VirtualTimeLoop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture(scope="session")
def encoder():
    """The shared sentence encoder (the local extra); the test skips without it."""
    from bot.understanding.encoder import load_encoder

    enc = load_encoder()
    if enc is None:
        pytest.skip("the sentence encoder package (local extra) is not installed")
    return enc
