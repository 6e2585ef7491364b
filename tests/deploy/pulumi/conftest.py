"""Deployments of the whole stack per sizing profile, built once per session under mocks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

pytest.importorskip("pulumi_kubernetes", reason="needs the deploy extra")

from pulumi_harness import Deployment, run_program

from acoustid_stack.sizing import load_sizing
from components.database import BackupArgs
from components.stack import AcoustidStack, AcoustidStackArgs

PROFILES = ("minimum", "production")
BACKUP = BackupArgs(
    destination_path="s3://acoustid-backups/test",
    endpoint_url="https://objects.example.org",
    access_key_id="test-access-key-id",
    secret_access_key="test-secret-access-key",
)


def stack_args(profile: str, **changes: Any) -> AcoustidStackArgs:
    args = AcoustidStackArgs(profile=load_sizing().profile(profile), backup=BACKUP)
    return replace(args, **changes)


def deploy_stack(args: AcoustidStackArgs) -> Deployment:
    def build() -> dict[str, Any]:
        return AcoustidStack("acoustid", args).outputs

    return run_program(build)


@pytest.fixture(scope="session")
def deploy() -> Callable[[AcoustidStackArgs], Deployment]:
    return deploy_stack


@pytest.fixture(scope="session")
def deployments() -> dict[str, Deployment]:
    return {profile: deploy_stack(stack_args(profile)) for profile in PROFILES}


@pytest.fixture(params=PROFILES)
def deployment(request: pytest.FixtureRequest, deployments: dict[str, Deployment]) -> Deployment:
    """Each profile's deployment in turn."""
    return deployments[request.param]


@pytest.fixture
def production(deployments: dict[str, Deployment]) -> Deployment:
    return deployments["production"]


@pytest.fixture
def minimum(deployments: dict[str, Deployment]) -> Deployment:
    return deployments["minimum"]
