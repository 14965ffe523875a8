"""What a call keeps for its record as it goes: the turn log, the latency to first
audio per turn, and the stored transcript (only with STORE_TRANSCRIPTS; never logged).
The call record (``bot.store.calls``) reads them from the session at the end."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from bot.logs import kv
from bot.orchestrator import Timings
from bot.store.api import TranscriptLine

log = logging.getLogger("bot.call")


@dataclass
class CallRecord:
    call_sid: str
    stream_sid: str
    store_transcripts: bool = False
    turn_log: list[dict[str, Any]] = field(default_factory=list)  # per turn: n, wall time, outcome fields
    first_audio_ms: dict[int, float] = field(default_factory=dict)  # turn -> end of speech to first reply audio
    transcript: list[TranscriptLine] = field(default_factory=list)  # what was said, only with STORE_TRANSCRIPTS

    def said(self, turn: int, speaker: str, text: str | None, prompt: str | None = None) -> None:
        """A line of the stored transcript (only with STORE_TRANSCRIPTS)."""
        if self.store_transcripts and text:
            self.transcript.append(TranscriptLine(turn, time.time(), speaker, text, prompt))

    def cut_short(self, n: int, heard: list[str]) -> None:
        """A barge-in on turn ``n``: its stored reply becomes what the caller heard of it, marked interrupted."""
        last = self.transcript[-1] if self.transcript else None
        if last is not None and last.turn == n and last.speaker == "bot" and last.prompt is None and not last.interrupted:
            self.transcript[-1] = replace(last, text=" ".join(heard), interrupted=True)

    def first_audio(self, n: int, latency_s: float) -> None:
        """Turn ``n``'s first reply audio went out ``latency_s`` after the caller stopped (the first counts)."""
        self.first_audio_ms.setdefault(n, round(latency_s * 1000, 1))

    def log_turn(self, n: int, timings: Timings, level: int = logging.INFO, **fields: Any) -> None:
        self.turn_log.append({"n": n, "at": time.time(), **fields})
        log.log(
            level,
            "turn",
            extra=kv(call_sid=self.call_sid, stream_sid=self.stream_sid, turn=n, **{f"{k}_ms": v for k, v in timings.stages.items()}, **fields),
        )
