"""The routing page: each route's models and the evidence behind its candidates, and what
routing saved against the incumbents (what ``onemin-relay routes show`` prints)."""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from onemin_relay.core.errors import RelayError
from onemin_relay.dashboard.charts import Series, bar_chart
from onemin_relay.dashboard.render import page
from onemin_relay.dashboard.views import PERIODS, money, store_of, whole
from onemin_relay.gateway.pricing import credits_to_nanos
from onemin_relay.gateway.route_report import model_lines, savings
from onemin_relay.gateway.routing import Catalog
from onemin_relay.gateway.routing_config import RouteBook
from onemin_relay.surfaces.common import PIPELINE, SETTINGS

DEFAULT_DAYS: Final = "30"


async def _catalog(request: web.Request) -> Catalog | None:
    """The model catalog (cached by the relay); None while 1min.ai cannot be asked."""
    try:
        return await request.app[PIPELINE].catalog.get()
    except RelayError:
        return None


def _book(request: web.Request) -> RouteBook:
    from onemin_relay.app import ROUTES  # app.py imports this package: look it up late

    return request.app[ROUTES]


async def routing(request: web.Request) -> web.Response:
    days = request.query.get("days", DEFAULT_DAYS)
    days = days if days in PERIODS else DEFAULT_DAYS
    store, catalog = store_of(request), await _catalog(request)
    lines = model_lines(_book(request), catalog, await store.evidence())
    saved = savings(await store.routed_usage(time.time() - int(days) * 86_400), catalog)
    rate = request.app[SETTINGS].credits_per_usd
    rows = [
        (s, money(credits_to_nanos(s.saved_credits, rate)) if catalog else "unknown") for s in saved
    ]
    labels = [s.route for s in saved]
    chart = bar_chart("Routed requests", labels, [
        Series("incumbent", [s.requests - s.by_candidates for s in saved], "s1"),
        Series("candidates", [s.by_candidates for s in saved], "s2"),
    ], fmt=whole, whole=True)  # fmt: skip
    return page(
        request, "routing.html", title="Routing", lines=lines, savings=rows, chart=chart,
        days=days, periods=PERIODS, priced=catalog is not None,
    )  # fmt: skip
