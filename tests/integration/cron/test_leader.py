"""Leader election between real cron processes on the real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE = 30.0  # the failover target; polls below end as soon as the condition holds


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def test_two_cron_processes_elect_one_leader_and_the_other_takes_over_when_it_dies(
    start_cron: Callable[..., Any],
) -> None:
    first = start_cron("--retry-interval", "0.3")
    wait_for(lambda: first.became_leader() == 1, "the first cron process leads")
    second = start_cron("--retry-interval", "0.3")
    wait_for(lambda: "cron job" in first.output(), "the leader ran its jobs")
    wait_for(lambda: "waiting for the leader lock" in second.output(), "the standby is up")
    time.sleep(1.0)  # several standby attempts (every 0.3 s)
    assert second.became_leader() == 0
    assert "cron job" not in second.output()

    first.process.kill()  # kill -9: no clean release, the server notices the closed session
    first.process.wait()
    wait_for(lambda: second.became_leader() == 1, "the standby took over")
    wait_for(lambda: "cron job republish_pending done" in second.output(), "new leader runs jobs")


def test_a_leader_stopped_with_sigterm_releases_the_lock_and_exits_cleanly(
    start_cron: Callable[..., Any],
) -> None:
    cron = start_cron("--retry-interval", "0.3")
    wait_for(lambda: cron.became_leader() == 1, "it leads")
    cron.process.terminate()
    assert cron.process.wait(timeout=15) == 0
    assert "no longer the cron leader" in cron.output()
    successor = start_cron("--retry-interval", "0.3")
    wait_for(lambda: successor.became_leader() == 1, "a new process leads at once")


def test_the_leader_runs_every_job_of_the_table_without_errors(
    start_cron: Callable[..., Any],
) -> None:
    from acoustid_stack.cron.jobs import JOBS

    cron = start_cron("--retry-interval", "0.3")
    wait_for(lambda: all(f"cron job {job.name} " in cron.output() for job in JOBS), "all jobs ran")
    assert "failed" not in cron.output(), cron.output()


def test_cron_stays_up_and_leads_when_jetstream_cannot_create_its_stream(
    start_cron: Callable[..., Any], test_environ: dict[str, str]
) -> None:
    """Three replicas asked of a single NATS server: the stream cannot be placed, as on a
    cluster that has no JetStream leader yet. Jobs that need no stream still run."""
    cron = start_cron(
        "--retry-interval",
        "0.3",
        ACOUSTID_NATS_REPLICAS="3",
        ACOUSTID_NATS_STREAM=test_environ["ACOUSTID_NATS_STREAM"] + "_UNPLACEABLE",
        ACOUSTID_NATS_SUBJECT_PREFIX=test_environ["ACOUSTID_NATS_SUBJECT_PREFIX"] + "_unplaceable",
    )
    wait_for(lambda: "cron job update_stats done" in cron.output(), "a job ran")
    assert cron.process.poll() is None, cron.output()
    assert cron.became_leader() == 1
