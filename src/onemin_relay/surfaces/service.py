"""Service information and health: ``GET /``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

from aiohttp import web

from onemin_relay import __version__
from onemin_relay.surfaces.common import GATEWAY, SETTINGS, SHARED, json_response


async def index(request: web.Request) -> web.Response:
    endpoints = sorted(
        {
            f"{route.method} {route.resource.canonical}"
            for route in request.app.router.routes()
            if route.resource is not None and route.method != "HEAD"
        }
    )
    return json_response({"name": "onemin-relay", "version": __version__, "endpoints": endpoints})


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def readiness(app: web.Application) -> dict[str, dict[str, bool | str]]:
    """Per shared state: healthy or not, where it lives, and whether its failure blocks
    requests (limits closed, Responses fail) or only degrades them."""
    settings, gateway, shared = app[SETTINGS], app.get(GATEWAY), app.get(SHARED)
    where = "redis" if settings.redis_url else "memory"
    report: dict[str, dict[str, bool | str]] = {}
    if gateway is not None:
        report["limits"] = {
            "ok": gateway.limits.healthy,
            "store": where,
            "blocking": settings.limits_on_store_error == "closed",
        }
        report["ledger"] = {
            "ok": gateway.ledger.in_use < settings.ledger_queue_size,
            "store": "postgresql" if settings.uses_postgres else "sqlite",
            "blocking": True,
        }
    if shared is not None:
        report["responses"] = {
            "ok": bool(getattr(shared.responses, "healthy", True)),
            "store": where,
            "blocking": settings.responses_on_store_error == "fail",
        }
        catalog_ok = bool(getattr(shared.catalog, "healthy", True))
        report["catalog"] = {"ok": catalog_ok, "store": where, "blocking": False}
    return report


async def readyz(request: web.Request) -> web.Response:
    """Whether this process can serve: each shared state's health, and what a failing one
    means (the settings say whether limits and stored Responses fail closed or degrade)."""
    report = readiness(request.app)
    ready = all(state["ok"] or not state["blocking"] for state in report.values())
    body = {"status": "ok" if ready else "unavailable", "states": report}
    return json_response(body, status=200 if ready else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
