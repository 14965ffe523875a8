"""Settings: read once, frozen, clear errors for bad values, provider defaults."""

from __future__ import annotations

import dataclasses

import pytest

from bot.settings import Settings, SettingsError

BASE = {"TWILIO_AUTH_TOKEN": "tok"}


def test_embedded_defaults_without_keys():
    s = Settings.from_env(BASE)
    assert (s.stt_provider, s.llm_provider, s.tts_provider) == ("whisper", "receptionist", "piper")
    assert s.twilio_validate and s.port == 8080


def test_cloud_when_keys_set_and_base_url_alone_selects_openai():
    s = Settings.from_env(BASE | {"DEEPGRAM_API_KEY": "d", "OPENAI_API_KEY": "o", "ELEVENLABS_API_KEY": "e"})
    assert (s.stt_provider, s.llm_provider, s.tts_provider) == ("deepgram", "openai", "elevenlabs")
    s = Settings.from_env(BASE | {"OPENAI_BASE_URL": "http://localhost:11434/v1/"})
    assert s.llm_provider == "openai" and s.openai_base_url == "http://localhost:11434/v1"


def test_explicit_provider_overrides_key():
    s = Settings.from_env(BASE | {"DEEPGRAM_API_KEY": "d", "STT_PROVIDER": "Whisper"})
    assert s.stt_provider == "whisper"


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "between"),
        ({"STT_PROVIDER": "google"}, "deepgram, whisper"),
        ({"TTS_PROVIDER": "elevenlabs"}, "ELEVENLABS_API_KEY"),
        ({"LOG_TRANSCRIPTS": "maybe"}, "true or false"),
        ({"OPENAI_BASE_URL": "localhost:11434"}, "http"),
        ({"STT_TIMEOUT": "0"}, "STT_TIMEOUT"),
        ({"END_SILENCE_MS": "-5"}, "END_SILENCE_MS"),
    ],
)
def test_bad_values_name_the_variable(env, needle):
    with pytest.raises(SettingsError) as exc:
        Settings.from_env(BASE | env)
    assert needle in str(exc.value)


def test_signature_validation_needs_token_or_explicit_opt_out():
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({})
    assert "TWILIO_VALIDATE=false" in str(exc.value)
    assert Settings.from_env({"TWILIO_VALIDATE": "false"}).twilio_validate is False


def test_frozen_and_redacted():
    s = Settings.from_env(BASE | {"OPENAI_API_KEY": "sk-secret"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]
    red = s.redacted()
    assert red["openai_api_key"] == "set" and red["twilio_auth_token"] == "set"
    assert "sk-secret" not in repr(red)


def test_texts_from_env():
    s = Settings.from_env(BASE | {"GREETING_TEXT": " Hi there. ", "FALLBACK_TEXT": ""})
    assert s.greeting_text == "Hi there." and s.fallback_text == Settings.fallback_text


def test_failover_chains_and_their_errors():
    keys = BASE | {"DEEPGRAM_API_KEY": "d", "OPENAI_API_KEY": "o", "ELEVENLABS_API_KEY": "e"}
    s = Settings.from_env(keys | {"STT_PROVIDER": " Deepgram , whisper", "LLM_PROVIDER": "openai,receptionist", "TTS_PROVIDER": "piper,elevenlabs"})
    assert (s.stt_provider, s.llm_provider, s.tts_provider) == ("deepgram,whisper", "openai,receptionist", "piper,elevenlabs")
    # unset stays one provider (chains are opt-in; a cloud-only install has no embedded engines)
    assert Settings.from_env(keys).stt_provider == "deepgram"
    assert (s.breaker_threshold, s.breaker_cooldown_s, s.failover_share) == (3, 30.0, 0.6)
    for raw, needle in (("deepgram,vosk", "'vosk' is not a provider"), ("deepgram,", "'' is not a provider"), ("whisper,whisper", "twice")):
        with pytest.raises(SettingsError, match="STT_PROVIDER") as exc:
            Settings.from_env(keys | {"STT_PROVIDER": raw})
        assert needle in str(exc.value)
    for env, needle in (({"BREAKER_THRESHOLD": "0"}, "BREAKER_THRESHOLD"), ({"BREAKER_COOLDOWN_S": "soon"}, "BREAKER_COOLDOWN_S"),
                        ({"FAILOVER_SHARE": "1"}, "FAILOVER_SHARE")):
        with pytest.raises(SettingsError, match=needle):
            Settings.from_env(keys | env)
