"""Bar charts as inline SVG, drawn on the server: the pages run no script (see headers.py).

A chart scales to its container (viewBox, width 100 %), names itself for screen readers
(role img, title, desc), and its colours keep 3:1 against the white page, as WCAG asks of
graphics; the numbers are in a table next to it as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from markupsafe import Markup

#: in user units; the page shows it at most 36rem wide, so text stays readable on a phone
WIDTH: Final = 480
HEIGHT: Final = 200
#: room for the y labels on the left and the x labels below
LEFT: Final = 48
BOTTOM: Final = 24
TOP: Final = 12
BAR_COLOUR: Final = "#1f5f99"
AXIS_COLOUR: Final = "#595959"
TEXT_COLOUR: Final = "#1a1a1a"
FONT_SIZE: Final = 15


def short_number(value: int) -> str:
    """A scale label that fits the margin: 950, 12k, 2.1M, 3.4G."""
    for limit, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if value >= limit:
            scaled = value / limit
            return (
                f"{scaled:.1f}".removesuffix(".0") + suffix
                if scaled < 10
                else f"{scaled:.0f}{suffix}"
            )
    return str(value)


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    bars: Sequence[tuple[str, int]],
    label_every: int = 12,
) -> Markup:
    """An SVG of one bar per (label, value), every `label_every`-th label written below."""
    top = max((value for _, value in bars), default=0)
    scale = top or 1
    plot_width = WIDTH - LEFT
    plot_height = HEIGHT - TOP - BOTTOM
    step = plot_width / max(len(bars), 1)
    parts = [
        f'<svg id="{chart_id}" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'font-family="system-ui, sans-serif" font-size="{FONT_SIZE}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        f'<line x1="{LEFT}" y1="{TOP + plot_height}" x2="{WIDTH}" y2="{TOP + plot_height}" '
        f'stroke="{AXIS_COLOUR}"/>',
        # the top of the scale; an empty chart has only its zero line
        f'<text x="{LEFT - 6}" y="{TOP + FONT_SIZE}" text-anchor="end" '
        f'fill="{TEXT_COLOUR}">{short_number(top)}</text>'
        if top
        else "",
        f'<text x="{LEFT - 6}" y="{TOP + plot_height}" text-anchor="end" '
        f'fill="{TEXT_COLOUR}">0</text>',
    ]
    for n, (label, value) in enumerate(bars):
        x = LEFT + n * step
        height = plot_height * value / scale
        parts.append(
            f'<rect x="{x + step * 0.1:.1f}" y="{TOP + plot_height - height:.1f}" '
            f'width="{step * 0.8:.1f}" height="{height:.1f}" fill="{BAR_COLOUR}">'
            f"<title>{escape(label)}: {value:,}</title></rect>"
        )
        if n % label_every == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" '
                f'fill="{TEXT_COLOUR}">{escape(label)}</text>'
            )
    parts.append("</svg>")
    # every interpolated text is escaped above; the numbers are ours
    return Markup("".join(parts))  # noqa: S704  # nosec B704
