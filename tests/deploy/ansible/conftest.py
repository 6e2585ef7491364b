"""Fixtures for the playbook tests: the app's wheels for the hosts, and fleets of hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from .debian_hosts import HOST_PYTHON
from .deployment import build_wheels


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the app's wheel, a tar of its dependencies) for the hosts' Python."""
    return build_wheels(tmp_path_factory.mktemp("wheels"), HOST_PYTHON)
