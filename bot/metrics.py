"""Prometheus metrics, one registry per app (so tests and several apps in one
process do not collide).

Under bot.shell.supervisor (WORKERS > 1) every worker has PROMETHEUS_MULTIPROC_DIR set, so
prometheus_client keeps each value in a per-process file there; ``render`` then reads
all the workers' files, and ``/metrics`` on any worker shows the sums. Gauges say how
they combine: calls live now add up over the live workers (livesum); a circuit shows its
worst state in any live worker (livemax). The supervisor drops a dead worker's gauges."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CALL_BUCKETS = (5, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600)
CIRCUIT_STATES = {"closed": 0, "half-open": 1, "open": 2}
# which Timings stage each labelled latency comes from, per provider kind
STAGE_TIMINGS = {"stt": "stt", "llm": "llm_first_token", "tts": "tts_first_byte"}


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.calls = Counter("phonebot_calls", "Calls accepted", registry=r)
        self.calls_rejected = Counter("phonebot_calls_rejected", "Calls refused (capacity, draining)", ["reason"], registry=r)
        self.live_calls = Gauge("phonebot_live_calls", "Calls with an open media stream", registry=r, multiprocess_mode="livesum")
        self.turns = Counter("phonebot_turns", "Caller turns handled", ["outcome"], registry=r)
        self.barge_ins = Counter("phonebot_barge_ins", "Times the caller interrupted the bot", registry=r)
        self.speculations = Counter(
            "phonebot_speculative_turns", "Turns started at the early silence, by outcome (used, cancelled)", ["outcome"], registry=r
        )
        self.fallbacks = Counter("phonebot_fallbacks", "Fallback prompts played", registry=r)
        self.stage_errors = Counter("phonebot_stage_errors", "Stage failures", ["stage", "code"], registry=r)
        self.protocol_errors = Counter("phonebot_protocol_errors", "Bad Media Streams messages", ["reason"], registry=r)
        self.sip_dropped = Counter(
            "phonebot_sip_dropped", "SIP messages dropped or refused before any call, by reason (forbidden, rate_limited, malformed, "
            "tcp_refused, stray_response, txn_table_full, handler_error, udp_error...); refused INVITEs: phonebot_calls_rejected{reason=sip_*}",
            ["reason"], registry=r,
        )
        self.stt_latency = Histogram("phonebot_stt_seconds", "STT: end of speech to final transcript", buckets=LATENCY_BUCKETS, registry=r)
        self.llm_ttft = Histogram("phonebot_llm_first_token_seconds", "LLM time to first token", buckets=LATENCY_BUCKETS, registry=r)
        self.tts_ttfb = Histogram("phonebot_tts_first_byte_seconds", "TTS time to first audio byte", buckets=LATENCY_BUCKETS, registry=r)
        self.turn_latency = Histogram(
            "phonebot_turn_latency_seconds", "End of caller speech to first bot audio frame sent", buckets=LATENCY_BUCKETS, registry=r
        )
        self.mouth_to_ear = Histogram(
            "phonebot_mouth_to_ear_seconds", "End of caller speech to the first reply mark echoed by the carrier (heard)",
            buckets=LATENCY_BUCKETS, registry=r,
        )

        # for operations: every HTTP route, how calls end, and each provider's share
        self.http_requests = Counter(
            "phonebot_http_requests", "HTTP requests by route template, method and status", ["route", "method", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "phonebot_http_request_seconds", "HTTP request latency by route template and status (the media websocket: see call duration)",
            ["route", "status"], buckets=HTTP_BUCKETS, registry=r,
        )
        self.calls_ended = Counter(
            "phonebot_calls_ended", "Calls ended, by who ended them (caller, bot, transfer, drain, max_length, silence, failures, error) "
            "and outcome (answered, message, transferred, transfer_failed, failed)", ["ended_by", "outcome"], registry=r,
        )
        self.call_seconds = Histogram("phonebot_call_duration_seconds", "Call duration, stream start to end", buckets=CALL_BUCKETS, registry=r)
        self.stage_seconds = Histogram(
            "phonebot_stage_seconds", "Stage latency by provider: STT to transcript, LLM to first token, TTS to first audio",
            ["stage", "provider"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.circuit_state = Gauge(
            "phonebot_circuit_state", "Failover circuit per stage and provider: 0 closed, 1 half-open, 2 open", ["stage", "provider"], registry=r,
            multiprocess_mode="livemax",
        )

        # the outbox, read from the store (the same in every worker: livemax)
        self.notifications = Gauge(
            "phonebot_notifications", "Owner notifications in the outbox by state (pending, failing, delivered)", ["state"], registry=r,
            multiprocess_mode="livemax",
        )
        self.oldest_undelivered = Gauge(
            "phonebot_notification_oldest_undelivered_seconds", "Age of the oldest notification not yet delivered (0: none)", registry=r,
            multiprocess_mode="livemax",
        )
        self.delivery_failing = Gauge(
            "phonebot_notification_failing_seconds", "How long the longest-failing notification has failed (0: none failing)",
            registry=r, multiprocess_mode="livemax",
        )

    def update_delivery(self, d: Any) -> None:
        """The outbox gauges from a ``bot.store.delivery_state.DeliverySummary``."""
        for state in ("pending", "failing", "delivered"):
            self.notifications.labels(state).set(getattr(d, state))
        self.oldest_undelivered.set(d.oldest_undelivered_s)
        self.delivery_failing.set(d.failing_for_s)

    def observe_stages(self, stages: dict[str, float], providers: dict[str, Any]) -> None:
        """Each stage's latency (``Timings.stages``, ms) under the provider that answered
        it (a failover chain's ``last_used``); ``providers``: stage -> provider."""
        for stage, key in STAGE_TIMINGS.items():
            if key in stages and stage in providers:
                p = providers[stage]
                self.stage_seconds.labels(stage, getattr(p, "last_used", None) or p.name).observe(stages[key] / 1000)

    def update_circuits(self, providers: dict[str, object]) -> None:
        """The circuit gauge from each failover chain's breakers (single providers have none)."""
        for stage, p in providers.items():
            health = getattr(p, "health", None)
            for member in health() if health is not None else ():
                self.circuit_state.labels(stage, member["provider"]).set(CIRCUIT_STATES.get(member["state"], 2))

    def render(self, multiproc_dir: str = "") -> bytes:
        """This app's metrics; with ``multiproc_dir`` (a worker's PROMETHEUS_MULTIPROC_DIR),
        every worker's, summed."""
        if not multiproc_dir:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc_dir)
        return generate_latest(registry)
