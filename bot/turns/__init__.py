"""Turn-taking as a pure object: frames and STT events in, decisions out."""

from bot.turns.controller import TurnController, TurnOptions
from bot.turns.decisions import (
    BargeIn,
    CancelSpeculative,
    ConfirmSpeculative,
    Decision,
    EndCall,
    FinalizeSTT,
    IllegalPhase,
    Phase,
    Reprompt,
    StartSpeculative,
    StartTurn,
)
from bot.turns.live import same_words

__all__ = [
    "BargeIn", "CancelSpeculative", "ConfirmSpeculative", "Decision", "EndCall", "FinalizeSTT",
    "IllegalPhase", "Phase", "Reprompt", "StartSpeculative", "StartTurn", "TurnController",
    "TurnOptions", "same_words",
]
