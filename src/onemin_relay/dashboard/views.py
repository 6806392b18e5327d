"""The overview and usage pages, and usage as CSV."""

from __future__ import annotations

import csv
import io
import time
from typing import Any, Final

from aiohttp import web

from onemin_relay.admin import operations as ops
from onemin_relay.admin.views import format_usd, usd
from onemin_relay.dashboard.charts import Series, bar_chart, line_chart
from onemin_relay.dashboard.render import page
from onemin_relay.dashboard.series import timeline
from onemin_relay.gateway.storage import GroupBy, Store, UsageRow
from onemin_relay.surfaces.common import GATEWAY

PERIODS: Final = {"1": "24 hours", "7": "7 days", "30": "30 days", "90": "90 days"}
RECENT: Final = 15
CSV_UNSAFE: Final = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas


def store_of(request: web.Request) -> Store:
    return request.app[GATEWAY].store


def money(nanos: float) -> str:
    return format_usd(usd(int(nanos)))


def whole(value: float) -> str:
    return f"{value:,.0f}"


def millis(value: float) -> str:
    return f"{value:,.0f} ms"


async def overview(request: web.Request) -> web.Response:
    """Requests, errors, spend and latency over the latest ledger rows; 30-day totals."""
    store, now = store_of(request), time.time()
    rows = await store.ledger(None, ops.LEDGER_MAX)
    days = await store.usage("day", now - ops.USAGE_DAYS * 86_400)
    keys = await store.keys()
    names = {record.id: record.name for record in keys}
    line = timeline(rows, now)
    labels, buckets = line.labels, line.buckets
    charts = [
        bar_chart("Requests", labels, [
            Series("ok", [b.requests - b.errors for b in buckets], "s1"),
            Series("errors", [b.errors for b in buckets], "bad"),
        ], fmt=whole, whole=True),
        bar_chart("Spend", labels, [Series("charged", [b.charged for b in buckets], "s2")],
                  fmt=money),
        line_chart("Latency", labels, [
            Series("p50", [b.percentile(0.5) for b in buckets], "s1"),
            Series("p95", [b.percentile(0.95) for b in buckets], "s3"),
        ], fmt=millis),
    ]  # fmt: skip
    errors = sum(row.status >= 400 for row in rows)
    totals = {
        "requests": sum(day.requests for day in days),
        "spend": money(sum(day.charged for day in days)),
        "error_rate": f"{100 * errors / len(rows):.1f} %" if rows else "–",
        "keys": sum(1 for record in keys if record.revoked_at is None),
    }
    return page(
        request, "overview.html", title="Overview", charts=charts, totals=totals,
        recent=rows[:RECENT], names=names, window=len(rows), step=line.step,
    )  # fmt: skip


def _period(request: web.Request) -> str:
    chosen = request.query.get("days", "30")
    return chosen if chosen in PERIODS else "30"


def _grouping(request: web.Request) -> GroupBy:
    chosen = request.query.get("group", "key")
    return chosen if chosen in ops.GROUPS else "key"  # type: ignore[return-value]


async def _usage_rows(request: web.Request) -> tuple[GroupBy, str, list[UsageRow], dict[str, str]]:
    grouping, days = _grouping(request), _period(request)
    store = store_of(request)
    rows = await store.usage(grouping, time.time() - int(days) * 86_400)
    names = {record.id: record.name for record in await store.keys()}
    return grouping, days, rows, names


def label_of(row: UsageRow, grouping: GroupBy, names: dict[str, str]) -> str:
    if grouping == "key":
        return names.get(row.group, "no key" if row.group == "-" else row.group)
    return row.group


async def usage(request: web.Request) -> web.Response:
    grouping, days, rows, names = await _usage_rows(request)
    labels = [label_of(row, grouping, names) for row in rows]
    charts = [
        bar_chart("Requests", labels, [Series("requests", [r.requests for r in rows], "s1")],
                  fmt=whole, whole=True),
        bar_chart("Spend", labels, [Series("charged", [r.charged for r in rows], "s2")],
                  fmt=money),
        bar_chart("Tokens", labels, [
            Series("input", [r.input_tokens for r in rows], "s1"),
            Series("output", [r.output_tokens for r in rows], "s3"),
        ], fmt=whole, whole=True),
    ]  # fmt: skip
    context: dict[str, Any] = {
        "grouping": grouping, "groups": ops.GROUPS, "days": days, "periods": PERIODS,
        "rows": list(zip(labels, rows, strict=True)), "charts": charts,
    }  # fmt: skip
    return page(request, "usage.html", title="Usage", **context)


async def usage_csv(request: web.Request) -> web.Response:
    """The usage table as CSV, one row per group, dollars as decimals."""
    grouping, days, rows, names = await _usage_rows(request)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([grouping, "label", "requests", "input_tokens", "output_tokens", "credits",
                     "charged_usd"])  # fmt: skip
    for row in rows:
        label = label_of(row, grouping, names)
        writer.writerow([
            _cell(row.group), _cell(label), row.requests, row.input_tokens, row.output_tokens,
            row.credits, f"{usd(row.charged):.9f}",
        ])  # fmt: skip
    filename = f"onemin-usage-by-{grouping}-{days}d.csv"
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def _cell(text: str) -> str:
    return "'" + text if text.startswith(CSV_UNSAFE) else text
