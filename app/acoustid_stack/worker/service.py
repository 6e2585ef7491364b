"""The worker process: wire importer and consumer, run until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

from acoustid_stack.config import Settings
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.lifecycle import serve_until_signalled, until_stopped
from acoustid_stack.progress import Heartbeat, beating
from acoustid_stack.sizing import PROCESS_CONNECTIONS
from acoustid_stack.submissions.connection import Reconnect, close_nats, connect_nats
from acoustid_stack.submissions.databases import open_databases
from acoustid_stack.worker.consumer import ConsumerOptions, SubmissionConsumer
from acoustid_stack.worker.importer import SubmissionImporter
from acoustid_stack.worker.metrics import WorkerMetrics

logger = logging.getLogger(__name__)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event,
    options: ConsumerOptions | None = None,
    metrics: WorkerMetrics | None = None,
    heartbeat: Heartbeat | None = None,
) -> None:
    """Import submissions until `stop` is set; the batch in hand is finished first.

    The consumer creates stream and consumer (and again after JetStream lost them) and waits
    out JetStream outages in place; the NATS connection waits for a server at start and
    reconnects forever after (`Reconnect.FOREVER`), so no outage ends the process.
    """
    options = options or ConsumerOptions()
    if "httpx" not in settings.logging.levels:
        # one INFO line per index request would drown the worker's own log
        logging.getLogger("httpx").setLevel(logging.WARNING)
    heartbeat = heartbeat or Heartbeat(max_age=float("inf"))
    # waiting for NATS at start is an outage, not a stuck consumer: healthy meanwhile
    connecting = connect_nats(settings.nats, reconnect=Reconnect.FOREVER)
    nc = await until_stopped(beating(connecting, heartbeat), stop)
    if nc is None:
        return
    databases = open_databases(settings.database, pool_size=PROCESS_CONNECTIONS["worker"].engine)
    index = ShardedIndexClient.from_settings(settings)
    try:
        js = nc.jetstream()
        await index.ensure_index()
        importer = SubmissionImporter(
            databases=databases, index=index, search_timeout=settings.index.timeout
        )
        consumer = SubmissionConsumer(
            js=js,
            settings=settings.nats,
            import_batch=importer.import_batch,
            metrics=metrics or WorkerMetrics(),
            options=options,
            heartbeat=heartbeat,
        )
        logger.info("worker consuming %s as %s", settings.nats.stream, options.durable)
        await consumer.run(stop)
        logger.info("worker stopped")
    finally:
        await close_nats(nc)
        await index.close()
        await databases.dispose()


def serve(
    settings: Settings,
    *,
    options: ConsumerOptions,
    metrics_address: tuple[str, int] | None,
    health_max_age: float,
) -> None:
    """`acoustid-stack run worker`: blocks until SIGTERM or SIGINT; metrics and `/_health`
    (the consumer loop turned within `health_max_age` seconds) on (host, port)."""
    heartbeat = Heartbeat(health_max_age)
    serve_until_signalled(
        lambda stop: run_worker(settings, stop=stop, options=options, heartbeat=heartbeat),
        heartbeat=heartbeat,
        metrics_address=metrics_address,
    )
