from datetime import UTC, datetime, timedelta

import pytest

from acoustid_stack.ops.retention import Retention

NOW = datetime(2025, 3, 31, 1, 0, tzinfo=UTC)  # a Monday


def test_keeps_newest_backup_of_each_of_the_last_seven_days() -> None:
    taken = [NOW - timedelta(hours=12 * i) for i in range(20)]  # two a day
    kept = Retention(daily=7, weekly=0).keep(taken)
    assert len(kept) == 7
    assert NOW in kept
    assert all(NOW - k < timedelta(days=7) for k in kept)


def test_keeps_one_per_iso_week_for_the_weekly_tail() -> None:
    taken = [NOW - timedelta(days=i) for i in range(60)]
    kept = Retention(daily=7, weekly=4).keep(taken)
    weeks = {k.isocalendar()[:2] for k in kept}
    assert len(weeks) == 4
    # NOW is a Monday: the dailies span two ISO weeks, whose newest backups are dailies too
    assert len(kept) == 7 + 2


def test_newest_backup_is_kept_even_when_alone() -> None:
    assert Retention().keep([NOW]) == {NOW}


def test_retention_without_daily_backups_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one daily"):
        Retention(daily=0)
