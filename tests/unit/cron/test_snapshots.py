"""The index snapshot job's naming, listing and place in the job table."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from acoustid_stack.config import load_settings
from acoustid_stack.cron.jobs import JOBS, jobs_for
from acoustid_stack.cron.metrics import CronMetrics
from acoustid_stack.cron.snapshots import shard_folder, snapshots
from acoustid_stack.ops.layout import parse_stamp


def test_a_shard_folder_is_named_by_the_url_without_its_scheme() -> None:
    assert shard_folder("http://10.0.0.5:6081") == "10.0.0.5_6081"
    assert shard_folder("https://index-0.acoustid.svc:6081/") == "index-0.acoustid.svc_6081"


def test_only_complete_stamped_copies_are_listed_oldest_first(tmp_path: Path) -> None:
    for name in (
        "20250102T000000Z.tar",
        "20250101T000000Z.tar",
        ".20250103T000000Z.tar.partial",
        "notes.tar",
        "20250104T000000Z.txt",
    ):
        (tmp_path / name).touch()
    assert [(moment, path.name) for moment, path in snapshots(tmp_path)] == [
        (parse_stamp("20250101T000000Z"), "20250101T000000Z.tar"),
        (parse_stamp("20250102T000000Z"), "20250102T000000Z.tar"),
    ]
    assert snapshots(tmp_path / "missing") == []


def test_the_job_runs_only_while_a_snapshot_dir_is_set_and_looks_at_most_every_5_minutes(
    tmp_path: Path,
) -> None:
    metrics = CronMetrics(CollectorRegistry())
    assert jobs_for(load_settings(environ={}), metrics) == JOBS

    def snapshot_job(interval: str) -> timedelta:
        environ = {
            "ACOUSTID_INDEX_SNAPSHOT_DIR": str(tmp_path),
            "ACOUSTID_INDEX_SNAPSHOT_INTERVAL": interval,
        }
        *others, job = jobs_for(load_settings(environ=environ), metrics)
        assert tuple(others) == JOBS
        assert job.name == "index_snapshots"
        return job.every

    assert snapshot_job("86400") == timedelta(minutes=5)
    assert snapshot_job("120") == timedelta(minutes=2)
