"""site.yml on three fresh Debian 12 hosts, then failover.yml after the primary stops.

node1: PostgreSQL primary, Redis primary, NATS, index shard 0, api, web
node2: PostgreSQL replica, Redis replica, NATS, index shard 1
node3: PostgreSQL replica, NATS, api, worker, cron, Prometheus + Alertmanager

After the failover (node2 promoted, node3 repointed), site.yml runs again and must keep node2
as the primary, re-cloning node1 as its replica.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import acoustid
import pytest
import yaml

from .debian_hosts import Fleet
from .deployment import (
    REPOSITORY,
    Deployment,
    Recap,
    create_api_keys,
    http_status,
    random_fingerprint,
    wait_for_lookup,
)

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.slow,
    # 2 cores: 6.9 min at load 3-8 (first converge ≈ 3 min); ≈ 14 min at load 14
    pytest.mark.timeout(1200),
]

GROUPS = {
    "postgresql_primary": ["node1"],
    "postgresql_replicas": ["node2", "node3"],
    "redis": ["node1", "node2"],
    "nats": ["node1", "node2", "node3"],
    "index": ["node1", "node2"],
    "api": ["node1", "node3"],
    "web": ["node1"],
    "worker": ["node3"],
    "cron": ["node3"],
    "monitoring": ["node3"],
}
ALERT_RULES = REPOSITORY / "app/acoustid_stack/monitoring/alerts.yml"
PSQL = "runuser -u postgres -- psql -XAt -c"
# "streaming <address of the primary>" while a replica's WAL receiver streams.
SENDER = f"{PSQL} \"SELECT status || ' ' || sender_host FROM pg_stat_wal_receiver\""


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, wheels: tuple[Path, Path]
) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("three-hosts")
    with Fleet(["node1", "node2", "node3"], work / "fleet") as fleet:
        deployment = Deployment(fleet, work)
        deployment.write(
            base="single",
            groups=GROUPS,
            wheel=wheels[0],
            wheelhouse=wheels[1],
            overrides={
                "index_shards": 2,
                "nats_stream_replicas": 3,
                # alerts turn pending within seconds of a shard stopping
                "monitoring_scrape_interval": "10s",
                "monitoring_evaluation_interval": "10s",
            },
        )
        yield deployment


@pytest.fixture(scope="module")
def first_run(deployment: Deployment) -> Recap:
    return deployment.play("site.yml")


@pytest.fixture(scope="module")
def submitted(deployment: Deployment, first_run: Recap) -> tuple[str, str, str]:
    """(client key, fingerprint, mbid) of a submission the worker imported through node3."""
    client_key, user_key = create_api_keys(deployment.fleet, "node1")
    api_url = api(deployment, "node3")
    acoustid.API_BASE_URL = f"{api_url}/v2/"
    fingerprint, mbid = random_fingerprint(3), str(uuid.uuid4())
    response = acoustid.submit(
        client_key, user_key, {"fingerprint": fingerprint, "duration": 120, "mbid": mbid}
    )
    assert response["status"] == "ok"
    return client_key, fingerprint, mbid


def api(deployment: Deployment, host: str) -> str:
    return f"http://{deployment.fleet.hosts[host].address}:5000"


def poll(probe: str, fleet: Fleet, host: str, expected: str, seconds: float) -> str:
    """Run `probe` on host once a second until it prints `expected` (or time is up)."""
    deadline = time.monotonic() + seconds
    while True:
        output = fleet.ssh(host, probe, check=False).strip()
        if output == expected or time.monotonic() > deadline:
            return output
        time.sleep(1)


def test_site_converges_on_three_fresh_hosts(first_run: Recap) -> None:
    assert first_run.returncode == 0, first_run.summary()
    assert set(first_run.changed) == {"node1", "node2", "node3"}


def test_the_replicas_stream_from_the_primary_with_no_lag(
    deployment: Deployment, first_run: Recap
) -> None:
    fleet = deployment.fleet
    assert_streams_from(fleet, "node1", ["node2", "node3"])
    lag = poll(
        f'{PSQL} "SELECT count(*), max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)) '
        "FROM pg_stat_replication WHERE state = 'streaming'\"",
        fleet,
        "node1",
        "2|0",
        seconds=30,
    )
    assert lag == "2|0"


def test_redis_replicates_to_the_second_host(deployment: Deployment, first_run: Recap) -> None:
    password = deployment.secrets["vault_redis_password"]
    info = deployment.fleet.ssh(
        "node2", f"redis-cli --no-auth-warning -a {password} info replication"
    )
    assert "role:slave" in info
    assert "master_link_status:up" in info


def test_nats_forms_a_three_node_jetstream_cluster(
    deployment: Deployment, first_run: Recap
) -> None:
    jsz = json.loads(deployment.fleet.ssh("node3", "curl -s http://127.0.0.1:8222/jsz"))
    assert jsz["meta_cluster"]["cluster_size"] == 3
    assert jsz["meta_cluster"]["leader"] in {"node1", "node2", "node3"}


def test_two_index_shards_and_the_app_services_run(
    deployment: Deployment, first_run: Recap
) -> None:
    fleet = deployment.fleet
    for host in ("node1", "node2"):
        assert http_status(fleet, host, "http://127.0.0.1:6081/_health") == "200", host
    for host in ("node1", "node3"):
        assert http_status(fleet, host, "http://127.0.0.1:5000/_health") == "200", host
    active = fleet.ssh(
        "node3", "systemctl is-active acoustid-worker@1 acoustid-cron acoustid-api", check=False
    )
    assert active.split() == ["active", "active", "active"]
    config = fleet.ssh("node3", "cat /etc/acoustid/acoustid.conf")
    shards = f"shards = http://{fleet.hosts['node1'].address}:6081,http://{fleet.hosts['node2'].address}:6081"
    assert shards in config


def test_a_submission_is_imported_and_found_through_another_api_host(
    deployment: Deployment, submitted: tuple[str, str, str]
) -> None:
    client_key, fingerprint, mbid = submitted
    matches = wait_for_lookup(api(deployment, "node1"), client_key, fingerprint, 120, seconds=60)
    assert matches, "the submission was never imported"
    assert matches[0][1] == mbid


def test_prometheus_loads_the_package_rules_and_scrapes_every_shard_and_api(
    deployment: Deployment, first_run: Recap
) -> None:
    fleet = deployment.fleet
    rules = yaml.safe_load(ALERT_RULES.read_text())
    count = sum(len(group["rules"]) for group in rules["groups"])
    checked = fleet.ssh("node3", "promtool check rules /etc/prometheus/rules/acoustid.yml")
    assert f"SUCCESS: {count} rules found" in checked
    loaded = json.loads(fleet.ssh("node3", "curl -s http://127.0.0.1:9090/api/v1/rules"))
    assert sum(len(group["rules"]) for group in loaded["data"]["groups"]) == count
    expected = {
        ("acoustid-api", f"{fleet.hosts[host].address}:5000") for host in ("node1", "node3")
    } | {("acoustid-index", f"{fleet.hosts[host].address}:6081") for host in ("node1", "node2")}
    deadline = time.monotonic() + 120
    while not expected <= (up := scraped_up(fleet)) and time.monotonic() < deadline:
        time.sleep(2)
    targets = fleet.ssh("node3", "curl -s http://127.0.0.1:9090/api/v1/targets")
    assert expected <= up, targets


def test_a_stopped_index_shard_raises_its_alert(deployment: Deployment, first_run: Recap) -> None:
    fleet = deployment.fleet
    instance = f"{fleet.hosts['node2'].address}:6081"
    fleet.ssh("node2", "systemctl stop acoustid-index@1")
    try:
        deadline, states = time.monotonic() + 120, set()
        while not states and time.monotonic() < deadline:
            alerts = json.loads(fleet.ssh("node3", "curl -s http://127.0.0.1:9090/api/v1/alerts"))
            states = {
                alert["state"]
                for alert in alerts["data"]["alerts"]
                if alert["labels"]["alertname"] == "AcoustidIndexShardDown"
                and alert["labels"]["instance"] == instance
            }
            time.sleep(2)
        # `for: 2m` holds it pending first; pending is the rule matching the stopped shard
        assert states & {"pending", "firing"}
    finally:
        fleet.ssh("node2", "systemctl start acoustid-index@1")
    assert (
        poll(
            "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:6081/_health",
            fleet,
            "node2",
            "200",
            seconds=60,
        )
        == "200"
    )


def scraped_up(fleet: Fleet) -> set[tuple[str, str]]:
    """(job, instance) of every target Prometheus on node3 last scraped successfully."""
    targets = json.loads(fleet.ssh("node3", "curl -s http://127.0.0.1:9090/api/v1/targets"))
    return {
        (target["labels"]["job"], target["labels"]["instance"])
        for target in targets["data"]["activeTargets"]
        if target["health"] == "up"
    }


def test_second_run_changes_nothing(deployment: Deployment, first_run: Recap) -> None:
    second = deployment.play("site.yml")
    assert second.returncode == 0, second.summary()
    assert second.changed == {"node1": 0, "node2": 0, "node3": 0}, second.summary()


def test_failover_promotes_the_replica_and_the_app_keeps_serving(
    deployment: Deployment, submitted: tuple[str, str, str]
) -> None:
    fleet = deployment.fleet
    client_key, fingerprint, mbid = submitted
    wait_for_lookup(api(deployment, "node1"), client_key, fingerprint, 120, seconds=60)
    fleet.ssh("node1", "systemctl stop postgresql")

    failover = deployment.play("failover.yml")

    assert failover.returncode == 0, failover.summary()
    assert fleet.ssh("node2", f"{PSQL} 'SELECT pg_is_in_recovery()'").strip() == "f"
    assert_streams_from(fleet, "node2", ["node3"])
    assert f"host = {fleet.hosts['node2'].address}" in fleet.ssh(
        "node3", "cat /etc/acoustid/acoustid.conf"
    )
    matches = wait_for_lookup(api(deployment, "node3"), client_key, fingerprint, 120, seconds=30)
    assert matches
    assert matches[0][1] == mbid
    user_key = fleet.ssh(
        "node2", "runuser -u postgres -- psql -XAt -d acoustid_app -c 'SELECT apikey FROM account'"
    ).split()[0]
    written = acoustid.submit(
        client_key, user_key, {"fingerprint": random_fingerprint(4), "duration": 90}
    )
    assert written["status"] == "ok"


def test_site_after_the_failover_keeps_the_promoted_primary(
    deployment: Deployment, submitted: tuple[str, str, str]
) -> None:
    """The inventory still lists node1 first; the failover record on the hosts wins."""
    fleet = deployment.fleet
    client_key, fingerprint, mbid = submitted

    rerun = deployment.play("site.yml", "-e", "postgresql_replica_rebuild=true")

    assert rerun.returncode == 0, rerun.summary()
    assert fleet.ssh("node2", f"{PSQL} 'SELECT pg_is_in_recovery()'").strip() == "f"
    assert_streams_from(fleet, "node2", ["node1", "node3"])
    for host in ("node1", "node3"):
        assert f"host = {fleet.hosts['node2'].address}" in fleet.ssh(
            host, "cat /etc/acoustid/acoustid.conf"
        ), host
    matches = wait_for_lookup(api(deployment, "node1"), client_key, fingerprint, 120, seconds=30)
    assert matches
    assert matches[0][1] == mbid


def assert_streams_from(fleet: Fleet, primary: str, replicas: list[str]) -> None:
    """Each replica streams from `primary`, and a row written there reaches it."""
    expected = f"streaming {fleet.hosts[primary].address}"
    for replica in replicas:
        assert poll(SENDER, fleet, replica, expected, seconds=60) == expected, replica
    marker = uuid.uuid4().hex
    fleet.ssh(
        primary,
        f'{PSQL} "CREATE TABLE IF NOT EXISTS topology_probe (x text); '
        f"INSERT INTO topology_probe VALUES ('{marker}')\"",
    )
    for replica in replicas:
        probe = f"{PSQL} \"SELECT count(*) FROM topology_probe WHERE x = '{marker}'\""
        assert poll(probe, fleet, replica, "1", seconds=30) == "1", replica
