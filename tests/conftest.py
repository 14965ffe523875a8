"""Shared fixtures: paths to ../shared audio, settings for tests, scripted apps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"


def caller_wav(name: str, folder: str = "callers") -> bytes:
    return (SHARED_AUDIO / folder / name).read_bytes()


def manifest(folder: str = "callers") -> list[dict]:
    return json.loads((SHARED_AUDIO / folder / "manifest.json").read_text())


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, twilio_validate=False, stt_timeout=0.5, llm_timeout=0.5, tts_timeout=0.5)
