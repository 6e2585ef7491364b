"""One worker process outlives JetStream outages: a lost cluster node that led its stream
and consumer, and a NATS server restarted with an empty store. NATS servers of their own,
started from binaries on free loopback ports."""

from __future__ import annotations

import json
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.local.endpoints import NatsEndpoint
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import nats_process
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.submissions.outbox import republish_lost
from acoustid_stack.submissions.stream import connect_nats, ensure_stream, publish_submissions
from acoustid_stack.worker.consumer import ConsumerOptions
from worker_support import eventually, handled

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.anyio]

Submit = Callable[..., Awaitable[list[int]]]
DURABLE = ConsumerOptions().durable
OUTAGE_DEADLINE = 90.0  # elections and client reconnects take seconds; polls end when done


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
    nodes = nats_servers(tmp_path / "nats", request.param)
    try:
        for node in nodes:
            node.process.start()
        for node in nodes:
            node.process.wait_ready(15.0)
        yield nodes
    finally:
        for node in nodes:
            node.process.stop()


async def until_stored(settings: Settings, ids: list[int]) -> None:
    """Publish until JetStream stored every id (it refuses while a stream has no leader)."""

    async def stored() -> bool:
        try:
            nc = await connect_nats(settings.nats)
        except (NatsError, OSError):
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
    }
    metrics_port = free_port()
    args = ("--ack-wait", "1", "--batch", "8", "--metrics-port", str(metrics_port))
    return Scene(
        nodes=nats_nodes,
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

    nc = await connect_nats(scene.settings.nats)
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

    nc = await connect_nats(settings)
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
