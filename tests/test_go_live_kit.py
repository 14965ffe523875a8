"""The go-live kit (issue 22, item 7): `.env.example` names only settings the bot reads and passes
`check` once filled in; `docker-compose.yml` is a valid Compose file (the Compose specification's
JSON schema, vendored by check-jsonschema; also `docker compose config` where Docker has compose)
that runs the bot on PostgreSQL."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from bot.settings import Settings
from bot.shell.cli_check import check
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
ASSIGN = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$")


def env_lines() -> list[tuple[bool, str, str]]:
    """(commented out, NAME, value) for each assignment in .env.example."""
    out = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = ASSIGN.match(line.strip())
        if m:
            out.append((line.lstrip().startswith("#"), m.group(1), m.group(2)))
    return out


def test_env_example_names_only_settings_the_bot_reads():
    lines = env_lines()
    assert len(lines) > 30
    known = Settings.read_names({}) | {"POSTGRES_PASSWORD"}  # the compose file's own
    unknown = sorted({name for _, name, _ in lines} - known)
    assert unknown == [], unknown
    active = {name for commented, name, _ in lines if not commented}
    assert {"PUBLIC_URL", "TWILIO_AUTH_TOKEN", "API_KEY", "BUSINESS_FILE", "POSTGRES_PASSWORD"} <= active


def test_env_example_filled_in_passes_check(tmp_path):
    biz = tmp_path / "business.toml"
    biz.write_text((REPO / "examples/business/property-office.toml").read_text())
    env = {name: value for commented, name, value in env_lines() if not commented and name != "POSTGRES_PASSWORD"}
    env |= {"TWILIO_AUTH_TOKEN": "a" * 32, "TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "API_KEY": "k" * 24, "BUSINESS_FILE": str(biz),
            "DATABASE_URL": "postgresql://phonebot:pw@db:5432/phonebot", "DATA_DIR": str(tmp_path / "data")}
    errors, warnings = check(env)
    assert (errors, warnings) == ([], [])
    empty = {name: value for commented, name, value in env_lines() if not commented and name != "POSTGRES_PASSWORD"}
    errors, _ = check(empty | {"DATA_DIR": str(tmp_path / "data")})  # as copied: what is still to fill in is named
    assert any("TWILIO_AUTH_TOKEN" in e for e in errors) and any("BUSINESS_FILE" in e for e in errors), errors


def _schema_check(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_compose_file_follows_the_compose_specification(tmp_path):
    pytest.importorskip("check_jsonschema", reason="check-jsonschema is in the dev group: uv run --group dev ...")
    r = _schema_check(COMPOSE)
    assert r.returncode == 0, r.stdout + r.stderr
    broken = tmp_path / "docker-compose.yml"  # the validator does catch a mistake
    broken.write_text(COMPOSE.read_text().replace("    depends_on:", "    depends_om:"))
    assert _schema_check(broken).returncode != 0


def test_compose_runs_the_bot_on_its_postgresql():
    yaml = pytest.importorskip("ruamel.yaml", reason="ruamel.yaml comes with check-jsonschema (the dev group)")
    doc = yaml.YAML(typ="safe").load(COMPOSE.read_text())
    bot, db = doc["services"]["bot"], doc["services"]["db"]
    assert bot["build"] == "." and (REPO / "Dockerfile").exists()
    url = bot["environment"]["DATABASE_URL"]
    assert url.startswith("postgresql://phonebot:${POSTGRES_PASSWORD") and url.endswith("@db:5432/phonebot")
    assert db["environment"]["POSTGRES_USER"] == "phonebot" and db["environment"]["POSTGRES_DB"] == "phonebot"
    assert bot["depends_on"]["db"]["condition"] == "service_healthy" and "healthcheck" in db
    assert bot["ports"] == ["127.0.0.1:8080:8080"]  # behind a proxy or tunnel, not open to the world
    assert any(v.startswith("phonebot-data:") for v in bot["volumes"]) and any(v.startswith("phonebot-db:") for v in db["volumes"])
    assert bot["environment"]["DATA_DIR"] == "/data"


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker here (the schema test above checks the file)")
def test_docker_compose_config_accepts_it(tmp_path):
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("docker has no compose plugin here (the schema test above checks the file)")
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    r = subprocess.run(["docker", "compose", "config", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
