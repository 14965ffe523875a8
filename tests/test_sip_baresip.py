"""A real softphone calls the bot over SIP: ``baresip`` dials from the command line with a
WAV as its microphone (the ``aufile`` module) and records what it hears (``sndfile``);
the recording is transcribed with the embedded whisper: the greeting, then the reply to
"what time do you open tomorrow" (the business file's opening hour)."""

from __future__ import annotations

import asyncio
import re
import shutil
import wave
from pathlib import Path

import pytest

from bot.providers.registry import Providers
from bot.settings import Settings
from handlers.app import create_app, prompt_texts
from handlers.state import CALLS
from tests.conftest import eventually, trimmed_speech

pytestmark = pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is not installed")

MODULES = Path("/usr/lib/baresip/modules")
GREETING_S, REPLY_S = 7.0, 10.0  # silence on the microphone while the bot speaks


def baresip_dir(d: Path, mic: Path) -> Path:
    """A config dir: UDP on loopback, G.711 only, the mic from ``mic``, received audio dumped."""
    d.mkdir(exist_ok=True)
    (d / "config").write_text(
        "poll_method epoll\nsip_listen 127.0.0.1:0\nsip_transports udp\n"
        f"audio_player aufile,{d / 'unused.wav'}\naudio_source aufile,{mic}\naudio_alert aufile,{d / 'alert.wav'}\n"
        f"module_path {MODULES}\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\n"
        f"module_app account.so\nmodule_app menu.so\nsnd_path {d}\nrtp_ports 33000-33999\n"
    )
    (d / "accounts").write_text("<sip:+14155550188@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
    return d


def write_mic(path: Path) -> float:
    pcm = trimmed_speech("open_tomorrow_joe.wav")
    silence = lambda s: b"\x00\x00" * int(8000 * s)  # noqa: E731
    audio = silence(GREETING_S) + pcm + silence(REPLY_S)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(audio)
    return len(audio) / 16000


def read_pcm(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.readframes(w.getnframes()), w.getframerate()


async def test_baresip_calls_and_hears_the_greeting_and_the_opening_hours(aiohttp_server, tmp_path, engines):
    from bot.carriers.sip.carrier import SIP_SERVER
    from bot.hours import clock_text
    from bot.providers.receptionist import Receptionist

    stt, tts = engines
    s = Settings(data_dir=tmp_path, twilio_validate=False, trial=True, sip_listen=(("udp", "127.0.0.1", 0),),
                 sip_allow=("127.0.0.1/32",), rtp_ports=(34000, 34999))
    app = create_app(s, providers=Providers(stt=stt, llm=Receptionist.from_settings(s), tts=tts))
    await aiohttp_server(app)
    host, port = app[SIP_SERVER].endpoint.local_addr("udp")
    conf = baresip_dir(tmp_path / "baresip", tmp_path / "mic.wav")
    seconds = write_mic(tmp_path / "mic.wav")
    proc = await asyncio.create_subprocess_exec(
        "baresip", "-f", str(conf), "-e", f"/dial sip:bot@{host}:{port}", "-t", str(int(seconds + 4)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=conf,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), seconds + 30)
    log = out.decode(errors="replace")
    assert "Call established" in log, log[-2000:]
    await eventually(lambda: len(app[CALLS]) == 0, within_s=15)  # baresip hung up at the mic's end
    heard = sorted(conf.glob("dump-*-dec.wav"))
    assert heard, log[-2000:]
    pcm, rate = read_pcm(heard[-1])
    split = int(GREETING_S * rate) * 2
    greeting = (await stt.transcribe(pcm[:split], rate)).lower()
    reply = (await stt.transcribe(pcm[split:], rate)).lower()
    words = [w for w in prompt_texts(s)["greeting"].lower().replace(".", " ").replace(",", " ").split() if len(w) > 4]
    assert sum(w in greeting for w in words) >= len(words) // 2, (greeting, words)
    squeezed = re.sub(r"[\s.:]|00", "", reply).replace("nine", "9").replace("five", "5")
    for hour in (9 * 60, 17 * 60):  # the example business file's hours, as whisper writes them ("9am", "9 a.m.")
        assert re.sub(r"[\s.:]|00", "", clock_text(hour).lower()) in squeezed, reply
