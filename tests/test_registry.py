"""Providers by table: a third vendor for a stage is a module and one table line."""

from __future__ import annotations

import pytest

from bot.providers import registry
from bot.providers.failover import FailoverSTT
from bot.settings import Settings, SettingsError

ENV = {"TRIAL": "true"}


class ThirdSTT:
    """A stand-in vendor module's adapter: built from the Settings like the others."""

    name = "third"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        return "third"


def test_a_table_line_makes_a_provider_that_settings_accept_and_build_makes(monkeypatch):
    with pytest.raises(SettingsError, match="'third' is not a provider; expected one of deepgram, whisper"):
        Settings.from_env({**ENV, "STT_PROVIDER": "third"})
    monkeypatch.setitem(registry.TABLE, "stt", {**registry.TABLE["stt"], "third": f"{__name__}:ThirdSTT"})
    settings = Settings.from_env({**ENV, "STT_PROVIDER": "third,whisper"})
    assert settings.stt_provider == "third,whisper"
    stt = registry.make("stt", "third", settings)
    assert isinstance(stt, ThirdSTT) and stt.settings is settings
    chain = registry._chain("stt", "third,whisper", settings)
    assert isinstance(chain, FailoverSTT) and [m.name for m in chain.members][0] == "third"


def test_an_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown STT provider 'nope'; expected one of deepgram, whisper"):
        registry.make("stt", "nope", Settings.from_env(ENV))
    assert registry.names("llm") == ("openai", "receptionist") and registry.names("tts") == ("elevenlabs", "piper")
