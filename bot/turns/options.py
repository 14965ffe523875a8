"""The turn controller's options, read once from the settings (``TurnOptions.from_settings``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TurnOptions:
    end_silence_ms: int = 700
    early_turn_ms: int = 300
    min_speech_ms: int = 200
    barge_in_ms: int = 80  # as Settings.barge_in_ms
    reprompt_after_s: float = 8.0
    max_reprompts: int = 2
    speculative_llm: bool = True
    can_transfer: bool = False  # DTMF 0 transfers
    max_turn_ms: int = 30_000  # a turn's audio is cut (and the turn ends) at this length
    completeness: bool = False  # hold a turn whose words look unfinished (bot.turn_completeness)
    complete_ms: int | None = None  # with completeness: silence words judged COMPLETE need (None: end_silence_ms)
    spec_lead_ms: int = 800  # as Settings.speculative_lead_ms

    @classmethod
    def from_settings(cls, s: Any, *, transfer_number: str | None = None) -> TurnOptions:
        number = s.transfer_number if transfer_number is None else transfer_number
        return cls(
            end_silence_ms=s.end_silence_ms, early_turn_ms=s.early_turn_ms, min_speech_ms=s.min_speech_ms,
            barge_in_ms=s.barge_in_ms, reprompt_after_s=s.reprompt_after_s, max_reprompts=s.max_reprompts,
            speculative_llm=s.speculative_llm, can_transfer=bool(number),
            max_turn_ms=int(s.max_turn_s * 1000), completeness=s.turn_completeness,
            complete_ms=s.turn_complete_ms or None, spec_lead_ms=s.speculative_lead_ms,
        )
