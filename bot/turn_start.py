"""How a caller's turn can start before the end-of-turn silence is over.

Two ways, mixed into ``CallSession`` (they use its state, task and playout):

- **Speculative start**: at ``EARLY_TURN_MS`` of silence the turn's STT, LLM and TTS
  already run, gated: nothing is played until the full ``END_SILENCE_MS`` confirms the
  caller is done. If they go on speaking, the turn is cancelled and the conversation
  rolled back to where it was (messages and the dialogue's state).
- **Live STT** (Deepgram's socket): its final transcript ends the turn; a stable
  interim heard after the early silence may start the LLM speculatively
  (``SPECULATIVE_LLM``), kept only if the final has the same words. If the socket
  fails for good, the call goes on with local VAD turns and the batch STT.
"""

from __future__ import annotations

import asyncio
import copy
import logging

from bot.call_state import State
from bot.errors import UPSTREAM_ERROR, StageError
from bot.live_turns import LiveTurns, same_words
from bot.logs import kv

log = logging.getLogger("bot.call")


class TurnStart:
    """Mixin for ``CallSession``: speculative turns and live-STT turn ends."""

    # --- speculative start: work begins at the early silence, speaks only once the
    # full end-of-turn silence confirms the caller is done -------------------------------
    def _speculate(self, audio: bytes | None, speech_end: float, *, text: str | None = None) -> None:
        if self.state is not State.LISTENING or self.busy or self._dtmf:
            return  # the normal path at TURN_END handles it
        gate = asyncio.Event()
        self._turn_no += 1
        snapshot = (len(self.conversation.messages), copy.deepcopy(self.conversation.state))
        self._run(self._turn(self._turn_no, audio, text, speech_end, gate=gate, snapshot=snapshot), name=f"turn-{self._turn_no}")
        self._spec = (gate, self._turn_task)
        self._spec_text = text

    def _confirm_speculation(self) -> bool:
        """At the end of the turn: let the speculative turn speak. False when there is
        none still valid (something else took over the call), so the caller starts one."""
        spec, self._spec, self._spec_text = self._spec, None, None
        if spec is None:
            return False
        gate, task = spec
        if task is not self._turn_task or task.done() or self.state is not State.LISTENING:
            return False
        self._reprompts = 0
        self._set(State.THINKING)
        gate.set()
        self.metrics.speculations.labels("used").inc()
        return True

    def _drop_speculation(self) -> None:
        spec, self._spec, self._spec_text = self._spec, None, None
        if spec is None:
            return
        gate, task = spec
        if task is self._turn_task and not task.done():
            self._turn_task = None
            task.cancel()  # _turn restores the conversation as it was
            self._turn_no -= 1
            self.metrics.speculations.labels("cancelled").inc()

    # --- live STT (Deepgram's socket) -------------------------------------------------
    def attach_live(self, transcriber) -> None:
        """From now on the live transcriber's results end the caller's turns."""
        if self.state is State.ENDED:
            self._spawn(transcriber.aclose())
            return
        self.live = LiveTurns(transcriber, self)
        self._spawn(self._run_live(self.live))

    async def _run_live(self, live: LiveTurns) -> None:
        try:
            await live.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in the live path must not end the call
            log.exception("live stt consumer failed", extra=kv(call_sid=self.call_sid))
            self.live_failed(StageError("stt", UPSTREAM_ERROR, "live transcription failed", provider="deepgram"))

    def live_turn(self, text: str, final_at: float) -> None:
        self._live_backup = None
        if self.state in (State.ENDING, State.ENDED) or self._final:
            return
        speech_end = min(self._last_voice + 0.02, final_at)
        stt_ms = (final_at - speech_end) * 1000
        self.metrics.stt_latency.observe(stt_ms / 1000)
        if self._spec is not None and self._spec_text is not None and same_words(self._spec_text, text):
            if self._confirm_speculation():
                return
        self._drop_speculation()
        self._spawn(self._text_turn(text, speech_end, stt_ms))

    def live_interim(self, text: str) -> None:
        """A stable interim after the early silence: start the LLM on it (speculative)."""
        if not self.settings.speculative_llm or not self.turns.maybe_ended or self._final:
            return
        if self._spec is not None:
            if self._spec_text is not None and same_words(self._spec_text, text):
                return
            self._drop_speculation()
        self._speculate(None, self._last_voice + 0.02, text=text)

    def live_failed(self, err: StageError) -> None:
        self.metrics.stage_errors.labels(err.stage, err.code).inc()
        log.warning("live stt failed, batch STT from now on", extra=kv(call_sid=self.call_sid, code=err.code, provider=err.provider))
        live, self.live = self.live, None
        if live is not None:
            self._spawn(live.aclose())
        backup, self._live_backup = self._live_backup, None
        if backup and self.state not in (State.ENDING, State.ENDED) and not self.busy and not self._final:
            self._start_turn(audio=backup, speech_end=self._last_voice + 0.02)

    async def _text_turn(self, text: str, speech_end: float, stt_ms: float) -> None:
        if self.busy or not self.playout.idle:
            await self._barge_in()
        self._start_turn(text=text, speech_end=speech_end, stt_ms=stt_ms)
