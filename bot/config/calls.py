"""Call options: turn-taking, a call's limits and what the bot says (texts, the business file)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.config.values import Get, fail, flag, numbers

if TYPE_CHECKING:
    from bot.settings import Settings

TEXTS = ("system_prompt", "greeting_text", "fallback_text", "trouble_text", "reprompt_text", "goodbye_text", "busy_text")


def read(get: Get, defaults: type[Settings]) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "speculative_llm": flag("SPECULATIVE_LLM", get("SPECULATIVE_LLM", "true")),
        "turn_completeness": flag("TURN_COMPLETENESS", get("TURN_COMPLETENESS", "true")),
    }
    if get("RECEPTIONIST_CONFIG").strip():
        fail(
            "RECEPTIONIST_CONFIG is no longer read: the business (hours, address, FAQs, texts, transfer "
            "numbers) now lives in one TOML file set with BUSINESS_FILE; see examples/business/property-office.toml"
        )
    kw["business_file"] = get("BUSINESS_FILE").strip()
    for name in TEXTS:  # unset or blank: the default (or the business file's)
        raw = get(name.upper())
        if raw.strip():
            kw[name] = raw.strip()
    kw.update(numbers(get, defaults, int, {
        "vad_aggressiveness": ("VAD_AGGRESSIVENESS", 0, 3),
        "end_silence_ms": ("END_SILENCE_MS", 100, 5000),
        "early_turn_ms": ("EARLY_TURN_MS", 0, 5000),
        "min_speech_ms": ("MIN_SPEECH_MS", 0, 5000),
        "barge_in_ms": ("BARGE_IN_MS", 20, 2000),
        "max_failures": ("MAX_FAILURES", 1, 20),
        "max_reprompts": ("MAX_REPROMPTS", 0, 20),
        "max_calls": ("MAX_CALLS", 1, 100000),
        "turn_complete_ms": ("TURN_COMPLETE_MS", 0, 5000),
        "speculative_lead_ms": ("SPECULATIVE_LEAD_MS", 0, 5000),
    }))
    kw.update(numbers(get, defaults, float, {
        "reprompt_after_s": ("REPROMPT_AFTER_S", 1, 600),
        "max_call_s": ("MAX_CALL_S", 10, 86400),
        "drain_seconds": ("DRAIN_SECONDS", 0, 3600),
        "max_turn_s": ("MAX_TURN_S", 5, 120),
    }))
    return kw
