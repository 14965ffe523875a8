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


def build(settings: Settings) -> Providers:
    return Providers(
        stt=make_stt(settings.stt_provider, settings),
        llm=make_llm(settings.llm_provider, settings),
        tts=make_tts(settings.tts_provider, settings),
    )
