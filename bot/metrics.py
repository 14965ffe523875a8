"""Prometheus metrics, one registry per app (so tests and several apps in one
process do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.calls = Counter("phonebot_calls", "Calls accepted", registry=r)
        self.calls_rejected = Counter("phonebot_calls_rejected", "Calls refused (capacity, draining)", ["reason"], registry=r)
        self.live_calls = Gauge("phonebot_live_calls", "Calls with an open media stream", registry=r)
        self.turns = Counter("phonebot_turns", "Caller turns handled", ["outcome"], registry=r)
        self.barge_ins = Counter("phonebot_barge_ins", "Times the caller interrupted the bot", registry=r)
        self.speculations = Counter(
            "phonebot_speculative_turns", "Turns started at the early silence, by outcome (used, cancelled)", ["outcome"], registry=r
        )
        self.fallbacks = Counter("phonebot_fallbacks", "Fallback prompts played", registry=r)
        self.stage_errors = Counter("phonebot_stage_errors", "Stage failures", ["stage", "code"], registry=r)
        self.protocol_errors = Counter("phonebot_protocol_errors", "Bad Media Streams messages", ["reason"], registry=r)
        self.stt_latency = Histogram("phonebot_stt_seconds", "STT: end of speech to final transcript", buckets=LATENCY_BUCKETS, registry=r)
        self.llm_ttft = Histogram("phonebot_llm_first_token_seconds", "LLM time to first token", buckets=LATENCY_BUCKETS, registry=r)
        self.tts_ttfb = Histogram("phonebot_tts_first_byte_seconds", "TTS time to first audio byte", buckets=LATENCY_BUCKETS, registry=r)
        self.turn_latency = Histogram(
            "phonebot_turn_latency_seconds", "End of caller speech to first bot audio frame sent", buckets=LATENCY_BUCKETS, registry=r
        )
        self.mouth_to_ear = Histogram(
            "phonebot_mouth_to_ear_seconds", "End of caller speech to the first reply mark echoed by Twilio (heard)",
            buckets=LATENCY_BUCKETS, registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
