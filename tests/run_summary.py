"""Figures a test measured, printed in sections at the end of the run (drills' RTO/RPO,
container build times): CI's log is where the runbooks' and the notes' figures come from.

They travel in each test's report (`user_properties`), so under pytest-xdist the workers'
figures reach the controller, which prints them (`tests/conftest.py`)."""

from __future__ import annotations

import pytest

PROPERTY = "run summary"


def add_to_summary(node: pytest.Item, section: str, line: str) -> None:
    node.user_properties.append((PROPERTY, (section, line)))


def lines_of(report: pytest.TestReport) -> list[tuple[str, str]]:
    return [(str(v[0]), str(v[1])) for k, v in report.user_properties if k == PROPERTY]
