"""The durable JetStream pull consumer that feeds submissions to the importer.

Each fetched batch is imported together (one transaction per database, `importer`), then
every message is settled. Delivery policy: explicit ack after the import committed
(at-least-once; the importer makes repeats harmless). A failed batch import is nak'ed with a
growing delay; a message nobody could handle in `max_deliver` attempts is terminated; its
submission stays pending in the ingest database, where the cron outbox re-publishes it
later. A message whose body is not a submission id is terminated.

An index shard that does not answer (ShardUnavailableError: the planner's complete search,
or the write of a new fingerprint) defers the batch the same way, counted in
`worker_batches_deferred_total{reason="index_shard_unavailable"}` rather than as an error:
nothing was written, and a shard outage longer than the deliveries last only hands the
submissions to the outbox.

Failure policy for JetStream itself: the worker re-binds in place and never exits for an
outage. A pull nobody answers (503) or a fetch timing out during an outage is followed by a
look at the consumer: still there (no leader yet, a node lost) → wait with backoff
(`outage`); gone (404: consumer 10014 or stream 10059 not found, as after a server restarted
with an empty store) → create stream and consumer again, as at start, and pull from them.
Creating them waits out the same way what passes once the cluster is whole again: no
leader, no answer, and 10005 "no suitable peers for placement" (R3 while a node is missing).
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
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from acoustid_stack.config import NatsSettings
from acoustid_stack.db.row_errors import is_row_error
from acoustid_stack.index.interfaces import ShardUnavailableError
from acoustid_stack.progress import Heartbeat
from acoustid_stack.submissions.stream import ensure_stream
from acoustid_stack.worker.interfaces import ImportOutcome
from acoustid_stack.worker.metrics import SHARD_UNAVAILABLE, WorkerMetrics
from acoustid_stack.worker.outage import Outage

logger = logging.getLogger(__name__)

#: what JetStream answers while a stream or consumer has no leader, or no server answers:
#: 503 (incl. 10008 "JetStream system temporarily unavailable", 10023 insufficient
#: resources, a pull to a consumer without leader), no responders, timeouts
UNAVAILABLE = (ServiceUnavailableError, NoRespondersError, NatsTimeoutError, TimeoutError)
#: JetStream API errors that pass once the cluster is whole again: 10005 "no suitable peers
#: for placement" (a stream or consumer with more replicas than servers answering)
TEMPORARY_ERR_CODES = frozenset({10005})

ImportFunction = Callable[[Sequence[int]], Awaitable[Mapping[int, ImportOutcome]]]


#: Submissions a worker fetches and imports together. A batch's fixed cost (three
#: transactions, ~25 statements, an index update) is spread over its imports, so CPU per
#: import keeps falling up to about this size (bench/worker_bench.py). A fetch returns what
#: the stream holds and waits at most its timeout (1 s) for the rest, so a large batch adds
#: no more than that to an import's latency when traffic is light.
DEFAULT_BATCH = 200


@dataclass(frozen=True)
class ConsumerOptions:
    """Consumer tuning; every worker process shares the consumer named `durable`.

    `backoff` are the redelivery delays after an unacked delivery (JetStream then uses
    backoff[0] as the ack wait); `max_deliver` must exceed their count.
    """

    durable: str = "acoustid-worker"
    batch: int = DEFAULT_BATCH
    fetch_timeout: float = 1.0
    backoff: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0, 600.0)
    max_deliver: int = 10
    max_ack_pending: int = 1000
    busy_delay: float = 1.0
    error_delays: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)

    @classmethod
    def with_ack_wait(cls, ack_wait: float, *, batch: int = DEFAULT_BATCH) -> ConsumerOptions:
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
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._js = js
        self._settings = settings
        self._import = import_batch
        self._metrics = metrics
        self._options = options or ConsumerOptions()
        self._outage = Outage(metrics=metrics)
        # beaten once per round of `run` and of `_bind`: a fetch returns within its timeout
        # and an outage wait within 10 s, so only a stuck round (an import or a settle that
        # never returns) lets it age (`/_health`)
        self._heartbeat = heartbeat or Heartbeat(max_age=float("inf"))

    async def ensure_consumer(self) -> None:
        """Create the durable consumer, or update it to these options (idempotent)."""
        await self._js.add_consumer(
            self._settings.stream, self._options.consumer_config(self._settings)
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Import until `stop` is set; the batch in hand is finished (and acked) first.

        Stream and consumer are ensured first, and again whenever they are found missing.
        """
        subscription: JetStreamContext.PullSubscription | None = None
        try:
            while not stop.is_set():
                self._heartbeat.beat()
                if subscription is None:
                    subscription = await self._bind(stop)
                    continue
                try:
                    messages = await subscription.fetch(
                        self._options.batch, timeout=self._options.fetch_timeout
                    )
                except (NatsTimeoutError, TimeoutError):
                    # an empty stream, or no server answering: only an outage needs a look
                    if self._outage.ongoing:
                        subscription = await self._recover(stop, subscription, "pulls time out")
                    continue
                except (ServiceUnavailableError, NoRespondersError) as exc:
                    subscription = await self._recover(
                        stop, subscription, f"pull not answered: {_describe(exc)}", refused=True
                    )
                    continue
                self._outage.over()
                await self._handle(messages)
        finally:
            if subscription is not None:
                await subscription.unsubscribe()

    async def _bind(self, stop: asyncio.Event) -> JetStreamContext.PullSubscription | None:
        """Stream and consumer as at start, and a pull subscription on them; waits out an
        outage; None once `stop` is set."""
        while not stop.is_set():
            self._heartbeat.beat()
            try:
                await ensure_stream(self._js, self._settings)
                await self.ensure_consumer()
                subscription = await self._js.pull_subscribe_bind(
                    self._options.durable, stream=self._settings.stream
                )
            except (*UNAVAILABLE, APIError) as exc:
                if not _temporary(exc):
                    raise
                await self._outage.wait(stop, f"creating stream and consumer: {_describe(exc)}")
                continue
            self._outage.over()
            return subscription
        return None

    async def _recover(
        self,
        stop: asyncio.Event,
        subscription: JetStreamContext.PullSubscription,
        cause: str,
        *,
        refused: bool = False,
    ) -> JetStreamContext.PullSubscription | None:
        """Look at the consumer after a failed pull: None when it or its stream is gone (the
        caller binds again); else the same subscription, after one backoff step unless the
        consumer answers with a leader and the pull was not `refused`."""
        try:
            info = await self._js.consumer_info(self._settings.stream, self._options.durable)
        except NotFoundError as exc:
            logger.warning(
                "consumer %s on stream %s is gone (%s); creating them again",
                self._options.durable,
                self._settings.stream,
                _describe(exc),
            )
            self._metrics.consumer_recreations.inc()
            await subscription.unsubscribe()
            return None
        except UNAVAILABLE as exc:
            await self._outage.wait(stop, f"{cause}; consumer info: {_describe(exc)}")
            return subscription
        if info.cluster is not None and not info.cluster.leader:
            await self._outage.wait(stop, f"{cause}; the consumer has no leader yet")
        elif refused:
            await self._outage.wait(stop, cause)
        else:
            self._outage.over()
        return subscription

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
            outcomes, failed = await self._import_isolating(list(by_id))
        except ShardUnavailableError as exc:
            logger.warning("deferring a batch of %d submissions: %s", len(by_id), exc)
            self._metrics.deferred.labels(SHARD_UNAVAILABLE).inc()
            await asyncio.gather(*(self._retry_later(m) for batch in by_id.values() for m in batch))
            return
        except Exception:
            logger.exception("import of a batch of %d submissions failed", len(by_id))
            self._metrics.errors.inc()
            await asyncio.gather(*(self._retry_later(m) for batch in by_id.values() for m in batch))
            return
        self._metrics.duration.observe(time.perf_counter() - started)
        settled = [self._retry_later(m) for submission_id in failed for m in by_id[submission_id]]
        for submission_id, outcome in outcomes.items():
            batch = by_id[submission_id]
            self._metrics.imports.labels(outcome.value).inc(len(batch))
            logger.debug("submission %d: %s", submission_id, outcome.value)
            settled += [self._settle(submission_id, m, outcome) for m in batch]
        await asyncio.gather(*settled)

    async def _import_isolating(
        self, ids: Sequence[int]
    ) -> tuple[Mapping[int, ImportOutcome], list[int]]:
        """Import `ids` together; (outcomes, ids that failed). When the batch fails on the
        data of some row (a constraint, a bad value, a value too large for its index:
        `db.row_errors`), it is halved until the submissions at fault are alone, so that one
        of them does not hold back a whole batch for good. Other failures (a database or the
        index down) fail the whole batch."""
        try:
            return await self._import(ids), []
        except Exception as exc:
            if not is_row_error(exc):
                raise
            if len(ids) == 1:
                logger.exception("import of submission %d failed", ids[0])
                self._metrics.errors.inc()
                return {}, list(ids)
        middle = len(ids) // 2
        first, first_failed = await self._import_isolating(ids[:middle])
        second, second_failed = await self._import_isolating(ids[middle:])
        return {**first, **second}, first_failed + second_failed

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


def _temporary(exc: Exception) -> bool:
    if isinstance(exc, UNAVAILABLE):
        return True
    return isinstance(exc, APIError) and exc.err_code in TEMPORARY_ERR_CODES


def _describe(exc: Exception) -> str:
    if isinstance(exc, ServiceUnavailableError) and not exc.description:
        return "503: no responder, the consumer has no leader or does not exist"
    return str(exc) or type(exc).__name__
