"""Providers by table: each stage's adapters by name, built from Settings in one place.

A vendor is one module; adding one for a stage is that module and one line of ``TABLE``
(plus its key in ``Settings`` and bot/config/providers.py if it needs one). An adapter
takes its options as keywords; its ``from_settings`` classmethod is the one place that
reads them from the ``Settings``. Modules are imported only when their provider is
configured, so the cloud-only install does not need the embedded engines and vice versa.
``Settings.from_env`` validates ``*_PROVIDER`` against the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from bot.providers.base import LLM, STT, TTS

if TYPE_CHECKING:
    from bot.settings import Settings

STAGES = ("stt", "llm", "tts")

# stage -> provider name -> "module:Class" (built by the class's ``from_settings``)
TABLE: dict[str, dict[str, str]] = {
    "stt": {
        "deepgram": "bot.providers.deepgram:DeepgramSTT",
        "whisper": "bot.providers.whisper:WhisperSTT",
    },
    "llm": {
        "openai": "bot.providers.openai_llm:OpenAILLM",
        "receptionist": "bot.providers.receptionist:Receptionist",
    },
    "tts": {
        "elevenlabs": "bot.providers.elevenlabs:ElevenLabsTTS",
        "piper": "bot.providers.piper:PiperTTS",
    },
}


@dataclass
class Providers:
    stt: STT
    llm: LLM
    tts: TTS

    def all(self) -> tuple:
        return (self.stt, self.llm, self.tts)


def names(stage: str) -> tuple[str, ...]:
    """The provider names a stage accepts, in table order."""
    return tuple(TABLE[stage])


def make(stage: str, name: str, settings: Settings) -> Any:
    """One adapter of ``stage`` by its table name."""
    try:
        target = TABLE[stage][name]
    except KeyError:
        raise ValueError(f"unknown {stage.upper()} provider {name!r}; expected one of {', '.join(TABLE.get(stage, ()))}") from None
    module, cls = target.split(":")
    return getattr(import_module(module), cls).from_settings(settings)


def make_stt(name: str, settings: Settings) -> STT:
    return make("stt", name, settings)


def make_llm(name: str, settings: Settings) -> LLM:
    return make("llm", name, settings)


def make_tts(name: str, settings: Settings) -> TTS:
    return make("tts", name, settings)


def _chain(stage: str, chain: str, settings: Settings) -> Any:
    members = [make(stage, n.strip(), settings) for n in chain.split(",") if n.strip()]
    if len(members) == 1:
        return members[0]
    from bot.providers import failover

    cls = {"stt": failover.FailoverSTT, "llm": failover.FailoverLLM, "tts": failover.FailoverTTS}[stage]
    return cls(
        members,
        getattr(settings, f"{stage}_timeout"),
        share=settings.failover_share,
        threshold=settings.breaker_threshold,
        cooldown_s=settings.breaker_cooldown_s,
    )


def build(settings: Settings) -> Providers:
    """One provider per stage, or a failover chain where the setting lists several."""
    return Providers(
        stt=_chain("stt", settings.stt_provider, settings),
        llm=_chain("llm", settings.llm_provider, settings),
        tts=_chain("tts", settings.tts_provider, settings),
    )
