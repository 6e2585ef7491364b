"""Real services for every test (DESIGN.md §9): no database, broker or index is mocked.

`services` resolves PostgreSQL, Redis and NATS once per test session (env URLs, the
servers running here, containers, or binaries). Everything a session creates carries a
unique prefix: three databases `<prefix>_app|fingerprint|ingest`, Redis keys
`<prefix>:…`, a JetStream stream `<PREFIX>_SUBMISSIONS`; all are removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from acoustid_stack.local.services import Services
from run_summary import add_to_summary, lines_of

DATABASES = ("app", "fingerprint", "ingest")


TESTS = Path(__file__).resolve().parent
#: Suites whose files share one costly session fixture (test hosts, a Docker engine, rendered
#: stacks) run on one pytest-xdist worker (`-n 2 --dist loadgroup`); every other file is a group
#: of its own, so module fixtures start once, and each drill is one, so drills spread out.
SHARED_FIXTURE_SUITES = {
    "deploy/ansible": "ansible",
    "deploy/containers": "docker",
    "deploy/compose": "docker",
    "deploy/chart": "chart",
    "deploy/pulumi": "pulumi",
    "e2e": "e2e",
}


# first: xdist's own hook turns the marks into the groups it schedules by
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        relative = item.path.relative_to(TESTS).as_posix()
        group = next(
            (
                name
                for folder, name in SHARED_FIXTURE_SUITES.items()
                if relative.startswith(f"{folder}/")
            ),
            item.nodeid if relative.startswith("drill/") else relative,
        )
        item.add_marker(pytest.mark.xdist_group(group))


#: section -> lines, printed at the end of the run (see run_summary.py)
_SUMMARIES: dict[str, list[str]] = {}


@pytest.fixture
def drill_summaries(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Append a drill's report summary here to have it printed at the end of the run."""
    lines: list[str] = []
    yield lines
    for line in lines:
        add_to_summary(request.node, "drills: measured RTO / RPO", line)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        for section, line in lines_of(report):
            _SUMMARIES.setdefault(section, []).append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for section, lines in _SUMMARIES.items():
        terminalreporter.section(section)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with Services(work_dir=tmp_path_factory.mktemp("services")) as svc:
        yield svc


@pytest.fixture(scope="session")
def test_prefix() -> str:
    return f"acoustid_t{os.getpid()}_{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def test_environ(services: Services, test_prefix: str) -> Iterator[dict[str, str]]:
    """ACOUSTID_* variables that point every component at this session's isolated resources."""
    pg, rd, nats = services.postgres(), services.redis(), services.nats()
    environ = {
        "ACOUSTID_DATABASE_HOST": pg.host,
        "ACOUSTID_DATABASE_PORT": str(pg.port),
        "ACOUSTID_DATABASE_USER": pg.user,
        "ACOUSTID_REDIS_HOST": rd.host,
        "ACOUSTID_REDIS_PORT": str(rd.port),
        "ACOUSTID_REDIS_KEY_PREFIX": f"{test_prefix}:",
        "ACOUSTID_NATS_SERVERS": nats.url,
        "ACOUSTID_NATS_STREAM": f"{test_prefix.upper()}_SUBMISSIONS",
        "ACOUSTID_NATS_SUBJECT_PREFIX": f"{test_prefix}.submissions",
    }
    for name in DATABASES:
        environ[f"ACOUSTID_DATABASE_{name.upper()}_NAME"] = f"{test_prefix}_{name}"
    if pg.password:
        environ["ACOUSTID_DATABASE_PASSWORD"] = pg.password
    if rd.password:
        environ["ACOUSTID_REDIS_PASSWORD"] = rd.password
    yield environ
    _drop_databases(services, test_prefix)
    _delete_redis_keys(services, test_prefix)
    asyncio.run(_delete_streams(services, test_prefix.upper()))


@pytest.fixture(scope="session")
def test_settings(test_environ: dict[str, str]) -> Any:
    """Settings for this session's isolated databases (not created yet: `db upgrade` does)."""
    from acoustid_stack.config import load_settings

    return load_settings(path=None, environ=test_environ)


def _drop_databases(services: Services, prefix: str) -> None:
    with psycopg.connect(services.postgres().conninfo(), autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}%",)
            )
        ]
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _delete_redis_keys(services: Services, prefix: str) -> None:
    client = redis.Redis.from_url(services.redis().url())
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()


async def _delete_streams(services: Services, prefix: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(services.nats().url)
    try:
        js = nc.jetstream()
        with contextlib.suppress(NotFoundError):
            for stream in await js.streams_info():
                if stream.config.name and stream.config.name.startswith(prefix):
                    await js.delete_stream(stream.config.name)
    finally:
        await nc.close()
