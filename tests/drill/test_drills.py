"""Every runbook's drill, end to end on a throwaway local stack (RTO < 5 min, RPO < 60 s).

Each builds PostgreSQL primary + replica + backups, Redis, 3-node NATS, 2 index shards,
api, 2 workers and cron, writes steadily, injects the fault, follows the runbook, and
checks every acknowledged submission (≈ 50 s per drill on 2 cores). Every drill runs on
Debian's servers (PostgreSQL 15 + pgBackRest, Redis 7: the Ansible face); those that
restore from backups also on the pip-shipped ones `acoustid-stack up` runs (PostgreSQL 18
+ pg_basebackup, Valkey 9).
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from acoustid_stack.ops.drills.report import RPO_TARGET, RTO_TARGET
from acoustid_stack.ops.drills.scenarios import SCENARIOS, run_drill
from acoustid_stack.ops.drills.stack import ServerSet

pytestmark = [pytest.mark.drill, pytest.mark.slow, pytest.mark.integration]

#: scenarios in which nothing acknowledged may be lost at all
LOSSLESS = {"index-node-lost", "redis-lost", "nats-node-lost", "nats-lost"}
#: scenarios whose runbook restores backups: they run on both server sets
FROM_BACKUPS = {"pitr", "total-loss", "redis-lost", "pg-primary-lost"}
RUNS = [("debian", name) for name in sorted(SCENARIOS)]
RUNS += [("pip", name) for name in sorted(FROM_BACKUPS)]


@pytest.mark.parametrize(("servers", "name"), RUNS)
def test_drill_recovers_within_targets_and_keeps_acknowledged_submissions(
    servers: ServerSet, name: str, drill_summaries: list[str]
) -> None:
    # outside pytest's basetemp: pytest sessions running at the same time prune each
    # other's old basetemps, which would delete a running drill's data; kept on failure
    folder = Path(tempfile.mkdtemp(prefix=f"acoustid-drill-{servers}-{name}-"))
    print(f"drill data in {folder}")
    report = run_drill(SCENARIOS[name], folder, echo=print, servers=servers)
    drill_summaries.append(report.summary())
    assert report.acknowledged > 0
    assert report.healthy_at > report.fault_at
    assert report.rto < RTO_TARGET, report.summary()
    assert report.lost_window < RPO_TARGET, report.summary()
    if name in LOSSLESS:
        assert report.lost_ids == [], report.summary()
    assert report.unsearchable_ids == [], report.summary()
    assert (folder / f"drill-{name}.json").exists()
    assert (folder / f"drill-{name}.png").exists()
    shutil.rmtree(folder, ignore_errors=True)
