"""What the statistics page shows: daily counters under names people read, and lookups and
submissions per hour.

Failure policy as the status page: the submissions of an hour are counted with a deadline on
the server, and shown as unknown when the ingest database does not answer in time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from acoustid_stack.db.deadline import within
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.web.status import PROBE_TIMEOUT, deadline_on_server

logger = logging.getLogger(__name__)

#: `stats.name` of the daily counters (cron.stats.daily_counters) → what the page calls them
COUNTER_LABELS: Final = {
    "account.all": "Accounts",
    "application.all": "Applications",
    "track.all": "Tracks",
    "fingerprint.all": "Fingerprints",
    "track_mbid.unique": "Recordings with a track",
    "submission.all": "Submissions",
    "submission.pending": "Submissions waiting",
}
CHART_HOURS: Final = 48


def counter_label(name: str) -> str:
    """The label of a counter; one the table does not know (an imported upstream row) is
    spelled out from its name rather than shown raw: `foo.bar_baz` → `Foo bar baz`."""
    return COUNTER_LABELS.get(name) or name.replace(".", " ").replace("_", " ").capitalize()


@dataclass(frozen=True)
class Hour:
    """One UTC hour: lookups that matched and did not, submissions received (None: unknown)."""

    start: datetime
    matched: int
    unmatched: int
    submissions: int | None

    @property
    def lookups(self) -> int:
        return self.matched + self.unmatched


async def daily_stats(
    app: AsyncEngine, *, days: int = 30
) -> tuple[list[str], list[tuple[date, dict[str, int]]]]:
    """(counter names, [(day, {name: value})]) of the last `days` days, newest first."""
    t = app_db.stats
    since = date.today() - timedelta(days=days)
    async with app.connect() as conn:
        rows = (
            await conn.execute(select(t.c.date, t.c.name, t.c.value).where(t.c.date >= since))
        ).all()
    by_day: dict[date, dict[str, int]] = {}
    for row in rows:
        by_day.setdefault(row.date, {})[row.name] = row.value
    names = sorted({row.name for row in rows})
    return names, sorted(by_day.items(), reverse=True)


async def hourly_activity(
    databases: Databases, *, hours: int = CHART_HOURS, now: datetime | None = None
) -> list[Hour]:
    """The last `hours` UTC hours up to the current one, oldest first, with no gaps."""
    current = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    since = current - timedelta(hours=hours - 1)
    lookups = await _lookups_by_hour(databases.app, since)
    try:
        submissions: dict[datetime, int] | None = await within(
            _submissions_by_hour(databases.ingest, since), PROBE_TIMEOUT
        )
    # shown as unknown rather than failing the page
    except Exception as exc:
        logger.warning("submissions per hour failed: %s", exc)
        submissions = None
    starts = [since + timedelta(hours=n) for n in range(hours)]
    return [
        Hour(
            start,
            *lookups.get(start, (0, 0)),
            None if submissions is None else submissions.get(start, 0),
        )
        for start in starts
    ]


async def _lookups_by_hour(app: AsyncEngine, since: datetime) -> dict[datetime, tuple[int, int]]:
    t = app_db.stats_lookups
    query = (
        select(t.c.date, t.c.hour, func.sum(t.c.count_hits), func.sum(t.c.count_nohits))
        .where(t.c.date >= since.date())
        .group_by(t.c.date, t.c.hour)
    )
    async with app.connect() as conn:
        rows = await conn.execute(query)
    found = {}
    for day, hour, hits, misses in rows:
        start = datetime(day.year, day.month, day.day, int(hour), tzinfo=UTC)
        if start >= since:
            found[start] = (int(hits), int(misses))
    return found


# Ids grow with `created`, so the newest row older than the window, found by walking the
# primary key backwards, bounds the scan to the window's rows: `created` has no index.
_SUBMISSIONS_BY_HOUR = text(
    """
    SELECT date_trunc('hour', created AT TIME ZONE 'UTC') AS hour, count(*)
    FROM submission
    WHERE created >= :since AND id > coalesce(
        (SELECT id FROM submission WHERE created < :since ORDER BY id DESC LIMIT 1), 0)
    GROUP BY 1
    """
)


async def _submissions_by_hour(ingest: AsyncEngine, since: datetime) -> dict[datetime, int]:
    async with ingest.begin() as conn:
        await deadline_on_server(conn)
        rows = await conn.execute(_SUBMISSIONS_BY_HOUR, {"since": since})
    return {hour.replace(tzinfo=UTC): int(count) for hour, count in rows}
