"""Which backups to keep: the newest per day for `daily` days, per ISO week for `weekly` weeks.

Pure policy on timestamps, so every kind of backup (dumps, index snapshots, Redis copies)
prunes alike. pgBackRest prunes its own base backups and WAL (repo1-retention-full).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Retention:
    daily: int = 7
    weekly: int = 4

    def __post_init__(self) -> None:
        if self.daily < 1 or self.weekly < 0:
            raise ValueError("retention keeps at least one daily backup and >= 0 weekly ones")

    def keep(self, taken: Iterable[datetime]) -> set[datetime]:
        """The timestamps to keep: the newest of each of the last `daily` days that have a
        backup, and the newest of each of the last `weekly` ISO weeks. The newest backup
        overall is always kept."""
        newest_first = sorted(set(taken), reverse=True)
        kept: set[datetime] = set()
        days: set[tuple[int, int, int]] = set()
        weeks: set[tuple[int, int]] = set()
        for stamp in newest_first:
            day = (stamp.year, stamp.month, stamp.day)
            iso = stamp.isocalendar()
            week = (iso.year, iso.week)
            if day not in days and len(days) < self.daily:
                days.add(day)
                kept.add(stamp)
            if week not in weeks and len(weeks) < self.weekly:
                weeks.add(week)
                kept.add(stamp)
        return kept
