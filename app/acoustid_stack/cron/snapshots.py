"""Periodic index snapshots: a copy of every shard's snapshot in `[index] snapshot_dir`.

Layout: `<snapshot_dir>/<shard>/<stamp>.tar`, one archive as `acoustid-stack index restore`
takes it. `<shard>` is the shard's URL without the scheme (`10.0.0.5_6081`): the ring places
documents by URL, so editing `[index] shards` never mixes two shards in one folder.
`<stamp>` is the UTC time the copy started (`20250131T120000Z`).

Schedule: the job looks every few minutes and copies a shard whose newest copy is older
than `snapshot_interval`. The folder is the memory, so a restarted or new leader takes no
extra copies.

Failure policy: a shard that cannot be copied is logged and counted
(`cron_index_snapshot_failures_total`), its older copies are kept (pruning to
`snapshot_keep` follows only a complete new copy), and the other shards are still copied.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from acoustid_stack.config import IndexSettings
from acoustid_stack.cron.metrics import CronMetrics
from acoustid_stack.index.interfaces import FpindexError
from acoustid_stack.index.snapshots import PARTIAL_SUFFIX, download_snapshot
from acoustid_stack.ops.layout import parse_stamp, stamp

logger = logging.getLogger(__name__)

#: How often the job looks for shards due a copy (or the interval, when shorter).
CHECK_EVERY = timedelta(minutes=5)
#: A partial copy this old belongs to a leader that died while copying.
STALE_PARTIAL = timedelta(days=1)
SUFFIX = ".tar"


def shard_folder(shard: str) -> str:
    """Folder name of a shard URL: `http://10.0.0.5:6081` → `10.0.0.5_6081`."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", shard.partition("://")[2] or shard).strip("_")


def snapshots(folder: Path) -> list[tuple[datetime, Path]]:
    """Complete copies in a shard's folder, oldest first."""
    found = []
    for path in folder.glob(f"*{SUFFIX}") if folder.is_dir() else ():
        try:
            found.append((parse_stamp(path.name.removesuffix(SUFFIX)), path))
        except ValueError:
            continue  # not ours
    return sorted(found)


@dataclass
class SnapshotRun:
    """What one run did: bytes copied per shard, shards still fresh, shards that failed."""

    taken: dict[str, int] = field(default_factory=dict)
    fresh: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.taken)} taken, {len(self.fresh)} fresh, {len(self.failed)} failed"


class IndexSnapshots:
    """Copies the snapshot of each shard that is due and prunes its folder."""

    def __init__(
        self,
        *,
        shards: Sequence[str],
        index: str,
        directory: Path,
        interval: timedelta,
        keep: int,
        metrics: CronMetrics,
    ) -> None:
        self.shards = [shard.rstrip("/") for shard in shards]
        self.index = index
        self.directory = directory
        self.interval = interval
        self.keep = keep
        self._metrics = metrics

    @classmethod
    def from_settings(cls, settings: IndexSettings, metrics: CronMetrics) -> IndexSnapshots:
        return cls(
            shards=settings.shards,
            index=settings.name,
            directory=Path(settings.snapshot_dir),
            interval=timedelta(seconds=settings.snapshot_interval),
            keep=settings.snapshot_keep,
            metrics=metrics,
        )

    @property
    def check_every(self) -> timedelta:
        return min(self.interval, CHECK_EVERY)

    async def take(self, now: datetime) -> SnapshotRun:
        """Copy every shard whose newest copy is `interval` old (or that has none), one
        shard after another so that only one snapshot stream loads the disks at a time."""
        run = SnapshotRun()
        for shard in self.shards:
            folder = self.directory / shard_folder(shard)
            existing = snapshots(folder)
            if existing and now - existing[-1][0] < self.interval:
                self._observe(shard, *existing[-1])
                run.fresh.append(shard)
                continue
            try:
                run.taken[shard] = await self._copy(shard, folder, now)
            except (FpindexError, OSError) as exc:
                logger.error(
                    "no new index snapshot of %s, its older snapshots are kept: %s", shard, exc
                )
                self._metrics.snapshot_failures.labels(shard).inc()
                run.failed.append(shard)
        return run

    async def _copy(self, shard: str, folder: Path, now: datetime) -> int:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(folder)
        target = folder / f"{stamp(now)}{SUFFIX}"
        logger.info("taking an index snapshot of %s into %s", shard, target)
        started = time.monotonic()
        size = await download_snapshot(shard, self.index, target)
        copies = snapshots(folder)
        for _, old in copies[: -self.keep]:
            old.unlink(missing_ok=True)
        logger.info(
            "index snapshot of %s: %s, %d bytes in %.1f s; %d older removed, %d kept",
            shard,
            target.name,
            size,
            time.monotonic() - started,
            max(0, len(copies) - self.keep),
            min(len(copies), self.keep),
        )
        self._observe(shard, now, target)
        return size

    def _observe(self, shard: str, taken: datetime, path: Path) -> None:
        self._metrics.snapshot_time.labels(shard).set(taken.timestamp())
        self._metrics.snapshot_bytes.labels(shard).set(path.stat().st_size)


def _remove_stale_partials(folder: Path) -> None:
    cutoff = time.time() - STALE_PARTIAL.total_seconds()
    for partial in folder.glob(f".*{PARTIAL_SUFFIX}"):
        if partial.stat().st_mtime < cutoff:
            partial.unlink(missing_ok=True)
