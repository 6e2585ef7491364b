"""The durable JetStream pull consumer that feeds submissions to the importer.

Each fetched batch is imported together (one transaction per database, `importer`), then
every message is settled. Delivery policy: explicit ack after the import committed
(at-least-once; the importer makes repeats harmless). A failed batch import is nak'ed with a
growing delay; a message nobody could handle in `max_deliver` attempts is terminated; its
submission stays pending in the ingest database, where the cron outbox re-publishes it
later. A message whose body is not a submission id is terminated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from acoustid_stack.config import NatsSettings
from acoustid_stack.worker.interfaces import ImportOutcome
from acoustid_stack.worker.metrics import WorkerMetrics

logger = logging.getLogger(__name__)

ImportFunction = Callable[[Sequence[int]], Awaitable[Mapping[int, ImportOutcome]]]


@dataclass(frozen=True)
class ConsumerOptions:
    """Consumer tuning; every worker process shares the consumer named `durable`.

    `backoff` are the redelivery delays after an unacked delivery (JetStream then uses
    backoff[0] as the ack wait); `max_deliver` must exceed their count.
    """

    durable: str = "acoustid-worker"
    batch: int = 32
    fetch_timeout: float = 1.0
    backoff: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0, 600.0)
    max_deliver: int = 10
    max_ack_pending: int = 1000
    busy_delay: float = 1.0
    error_delays: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)

    @classmethod
    def with_ack_wait(cls, ack_wait: float, *, batch: int = 32) -> ConsumerOptions:
        """Options whose redelivery backoff starts at `ack_wait` and doubles each time."""
        backoff = tuple(ack_wait * 2**i for i in range(len(cls.backoff)))
        return cls(backoff=backoff, batch=batch)

    def consumer_config(self, settings: NatsSettings) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.backoff[0],
            backoff=list(self.backoff),
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            filter_subject=f"{settings.subject_prefix}.>",
        )

    def error_delay(self, num_delivered: int) -> float:
        return self.error_delays[min(num_delivered, len(self.error_delays)) - 1]


class SubmissionConsumer:
    """Pulls submission ids and imports each fetched batch together, until `stop` is set."""

    def __init__(
        self,
        *,
        js: JetStreamContext,
        settings: NatsSettings,
        import_batch: ImportFunction,
        metrics: WorkerMetrics,
        options: ConsumerOptions | None = None,
    ) -> None:
        self._js = js
        self._settings = settings
        self._import = import_batch
        self._metrics = metrics
        self._options = options or ConsumerOptions()

    async def ensure_consumer(self) -> None:
        """Create the durable consumer, or update it to these options (idempotent)."""
        await self._js.add_consumer(
            self._settings.stream, self._options.consumer_config(self._settings)
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Import until `stop` is set; the batch in hand is finished (and acked) first."""
        await self.ensure_consumer()
        subscription = await self._js.pull_subscribe_bind(
            self._options.durable, stream=self._settings.stream
        )
        try:
            while not stop.is_set():
                try:
                    messages = await subscription.fetch(
                        self._options.batch, timeout=self._options.fetch_timeout
                    )
                except (NatsTimeoutError, TimeoutError):
                    continue
                await self._handle(messages)
        finally:
            await subscription.unsubscribe()

    async def _handle(self, messages: Sequence[Msg]) -> None:
        """Import the batch's submissions together, then settle each message."""
        by_id: dict[int, list[Msg]] = defaultdict(list)
        for message in messages:
            try:
                by_id[int(message.data)].append(message)
            except ValueError:
                logger.error(
                    "terminating message %r: its body is not a submission id", message.data
                )
                await message.term()
        if not by_id:
            return
        started = time.perf_counter()
        try:
            outcomes = await self._import(list(by_id))
        except Exception:
            logger.exception("import of a batch of %d submissions failed", len(by_id))
            self._metrics.errors.inc()
            await asyncio.gather(*(self._retry_later(m) for batch in by_id.values() for m in batch))
            return
        self._metrics.duration.observe(time.perf_counter() - started)
        settled = []
        for submission_id, batch in by_id.items():
            outcome = outcomes[submission_id]
            self._metrics.imports.labels(outcome.value).inc(len(batch))
            logger.debug("submission %d: %s", submission_id, outcome.value)
            settled += [self._settle(submission_id, m, outcome) for m in batch]
        await asyncio.gather(*settled)

    async def _retry_later(self, message: Msg) -> None:
        delivered = message.metadata.num_delivered
        try:
            if delivered >= self._options.max_deliver:
                # JetStream would keep the message without delivering it again; removing it
                # lets the cron outbox re-publish the still pending submission later.
                await message.term()
            else:
                await message.nak(delay=self._options.error_delay(delivered))
        except (NatsError, TimeoutError) as exc:
            logger.warning("could not send message %r back: %s", message.data, exc)

    async def _settle(self, submission_id: int, message: Msg, outcome: ImportOutcome) -> None:
        try:
            if outcome is ImportOutcome.BUSY:
                await message.nak(delay=self._options.busy_delay)
            else:
                await message.ack()
        except (NatsError, TimeoutError) as exc:
            # the import is committed; the message comes back and is acked as already handled
            logger.warning("could not acknowledge submission %d: %s", submission_id, exc)
