"""Service information and health: ``GET /``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

from aiohttp import web

from onemin_relay import __version__
from onemin_relay.surfaces.common import json_response, readiness


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
