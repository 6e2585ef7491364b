"""One private Docker engine per test session, with the stand-ins and both project images
built once and shared by every container test (see engine.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .engine import FIGURES, Engine, build_project_images, build_standins, running_engine


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    with running_engine() as started:
        build_standins(started)
        build_project_images(started)
        yield started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("container figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
