"""The api on Redis behind Sentinel: a primary, a replica and three sentinels started from
binaries on free loopback ports. Rate limits and lookup statistics work through the
sentinels, and keep working on the promoted replica after the primary dies, without
restarting the api; cron's statistics flush reaches the new master the same way."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.cron.stats import Flushed, flush_lookup_stats
from acoustid_stack.local.endpoints import RedisEndpoint
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import LOOPBACK, redis_process, sentinel_process
from acoustid_stack.redis_client import connect_redis
from acoustid_stack.submissions.databases import open_databases
from api_support import Keys, api_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MASTER = "acoustid"
SENTINELS = 3
DEADLINE = 60.0  # replication, sentinel discovery and failover take seconds; polls end early
RECOVERY = 20.0  # the api must limit again this soon after the sentinels name the new master
IP_RATE = 1.0  # requests/s per IP over the 20-s window: 20 pass, the 21st is refused
PUID = {"puid": str(uuid.uuid4())}


def poll(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    until = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < until, f"timed out waiting until {what}"
        time.sleep(0.2)


def client(endpoint: RedisEndpoint) -> redis.Redis:
    return redis.Redis(host=endpoint.host, port=endpoint.port, socket_timeout=2)


def answers(endpoint: RedisEndpoint, check: Callable[[redis.Redis], bool]) -> bool:
    connection = client(endpoint)
    try:
        return check(connection)
    except redis.RedisError:
        return False
    finally:
        connection.close()


@dataclass
class SentinelRedis:
    primary: ManagedProcess
    primary_port: int
    replica_port: int
    sentinels: list[RedisEndpoint]

    def master_port(self) -> int | None:
        """The master's port as the first sentinel names it."""
        with client(self.sentinels[0]) as sentinel:
            address = sentinel.sentinel_get_master_addr_by_name(MASTER)
        return int(address[1]) if address else None

    def master(self) -> redis.Redis:
        port = self.master_port()
        assert port is not None
        return client(RedisEndpoint(LOOPBACK, port))


def _knows_the_whole_setup(sentinel: redis.Redis) -> bool:
    replicas = sentinel.sentinel_slaves(MASTER)
    others = sentinel.sentinel_sentinels(MASTER)
    return len(replicas) == 1 and len(others) == SENTINELS - 1


@pytest.fixture
def sentinel_redis(tmp_path: Path) -> Iterator[SentinelRedis]:
    started: list[ManagedProcess] = []

    def start(made: tuple[ManagedProcess, RedisEndpoint]) -> RedisEndpoint:
        process, endpoint = made
        started.append(process)
        process.start()
        process.wait_ready(15.0)
        return endpoint

    try:
        primary = start(
            redis_process(tmp_path / "primary", free_port(), log_path=tmp_path / "p.log")
        )
        replica = start(
            redis_process(
                tmp_path / "replica",
                free_port(),
                log_path=tmp_path / "replica.log",
                extra_args=["--replicaof", LOOPBACK, str(primary.port)],
            )
        )
        poll(
            lambda: answers(replica, lambda r: r.info("replication")["master_link_status"] == "up"),
            "the replica follows the primary",
        )
        sentinels = [
            start(
                sentinel_process(
                    tmp_path / f"sentinel-{i}",
                    free_port(),
                    master_port=primary.port,
                    master_name=MASTER,
                    log_path=tmp_path / f"sentinel-{i}.log",
                )
            )
            for i in range(SENTINELS)
        ]
        for sentinel in sentinels:
            poll(
                lambda s=sentinel: answers(s, _knows_the_whole_setup),
                "every sentinel knows the replica and the other sentinels",
            )
        yield SentinelRedis(started[0], primary.port, replica.port, sentinels)
    finally:
        for process in reversed(started):
            process.stop()


def lookup_count(master: redis.Redis, key_prefix: str, application_id: int) -> int:
    """Lookups of `application_id` counted in Redis (cron.stats layout)."""
    total = 0
    for key in master.scan_iter(match=f"{key_prefix}lookups:*"):
        for field, count in master.hgetall(key).items():
            if field.decode().split(":")[2] == str(application_id):
                total += int(count)
    return total


def statuses(api: httpx.Client, ip: str) -> list[int]:
    """The statuses of 21 requests from `ip`."""
    return [
        api.get("/v2/track/list_by_puid", params=PUID, headers={"X-Forwarded-For": ip}).status_code
        for _ in range(21)
    ]


def limited_at_the_21st(api: httpx.Client, ip: str) -> bool:
    return statuses(api, ip) == [200] * 20 + [429]


def test_the_api_limits_and_counts_through_sentinel_and_keeps_doing_so_after_a_failover(
    sentinel_redis: SentinelRedis,
    api_env: dict[str, str],
    api_settings: Settings,
    tmp_path: Path,
) -> None:
    keys = Keys(api_settings)  # an application of its own: only this test's lookups count
    environ = {
        **api_env,
        "ACOUSTID_REDIS_SENTINELS": ",".join(
            f"{s.host}:{s.port}" for s in sentinel_redis.sentinels
        ),
        "ACOUSTID_REDIS_SENTINEL_MASTER": MASTER,
        # nothing listens here: only the sentinels can lead the api to a Redis
        "ACOUSTID_REDIS_PORT": str(free_port()),
        "ACOUSTID_RATE_LIMIT_IP": str(IP_RATE),
    }
    settings = load_settings(path=None, environ=environ)
    prefix = settings.redis.key_prefix
    lookup = {"client": keys.client_key, "trackid": str(uuid.uuid4())}

    with (
        api_server(tmp_path, environ, workers=1) as (url, process),
        httpx.Client(base_url=url, timeout=10) as api,
    ):
        pid = process.pid
        assert limited_at_the_21st(api, "198.51.100.1")
        refused = api.get(
            "/v2/track/list_by_puid", params=PUID, headers={"X-Forwarded-For": "198.51.100.1"}
        )
        assert refused.json()["error"]["code"] == 14
        for _ in range(3):
            assert api.get("/v2/lookup", params=lookup).status_code == 200
        with sentinel_redis.master() as master:
            # each api process adds its counts to Redis once a second
            poll(
                lambda: lookup_count(master, prefix, keys.application_id) == 3,
                "the api adds its 3 lookups to Redis",
            )

        sentinel_redis.primary.kill()
        # meanwhile the api fails open: it answers, without limiting
        assert statuses(api, "198.51.100.2") == [200] * 21
        poll(
            lambda: sentinel_redis.master_port() == sentinel_redis.replica_port,
            "the sentinels promote the replica",
        )
        failed_over = time.monotonic()
        rounds = iter(range(1000))
        poll(
            lambda: limited_at_the_21st(api, f"198.51.100.{10 + next(rounds)}"),
            "the api limits again, on the new master",
            RECOVERY,
        )
        recovered = time.monotonic() - failed_over
        with sentinel_redis.master() as master:
            before = lookup_count(master, prefix, keys.application_id)
            for _ in range(3):
                assert api.get("/v2/lookup", params=lookup).status_code == 200
            poll(
                lambda: lookup_count(master, prefix, keys.application_id) == before + 3,
                "the api adds 3 more lookups to the new master",
            )
        assert process.pid == pid
        assert process.running()

    # cron's flush builds its client the same way and moves the counts to the database
    async def flush() -> Flushed:
        databases = open_databases(settings.database, pool_size=1)
        counters = connect_redis(settings.redis, timeout=5.0)
        try:
            return await flush_lookup_stats(redis=counters, app=databases.app, key_prefix=prefix)
        finally:
            await counters.aclose()
            await databases.dispose()

    assert asyncio.run(flush()).moved > 0
    with psycopg.connect(settings.database.app.conninfo()) as conn:
        row = conn.execute(
            "SELECT sum(count_hits + count_nohits) FROM stats_lookups WHERE application_id = %s",
            (keys.application_id,),
        ).fetchone()
    assert row is not None
    assert row[0] == before + 3
    print(f"api limited again {recovered:.1f} s after the sentinels named the new master")
