"""site.yml on one fresh Debian 12 host (the `single` inventory, minimum profile)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import acoustid
import httpx
import pytest

from .debian_hosts import Fleet
from .deployment import (
    Deployment,
    Recap,
    create_api_keys,
    http_status,
    random_fingerprint,
    wait_for_lookup,
)

pytestmark = [pytest.mark.deploy, pytest.mark.slow, pytest.mark.timeout(900)]

HOST = "acoustid1"
GROUPS = ["postgresql_primary", "redis", "nats", "index", "api", "web", "worker", "cron"]


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, wheels: tuple[Path, Path]
) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("single-host")
    with Fleet([HOST], work / "fleet") as fleet:
        deployment = Deployment(fleet, work)
        deployment.write(
            base="single",
            groups={group: [HOST] for group in GROUPS} | {"postgresql_replicas": []},
            wheel=wheels[0],
            wheelhouse=wheels[1],
        )
        yield deployment


@pytest.fixture(scope="module")
def first_run(deployment: Deployment) -> Recap:
    return deployment.play("site.yml")


def test_site_converges_on_a_fresh_host(first_run: Recap) -> None:
    assert first_run.returncode == 0, first_run.summary()
    assert first_run.changed[HOST] > 0


def test_api_and_index_answer_their_health_checks(deployment: Deployment, first_run: Recap) -> None:
    assert http_status(deployment.fleet, HOST, "http://127.0.0.1:5000/_health") == "200"
    assert http_status(deployment.fleet, HOST, "http://127.0.0.1:6081/_health") == "200"


def test_the_api_port_is_open_to_clients_and_the_rest_is_closed(
    deployment: Deployment, first_run: Recap
) -> None:
    address = deployment.fleet.hosts[HOST].address
    assert httpx.get(f"http://{address}:5000/_health", timeout=5).status_code == 200
    rules = deployment.fleet.ssh(HOST, "nft list chain inet filter input")
    assert "policy drop" in rules
    assert "tcp dport 5432" in rules


def test_pyacoustid_submits_and_finds_through_the_deployed_api(
    deployment: Deployment, first_run: Recap
) -> None:
    client_key, user_key = create_api_keys(deployment.fleet, HOST)
    api_url = f"http://{deployment.fleet.hosts[HOST].address}:5000"
    acoustid.API_BASE_URL = f"{api_url}/v2/"
    fingerprint, mbid = random_fingerprint(1), str(uuid.uuid4())
    response = acoustid.submit(
        client_key, user_key, {"fingerprint": fingerprint, "duration": 120, "mbid": mbid}
    )
    assert response["status"] == "ok"
    # the worker imports it through NATS and the index, then lookups see it
    matches = wait_for_lookup(api_url, client_key, fingerprint, 120, seconds=60)
    assert matches, "the submission was never imported"
    assert matches[0][1] == mbid
    assert matches[0][0] > 0.9


def test_pgbackrest_holds_a_full_backup_and_archives_wal(
    deployment: Deployment, first_run: Recap
) -> None:
    info = deployment.fleet.ssh(HOST, "runuser -u postgres -- pgbackrest --stanza=acoustid info")
    assert "status: ok" in info
    assert "full backup" in info


def test_second_run_changes_nothing(deployment: Deployment, first_run: Recap) -> None:
    second = deployment.play("site.yml")
    assert second.returncode == 0, second.summary()
    assert second.changed == {HOST: 0}, second.summary()


def test_check_diff_on_the_converged_host_reports_no_change(
    deployment: Deployment, first_run: Recap
) -> None:
    check = deployment.play("site.yml", "--check", "--diff")
    assert check.returncode == 0, check.summary()
    assert check.changed == {HOST: 0}, check.summary()
