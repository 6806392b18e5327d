"""The results table: one row per figure, direct beside relayed, the gap, and the target."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence

SIDE_LABELS = ("direct", "relayed")

# A target check gets (direct, relayed) and says whether the target is met.
Check = Callable[[float | None, float | None], bool]


@dataclasses.dataclass
class Target:
    text: str
    check: Check


def added_at_most(limit: float) -> Target:
    return Target(
        f"Δ ≤ {limit:g} ms", lambda d, r: d is not None and r is not None and r - d <= limit
    )


def ratio_at_least(share: float) -> Target:
    def check(d: float | None, r: float | None) -> bool:
        return d is not None and r is not None and d > 0 and r / d >= share

    return Target(f"≥ {share:.0%} of direct", check)


def relayed_at_most(limit: float, unit: str) -> Target:
    text = f"≤ {limit:g} {unit}" if limit else f"0 {unit}"
    return Target(text, lambda _d, r: r is not None and r <= limit)


@dataclasses.dataclass
class Row:
    scenario: str
    metric: str
    unit: str
    direct: float | None
    relayed: float | None
    target: Target | None = None
    note: str = ""
    direct_runs: Sequence[float] = ()
    relayed_runs: Sequence[float] = ()
    labels: tuple[str, str] = SIDE_LABELS  # what the two columns hold in this row

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.check(self.direct, self.relayed)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:.2f} ms" if abs(value) < 100 else f"{value:.0f} ms"
    if unit == "µs":
        return f"{value:,.0f} µs"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit in ("req/s", "streams/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:g}" + (f" {unit}" if unit else "")


def _labelled(row: Row, side: int, text: str) -> str:
    """A value prefixed with what its column holds, for rows that compare other things
    than direct and relayed (e.g. ``BYOK 0.45 ms`` / ``managed 0.61 ms``)."""
    if row.labels == SIDE_LABELS or text == "—":
        return text
    return f"{row.labels[side]} {text}"


def _delta(row: Row) -> str:
    if row.direct is None or row.relayed is None:
        return "—"
    gap = row.relayed - row.direct
    text = _number(abs(gap), row.unit)
    return ("+" if gap >= 0 else "−") + text


def _ratio(row: Row) -> str:
    if row.direct is None or row.relayed is None or row.direct == 0:
        return "—"
    ratio = row.relayed / row.direct
    if row.unit in ("req/s", "streams/s"):
        return f"{ratio:.0%}"
    return f"{ratio:.2f}×"


def _status(row: Row) -> str:
    return {None: "", True: "met", False: "**missed**"}[row.met]


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| scenario | figure | direct | relayed | difference | ratio | target | |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        target = row.target.text if row.target else ""
        direct = _labelled(row, 0, _number(row.direct, row.unit))
        relayed = _labelled(row, 1, _number(row.relayed, row.unit))
        lines.append(
            f"| {row.scenario} | {row.metric} | {direct} | {relayed} | {_delta(row)} | "
            f"{_ratio(row)} | {target} | {_status(row)} |"
        )
    return "\n".join(lines)


def runs_table(rows: Sequence[Row]) -> str:
    """Every repetition behind each median, so the noise is visible."""
    lines = ["| scenario | figure | direct runs | relayed runs |", "|---|---|---|---|"]
    for row in rows:
        if not row.direct_runs and not row.relayed_runs:
            continue
        direct = " / ".join(_number(v, row.unit) for v in row.direct_runs) or "—"
        relayed = " / ".join(_number(v, row.unit) for v in row.relayed_runs) or "—"
        direct, relayed = _labelled(row, 0, direct), _labelled(row, 1, relayed)
        lines.append(f"| {row.scenario} | {row.metric} | {direct} | {relayed} |")
    return "\n".join(lines)


def notes(rows: Sequence[Row]) -> str:
    return "\n".join(f"- **{r.scenario}, {r.metric}:** {r.note}" for r in rows if r.note)
