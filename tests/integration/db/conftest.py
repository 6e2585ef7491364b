"""Fresh, not yet created databases for each db test.

The session's own databases (`test_settings`) are shared with other tests; migration
tests need databases nobody has touched, so each test gets three new names under the
session prefix (dropped with the session's databases at the end).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from acoustid_stack.cli import cli
from acoustid_stack.config import DatabaseName, Settings, load_settings
from acoustid_stack.db.schema import DATABASE_NAMES

_counter = itertools.count()


@pytest.fixture
def fresh_environ(test_environ: dict[str, str]) -> dict[str, str]:
    """ACOUSTID_* variables naming three databases that do not exist yet."""
    serial = next(_counter)
    environ = dict(test_environ)
    for name in DATABASE_NAMES:
        key = f"ACOUSTID_DATABASE_{name.upper()}_NAME"
        environ[key] = f"{test_environ[key]}_m{serial}"
    return environ


@pytest.fixture
def fresh_settings(fresh_environ: dict[str, str]) -> Settings:
    return load_settings(path=None, environ=fresh_environ)


@pytest.fixture
def run_db(fresh_environ: dict[str, str]) -> Callable[..., Result]:
    """Invoke `acoustid-stack db …` in-process against the fresh databases (must succeed).

    The terminal is wide so that rich tables keep one line per row.
    """
    runner = CliRunner(env={"ACOUSTID_CONFIG": None, "COLUMNS": "200", **fresh_environ})

    def run(*args: str) -> Result:
        result = runner.invoke(cli, ["db", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    return run


@pytest.fixture
def start_cli(fresh_environ: dict[str, str]) -> Iterator[Any]:
    """Start `acoustid-stack …` as its own process (real exit code, stderr, concurrency).

    Extra variables override the fresh environment; processes still running at teardown are
    killed.
    """
    started: list[subprocess.Popen[str]] = []
    base = {k: v for k, v in os.environ.items() if not k.startswith("ACOUSTID_")}

    def start(*args: str, **overrides: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", "from acoustid_stack.cli import main; main()", *args],
            env={**base, **fresh_environ, **overrides},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture
def connect(fresh_settings: Settings) -> Iterator[Any]:
    """Open an autocommit connection to one of the fresh databases (closed at teardown)."""
    opened: list[psycopg.Connection[tuple[Any, ...]]] = []

    def open_connection(database: DatabaseName) -> psycopg.Connection[tuple[Any, ...]]:
        conn = psycopg.connect(fresh_settings.database.get(database).conninfo(), autocommit=True)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        conn.close()
