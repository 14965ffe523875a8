"""Build the configured provider for each stage from Settings (imports lazily, so
the cloud-only install does not need the embedded engines and vice versa)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.providers.base import LLM, STT, TTS
from bot.settings import Settings


@dataclass
class Providers:
    stt: STT
    llm: LLM
    tts: TTS

    def all(self) -> tuple:
        return (self.stt, self.llm, self.tts)


def make_stt(name: str, settings: Settings) -> STT:
    if name == "deepgram":
        from bot.providers.deepgram import DeepgramSTT

        return DeepgramSTT(settings)
    if name == "whisper":
        from bot.providers.whisper import WhisperSTT

        return WhisperSTT(settings)
    raise ValueError(f"unknown STT provider {name!r}")


def make_llm(name: str, settings: Settings) -> LLM:
    if name == "openai":
        from bot.providers.openai_llm import OpenAILLM

        return OpenAILLM(settings)
    if name == "receptionist":
        from bot.providers.receptionist import Receptionist

        return Receptionist(settings)
    raise ValueError(f"unknown LLM provider {name!r}")


def make_tts(name: str, settings: Settings) -> TTS:
    if name == "elevenlabs":
        from bot.providers.elevenlabs import ElevenLabsTTS

        return ElevenLabsTTS(settings)
    if name == "piper":
        from bot.providers.piper import PiperTTS

        return PiperTTS(settings)
    raise ValueError(f"unknown TTS provider {name!r}")


def _chain(stage: str, names: str, make, settings: Settings):
    members = [make(n.strip(), settings) for n in names.split(",") if n.strip()]
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
        stt=_chain("stt", settings.stt_provider, make_stt, settings),
        llm=_chain("llm", settings.llm_provider, make_llm, settings),
        tts=_chain("tts", settings.tts_provider, make_tts, settings),
    )
