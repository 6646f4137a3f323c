"""Shared fixtures: a study repository on each database backend.

`repository` runs a test on SQLite (a file in tmp_path, always) and on PostgreSQL when a server
is reachable at ``$VOXELWISE_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@localhost:5432/postgres``; `.ci/start-postgres.sh` starts one).
Each PostgreSQL test gets a fresh database, dropped afterwards. When no server answers, the
PostgreSQL cases are skipped with the reason, which ``pytest -ra`` prints.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from voxelwise.store import DATABASE_ENV, Repository

POSTGRES_URL_ENV = "VOXELWISE_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@localhost:5432/postgres"
CONNECT_TIMEOUT_S = 3


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Engine]:
    """An autocommit connection pool to the PostgreSQL server's maintenance database."""
    url = make_url(os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL)
    shown = url.render_as_string(hide_password=True)
    try:  # a missing driver (ImportError) skips too
        engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                               connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, ImportError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        pytest.skip(f"PostgreSQL not reachable at {shown}: {reason}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_server: Engine) -> Iterator[URL]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"vw_test_{uuid.uuid4().hex[:12]}"
    with postgres_server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_server.url.set(database=name)
    with postgres_server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> URL:
    """A database URL for a fresh repository, one per backend (VOXELWISE_DB is cleared)."""
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    if request.param == "sqlite":
        return URL.create("sqlite", database=str(tmp_path / "repository" / "repository.db"))
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def repository(database_url: URL, tmp_path: Path) -> Iterator[Repository]:
    """A new, empty study repository in tmp_path, with its database on each backend."""
    repository = Repository.open(tmp_path / "repository", url=database_url)
    yield repository
    repository.close()
