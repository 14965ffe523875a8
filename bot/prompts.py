"""Fixed prompts (greeting, fallback, trouble, reprompt, goodbye, busy) rendered to 8 kHz
mu-law at start-up and played from memory, so the caller hears them even when
every provider is down. Each rendering is also cached on disk, keyed by text and
voice, so a restart during a TTS outage still has them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import StageError
from bot.files import private_dir
from bot.logs import kv
from bot.providers.base import TTS

log = logging.getLogger("bot.prompts")

PROMPT_NAMES = ("greeting", "fallback", "trouble", "reprompt", "goodbye", "busy")


def failure_prompt(stage: str) -> str:
    """Which prompt a failed turn plays: "fallback" ("didn't catch that") only when the
    speech was not understood; a failed LLM or TTS heard the caller fine, so it is
    "trouble" ("I'm having a little trouble right now...")."""
    return "fallback" if stage == "stt" else "trouble"


@dataclass
class PromptBank:
    audio: dict[str, bytes] = field(default_factory=dict)  # name -> mu-law 8 kHz
    source: dict[str, str] = field(default_factory=dict)  # name -> "tts:<name>" | "cache" | "missing"
    text: dict[str, str] = field(default_factory=dict)  # name -> what it says (for stored transcripts)

    def get(self, name: str) -> bytes | None:
        return self.audio.get(name)

    @property
    def degraded(self) -> bool:
        return "fallback" not in self.audio

    def status(self) -> dict:
        names = dict.fromkeys([*PROMPT_NAMES, *self.source])
        return {n: self.source.get(n, "missing") for n in names}


def _cache_path(cache_dir: Path, tts_name: str, text: str) -> Path:
    h = hashlib.sha256(f"{tts_name}\0{text}".encode()).hexdigest()[:24]
    return cache_dir / f"{h}.ulaw"


async def _render_one(tts: TTS, text: str, budget: float) -> bytes:
    try:
        async with asyncio.timeout(budget):
            chunks = [c async for c in tts.synthesize(text, mulaw=True)]
    except TimeoutError:
        raise StageError("tts", "timeout", f"prompt not rendered within {budget:.1f} s", provider=tts.name) from None
    audio = b"".join(chunks)
    if not audio:
        raise StageError("tts", "empty_result", "no audio", provider=tts.name)
    return audio


async def render_prompts(
    texts: dict[str, str], ttss: list[TTS], cache_dir: Path, budget: float = 10.0,
    progress: Callable[[int, int, str], None] | None = None,
) -> PromptBank:
    """Render each prompt with the first TTS that works (``budget`` seconds a prompt);
    fall back to the disk cache of any of them. A TTS that fails once is not asked
    again during this start-up. Never raises: a prompt nobody could render is 'missing'.
    ``progress(n, total, name)`` is told before each prompt."""
    bank = PromptBank()
    private_dir(cache_dir)
    down: set[str] = set()
    for i, (name, text) in enumerate(texts.items(), 1):
        if progress is not None:
            progress(i, len(texts), name)
        for tts in ttss:
            if tts.name in down:
                continue
            path = _cache_path(cache_dir, tts.name, text)
            try:
                audio = await _render_one(tts, text, budget)
            except Exception as err:  # noqa: BLE001 - start-up must survive any TTS failure, even an adapter bug
                code = err.code if isinstance(err, StageError) else type(err).__name__
                log.warning("prompt render failed", extra=kv(prompt=name, provider=tts.name, code=code))
                down.add(tts.name)
                continue
            bank.audio[name], bank.source[name] = audio, f"tts:{tts.name}"
            try:
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(audio)
                tmp.replace(path)
            except OSError as exc:
                log.warning("prompt cache write failed", extra=kv(prompt=name, error=type(exc).__name__))
            break
        else:
            for tts in ttss:
                path = _cache_path(cache_dir, tts.name, text)
                if path.is_file() and path.stat().st_size > 0:
                    bank.audio[name], bank.source[name] = path.read_bytes(), "cache"
                    break
            else:
                bank.source[name] = "missing"
                log.error("prompt unavailable", extra=kv(prompt=name))
    return bank
