"""Backends for the storage tests: SQLite in a temp dir, and a fresh database on the
PostgreSQL server named by TEST_DATABASE_URL (``.ci/run`` starts one). tests/conftest.py
registers this module as a plugin: a test that asks for ``db_url`` runs on both."""

from __future__ import annotations

import os
import uuid

import pytest

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
NO_PG = "no PostgreSQL server: set TEST_DATABASE_URL (.ci/run starts a throw-away one)"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason=NO_PG))])
def backend(request) -> str:
    return request.param


async def fresh_pg() -> str:
    """A new empty PostgreSQL database on the test server; its URL."""
    import asyncpg

    name = "t_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return PG_URL.rpartition("/")[0] + "/" + name


@pytest.fixture
async def db_url(backend):
    """"" for SQLite (the store then lives in DATA_DIR), else a new empty PostgreSQL database."""
    if backend == "sqlite":
        yield ""
        return
    import asyncpg

    url = await fresh_pg()
    yield url
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
