"""Every drill's measured RTO and RPO at the end of the run, passed or not: CI's log is
where the runbooks' figures come from."""

from __future__ import annotations

import pytest

_SUMMARIES = pytest.StashKey[list[str]]()


@pytest.fixture
def drill_summaries(request: pytest.FixtureRequest) -> list[str]:
    """Append a drill's report summary here to have it printed at the end of the run."""
    return request.config.stash.setdefault(_SUMMARIES, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summaries = terminalreporter.config.stash.get(_SUMMARIES, [])
    if summaries:
        terminalreporter.section("drills: measured RTO / RPO")
        for line in summaries:
            terminalreporter.write_line(line)
