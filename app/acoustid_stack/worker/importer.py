"""Import submissions a batch at a time: from ingest rows to fingerprints, tracks and links.

Idempotent by submission id: the batch's ingest rows are claimed first (`FOR UPDATE SKIP
LOCKED`, see `submission`), an already handled row is left alone, so a redelivered message
changes nothing; a row another worker holds is reported busy.

Three databases take part and PostgreSQL cannot commit them atomically without prepared
transactions (off in stock and most managed servers). One transaction per database per
batch, in an order that makes a crash safe:

1. app: find-or-insert `source` and `format` in a short transaction (repeatable; cached).
2. ingest: claim the submission rows (held until step 6).
3. fingerprint: take the batch's advisory locks, read which submissions a crashed import
   already applied (`applied`), plan every other placement (`planner`), write
   tracks/fingerprints/links with grouped statements (`writer`) and an `import_applied`
   row per submission.
4. index: one update per shard with the batch's new fingerprints (before the commit, so a
   committed fingerprint is always searchable; an id whose transaction then rolls back is
   skipped by searches, which load hashes from the database).
5. ingest: write results, provenance, handled, not pending (all ids are known by now).
6. commit fingerprint, 7. commit ingest.

A crash between 6 and 7 leaves the batch pending with its `import_applied` rows committed;
the retry finds them in 3 and, for those submissions, writes nothing to the fingerprint
database and redoes only 5 from the recorded ids: every submission is counted exactly once.
The rows are read after the advisory locks are taken, which the crashed import held until
its commit completed, so a COMMIT still in flight on the server is seen.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from psycopg.errors import DeadlockDetected, LockNotAvailable
from sqlalchemy import Row, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from acoustid_stack.db.schema import app as app_db
from acoustid_stack.index.interfaces import FingerprintIndex, Insert
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.worker.applied import load_applied, record_applied, recover
from acoustid_stack.worker.interfaces import ImportOutcome
from acoustid_stack.worker.locks import import_lock_keys, simhash, take_import_locks
from acoustid_stack.worker.planner import BatchPlanner
from acoustid_stack.worker.submission import Importable, claim_submissions
from acoustid_stack.worker.writer import (
    Imported,
    Origin,
    find_or_insert,
    finish_submissions,
    write_fingerprints,
)

logger = logging.getLogger(__name__)

# A stuck statement must not hold the submission rows and advisory locks for ever; a lock
# held longer than LOCK_TIMEOUT by another import makes this batch "busy" (retried later).
STATEMENT_TIMEOUT_MS = 60_000
LOCK_TIMEOUT_MS = 10_000
_TIMEOUTS = text(
    f"SELECT set_config('statement_timeout', '{STATEMENT_TIMEOUT_MS}', true), "
    f"set_config('lock_timeout', '{LOCK_TIMEOUT_MS}', true)"
)


class _Busy(Exception):
    """Another import holds a lock this batch needs: nothing was written, try again later."""


class SubmissionImporter:
    """Imports submissions by id into the fingerprint database and the index."""

    def __init__(
        self,
        *,
        databases: Databases,
        index: FingerprintIndex,
        search_timeout: float = 1.0,
        before_ingest_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`before_ingest_commit` is fault injection for tests: awaited between the
        fingerprint and the ingest commit of a batch; raising there is a crash in that gap."""
        self._db = databases
        self._before_ingest_commit = before_ingest_commit
        self._index = index
        self._planner = BatchPlanner(index=index, search_timeout=search_timeout)
        # (application_id, account_id, version) -> source id; format name -> id. Rows are
        # never deleted, so a cached id stays valid; this saves a transaction per batch.
        self._sources: dict[tuple[int, int, str | None], int] = {}
        self._formats: dict[str, int] = {}

    async def import_submission(self, submission_id: int) -> ImportOutcome:
        """Import one submission: a batch of one."""
        return (await self.import_batch([submission_id]))[submission_id]

    async def import_batch(self, ids: Sequence[int]) -> dict[int, ImportOutcome]:
        """Import these submissions together; safe to call again for the same ids (see the
        module docstring). The outcome of every distinct id.

        Raises on database or index failures; nothing is committed then, and the caller
        retries later.
        """
        outcomes: dict[int, ImportOutcome] = {}
        async with self._db.ingest.connect() as ingest:
            await ingest.begin()
            claim = await claim_submissions(ingest, ids)
            outcomes |= dict.fromkeys(claim.busy, ImportOutcome.BUSY)
            outcomes |= dict.fromkeys(claim.missing, ImportOutcome.MISSING)
            batch: list[Importable] = []
            rejected: list[int] = []
            for row in claim.rows:
                if row.handled:
                    outcomes[row.id] = ImportOutcome.ALREADY_HANDLED
                elif (item := Importable.of(row)) is None:
                    rejected.append(row.id)
                else:
                    batch.append(item)
            if not batch and not rejected:
                await ingest.rollback()
                return outcomes
            if batch:
                try:
                    await self._import_fingerprints(ingest, batch, rejected)
                except _Busy:
                    await ingest.rollback()
                    return outcomes | dict.fromkeys(
                        [*rejected, *(item.id for item in batch)], ImportOutcome.BUSY
                    )
            else:
                await finish_submissions(ingest, [], rejected)
            if self._before_ingest_commit is not None:
                await self._before_ingest_commit()
            await ingest.commit()
        outcomes |= dict.fromkeys(rejected, ImportOutcome.REJECTED)
        outcomes |= dict.fromkeys((item.id for item in batch), ImportOutcome.IMPORTED)
        logger.debug("imported %d, rejected %d submissions", len(batch), len(rejected))
        return outcomes

    async def _import_fingerprints(
        self, ingest: AsyncConnection, batch: Sequence[Importable], rejected: Sequence[int]
    ) -> None:
        """Steps 3–6 of the module docstring; raises _Busy when a lock is not available."""
        origins = await self._origins(batch)
        keys = [
            key for item in batch for key in import_lock_keys(simhash(item.hashes), item.links.mbid)
        ]
        async with self._db.fingerprint.connect() as fingerprint:
            await fingerprint.begin()
            await fingerprint.execute(_TIMEOUTS)
            try:
                await take_import_locks(fingerprint, keys)
                applied = await load_applied(fingerprint, [item.id for item in batch])
                done = [i for i, item in enumerate(batch) if item.id in applied]
                todo = [i for i, item in enumerate(batch) if item.id not in applied]
                fresh = [batch[i] for i in todo]
                imported: list[Imported] = []
                inserts: list[Insert] = []
                if fresh:
                    plan = await self._planner.plan(fingerprint, fresh)
                    imported, inserts = await write_fingerprints(
                        fingerprint, fresh, plan, [origins[i] for i in todo]
                    )
                    await record_applied(fingerprint, imported)
            except OperationalError as exc:
                if not isinstance(exc.orig, LockNotAvailable | DeadlockDetected):
                    raise
                await fingerprint.rollback()
                raise _Busy from exc
            recovered = await recover(
                fingerprint, [batch[i] for i in done], [origins[i] for i in done], applied
            )
            if recovered:
                logger.warning(
                    "%d submissions were applied by an import that died before its ingest "
                    "commit; finishing them",
                    len(recovered),
                )
            if inserts:
                await self._index.update(inserts)
            await finish_submissions(ingest, [*imported, *recovered], rejected)
            await fingerprint.commit()

    async def _origins(self, batch: Sequence[Importable]) -> list[Origin]:
        """Source and format ids of every submission; unknown ones in one app transaction."""
        missing_sources = {_source_key(item.row) for item in batch} - self._sources.keys()
        missing_formats = {item.row.format for item in batch if item.row.format}
        missing_formats -= self._formats.keys()
        if missing_sources or missing_formats:
            async with self._db.app.begin() as app:
                for application_id, account_id, version in sorted(
                    missing_sources, key=lambda key: (key[0], key[1], key[2] or "")
                ):
                    self._sources[(application_id, account_id, version)] = await find_or_insert(
                        app,
                        app_db.source,
                        {
                            "application_id": application_id,
                            "account_id": account_id,
                            "version": version,
                        },
                    )
                for name in sorted(missing_formats):
                    self._formats[name] = await find_or_insert(app, app_db.format, {"name": name})
        return [
            Origin(
                self._sources[_source_key(item.row)],
                self._formats[item.row.format] if item.row.format else None,
            )
            for item in batch
        ]


def _source_key(row: Row[Any]) -> tuple[int, int, str | None]:
    return (row.application_id, row.account_id, row.application_version)
