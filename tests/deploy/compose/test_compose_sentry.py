"""docker/compose.sentry.yml: the optional Sentry DSN secret, added to every reporting service
of docker-compose.yml when given as a second file (as Compose itself merges them)."""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import COMPOSE_FILE, DOCKER_DIR, PROFILES, compose_binary

pytestmark = pytest.mark.deploy

REPORTING = ("api", "web", "worker", "cron", "index")
DSN_TARGET = "/run/secrets/sentry_dsn"


def merged_config(*files: str) -> dict[str, object]:
    argv = [compose_binary()]
    for file in files:
        argv += ["--file", file]
    argv += [arg for name in PROFILES for arg in ("--profile", name)]
    result = subprocess.run(
        [*argv, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=COMPOSE_FILE.parent,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = json.loads(result.stdout)
    return config


def test_the_sentry_file_gives_every_reporting_service_the_dsn_as_a_secret_file() -> None:
    config = merged_config(str(COMPOSE_FILE), str(DOCKER_DIR / "compose.sentry.yml"))
    services = config["services"]
    assert isinstance(services, dict)
    for name in REPORTING:
        service = services[name]
        assert service["environment"]["ACOUSTID_SENTRY_DSN_FILE"] == DSN_TARGET, name
        assert {"source": "sentry_dsn", "target": DSN_TARGET} in service["secrets"], name
    # the merge adds to what the main file gives, it replaces nothing
    assert services["api"]["environment"]["ACOUSTID_CONFIG"] == "/etc/acoustid/acoustid.conf"
    assert len(services["api"]["secrets"]) == 5
    secrets = config["secrets"]
    assert isinstance(secrets, dict)
    assert secrets["sentry_dsn"]["file"] == str(DOCKER_DIR / "secrets" / "sentry_dsn")


def test_without_the_sentry_file_no_service_reports() -> None:
    services = merged_config(str(COMPOSE_FILE))["services"]
    assert isinstance(services, dict)
    for name, service in services.items():
        assert "ACOUSTID_SENTRY_DSN_FILE" not in service.get("environment", {}), name
