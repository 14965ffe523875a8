"""Turn-taking from a live transcriber (any ``STTStream``; Deepgram's socket today).

The caller's audio goes to the socket as it arrives; Deepgram's results decide the end
of a turn: a ``speech_final`` result, an ``UtteranceEnd`` after words, or the answer
to our own ``Finalize`` (sent when the local VAD has heard the full end-of-turn
silence first). The local VAD still owns barge-in. A stable interim transcript heard
after the early silence may start the LLM speculatively (``SPECULATIVE_LLM``); the
session speaks it only if the final transcript says the same.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from bot.logs import kv
from bot.providers.stt_stream import Failed, Final, Interim, Reconnected, UtteranceEnd
from bot.wer import normalize

if TYPE_CHECKING:
    from bot.errors import StageError

log = logging.getLogger("bot.call")


class Transcriber(Protocol):
    def send(self, mulaw: bytes) -> None: ...

    def events(self): ...

    async def finalize(self) -> None: ...

    async def aclose(self) -> None: ...


class TurnSink(Protocol):
    """What the call session offers the live transcriber."""

    call_sid: str

    def live_turn(self, text: str, final_at: float) -> None: ...

    def live_interim(self, text: str) -> None: ...

    def live_failed(self, err: "StageError") -> None: ...


def same_words(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)


class LiveTurns:
    def __init__(self, transcriber: Transcriber, sink: TurnSink) -> None:
        self.t = transcriber
        self.sink = sink
        self._text: list[str] = []  # final segments of the turn in progress
        self.turn_taken = False  # a turn came from the live results since the local speech start
        self.failed = False

    def send(self, frame: bytes) -> None:
        if not self.failed:
            self.t.send(frame)

    def speech_started(self) -> None:
        self.turn_taken = False

    def pending_text(self, interim: str = "") -> str:
        return " ".join([*self._text, interim]).strip()

    async def run(self) -> None:
        async for ev in self.t.events():
            if isinstance(ev, Final):
                if ev.text:
                    self._text.append(ev.text)
                if (ev.speech_final or ev.from_finalize) and self._text:
                    self._end()
            elif isinstance(ev, UtteranceEnd):
                if self._text:
                    self._end()
            elif isinstance(ev, Interim):
                if ev.text:
                    self.sink.live_interim(self.pending_text(ev.text))
            elif isinstance(ev, Reconnected):
                log.info("live stt reconnected", extra=kv(call_sid=self.sink.call_sid, attempts=ev.attempts, replayed_ms=ev.replayed_ms))
            elif isinstance(ev, Failed):
                self.failed = True
                self.sink.live_failed(ev.error)
                return

    def _end(self) -> None:
        text, self._text = self.pending_text(), []
        self.turn_taken = True
        self.sink.live_turn(text, time.monotonic())

    async def finalize(self) -> None:
        if not self.failed:
            await self.t.finalize()

    async def aclose(self) -> None:
        await self.t.aclose()
