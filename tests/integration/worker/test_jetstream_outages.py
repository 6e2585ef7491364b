"""One worker process outlives JetStream outages: a lost cluster node that led its stream
and consumer, a NATS server restarted with an empty store, a stream that cannot be placed
while a node is missing, and (with an api process) NATS gone for longer than nats-py's
default reconnect budget. NATS servers of their own, started from binaries on free loopback
ports."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from sqlalchemy import select

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.fingerprint import encode_fingerprint
from acoustid_stack.local.endpoints import NatsEndpoint
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import nats_process
from acoustid_stack.ops.jetstream import republish_pending
from acoustid_stack.submissions.connection import NatsUnreachable, Reconnect, connect_nats
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.submissions.outbox import republish_lost
from acoustid_stack.submissions.stream import ensure_stream, publish_submissions
from acoustid_stack.worker.consumer import ConsumerOptions
from api_support import api_server
from worker_support import eventually, handled

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.anyio]

Submit = Callable[..., Awaitable[list[int]]]
DURABLE = ConsumerOptions().durable
OUTAGE_DEADLINE = 90.0  # elections and client reconnects take seconds; polls end when done
CONNECTION_LOGGER = "acoustid_stack.submissions.connection"
#: nats-py's default: after this many failed reconnects it closed the connection for good
OLD_RECONNECT_ATTEMPTS = 60


@dataclass
class NatsNode:
    name: str
    process: ManagedProcess
    endpoint: NatsEndpoint


def nats_servers(tmp_path: Path, count: int) -> list[NatsNode]:
    """`count` nats-servers with JetStream (a cluster when more than one), not started."""
    client_ports = [free_port() for _ in range(count)]
    cluster_ports = [free_port() for _ in range(count)]
    nodes = []
    for i in range(count):
        name = f"n{i + 1}"
        clustered: dict[str, Any] = {}
        if count > 1:
            routes = [p for j, p in enumerate(cluster_ports) if j != i]
            clustered = {"cluster_port": cluster_ports[i], "routes": routes}
        process, endpoint = nats_process(
            tmp_path / name,
            client_ports[i],
            log_path=tmp_path / f"{name}.log",
            server_name=name,
            **clustered,
        )
        nodes.append(NatsNode(name, process, endpoint))
    return nodes


@pytest.fixture
def nats_nodes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[NatsNode]]:
    """`request.param` servers, all started; with (count, started) only the first `started`."""
    count, started = request.param if isinstance(request.param, tuple) else (request.param,) * 2
    nodes = nats_servers(tmp_path / "nats", count)
    try:
        for node in nodes[:started]:
            node.process.start()
        for node in nodes[:started]:
            node.process.wait_ready(15.0)
        yield nodes
    finally:
        for node in nodes:
            node.process.stop()


async def until_stored(settings: Settings, ids: list[int]) -> None:
    """Publish until JetStream stored every id (it refuses while a stream has no leader)."""

    async def stored() -> bool:
        try:
            nc = await connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST)
        except NatsUnreachable:
            return False
        try:
            js = nc.jetstream()
            await ensure_stream(js, settings.nats)
            await publish_submissions(js, settings.nats, ids)
            return True
        except (NatsError, TimeoutError):
            return False
        finally:
            await nc.close()

    await eventually(stored, f"JetStream stores {ids}", OUTAGE_DEADLINE)


@dataclass
class Scene:
    """One worker process on these NATS servers, and the databases it imports into."""

    nodes: list[NatsNode]
    environ: dict[str, str]  # ACOUSTID_* of the worker, for other processes of the scene
    settings: Settings
    worker: ManagedProcess
    metrics_port: int
    databases: Databases
    submit: Submit
    make_hashes: Any

    async def pending(self, count: int) -> list[int]:
        """`count` new submissions, stored in the ingest database, not published."""
        return await self.submit(*(self.make_hashes() for _ in range(count)))

    async def all_handled(self, ids: list[int]) -> None:
        async def done() -> bool:
            return await handled(self.databases, ids) == len(ids)

        await eventually(done, f"all of {ids} are imported", OUTAGE_DEADLINE)

    async def imported(self, count: int) -> list[int]:
        """Submit `count` new fingerprints, publish them, wait until the worker imported them."""
        ids = await self.pending(count)
        await until_stored(self.settings, ids)
        await self.all_handled(ids)
        return ids

    def still_the_same_worker(self, pid: int | None) -> str:
        """Assert the worker never exited nor crashed; its log."""
        assert self.worker.running()
        assert self.worker.pid == pid
        log = self.worker.log_path.read_text()
        assert "Traceback" not in log
        return log

    def metric(self, name: str) -> float:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        for line in httpx.get(url, timeout=5).text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not among the worker's metrics")


@pytest.fixture
def scene(
    *,
    nats_nodes: list[NatsNode],
    worker_environ: dict[str, str],
    start_worker: Callable[..., ManagedProcess],
    databases: Databases,
    submit: Submit,
    make_hashes: Any,
) -> Scene:
    """A worker on every node's address, with one stream replica per node."""
    environ = {
        "ACOUSTID_NATS_SERVERS": ",".join(node.endpoint.url for node in nats_nodes),
        "ACOUSTID_NATS_REPLICAS": str(len(nats_nodes)),
        # 40 times faster than the default: an outage outlasts nats-py's default budget of
        # 60 reconnects in seconds, and each failed reconnect is logged (DEBUG) to count them
        "ACOUSTID_NATS_RECONNECT_WAIT": "0.05",
        f"ACOUSTID_LOGGING_LEVEL_{CONNECTION_LOGGER.replace('.', '__').upper()}": "DEBUG",
    }
    metrics_port = free_port()
    args = ("--ack-wait", "1", "--batch", "8", "--metrics-port", str(metrics_port))
    return Scene(
        nodes=nats_nodes,
        environ={**worker_environ, **environ},
        settings=load_settings(path=None, environ={**worker_environ, **environ}),
        worker=start_worker(*args, **environ),
        metrics_port=metrics_port,
        databases=databases,
        submit=submit,
        make_hashes=make_hashes,
    )


async def leaders(nc: Client, settings: Settings) -> tuple[str | None, str | None]:
    js = nc.jetstream()
    stream = await js.stream_info(settings.nats.stream)
    consumer = await js.consumer_info(settings.nats.stream, DURABLE)
    return (
        stream.cluster.leader if stream.cluster else None,
        consumer.cluster.leader if consumer.cluster else None,
    )


async def lead_consumer_from(nc: Client, settings: Settings, node: str) -> None:
    """Move the consumer's leadership to `node` (a stepdown with a preferred placement)."""
    subject = f"$JS.API.CONSUMER.LEADER.STEPDOWN.{settings.nats.stream}.{DURABLE}"

    async def moved() -> bool:
        try:  # answers fail for a moment while leadership moves
            if (await leaders(nc, settings))[1] == node:
                return True
            await nc.request(subject, json.dumps({"placement": {"preferred": node}}).encode())
        except (NatsError, TimeoutError):
            pass
        return False

    await eventually(moved, f"{node} leads the consumer", OUTAGE_DEADLINE)


@pytest.mark.parametrize("nats_nodes", [3], indirect=True)
async def test_a_worker_keeps_importing_after_the_node_leading_its_stream_and_consumer_dies(
    scene: Scene,
) -> None:
    await scene.imported(5)
    pid = scene.worker.pid

    nc = await connect_nats(scene.settings.nats, reconnect=Reconnect.FAIL_FAST)
    try:
        stream_leader, _ = await leaders(nc, scene.settings)
        assert stream_leader is not None
        await lead_consumer_from(nc, scene.settings, stream_leader)
    finally:
        await nc.close()
    [leader] = [node for node in scene.nodes if node.name == stream_leader]
    leader.process.kill()

    await scene.imported(5)

    log = scene.still_the_same_worker(pid)
    # one line per outage, never one per retry
    outages = log.count("JetStream unavailable")
    assert outages == scene.metric("worker_jetstream_outages_total")
    assert outages <= 2
    assert scene.metric("worker_jetstream_available") == 1


@pytest.mark.parametrize("nats_nodes", [1], indirect=True)
async def test_a_worker_recreates_stream_and_consumer_after_nats_restarts_with_an_empty_store(
    scene: Scene,
) -> None:
    await scene.imported(3)
    pid = scene.worker.pid
    [server] = scene.nodes
    settings = scene.settings.nats

    server.process.kill()
    shutil.rmtree(server.process.log_path.parent / server.name)
    # acknowledged by the api while NATS is down: stored, never published
    stranded = await scene.pending(3)
    server.process.start()
    server.process.wait_ready(15.0)

    nc = await connect_nats(settings, reconnect=Reconnect.FAIL_FAST)
    try:
        js = nc.jetstream()

        async def recreated() -> bool:
            try:
                await js.consumer_info(settings.stream, DURABLE)
            except NatsError:
                return False
            return True

        await eventually(recreated, "the worker created stream and consumer again", OUTAGE_DEADLINE)
        # the cron outbox's job, without its minute of grace
        republished = await republish_lost(
            ingest=scene.databases.ingest, js=js, settings=settings, older_than=timedelta(0)
        )
        assert set(stranded) <= set(republished)
        await scene.all_handled(stranded)
        later = await scene.pending(3)
        await publish_submissions(js, settings, later)
        await scene.all_handled(later)
    finally:
        await nc.close()

    log = scene.still_the_same_worker(pid)
    assert log.count(f"consumer {DURABLE} on stream {settings.stream} is gone") == 1
    assert scene.metric("worker_consumer_recreations_total") == 1
    assert scene.metric("worker_jetstream_available") == 1


@pytest.mark.parametrize("nats_nodes", [(3, 2)], indirect=True)
async def test_a_worker_waits_while_a_missing_node_keeps_its_r3_stream_from_being_placed(
    scene: Scene,
) -> None:
    pid = scene.worker.pid

    async def refused() -> bool:
        return "no suitable peers for placement" in scene.worker.log_path.read_text()

    # two servers of three: JetStream cannot place the worker's R3 stream (10005)
    await eventually(refused, "JetStream refuses to place the R3 stream", OUTAGE_DEADLINE)
    assert scene.worker.running()
    missing = scene.nodes[-1]
    missing.process.start()
    missing.process.wait_ready(15.0)

    await scene.imported(3)

    log = scene.still_the_same_worker(pid)
    assert log.count("JetStream unavailable") == scene.metric("worker_jetstream_outages_total")
    assert scene.metric("worker_jetstream_available") == 1


@pytest.fixture
async def api_keys(databases: Databases, client_ids: tuple[int, int]) -> tuple[str, str]:
    """(client, user) API keys of the account and application `submit` uses."""
    account_id, application_id = client_ids
    async with databases.app.connect() as conn:
        user = await conn.scalar(
            select(app_db.account.c.apikey).where(app_db.account.c.id == account_id)
        )
        client = await conn.scalar(
            select(app_db.application.c.apikey).where(app_db.application.c.id == application_id)
        )
    return str(client), str(user)


def failed_reconnects(log: Path) -> int:
    return log.read_text().count(f"[DEBUG] {CONNECTION_LOGGER}: NATS: ")


@pytest.mark.parametrize("nats_nodes", [1], indirect=True)
async def test_a_worker_and_an_api_stay_up_through_a_nats_outage_longer_than_the_old_budget(
    scene: Scene, api_keys: tuple[str, str], tmp_path: Path
) -> None:
    [server] = scene.nodes
    client_key, user_key = api_keys
    with api_server(tmp_path, scene.environ, workers=1) as (url, api):
        # httpx's 5 s timeout: a submission must be answered without waiting for NATS
        async with httpx.AsyncClient(base_url=url) as http:

            async def submitted(count: int) -> list[int]:
                ids = []
                for _ in range(count):
                    response = await http.post(
                        "/v2/submit",
                        data={
                            "client": client_key,
                            "user": user_key,
                            "duration": "120",
                            "fingerprint": encode_fingerprint(scene.make_hashes()),
                            "mbid": str(uuid.uuid4()),
                        },
                    )
                    assert response.status_code == 200, response.text
                    [submission] = response.json()["submissions"]
                    assert submission["status"] == "pending"
                    ids.append(submission["id"])
                return ids

            await scene.all_handled(await submitted(3))
            pids = api.pid, scene.worker.pid
            logs = api.log_path, scene.worker.log_path

            server.process.kill()

            async def past_the_old_budget() -> bool:
                return all(failed_reconnects(log) > OLD_RECONNECT_ATTEMPTS for log in logs)

            await eventually(
                past_the_old_budget, "both failed more reconnects than nats-py allowed"
            )
            # answered "ok" while NATS is away: stored, and not published, not even later
            stranded = await submitted(3)
            server.process.start()
            server.process.wait_ready(15.0)

            async def back() -> bool:
                return all("NATS connection back" in log.read_text() for log in logs)

            await eventually(back, "both connections are back", OUTAGE_DEADLINE)
            # published by the same api process, imported by the same worker process
            await scene.all_handled(await submitted(3))
            assert await handled(scene.databases, stranded) == 0

        assert (api.pid, scene.worker.pid) == pids
        assert api.running()
        api_log = api.log_path.read_text()
    # api.pid is uvicorn's supervisor, which would quietly replace an app process that died
    assert api_log.count("Started server process") == 1

    nc = await connect_nats(scene.settings.nats, reconnect=Reconnect.FAIL_FAST)
    try:  # the cron outbox's job, without its minute of grace
        republished = await republish_lost(
            ingest=scene.databases.ingest,
            js=nc.jetstream(),
            settings=scene.settings.nats,
            older_than=timedelta(0),
        )
    finally:
        await nc.close()
    assert set(stranded) <= set(republished)
    await scene.all_handled(stranded)

    worker_log = scene.still_the_same_worker(pids[1])
    for log in (api_log, worker_log):
        assert "Traceback" not in log
        # the outage logged once when it started and once when it ended
        assert log.count("NATS connection lost") == 1
        assert log.count("NATS connection back") == 1


@pytest.mark.parametrize("nats_nodes", [(1, 0)], indirect=True)
async def test_a_worker_started_while_nats_is_down_waits_for_it(scene: Scene) -> None:
    [server] = scene.nodes
    pid = scene.worker.pid

    async def waiting() -> bool:
        return failed_reconnects(scene.worker.log_path) > 3

    await eventually(waiting, "the worker keeps trying to reach NATS")
    server.process.start()
    server.process.wait_ready(15.0)

    await scene.imported(2)

    log = scene.still_the_same_worker(pid)
    assert log.count("NATS not reachable") == 1
    assert log.count("NATS connection back") == 1


@pytest.mark.parametrize("nats_nodes", [1], indirect=True)
async def test_a_worker_stops_cleanly_on_sigterm_in_the_middle_of_a_nats_outage(
    scene: Scene,
) -> None:
    await scene.imported(1)
    [server] = scene.nodes
    server.process.kill()

    async def away() -> bool:  # seconds: its pulls meanwhile wait in nats-py's buffer
        return failed_reconnects(scene.worker.log_path) > OLD_RECONNECT_ATTEMPTS

    await eventually(away, "the worker keeps trying to reach NATS")
    assert scene.worker.stop() == 0
    log = scene.worker.log_path.read_text()
    assert "worker stopped" in log
    assert "error:" not in log
    assert "Traceback" not in log


@pytest.mark.parametrize("nats_nodes", [(3, 2)], indirect=True)
def test_restore_nats_waits_until_enough_nodes_joined_to_place_the_stream(
    nats_nodes: list[NatsNode], worker_environ: dict[str, str], migrated: None
) -> None:
    """Two of three new nodes elect a meta leader but cannot place a 3-replica stream
    ("no suitable peers for placement"); `restore nats` keeps trying until the third joins."""
    servers = ",".join(node.endpoint.url for node in nats_nodes)
    settings = load_settings(
        path=None,
        environ={**worker_environ, "ACOUSTID_NATS_SERVERS": servers, "ACOUSTID_NATS_REPLICAS": "3"},
    )

    async def meta_leader_elected() -> bool:
        nc = await connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST)
        try:
            await nc.jetstream().account_info()
            return True
        except (NatsError, TimeoutError):
            return False
        finally:
            await nc.close()

    asyncio.run(eventually(meta_leader_elected, "the two nodes elect a meta leader"))
    joining = threading.Timer(4.0, nats_nodes[2].process.start)
    joining.start()
    try:
        done = republish_pending(settings)
    finally:
        joining.join()
    # the stream is new: every submission other tests left pending is published into it
    assert (done.replicas, done.republished) == (3, done.pending)
