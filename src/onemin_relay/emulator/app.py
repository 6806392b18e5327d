"""The emulator app: routes, request recording, and the auth / latency / status gate.

A faithful stand-in for ``https://api.1min.ai`` (and its asset host) for tests, benchmarks
and the demo mode. It imports nothing from the relay. Calls are billed in credits against
a per-key account (see ``billing``). Test controls live under ``/_emulator/`` (see
``control``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from onemin_relay.emulator.assets import ASSET_ROUTE, serve_asset, upload_asset
from onemin_relay.emulator.bodies import Rejected
from onemin_relay.emulator.catalog import models_for
from onemin_relay.emulator.chat import chat_with_ai
from onemin_relay.emulator.control import CONTROL_PREFIX, add_control_routes
from onemin_relay.emulator.conversations import create_conversation
from onemin_relay.emulator.faults import HEALTHY
from onemin_relay.emulator.features import features
from onemin_relay.emulator.respond import (
    envelope_for,
    forced_status_response,
    insufficient_credits,
    json_response,
    unauthorized,
)
from onemin_relay.emulator.state import (
    CONFIG,
    FAULTS,
    MB,
    RECORD,
    STATE,
    EmulatorConfig,
    EmulatorState,
)
from onemin_relay.emulator.stream import ClientGone, pause

CLIENT_GONE_STATUS = 499  # recorded when the client left before any answer was sent
BILLED_PATHS = frozenset({"/api/chat-with-ai", "/api/features"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _record(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every API request with its outcome; turns ``Rejected`` into its response."""
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    record = request[RECORD] = request.app[STATE].record(request)
    try:
        response = await handler(request)
    except Rejected as exc:
        response = exc.response
    except ClientGone:
        record.client_disconnected = True
        response = web.Response(status=CLIENT_GONE_STATUS)
    except asyncio.CancelledError:
        record.client_disconnected = True
        raise
    except web.HTTPException as exc:
        record.status = exc.status
        raise
    finally:
        record.finished_at = time.time()
    record.status = response.status
    if not record.stream:
        record.completed = not record.client_disconnected
    return response


def _authorized(config: EmulatorConfig, api_key: str) -> bool:
    return bool(api_key) and (config.api_keys is None or api_key in config.api_keys)


@web.middleware
async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the key's fault knobs (latency everywhere; auth and forced status on ``/api/``),
    then refuse billed calls from a key whose credits have run out (see ``billing``)."""
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    state = request.app[STATE]
    api_key = request.headers.get("API-KEY", "")
    faults = state.faults.for_key(api_key)
    if faults.models and not faults.covers(await _model_of(request)):
        faults = HEALTHY
    request[FAULTS] = faults
    await pause(request, faults.latency_ms / 1000)
    if request.path.startswith("/api/"):
        if not _authorized(request.app[CONFIG], api_key):
            return unauthorized(envelope_for(request))
        status = state.faults.take_status(api_key) if faults.status is not None else None
        if status is not None:
            return forced_status_response(status, faults, envelope_for(request))
        if request.path in BILLED_PATHS and state.accounts.exhausted(api_key):
            return insufficient_credits()
    return await handler(request)


async def _model_of(request: web.Request) -> str | None:
    """The model a call names in its JSON body, which is recorded (the handler, if the
    call gets that far, reads the body again)."""
    if request.method != "POST" or request.content_type != "application/json":
        return None
    try:
        body = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        return None
    request[RECORD].body = body
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


async def list_models(request: web.Request) -> web.Response:
    """``GET /models?feature=X``: public; an empty list without ``feature``."""
    feature = request.query.get("feature")
    models = models_for(feature) if feature else []
    return json_response({"models": models, "total": len(models)})


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """A fresh emulator with its own empty state."""
    config = config or EmulatorConfig()
    app = web.Application(middlewares=[_record, _gate], client_max_size=64 * MB)
    app[CONFIG] = config
    app[STATE] = EmulatorState(config)
    app.router.add_post("/api/chat-with-ai", chat_with_ai)
    app.router.add_post("/api/features", features)
    app.router.add_post("/api/assets", upload_asset)
    app.router.add_post("/api/conversations", create_conversation)
    app.router.add_get("/models", list_models)
    app.router.add_get(ASSET_ROUTE, serve_asset)
    add_control_routes(app)
    return app


def run(host: str = "127.0.0.1", port: int = 8081, config: EmulatorConfig | None = None) -> None:
    """Serve the emulator until interrupted, printing where it listens."""
    url = f"http://{host}:{port}"
    web.run_app(
        create_app(config),
        host=host,
        port=port,
        print=lambda _: print(f"1min.ai emulator on {url} (controls under {url}/_emulator/)"),
    )
