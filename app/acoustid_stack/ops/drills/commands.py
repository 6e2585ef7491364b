"""`acoustid-stack drill <scenario>|all`: run disaster-recovery drills on throwaway stacks."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from acoustid_stack.errors import UserError
from acoustid_stack.ops.drills.scenarios import SCENARIOS, run_drill
from acoustid_stack.ops.drills.stack import SERVER_SETS, ServerSet


@click.command()
@click.argument("scenario", type=click.Choice([*SCENARIOS, "all"]))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the drill stacks (one sub-folder per scenario) [default: a new temp folder].",
)
@click.option(
    "--servers",
    type=click.Choice(SERVER_SETS),
    default="debian",
    show_default=True,
    help="debian: Debian's PostgreSQL 15 + pgBackRest, Redis, nats-server (as the playbooks "
    "install); pip: the local extra's PostgreSQL 18 + pg_basebackup, Valkey, nats-server (as "
    "`acoustid-stack up` runs).",
)
def drill(scenario: str, data_dir: Path | None, servers: ServerSet) -> None:
    """Break a local stack the way SCENARIO says, recover it with the runbook's commands,
    verify every acknowledged submission, and print measured RTO and RPO.

    Writes drill-<scenario>.json and .png into the scenario's folder; exit 1 when a drill
    misses RTO < 5 min, RPO < 60 s or leaves a submission unsearchable.
    """
    root = data_dir or Path(tempfile.mkdtemp(prefix="acoustid-drill-"))
    names = list(SCENARIOS) if scenario == "all" else [scenario]
    failed = []
    summaries = []
    for name in names:
        report = run_drill(SCENARIOS[name], root / name, echo=click.echo, servers=servers)
        summaries.append(report.summary())
        if not report.passed:
            failed.append(name)
    if len(names) > 1:
        click.echo("\n".join(summaries))
    if failed:
        raise UserError(
            f"drills missed their targets: {', '.join(failed)}; see the reports in {root}"
        )
