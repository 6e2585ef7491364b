"""The harness's testcontainers path, for real: whole integration modules run with their
PostgreSQL, Redis and NATS from testcontainers on the private engine (stand-in images),
as on a developer machine with Docker and no servers of its own."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from .engine import BUILD_TIMEOUT, REPO, Engine

pytestmark = [
    pytest.mark.containers,
    pytest.mark.integration,
    pytest.mark.timeout(BUILD_TIMEOUT),
]

# one module per service, each a full module of the integration suite
MODULES = {
    "postgres:17": "tests/integration/db/test_upgrade.py",
    "redis:7": "tests/integration/api/test_ratelimit.py",
    "nats:2": "tests/integration/submissions/test_stream.py",
}


@pytest.mark.parametrize("image", sorted(MODULES))
def test_integration_module_passes_on_services_from_testcontainers(
    engine: Engine, image: str
) -> None:
    since = str(int(time.time()) - 1)
    environ = {
        key: value
        for key, value in engine.environ.items()
        # the outer session's options (coverage, durations) and service URLs stay out
        if key != "PYTEST_ADDOPTS" and not key.startswith("ACOUSTID_TEST_")
    }
    environ |= {
        "ACOUSTID_TEST_SERVICES": "container",
        "TESTCONTAINERS_RYUK_DISABLED": "true",  # Ryuk's image cannot be pulled here
        "TESTCONTAINERS_CONNECTION_MODE": "docker_host",  # this machine has a /.dockerenv
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", MODULES[image]],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in summary, summary
    assert "skipped" not in summary, summary
    started = engine.run(
        "events", "--since", since, "--until", str(int(time.time()) + 1),
        "--filter", "type=container", "--filter", "event=start", "--format", "{{.From}}",
    ).stdout.split()  # fmt: skip
    assert image in started, f"no {image} container started: {sorted(set(started))}"
