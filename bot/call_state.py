"""The states of a call and the transitions allowed between them; anything else is a
bug and raises ``IllegalTransition``."""

from __future__ import annotations

from enum import Enum


class State(Enum):
    GREETING = "greeting"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    ENDING = "ending"
    ENDED = "ended"


ALLOWED: dict[State, set[State]] = {
    State.GREETING: {State.LISTENING, State.ENDING, State.ENDED},
    State.LISTENING: {State.THINKING, State.SPEAKING, State.ENDING, State.ENDED},
    State.THINKING: {State.SPEAKING, State.LISTENING, State.ENDING, State.ENDED},
    State.SPEAKING: {State.LISTENING, State.ENDING, State.ENDED},
    State.ENDING: {State.ENDED},
    State.ENDED: set(),
}


class IllegalTransition(RuntimeError):
    pass
