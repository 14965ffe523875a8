"""This process's live calls, and the typed view of them the console and health read.

The registry maps a per-stream key (never a CallSid the far end chose) to its
``CallSession``; ``run_call`` adds and removes entries. Readers outside the call use
``snapshot()``, never a session's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.call import CallSession


@dataclass(frozen=True)
class LiveCall:
    call_sid: str
    caller: str  # as received; whoever shows it decides whether to mask it
    state: str  # the turn controller's phase, lower case (listening, speaking, ...)
    turns: int
    seconds: float  # since the stream started


class CallRegistry(dict[object, "CallSession"]):
    def snapshot(self) -> list[LiveCall]:
        return [
            LiveCall(call_sid=s.call_sid, caller=s.conversation.caller, state=s.state.name.lower(), turns=s.turn_no, seconds=s.seconds)
            for s in list(self.values())
        ]
