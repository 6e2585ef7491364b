"""Counter labels and the hourly chart of the statistics page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import create_async_engine

from acoustid_stack.cron.stats import daily_counters
from acoustid_stack.web.chart import bar_chart, short_number
from acoustid_stack.web.statistics import COUNTER_LABELS, Hour, counter_label
from acoustid_stack.web.views import hourly_chart


def test_every_daily_counter_cron_records_has_a_label_for_people() -> None:
    engine = create_async_engine("postgresql+psycopg://")  # never connects: queries only
    names = set(daily_counters(engine, engine, engine))

    assert names == set(COUNTER_LABELS)
    assert all("." not in counter_label(name) for name in names)


def test_a_counter_without_a_label_is_spelled_out_not_shown_raw() -> None:
    assert counter_label("meta.unique_titles") == "Meta unique titles"


def test_a_bar_chart_scales_bars_to_the_largest_and_escapes_labels() -> None:
    svg = bar_chart(
        chart_id="c",
        title="<Lookups>",
        description="d",
        bars=[("a&b", 50), ("b", 100), ("c", 0)],
    )

    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights[1] == 2 * heights[0]
    assert heights[2] == 0
    assert "&lt;Lookups&gt;" in svg
    assert "a&amp;b" in svg
    assert ">100<" in svg  # the top of the scale is written on the axis


def test_scale_labels_are_short() -> None:
    assert [short_number(n) for n in (950, 12_345, 2_125_000, 3_000_000_000)] == [
        "950",
        "12k",
        "2.1M",
        "3G",
    ]


def hours_of(count: int) -> list[Hour]:
    start = datetime(2026, 12, 3, tzinfo=UTC)
    return [Hour(start + timedelta(hours=n), 0, 0, 0) for n in range(count)]


def test_anhourly_chart_says_why_it_is_missing() -> None:
    hours = hours_of(3)

    assert hourly_chart("submissions", hours, [1, None, 2])["missing"].startswith("Unknown")
    assert hourly_chart("submissions", hours, [0, 0, 0])["missing"] == (
        "No submissions in these hours."
    )
    drawn = hourly_chart("submissions", hours, [0, 3, 0])
    assert drawn["title"] == "Submissions"
    assert drawn["svg"].startswith('<svg id="submissions-chart" role="img"')
