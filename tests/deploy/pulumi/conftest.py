"""Deployments of the whole stack per sizing profile, built once per session under mocks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("pulumi_kubernetes", reason="needs the deploy extra")

from pulumi_harness import PROFILES, Deployment, deploy_stack, stack_args

from components.stack import AcoustidStackArgs


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
