from pathlib import Path

import pytest

from acoustid_stack.ops.drills.scenarios import SCENARIOS

RUNBOOKS = Path(__file__).resolve().parents[3] / "runbooks"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_command_a_drill_runs_is_printed_in_its_runbook(name: str) -> None:
    page = (RUNBOOKS / f"{name}.md").read_text()
    for command in SCENARIOS[name].commands:
        assert command in page, f"runbooks/{name}.md lacks: {command}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_runbook_index_links_every_scenario_and_states_its_figures(name: str) -> None:
    index = (RUNBOOKS / "README.md").read_text()
    assert f"({name}.md)" in index
    assert "RTO / RPO" in (RUNBOOKS / f"{name}.md").read_text()
