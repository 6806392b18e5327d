"""Prometheus metrics at ``GET /metrics``: requests, latency and errors.

Labels stay bounded: the route pattern (never the raw path, which may hold ids or keys), the
status code, and the error code from the core error tree. Each worker process keeps its own
registry; scrape each worker, or run one process per scrape target.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """One registry and its instruments; lives in an ``AppKey``, never in a module global."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "onemin_relay_requests",
            "Requests answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "onemin_relay_request_seconds",
            "Time to answer (for streams: to the end of the stream), by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self.errors = Counter(
            "onemin_relay_errors",
            "Requests that ended in an error, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.state_up = Gauge(
            "onemin_relay_state_up",
            "Whether a shared state (limits, ledger, responses, catalog) is healthy (1) or not.",
            ["state", "store"],
            registry=self.registry,
        )

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        key = (route_of(request), status)
        children = self._children.get(key)
        if children is None:  # label lookups take a lock; do them once per (route, status)
            route = key[0]
            children = (self.requests.labels(route, str(status)), self.latency.labels(route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)
Readiness = Callable[[web.Application], dict[str, dict[str, bool | str]]]
# set by the app: the shared states' health, read at each scrape
READINESS: web.AppKey[Readiness] = web.AppKey("readiness")


def route_of(request: web.Request) -> str:
    """The matched route's pattern (``/v1/models/{model}``), or ``unmatched``."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


async def serve_metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    report = request.app.get(READINESS)
    if report is not None:
        for state, health in report(request.app).items():
            metrics.state_up.labels(state, str(health["store"])).set(1 if health["ok"] else 0)
    body = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
