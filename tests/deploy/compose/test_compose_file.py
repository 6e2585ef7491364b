"""docker-compose.yml is a valid Compose file: for the specification's JSON schema and for
the Compose v2 loader itself."""

from __future__ import annotations

import copy
import importlib.resources
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from .conftest import COMPOSE_FILE, PROFILES, run_compose_config

pytestmark = pytest.mark.deploy


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    # The Compose Specification schema as check-jsonschema vendors it (its `vendor.compose-spec`).
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendored / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_matches_the_compose_specification_schema(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    assert schema_errors(validator, compose) == []


def test_schema_validation_rejects_a_misspelled_service_key(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["helthcheck"] = broken["services"]["api"].pop("healthcheck")
    assert any("helthcheck" in error for error in schema_errors(validator, broken))


def test_compose_v2_loader_accepts_the_file_with_every_profile() -> None:
    result = run_compose_config(COMPOSE_FILE, "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_v2_loader_rejects_a_dependency_on_a_missing_service(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["depends_on"]["search"] = {"condition": "service_healthy"}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = run_compose_config(path, "--quiet")
    assert result.returncode != 0
    assert "search" in result.stderr


def test_profiles_are_frontend_backend_and_tools(compose: dict[str, Any]) -> None:
    by_profile: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        for profile in service.get("profiles", ["(always)"]):
            by_profile.setdefault(profile, set()).add(name)
    assert by_profile == {
        "(always)": {"postgres", "redis", "nats", "migrate", "index"},
        "frontend": {"api", "web"},
        "backend": {"worker", "cron"},
        "tools": {"backup", "backup-index", "restore", "shell"},
    }
    assert set(PROFILES) == set(by_profile) - {"(always)"}


def test_two_workers_run(resolved: dict[str, Any]) -> None:
    assert resolved["services"]["worker"]["deploy"]["replicas"] == 2


def test_stateful_services_keep_their_data_in_named_volumes(resolved: dict[str, Any]) -> None:
    expected = {
        "postgres": "/var/lib/postgresql/data",
        "redis": "/data",
        "nats": "/data",
        "index": "/data",
    }
    for name, target in expected.items():
        mounts = {
            m["target"]: m for m in resolved["services"][name]["volumes"] if m["type"] == "volume"
        }
        assert target in mounts, f"{name} keeps no named volume at {target}"
        assert mounts[target]["source"] in resolved["volumes"]
