"""What a turn strategy may see of the turn controller and ask of it: the ``Floor``.

The controller (``bot.turns.controller``) owns the phase, the turn count and the
speculative turn; its strategies (the live STT's rules, ``bot.turns.live``; the
completeness gate of batch and embedded STT, ``bot.turns.gating``) read the few facts
below and ask for turns through these calls, which return the decisions to carry out.
A strategy never touches the controller's state, and this module imports neither.
"""

from __future__ import annotations

from typing import Protocol

from bot.turns.decisions import Decision, Phase


class Floor(Protocol):
    # --- what a strategy reads
    @property
    def phase(self) -> Phase: ...

    @property
    def over(self) -> bool:
        """Closing or ended: nothing starts or interrupts any more."""
        ...

    @property
    def bot_active(self) -> bool:
        """The bot holds (or is about to take) the floor: caller speech is a barge-in."""
        ...

    @property
    def speculating(self) -> bool: ...

    @property
    def spec_text(self) -> str | None:
        """The words a speculative turn started from (a live interim or final), if any."""
        ...

    @property
    def dtmf_pending(self) -> bool:
        """Digits are being entered (they make a turn of their own)."""
        ...

    @property
    def turn_no(self) -> int: ...

    @property
    def quiet_ms(self) -> int:
        """Silence since the last voiced frame, counted in inbound frames."""
        ...

    @property
    def last_voice(self) -> float:
        """The time of the last frame the VAD called speech."""
        ...

    @property
    def maybe_ended(self) -> bool:
        """The local VAD has heard the early silence: the caller may be done."""
        ...

    # --- what a strategy asks for (each returns the decisions, [] when refused)
    def speculate(self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None) -> list[Decision]:
        """Start the turn now, gated (only while listening and none runs)."""
        ...

    def confirm(self, stt_ms: float | None = None) -> list[Decision]:
        """Let the speculative turn speak ([] when there is none still valid)."""
        ...

    def cancel_speculation(self) -> list[Decision]: ...

    def start_turn(self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None) -> list[Decision]: ...

    def text_turn(self, text: str, speech_end: float, stt_ms: float | None = None) -> list[Decision]:
        """A turn on words already known (barging in first if the bot has the floor)."""
        ...

    def close_utterance(self) -> None:
        """The utterance the local VAD is in is over (its turn was released early)."""
        ...
