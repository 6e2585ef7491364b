"""`/v2/submit` and `/v2/submission_status` (reference §1.7–§1.8, DESIGN.md §2).

Submit writes every row in ONE ingest transaction and commits, THEN publishes the ids to
JetStream. Failure policy: the committed row is the truth and NATS only the doorbell, so a
NATS outage after the commit is logged and the client still hears "ok"; cron re-publishes
pending submissions older than a minute, which delays that import and never drops it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from acoustid_stack.api import errors
from acoustid_stack.api.auth import ApiKeys
from acoustid_stack.api.endpoint import Client
from acoustid_stack.api.fingerprint_param import decode_fingerprint_param
from acoustid_stack.api.metrics import ApiMetrics
from acoustid_stack.api.params import Params, parse_int, parse_uuid, suffixed
from acoustid_stack.config import NatsSettings
from acoustid_stack.db import text_limits
from acoustid_stack.db.schema.ingest import submission_result
from acoustid_stack.submissions.connection import ServiceConnection
from acoustid_stack.submissions.store import NewSubmission, insert_submissions
from acoustid_stack.submissions.stream import ensure_stream, publish_submissions

MAX_DURATION: Final = 32767
#: A publish that takes longer than this is given up; the outbox re-publishes it.
PUBLISH_TIMEOUT_SECONDS: Final = 2.0
# user meta parameter → key of the `meta` JSONB column
_TEXT_META: Final = {"track": "track", "artist": "artist", "album": "album"}
_TEXT_META_EXTRA: Final = {"albumartist": "album_artist"}
_NUMBER_META: Final = {"trackno": "track_no", "discno": "disc_no", "year": "year"}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmitItem:
    index: int | None
    rows: list[NewSubmission]


@dataclass(frozen=True)
class SubmitCall:
    application_id: int
    items: list[SubmitItem]


class SubmissionPublisher:
    """Publishes submission ids on the process's NATS connection (`ServiceConnection`).

    Never raises and never waits for NATS: while the connection is away (down at start,
    reconnecting) the ids are not published at all, rather than buffered by nats-py until it
    is back; a publish on a live connection is given up after PUBLISH_TIMEOUT_SECONDS. Either
    way the rows stay pending for the cron outbox (see the module's failure policy).
    """

    def __init__(self, *, settings: NatsSettings) -> None:
        self._settings = settings
        self._connection = ServiceConnection(settings=settings)
        self._stream_ready = False

    async def start(self) -> None:
        """Connect in the background; waits at most PUBLISH_TIMEOUT_SECONDS for NATS, so the
        first submissions after a start are published when it is up."""
        await self._connection.start(wait=PUBLISH_TIMEOUT_SECONDS)

    async def publish(self, ids: Sequence[int]) -> bool:
        """True when JetStream stored every id."""
        js = self._connection.jetstream()
        if js is None:
            # the outage itself is logged once by the connection, not once per submission
            logger.debug("NATS away: submissions %s stored, not published", list(ids))
            return False
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                if not self._stream_ready:
                    await ensure_stream(js, self._settings)
                    self._stream_ready = True
                await publish_submissions(js, self._settings, ids)
        except Exception as exc:  # any broker failure; the outbox covers it
            logger.warning(
                "submissions %s stored but not published (cron re-publishes them): %s",
                list(ids),
                str(exc) or type(exc).__name__,
            )
            # the stream may be gone (NATS restarted with an empty store): ensure it next time
            self._stream_ready = False
            return False
        return True

    async def close(self) -> None:
        await self._connection.close()


class SubmitHandler:
    def __init__(
        self,
        *,
        keys: ApiKeys,
        ingest_db: AsyncEngine,
        publisher: SubmissionPublisher,
        metrics: ApiMetrics,
    ) -> None:
        self._keys = keys
        self._db = ingest_db
        self._publisher = publisher
        self._metrics = metrics

    async def parse(self, params: Params, client: Client) -> SubmitCall:
        application_id = await self._keys.application_id(params)
        account_id = await self._keys.account_id(params)
        version = params.label("clientversion", text_limits.CLIENT_VERSION)
        indexes = params.suffixes("fingerprint")
        if not indexes:
            raise errors.missing_parameter("fingerprint")
        items = [
            await _item(params, index, application_id, account_id, version) for index in indexes
        ]
        return SubmitCall(application_id, [item for item in items if item.rows])

    async def run(self, call: SubmitCall) -> Mapping[str, Any]:
        rows = [row for item in call.items for row in item.rows]
        async with self._db.begin() as connection:
            ids = await insert_submissions(connection, rows)
        self._metrics.new_submissions.inc(len(ids))
        if ids:
            await self._publisher.publish(ids)
        answers = []
        remaining = iter(ids)
        for item in call.items:
            for _ in item.rows:
                answer: dict[str, Any] = {"id": next(remaining), "status": "pending"}
                if item.index is not None:
                    answer["index"] = str(item.index)
                answers.append(answer)
        return {"submissions": answers}


class SubmissionStatusHandler:
    def __init__(self, *, keys: ApiKeys, ingest_db: AsyncEngine) -> None:
        self._keys = keys
        self._db = ingest_db

    async def parse(self, params: Params, client: Client) -> _StatusCall:
        application_id = await self._keys.application_id(params)
        # werkzeug's `getlist(type=int)` drops values that are not integers; so do we
        ids = [value for value in map(parse_int, params.getlist("id")) if value is not None]
        # ids are bigint in the database: one outside cannot exist (and would fail the query)
        ids = [value for value in ids if -(2**63) <= value < 2**63]
        return _StatusCall(application_id, ids)

    async def run(self, call: _StatusCall) -> Mapping[str, Any]:
        imported: dict[int, uuid.UUID | None] = {}
        if call.ids:
            statement = select(
                submission_result.c.submission_id, submission_result.c.track_gid
            ).where(submission_result.c.submission_id.in_(call.ids))
            async with self._db.connect() as connection:
                imported = {
                    row.submission_id: row.track_gid for row in await connection.execute(statement)
                }
        submissions = []
        for submission_id in call.ids:
            entry: dict[str, Any] = {"id": submission_id, "status": "pending"}
            if submission_id in imported:
                entry["status"] = "imported"
                entry["result"] = {"id": str(imported[submission_id])}
            submissions.append(entry)
        return {"submissions": submissions}


@dataclass(frozen=True)
class _StatusCall:
    application_id: int
    ids: list[int]


async def _item(
    params: Params, index: int | None, application_id: int, account_id: int, version: str | None
) -> SubmitItem:
    def name(base: str) -> str:
        return suffixed(base, index)

    raw_duration = params.get(name("duration"))
    if not raw_duration:
        raise errors.missing_parameter(name("duration"))
    duration = parse_int(raw_duration)
    if duration is None or not 1 <= duration <= MAX_DURATION:
        raise errors.invalid_duration(name("duration"))
    hashes = await decode_fingerprint_param(params.required(name("fingerprint")))
    bitrate = None
    if params.get(name("bitrate")):
        bitrate = parse_int(params.get(name("bitrate")))
        if bitrate is None or bitrate < 0 or bitrate > MAX_DURATION:
            raise errors.invalid_bitrate(name("bitrate"))
    mbids = [parse_uuid(name("mbid"), value) for value in params.getlist(name("mbid")) if value]
    puid = params.uuid(name("puid"))
    foreignid = params.foreign_id(name("foreignid"))
    meta = _user_meta(params, index)
    if not (mbids or puid or meta):
        return SubmitItem(index, [])  # upstream drops these silently
    base = NewSubmission(
        account_id=account_id,
        application_id=application_id,
        application_version=version,
        fingerprint=hashes,
        length=duration,
        bitrate=bitrate or None,
        format=params.label(name("fileformat"), text_limits.FILE_FORMAT),
        puid=puid,
        foreignid=foreignid,
        meta=meta or None,
    )
    rows = [replace(base, mbid=mbid) for mbid in mbids] if mbids else [base]
    return SubmitItem(index, rows)


def _user_meta(params: Params, index: int | None) -> dict[str, Any]:
    """Upstream's `fix_meta`: trimmed non-empty text, numbers only where they parse."""
    meta: dict[str, Any] = {}
    for param, key in {**_TEXT_META, **_TEXT_META_EXTRA}.items():
        value = (params.get(suffixed(param, index)) or "").strip()
        if value:
            meta[key] = value
    for param, key in _NUMBER_META.items():
        number = parse_int(params.get(suffixed(param, index)))
        if number is not None and 0 < number < 2**31:
            meta[key] = number
    return meta
