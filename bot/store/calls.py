"""From a finished call session to its call record: outcome, who ended it, turns (the
transcript and the transfer are the session's own)."""

from __future__ import annotations

from typing import Any, Protocol

from bot.store.api import TranscriptLine, Transfer, TurnRecord


class FinishedCall(Protocol):
    """What a call record reads from a finished call session (bot.call.CallSession)."""

    @property
    def turn_log(self) -> list[dict[str, Any]]: ...  # per confirmed turn: n, wall time, outcome fields
    @property
    def first_audio_ms(self) -> dict[int, float]: ...  # turn -> end of speech to first reply audio
    @property
    def ended_by(self) -> str: ...  # "" until the bot ends the call
    @property
    def transcript(self) -> list[TranscriptLine]: ...  # empty unless STORE_TRANSCRIPTS
    @property
    def transfer(self) -> Transfer | None: ...  # where the call was transferred, the number masked

    def call_outcome(self, error: bool = False) -> str: ...


def turn_records(session: FinishedCall) -> list[TurnRecord]:
    """The confirmed turns the session logged (speculative ones never log), with the
    latency from the end of the caller's speech to the first reply audio."""
    out = []
    for t in session.turn_log:
        outcome = str(t.get("outcome", "ok"))
        stage, _, code = outcome.partition(":") if ":" in outcome else (None, "", None)
        out.append(TurnRecord(
            n=int(t["n"]), started_at=float(t["at"]), latency_ms=session.first_audio_ms.get(t["n"]),
            outcome=outcome, error_stage=stage, error_code=code or None,
        ))
    return out


def outcome_of(session: FinishedCall | None, *, failed: bool) -> str:
    """The session's own verdict (see CallSession.call_outcome); failed without one."""
    return "failed" if session is None else session.call_outcome(error=failed)


def ended_by(session: FinishedCall | None, *, failed: bool) -> str:
    """Who ended the call: the one answer for the call-end log line, the metrics and the
    call record. ``error`` (the call failed), the bot's own reason (``bot`` for a
    goodbye, transfer, transfer_failed, drain, max_length, silence, failures), else the caller hung up."""
    if failed:
        return "error"
    if session is not None and session.ended_by:
        return session.ended_by
    return "caller"
