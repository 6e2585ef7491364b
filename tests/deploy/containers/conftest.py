"""One private Docker engine per test session, with the stand-ins and both project images
built once and shared by every container test (see engine.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from run_summary import add_to_summary

from .engine import FIGURES, Engine, build_project_images, build_standins, running_engine


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    with running_engine() as started:
        build_standins(started)
        build_project_images(started)
        yield started


@pytest.fixture(autouse=True)
def _report_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hands the figures measured so far to the run's summary, once each."""
    yield
    for name, value in FIGURES.items():
        if name not in _REPORTED:
            _REPORTED.add(name)
            add_to_summary(request.node, "container figures", f"{name}: {value}")


_REPORTED: set[str] = set()
