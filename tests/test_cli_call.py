"""python -m bot call: steps in order, DTMF, what the caller heard, and a 403 that says what to check."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.providers.registry import Providers
from bot.shell.cli_call import main, ordered_steps, parser
from bot.simulator import Dtmf
from handlers.app import create_app
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.test_calls import OPEN, TOKEN, phone_settings, url


def test_steps_keep_the_command_line_order():
    argv = ["a.wav", "--dtmf", "1", "--out", "x.wav", "b.wav", "--dtmf=2#", "--gap", "0.2", "c.wav", "--no-transcribe"]
    assert ordered_steps(parser(), argv) == ["a.wav", Dtmf("1"), "b.wav", Dtmf("2#"), "c.wav"]


def test_bad_keys_and_no_steps_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--dtmf", "12x"])
    assert info.value.code == 2 and "keys are 0-9, * and #" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])


def test_public_url_and_token_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PUBLIC_URL", "https://bot.example.com")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tok")
    args = parser().parse_args(["a.wav"])
    assert (args.public_url, args.auth_token) == ("https://bot.example.com", "tok")


async def test_a_wrong_token_gets_a_hint_and_the_server_logs_the_checked_url(aiohttp_server, settings, caplog, capsys, tmp_path):
    caplog.set_level(logging.WARNING)
    p = Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS())
    server = await aiohttp_server(create_app(phone_settings(settings), providers=p, embedded_prompt_fallback=False))
    argv = [str(OPEN), "--url", url(server), "--auth-token", "not-the-token", "--public-url", "https://bot.example.com",
            "--out", str(tmp_path / "heard.wav"), "--no-transcribe"]
    rc = await asyncio.to_thread(main, argv)
    out = capsys.readouterr().out
    assert rc == 1 and "webhook answered 403" in out
    assert "TWILIO_AUTH_TOKEN" in out and "PUBLIC_URL" in out and "https://bot.example.com" in out, out
    bad = [r for r in caplog.records if r.getMessage() == "bad twilio signature"]
    assert bad and bad[0].fields["checked_url"] == url(server) + "/twilio/voice", [getattr(r, "fields", None) for r in bad]


async def test_dtmf_step_and_what_the_caller_heard(aiohttp_server, settings, capsys, tmp_path):
    llm = ScriptedLLM(text="We open at nine.")
    p = Providers(stt=ScriptedSTT(), llm=llm, tts=ScriptedTTS())
    server = await aiohttp_server(create_app(phone_settings(settings), providers=p, embedded_prompt_fallback=False))
    out_wav = tmp_path / "heard.wav"
    argv = [str(OPEN), "--dtmf", "1", "--url", url(server), "--auth-token", TOKEN, "--out", str(out_wav), "--no-transcribe", "--gap", "0.2"]
    rc = await asyncio.to_thread(main, argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "caller 1: open_tomorrow_joe.wav" in out and "caller 2: pressed 1" in out, out
    assert out.count("bot (reply") == 2 and out_wav.stat().st_size > 8000
    assert any("DTMF 1" in m["content"] for msgs in llm.seen for m in msgs if m["role"] == "user"), llm.seen


class Borrowed:
    """The session's piper, lent to an app: the app's shutdown must not close it."""

    def __init__(self, tts) -> None:
        self.inner, self.name = tts, tts.name

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def synthesize(self, text: str, *, mulaw: bool):
        return self.inner.synthesize(text, mulaw=mulaw)


@pytest.mark.xdist_group("embedded")
async def test_the_reply_is_transcribed_with_the_embedded_stt(aiohttp_server, settings, engines, capsys, tmp_path):
    _, piper = engines
    p = Providers(stt=ScriptedSTT(), llm=ScriptedLLM(text="We open at nine tomorrow morning."), tts=Borrowed(piper))
    s = phone_settings(settings, tts_timeout=10, llm_timeout=10, stt_timeout=10)
    server = await aiohttp_server(create_app(s, providers=p, embedded_prompt_fallback=False))
    rc = await asyncio.to_thread(main, [str(OPEN), "--url", url(server), "--auth-token", TOKEN, "--out", str(tmp_path / "h.wav")])
    out = capsys.readouterr().out
    assert rc == 0, out
    reply = next(line for line in out.splitlines() if "bot (reply 1" in line).lower()
    assert "open" in reply and ("nine" in reply or "9" in reply), out


async def test_the_report_shows_the_servers_own_words_and_labels_the_audio_check(aiohttp_server, settings, capsys, tmp_path, monkeypatch):
    """What the bot said comes from the server's call record (the store it shares through DATA_DIR);
    the re-transcription is only an audio check, labelled as such."""
    from bot.settings import Settings

    stores_transcripts = "store_transcripts" in Settings.__dataclass_fields__  # stored transcripts (issue 22 item 11)
    extra = {"store_transcripts": True} if stores_transcripts else {}
    p = Providers(stt=ScriptedSTT(text="what time do you open"), llm=ScriptedLLM(text="We open at nine tomorrow."), tts=ScriptedTTS())
    s = phone_settings(settings, **extra)
    server = await aiohttp_server(create_app(s, providers=p, embedded_prompt_fallback=False))
    monkeypatch.setenv("DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    argv = [str(OPEN), "--url", url(server), "--out", str(tmp_path / "heard.wav"), "--no-transcribe"]
    rc = await asyncio.to_thread(main, argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    if stores_transcripts:
        assert "what the bot said (the server's call record):" in out and '"We open at nine tomorrow."' in out, out
    else:
        assert "what the bot said: (the server stores no transcripts" in out, out
    assert "audio check: what the caller heard, re-transcribed" in out
    assert out.index("what the bot said") < out.index("audio check")


def test_the_report_says_where_it_looked_when_there_is_no_store(tmp_path, monkeypatch):
    from bot.shell.cli_call import said_text

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    text = said_text("CA" + "0" * 32, wait_s=0)
    assert "no call records at" in text and str(tmp_path / "elsewhere") in text
    assert not (tmp_path / "elsewhere").exists()  # reading creates nothing
