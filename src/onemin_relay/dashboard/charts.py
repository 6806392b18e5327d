"""Charts as server-rendered SVG: geometry computed here, drawn by ``templates/_chart.html``.

No script is involved, so the pages keep a Content-Security-Policy without any script source,
and a chart reads the same offline, printed or with JavaScript off. Colours come from the
stylesheet through each series' class; a hover title on every bar and point gives its value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

# drawn about as wide as it shows in a three-column grid, so its 11 px labels stay 11 px
WIDTH: Final = 360
HEIGHT: Final = 180
LEFT: Final = 72
RIGHT: Final = 10
TOP: Final = 10
BOTTOM: Final = 24
MAX_X_LABELS: Final = 5
MAX_BAR: Final = 36.0
TICKS: Final = 4
Format = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | None]  # None: no value for that label (a gap in a line)
    css: str  # the class that colours it: s1, s2, s3, bad


@dataclass(frozen=True, slots=True)
class Mark:
    x: float
    y: float
    width: float
    height: float
    css: str
    tip: str


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    legend: tuple[tuple[str, str], ...]  # (name, css)
    bars: list[Mark] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)  # (points, css)
    dots: list[Mark] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM
    right: float = WIDTH - RIGHT
    empty: bool = False


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value))


def axis_top(largest: float, whole: bool) -> float:
    """The top of the y axis: ``TICKS`` even steps of a round size; whole steps for counts."""
    step = nice_ceiling(largest / TICKS) if largest > 0 else 1.0
    return TICKS * (max(1.0, math.ceil(step)) if whole else step)


def bar_chart(
    title: str, labels: Sequence[str], series: Sequence[Series], fmt: Format, whole: bool = False
) -> Chart:
    """Bars per label, the series stacked on one another."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = axis_top(max(totals, default=0), whole)
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    width = min(max(slot * 0.7, 1.0), MAX_BAR)
    bars: list[Mark] = []
    for index, label in enumerate(labels):
        base = 0.0
        for one in series:
            value = one.values[index] or 0
            if value <= 0:
                continue
            y0, y1 = _y(base, top), _y(base + value, top)
            x = LEFT + slot * index + (slot - width) / 2
            tip = f"{label} · {one.name}: {fmt(value)}"
            bars.append(Mark(x, y1, width, y0 - y1, one.css, tip))
            base += value
    return Chart(
        title, _legend(series), bars=bars, y_ticks=_y_ticks(top, fmt),
        x_ticks=_x_ticks(labels, slot), empty=not bars,
    )  # fmt: skip


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], fmt: Format) -> Chart:
    """One line per series; a missing value breaks its line."""
    top = axis_top(max((v for s in series for v in s.values if v is not None), default=0), False)
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    lines: list[tuple[str, str]] = []
    dots: list[Mark] = []
    for one in series:
        run: list[str] = []
        for index, value in enumerate(one.values):
            if value is None:
                lines.extend(_line(run, one.css))
                run = []
                continue
            x, y = LEFT + slot * index + slot / 2, _y(value, top)
            run.append(f"{x:.1f},{y:.1f}")
            dots.append(Mark(x, y, 0, 0, one.css, f"{labels[index]} · {one.name}: {fmt(value)}"))
        lines.extend(_line(run, one.css))
    return Chart(
        title, _legend(series), lines=lines, dots=dots, y_ticks=_y_ticks(top, fmt),
        x_ticks=_x_ticks(labels, slot), empty=not dots,
    )  # fmt: skip


def _line(points: list[str], css: str) -> list[tuple[str, str]]:
    return [(" ".join(points), css)] if len(points) > 1 else []


def _legend(series: Sequence[Series]) -> tuple[tuple[str, str], ...]:
    return tuple((one.name, one.css) for one in series)


def _y(value: float, top: float) -> float:
    return (HEIGHT - BOTTOM) - (HEIGHT - BOTTOM - TOP) * (value / top)


def _y_ticks(top: float, fmt: Format) -> list[Tick]:
    return [Tick(_y(top * step / TICKS, top), fmt(top * step / TICKS)) for step in range(TICKS + 1)]


def _x_ticks(labels: Sequence[str], slot: float) -> list[Tick]:
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    return [
        Tick(LEFT + slot * index + slot / 2, label)
        for index, label in enumerate(labels)
        if index % every == 0
    ]
