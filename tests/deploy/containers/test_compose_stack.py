"""The compose self-host end to end, as docker/README.md tells a user: secrets from its loop,
`up --wait`, the real pyacoustid client through the published api port, crashes of api,
worker, nats and index under a stream of submissions, backup → `down -v` → restore → `up`,
and a `down` that leaves nothing behind. The tests run in file order on one stack."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import acoustid
import pytest

from .compose_project import (
    ALL_PROFILES,
    API,
    RUNNING_PROFILES,
    WEB,
    ComposeProject,
    Song,
    create_api_keys,
    fingerprinted,
    http_status,
    make_songs,
    set_up_project,
    use_api,
    wait_until_found,
)
from .engine import BUILD_TIMEOUT, FIGURES, SERVER_IMAGE, Engine, record_seconds

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT)]

IMPORT_TIMEOUT = 180.0  # worker redelivery after a crash waits --ack-wait (30 s), doubling
# 24 songs at this pace: a stream of about a minute, across the four crashes
SUBMISSION_INTERVAL = 2.5


@pytest.fixture(scope="module")
def project(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    started = set_up_project(engine, tmp_path_factory.mktemp("compose") / "acoustid")
    began = time.monotonic()
    try:
        started.up()
        record_seconds("compose up --wait (frontend+backend) to healthy", began)
        use_api()
        yield started
    finally:
        engine.run(
            "compose", *ALL_PROFILES, "down", "--volumes", "--remove-orphans",
            cwd=started.directory, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def keys(project: ComposeProject) -> tuple[str, str]:
    return create_api_keys(project)


@pytest.fixture(scope="module")
def songs(
    project: ComposeProject, keys: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> list[Song]:
    """Three songs submitted through the api and imported by the workers."""
    submitted = fingerprinted(make_songs(tmp_path_factory.mktemp("audio"), 3, first_seed=1))
    client_key, user_key = keys
    response = acoustid.submit(
        client_key,
        user_key,
        [{"fingerprint": s.fingerprint, "duration": s.duration, "mbid": s.mbid} for s in submitted],
    )
    assert response["status"] == "ok", response
    assert [s["status"] for s in response["submissions"]] == ["pending"] * 3
    began = time.monotonic()
    assert wait_until_found(client_key, submitted, IMPORT_TIMEOUT) == []
    record_seconds("submission to found (3 songs, api -> nats -> worker -> index)", began)
    return submitted


def test_up_wait_leaves_every_service_healthy(project: ComposeProject) -> None:
    states = project.states()
    assert set(states) == {
        "postgres", "redis", "nats", "migrate", "index", "api", "web", "worker", "cron",
    }  # fmt: skip
    assert len(states["worker"]) == 2
    for service, containers in states.items():
        for container in containers:
            if service == "migrate":
                assert (container["State"], container["ExitCode"]) == ("exited", 0)
            else:
                assert (container["State"], container["Health"]) == ("running", "healthy")


def test_pyacoustid_finds_what_it_submitted(
    keys: tuple[str, str], songs: list[Song], tmp_path: Path
) -> None:
    client_key, _ = keys
    unknown = fingerprinted(make_songs(tmp_path, 1, first_seed=90))
    assert acoustid.lookup(client_key, unknown[0].fingerprint, unknown[0].duration)["results"] == []
    with pytest.raises(acoustid.WebServiceError, match="invalid API key"):
        acoustid.submit("nokey", "nobody", {"fingerprint": songs[0].fingerprint, "duration": 30})


def test_web_answers_through_its_published_port(project: ComposeProject) -> None:
    assert http_status(f"{WEB}/") == 200
    assert http_status(f"{API}/_health") == 200


def test_server_image_turns_healthy_read_only_with_a_tmpfs(
    engine: Engine, project: ComposeProject
) -> None:
    """The image's own HEALTHCHECK and default command (the api), root filesystem read-only
    plus the one tmpfs docker/README.md documents."""
    docker_dir = project.directory / "docker"
    name = "acoustid-read-only-api"
    engine.run(
        "run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "--network", "acoustid_default",
        "--volume", f"{docker_dir / 'acoustid.conf'}:/etc/acoustid/acoustid.conf:ro",
        "--volume", f"{docker_dir / 'secrets'}:/run/secrets:ro",
        "--env", "ACOUSTID_CONFIG=/etc/acoustid/acoustid.conf",
        SERVER_IMAGE,
    )  # fmt: skip
    try:
        assert wait_for_health(engine, name, 90) == "healthy", engine.run("logs", name).stderr
    finally:
        engine.run("rm", "--force", name)


def wait_for_health(engine: Engine, container: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = engine.run(
            "inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", container
        ).stdout.strip()
        if status == "healthy":
            break
        time.sleep(0.5)
    return status


def crash(engine: Engine, container: str) -> int:
    """SIGKILL the container's main process from the host, as a crash or the OOM killer
    would; returns its restart count before. (`docker kill` counts as a manual stop, for which
    the daemon applies no restart policy.)"""
    pid, restarts = engine.run(
        "inspect", "--format", "{{.State.Pid}} {{.RestartCount}}", container
    ).stdout.split()
    os.kill(int(pid), signal.SIGKILL)
    return int(restarts)


def wait_for_restart(engine: Engine, container: str, restarts: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = engine.run("inspect", "--format", "{{.RestartCount}}", container).stdout
        if int(count) > restarts and wait_for_health(engine, container, 1) == "healthy":
            return
        time.sleep(0.5)
    raise AssertionError(f"{container} did not come back healthy within {timeout:.0f} s")


class Submitter(threading.Thread):
    """Submits songs one by one until told to stop; keeps those the api acknowledged."""

    def __init__(self, keys: tuple[str, str], songs: list[Song]) -> None:
        super().__init__(daemon=True)
        self.keys, self.pending = keys, list(songs)
        self.acknowledged: list[Song] = []
        self.refused = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while self.pending and not self.stop.is_set():
            song = self.pending[0]
            try:
                response = acoustid.submit(
                    *self.keys,
                    {"fingerprint": song.fingerprint, "duration": song.duration, "mbid": song.mbid},
                )
            except acoustid.WebServiceError:
                response = {}
            if response.get("status") == "ok":
                self.acknowledged.append(self.pending.pop(0))
            else:
                self.refused += 1
            time.sleep(SUBMISSION_INTERVAL)


def test_crashed_services_come_back_and_no_acknowledged_submission_is_lost(
    engine: Engine,
    project: ComposeProject,
    keys: tuple[str, str],
    songs: list[Song],
    tmp_path: Path,
) -> None:
    stream = fingerprinted(make_songs(tmp_path, 24, first_seed=100))
    submitter = Submitter(keys, stream)
    submitter.start()
    for container in ("acoustid-api-1", "acoustid-worker-1", "acoustid-nats-1", "acoustid-index-1"):
        time.sleep(2)  # submissions flow between the crashes
        began = time.monotonic()
        restarts = crash(engine, container)
        wait_for_restart(engine, container, restarts, 120)
        record_seconds(f"crash of {container} to healthy again", began)
    submitter.join(300)
    submitter.stop.set()
    assert not submitter.is_alive(), f"{len(submitter.pending)} submissions never acknowledged"
    assert len(submitter.acknowledged) == len(stream)
    began = time.monotonic()
    missing = wait_until_found(keys[0], [*songs, *submitter.acknowledged], IMPORT_TIMEOUT)
    FIGURES["faults: submissions acknowledged / refused during crashes"] = (
        f"{len(submitter.acknowledged)} / {submitter.refused}"
    )
    record_seconds("faults: last crash to every acknowledged submission found", began)
    assert missing == []


def test_backup_down_restore_up_keeps_the_songs(
    project: ComposeProject, keys: tuple[str, str], songs: list[Song]
) -> None:
    # docker/README.md: the folder made by hand (here as root), the backup named by a stamp
    (project.directory / "backups").mkdir()
    name = {"ACOUSTID_BACKUP_NAME": "20261203T000000Z"}
    project.compose("run", "--rm", "backup", env=name)
    folder = project.directory / "backups" / name["ACOUSTID_BACKUP_NAME"]
    written = {path.name for path in folder.iterdir()}
    dumps = {f"{db}.dump" for db in ("acoustid_app", "acoustid_fingerprint", "acoustid_ingest")}
    assert written == {*dumps, "fingerprints.tar"}

    project.compose(*ALL_PROFILES, "down", "--volumes")
    assert project.leftovers() == {}
    began = time.monotonic()
    project.compose(
        "run", "--rm", "restore", env={"ACOUSTID_RESTORE_FROM": name["ACOUSTID_BACKUP_NAME"]}
    )
    project.up()
    record_seconds("restore + up --wait", began)
    assert wait_until_found(keys[0], songs, 60) == []


def test_down_leaves_no_container_volume_or_network(project: ComposeProject) -> None:
    project.compose(*RUNNING_PROFILES, "down", "--volumes")
    assert project.leftovers() == {}
