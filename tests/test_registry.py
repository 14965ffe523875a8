"""Providers by table: a third vendor for a stage is a module and one table line."""

from __future__ import annotations

from importlib import import_module

import pytest

from bot.profile import Profile
from bot.providers import registry
from bot.providers.deepgram_live import LiveOptions
from bot.providers.failover import FailoverSTT
from bot.settings import Settings, SettingsError

ENV = {"TRIAL": "true"}


class ThirdSTT:
    """A stand-in vendor module's adapter: keyword options, built by ``from_settings`` like the others."""

    name = "third"

    def __init__(self, *, settings: Settings | None = None) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, s: Settings) -> ThirdSTT:
        return cls(settings=s)

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


ADAPTERS = [t if isinstance(t, str) else t.target for stage in registry.TABLE.values() for t in stage.values()] + list(registry.LIVE.values())


@pytest.mark.parametrize("target", ADAPTERS)
def test_an_adapter_built_without_options_equals_the_one_plain_settings_build(target):
    """Keyword defaults are the Settings defaults: by hand and from the environment agree
    until an option is set (the plain values an adapter keeps, not its pools and clients)."""
    module, cls = target.split(":")
    adapter = getattr(import_module(module), cls)
    plain = (str, int, float, bool, type(None), LiveOptions, Profile)

    def options(a: object) -> dict:
        return {k: v for k, v in vars(a).items() if isinstance(v, plain)}

    by_hand, from_settings = options(adapter()), options(adapter.from_settings(Settings()))
    assert by_hand == from_settings
    assert by_hand  # there were options to compare
