"""Provider options: each stage's provider (or failover chain), the vendors' keys, base URLs
and models, the embedded engines, the stage budgets and the failover circuit breakers.

``*_PROVIDER`` is checked against the providers table (bot/providers/registry.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bot.config.values import Get, fail, flag, numbers, url
from bot.providers.registry import names as provider_names
from bot.providers.registry import vendors

if TYPE_CHECKING:
    from bot.settings import Settings

# stage -> (its cloud provider, its embedded one)
STAGES = {"stt": ("deepgram", "whisper"), "llm": ("openai", "receptionist"), "tts": ("elevenlabs", "piper")}


def read(get: Get, defaults: type[Settings]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for key in ("deepgram", "openai", "elevenlabs"):
        up = key.upper()
        kw[f"{key}_api_key"] = get(f"{up}_API_KEY").strip()
        kw[f"{key}_base_url"] = url(f"{up}_BASE_URL", get(f"{up}_BASE_URL"))
    kw["deepgram_model"] = get("DEEPGRAM_MODEL", defaults.deepgram_model)
    kw["stt_streaming"] = flag("STT_STREAMING", get("STT_STREAMING", "true"))
    kw["openai_model"] = get("OPENAI_MODEL", defaults.openai_model)
    kw["elevenlabs_voice_id"] = get("ELEVENLABS_VOICE_ID", defaults.elevenlabs_voice_id)
    kw["elevenlabs_model"] = get("ELEVENLABS_MODEL", defaults.elevenlabs_model)
    kw.update(_chains(get, kw))
    kw["vendor_env"] = _vendor_env(get, kw)

    kw["whisper_model_path"] = get("WHISPER_MODEL_PATH")
    kw["piper_voice_path"] = get("PIPER_VOICE_PATH")
    kw.update(numbers(get, defaults, float, {f"{stage}_timeout": (f"{stage.upper()}_TIMEOUT", 0.05, 120) for stage in STAGES}))
    kw.update(numbers(get, defaults, int, {
        "deepgram_endpointing_ms": ("DEEPGRAM_ENDPOINTING_MS", 10, 5000),
        "deepgram_utterance_end_ms": ("DEEPGRAM_UTTERANCE_END_MS", 1000, 5000),
        "breaker_threshold": ("BREAKER_THRESHOLD", 1, 100),
        "llm_max_tokens": ("LLM_MAX_TOKENS", 16, 4096),
        "llm_context_tokens": ("LLM_CONTEXT_TOKENS", 1024, 2_000_000),
    }))
    kw.update(numbers(get, defaults, float, {
        "breaker_cooldown_s": ("BREAKER_COOLDOWN_S", 0.0, 3600.0),
        "failover_share": ("FAILOVER_SHARE", 0.1, 0.9),
        "whisper_window_s": ("WHISPER_WINDOW_S", 8, 30),
        "llm_reply_s": ("LLM_REPLY_S", 1.0, 300.0),
    }))
    return kw


def _chains(get: Get, keys: dict[str, Any]) -> dict[str, str]:
    """A provider per stage; unset -> the cloud one if its key (or, for the LLM, an
    OpenAI-compatible base URL) is set, else the embedded one."""
    cloud_ready = {
        "deepgram": bool(keys["deepgram_api_key"]),
        "openai": bool(keys["openai_api_key"] or keys["openai_base_url"]),
        "elevenlabs": bool(keys["elevenlabs_api_key"]),
    }
    out = {}
    for stage, (cloud, local) in STAGES.items():
        var = f"{stage.upper()}_PROVIDER"
        raw = get(var)
        if raw.strip():  # one provider, or a failover chain in order: "deepgram,whisper"
            chain = [part.strip().lower() for part in raw.split(",")]
            known = provider_names(stage)
            for part in chain:
                if part not in known:
                    fail(
                        f"{var}={raw!r}: {part!r} is not a provider; expected one of {', '.join(known)}, "
                        f"or a failover chain in order such as {cloud},{local}"
                    )
            if len(set(chain)) != len(chain):
                fail(f"{var}={raw!r}: a provider appears twice in the chain")
        else:
            chain = [cloud if cloud_ready[cloud] else local]
        if cloud in chain and cloud != "openai" and not cloud_ready[cloud]:
            fail(f"{var}={raw} needs {cloud.upper()}_API_KEY")
        if "openai" in chain and not cloud_ready["openai"]:
            fail(f"{var}={raw} needs OPENAI_API_KEY or OPENAI_BASE_URL")
        out[f"{stage}_provider"] = ",".join(chain)
    return out


class VendorEnv(Mapping[str, str]):
    """The table vendors' own variables: read-only and hashable, like the rest of Settings."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return hash(frozenset(self._values.items()))

    def __repr__(self) -> str:  # names only: values may be keys
        return f"VendorEnv({sorted(self._values)})"


def _vendor_env(get: Get, kw: dict[str, Any]) -> VendorEnv:
    """The variables the table's vendors declare (bot/providers/registry.py ``Vendor``),
    read once; a chain that names a vendor without one it ``needs`` is refused."""
    out: dict[str, str] = {}
    for stage, name, vendor in vendors():
        for var in vendor.env:
            value = get(var).strip()
            if value:
                out[var] = value
        if name in kw[f"{stage}_provider"].split(","):
            for var in vendor.needs:
                if var not in out:
                    fail(f"{stage.upper()}_PROVIDER={kw[f'{stage}_provider']} needs {var}")
    return VendorEnv(out)
