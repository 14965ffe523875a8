"""Providers by table: each stage's adapters by name, built from Settings in one place.

A vendor is one module; adding one for a stage is that module and one line of ``TABLE``.
An adapter takes its options as keywords; its ``from_settings`` classmethod is the one
place that reads them from the ``Settings``. A vendor whose options are its own (a key, a
voice) declares their variables on its table line (``Vendor(target, env=..., needs=...)``):
``Settings.from_env`` reads them once into ``Settings.vendor_env`` and refuses a chain that
names the vendor without the ``needs``; the vendors that came first have typed fields in
``Settings`` instead. Modules are imported only when their provider is configured, so the
cloud-only install does not need the embedded engines and vice versa. ``Settings.from_env``
validates ``*_PROVIDER`` against the same table. The streaming STT for calls is built here
too (``LIVE``, ``build_live``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from bot.providers.base import LLM, STT, TTS
from bot.providers.stt_stream import StreamingSTT

if TYPE_CHECKING:
    from bot.settings import Settings


@dataclass(frozen=True)
class Vendor:
    """A table line with options of its own: ``target`` "module:Class"; ``env`` the
    variables its ``from_settings`` reads from ``Settings.vendor_env``; ``needs`` those
    that must be set when a chain names it."""

    target: str
    env: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()


STAGES = ("stt", "llm", "tts")

# stage -> provider name -> "module:Class" or a Vendor (built by the class's ``from_settings``)
TABLE: dict[str, dict[str, str | Vendor]] = {
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

# STT provider name -> its streaming adapter ("module:Class"), used for calls when it is the
# first STT of the chain and STT_STREAMING is on; a ``StreamingSTT`` (bot/providers/stt_stream.py)
LIVE: dict[str, str] = {
    "deepgram": "bot.providers.deepgram_live:DeepgramLive",
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


def make(stage: str, name: str, settings: Settings, **kw: Any) -> Any:
    """One adapter of ``stage`` by its table name (``kw``: to its ``from_settings``)."""
    try:
        target = TABLE[stage][name]
    except KeyError:
        raise ValueError(f"unknown {stage.upper()} provider {name!r}; expected one of {', '.join(TABLE.get(stage, ()))}") from None
    return _load(target.target if isinstance(target, Vendor) else target).from_settings(settings, **kw)


def vendors() -> list[tuple[str, str, Vendor]]:
    """(stage, name, Vendor) for every table line that declares options of its own."""
    return [(stage, name, v) for stage, lines in TABLE.items() for name, v in lines.items() if isinstance(v, Vendor)]


def _load(target: str) -> Any:
    module, cls = target.split(":")
    return getattr(import_module(module), cls)


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


def build_live(settings: Settings) -> StreamingSTT | None:
    """The streaming transcriber for calls, or None (turns end by the local VAD and go to
    the batch STT): the first STT of the chain's ``LIVE`` adapter when STT_STREAMING is on
    and the adapter says it is configured (``configured(settings)``, if it has one)."""
    first = settings.stt_provider.split(",")[0].strip()
    target = LIVE.get(first)
    if target is None or not settings.stt_streaming:
        return None
    cls = _load(target)
    configured = getattr(cls, "configured", None)
    if configured is not None and not configured(settings):
        return None
    return cls.from_settings(settings)
