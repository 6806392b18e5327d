"""The pure parts behind the overview's charts: axis tops, bar geometry, time buckets."""

from __future__ import annotations

import pytest

from onemin_relay.dashboard.charts import HEIGHT, Series, axis_top, bar_chart, line_chart
from onemin_relay.dashboard.series import MIN_BUCKETS, step_for, timeline
from onemin_relay.gateway.storage import LedgerRow


def row(at: float, status: int = 200, latency: float = 100.0, charged: int = 0) -> LedgerRow:
    outcome = "ok" if status < 400 else "error"
    return LedgerRow(at, "req", None, None, "managed", "/v1/chat/completions", "m", "m", status,
                     outcome, latency_ms=latency, charged=charged)  # fmt: skip


@pytest.mark.parametrize(
    ("largest", "whole", "top"),
    [(0, True, 4), (2, True, 4), (37, True, 40), (1000, True, 1000), (0.3, False, 0.4),
     (7.5e-6, False, 8e-6)],
)  # fmt: skip
def test_axis_top_is_round_and_counts_step_in_whole_numbers(
    largest: float, whole: bool, top: float
) -> None:
    assert axis_top(largest, whole) == pytest.approx(top)


def test_stacked_bars_reach_the_total_and_carry_their_value() -> None:
    chart = bar_chart("Requests", ["a", "b"], [Series("ok", [3, 0], "s1"),
                      Series("errors", [1, 2], "bad")], fmt="{:g}".format, whole=True)  # fmt: skip
    assert [(bar.css, bar.tip) for bar in chart.bars] == [
        ("s1", "a · ok: 3"), ("bad", "a · errors: 1"), ("bad", "b · errors: 2"),
    ]  # fmt: skip
    ok, errors = chart.bars[0], chart.bars[1]
    assert errors.y + errors.height == pytest.approx(ok.y)  # stacked, not overlapping
    assert ok.y + ok.height == pytest.approx(chart.bottom)
    assert chart.y_ticks[-1].label == "4" and not chart.empty


def test_a_missing_value_breaks_the_line_and_nothing_at_all_is_empty() -> None:
    chart = line_chart("Latency", list("abcde"), [Series("p50", [1, 2, None, 3, 4], "s1")], str)
    assert len(chart.lines) == 2 and len(chart.dots) == 4
    assert all(0 <= dot.y <= HEIGHT for dot in chart.dots)
    assert line_chart("Latency", ["a"], [Series("p50", [None], "s1")], str).empty


def test_timeline_buckets_requests_errors_money_and_latency() -> None:
    now = 10_000.0
    rows = [row(now - 30, latency=10, charged=5), row(now - 20, 500, latency=30),
            row(now - 200, latency=20, charged=7)]  # fmt: skip
    line = timeline(rows, now)
    assert line.step == 60 and len(line.buckets) == MIN_BUCKETS
    last = line.buckets[-1]
    assert (last.requests, last.errors, last.charged) == (2, 1, 5)
    assert last.percentile(0.5) == 10 and last.percentile(0.95) == 30
    assert sum(b.requests for b in line.buckets) == 3
    assert timeline([], now).buckets == []


def test_bucket_width_grows_with_the_span() -> None:
    assert step_for(10 * 60) == 60
    assert step_for(6 * 3600) == 900
    assert step_for(40 * 86_400) == 86_400
