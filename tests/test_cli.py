"""The command line: --help everywhere, `check` reports every problem, `say` makes caller audio."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from bot.__main__ import COMMANDS, usage
from bot.settings import Settings, SettingsError
from bot.shell.cli_check import check
from tests.conftest import REPO, SAMPLES


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, env=base | (env or {}), capture_output=True, text=True, timeout=120)


def test_top_level_help_lists_every_command():
    r = run("--help")
    assert r.returncode == 0 and r.stdout.strip() == usage()
    for name in COMMANDS:
        assert f"  {name}" in r.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_its_own_help(name):
    r = run(name, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: python -m bot {name}"), r.stdout


def test_settings_report_every_problem_at_once():
    env = {"PORT": "eighty", "LOG_LEVEL": "loud", "STT_PROVIDER": "google", "TWILIO_AUTH_TOKEN": "t"}
    problems = Settings.problems(env)
    assert len(problems) == 3, problems
    for needle in ("PORT", "LOG_LEVEL", "STT_PROVIDER"):
        assert any(p.startswith(needle) for p in problems), problems
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert str(info.value).startswith("3 problems:") and all(p in str(info.value) for p in problems)
    assert Settings.problems({"TWILIO_AUTH_TOKEN": "t"}) == []


def test_a_refused_variable_does_not_stop_the_reading():
    """RECEPTIONIST_CONFIG is refused like any bad value: the rest is still read, so the other
    problems are reported and the variables after it are not taken for misspellings."""
    from bot.shell.cli_check import check

    errors, warnings = check({"RECEPTIONIST_CONFIG": "old.json", "TWILIO_AUTH_TOKEN": "t", "MAX_CALLS": "0", "STT_TIMEOUT": "9"})
    assert [e.split(" ")[0].split("=")[0] for e in errors] == ["RECEPTIONIST_CONFIG", "MAX_CALLS"], errors
    assert warnings == [], warnings


def test_check_reports_three_bad_settings_and_loads_no_model():
    code = "import sys; from bot.shell.cli_check import main; rc = main([]); " \
           "print(sorted(m for m in ('faster_whisper', 'piper', 'ctranslate2', 'onnxruntime', 'openai') if m in sys.modules)); sys.exit(rc)"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PORT": "99999", "MAX_CALLS": "0", "TTS_PROVIDER": "elevenlabs", "TWILIO_AUTH_TOKEN": "t"}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    errors = [line for line in r.stdout.splitlines() if line.startswith("error: ")]
    assert [e.split("=")[0] for e in errors] == ["error: PORT", "error: TTS_PROVIDER", "error: MAX_CALLS"], r.stdout
    assert "3 errors" in r.stdout
    assert r.stdout.strip().endswith("[]"), r.stdout  # no engine was imported


def test_check_warns_about_misspelled_variables_and_passes_good_settings():
    errors, warnings = check({"TWILIO_AUTH_TOKEN": "t", "DEEPGRAM_APIKEY": "x", "TTS_VOICE": "y", "HOSTNAME": "box", "PATH": "/bin"})
    assert errors == []
    assert any("DEEPGRAM_APIKEY" in w and "DEEPGRAM_API_KEY" in w for w in warnings), warnings
    assert any(w.startswith("TTS_VOICE") for w in warnings), warnings
    assert not any("HOSTNAME" in w or "PATH" in w for w in warnings), warnings


def test_check_finds_a_bad_business_config_and_an_unusable_data_dir(tmp_path):
    bad = tmp_path / "business.toml"
    bad.write_text("name = [not toml")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    errors, _ = check({"TWILIO_AUTH_TOKEN": "t", "BUSINESS_FILE": str(bad), "DATA_DIR": str(a_file / "data")})
    assert any("BUSINESS_FILE" in e and "not valid TOML" in e for e in errors), errors
    assert any(e.startswith("DATA_DIR") and "not a directory" in e for e in errors), errors
    errors, _ = check({"TWILIO_AUTH_TOKEN": "t", "BUSINESS_FILE": str(tmp_path / "missing.toml")})
    assert any("cannot read" in e for e in errors), errors
    errors, _ = check({"TWILIO_AUTH_TOKEN": "t", "RECEPTIONIST_CONFIG": "old.json"})
    assert any("BUSINESS_FILE" in e for e in errors), errors  # says what replaced it


def test_check_exit_status_is_zero_when_fine():
    r = run("check", env={"TWILIO_VALIDATE": "false"})
    assert r.returncode == 0 and "ok: the settings are valid" in r.stdout, r.stdout + r.stderr
    assert "TWILIO_VALIDATE=false" in r.stdout


def test_shipped_samples_are_telephone_audio_with_transcripts():
    entries = json.loads((SAMPLES / "manifest.json").read_text())
    assert len(entries) >= 4
    total = 0
    for m in entries:
        data = (SAMPLES / m["file"]).read_bytes()
        total += len(data)
        tag, channels, rate = struct.unpack("<HHI", data[20:28])
        assert (tag, channels, rate) == (7, 1, 8000), m["file"]  # G.711 mu-law, mono, 8 kHz
        assert m["text"]
    assert total < 400_000


@pytest.mark.xdist_group("embedded")
def test_say_writes_mulaw_that_whisper_understands(tmp_path, engines):
    import asyncio

    from bot.shell import cli_say
    from bot.wer import wer
    from media import wav

    out = tmp_path / "ask.wav"
    assert cli_say.main(["Do you have parking for visitors?", str(out)]) == 0
    data = out.read_bytes()
    assert struct.unpack("<HHI", data[20:28]) == (7, 1, 8000)
    audio = wav.read(data)
    assert 1.0 < audio.seconds < 6.0
    stt, _ = engines
    assert wer("Do you have parking for visitors?", asyncio.run(stt.transcribe(audio.pcm16, audio.rate))) <= 0.2


def test_say_refuses_empty_text_and_a_missing_directory(tmp_path, capsys):
    from bot.shell import cli_say

    assert cli_say.main(["  ", str(tmp_path / "x.wav")]) == 2
    assert cli_say.main(["hello", str(tmp_path / "no" / "x.wav")]) == 2
    assert "no such directory" in capsys.readouterr().err
