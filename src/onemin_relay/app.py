"""Builds the aiohttp application from settings: resources, routes, the error middleware."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.typedefs import Middleware

from onemin_relay import __version__, idempotency
from onemin_relay.admin import api as admin_api
from onemin_relay.core.errors import InvalidRequest, NotFound, PayloadTooLarge, RelayError
from onemin_relay.core.tokens import warm_up
from onemin_relay.cors import add_cors_headers, allowed_origins, preflight
from onemin_relay.dashboard import add_routes as add_dashboard_routes
from onemin_relay.features import Features
from onemin_relay.gateway import open_store
from onemin_relay.gateway.ledger import LedgerWriter
from onemin_relay.gateway.limits import RateLimits
from onemin_relay.gateway.policy import Gateway
from onemin_relay.gateway.routing import ROUTE_HEADER, ROUTED
from onemin_relay.gateway.routing_config import RouteBook, load_routes
from onemin_relay.media import GuardedResolver, ImageFetcher
from onemin_relay.metrics import METRICS, READINESS, Metrics, serve_metrics
from onemin_relay.pipeline import Pipeline
from onemin_relay.relay_path import add_relay_key_paths, canonical_path
from onemin_relay.settings import Settings
from onemin_relay.shared_state import SharedState, shared_state
from onemin_relay.surfaces import feedback, key_state, service
from onemin_relay.surfaces.anthropic import messages as anthropic
from onemin_relay.surfaces.common import (
    FEATURES,
    GATEWAY,
    PIPELINE,
    RECEIVED,
    RESPONSE_STORE,
    SETTINGS,
    SHARED,
    request_id,
)
from onemin_relay.surfaces.gemini import generate as gemini
from onemin_relay.surfaces.openai import audio as openai_audio
from onemin_relay.surfaces.openai import chat as openai_chat
from onemin_relay.surfaces.openai import embeddings as openai_embeddings
from onemin_relay.surfaces.openai import images as openai_images
from onemin_relay.surfaces.openai import models as openai_models
from onemin_relay.surfaces.openai import responses as openai_responses
from onemin_relay.surfaces.openai.errors import render_error as render_openai_error
from onemin_relay.surfaces.rate_headers import add_rate_headers
from onemin_relay.upstream import ModelCatalog, OneMinClient
from onemin_relay.upstream.features import FeatureClient

log = logging.getLogger(__name__)

LEDGER_DRAIN_SECONDS = 30.0
DEAD_LETTER_FILE = "ledger-dead-letter.jsonl"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorRenderer = Callable[[RelayError], web.StreamResponse]

ROUTES = web.AppKey("routes", RouteBook)

# Which protocol's envelope an error takes, by path prefix; OpenAI's otherwise.
ERROR_RENDERERS: tuple[tuple[str, ErrorRenderer], ...] = (
    ("/anthropic/", anthropic.render_error),
    ("/v1/messages", anthropic.render_error),
    ("/gemini/", gemini.render_error),
)


def create_app(
    settings: Settings, *, fetch_resolver: AbstractResolver | None = None
) -> web.Application:
    """The relay application. ``fetch_resolver`` replaces DNS for client image URLs (tests)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            _cors_preflight(allowed_origins(settings)),
            _errors,
            idempotency.middleware(lambda: app[GATEWAY].store, settings.total_timeout + 60),
        ],
    )
    app[SETTINGS] = settings
    app[ROUTES] = load_routes(settings.routes_file, settings.data_dir)
    app[METRICS] = Metrics()
    app[READINESS] = service.readiness
    app.router.add_get("/metrics", serve_metrics)
    app.cleanup_ctx.append(_resources(settings, fetch_resolver))
    service.add_routes(app)
    admin_api.add_routes(app)
    add_dashboard_routes(app)
    anthropic.add_routes(app)
    gemini.add_routes(app)
    openai_chat.add_routes(app)
    openai_models.add_routes(app)
    openai_responses.add_routes(app)
    openai_images.add_routes(app)
    openai_audio.add_routes(app)
    openai_embeddings.add_routes(app)
    key_state.add_routes(app)
    feedback.add_routes(app)
    add_relay_key_paths(app)
    app.on_response_prepare.append(_request_id_header)
    app.on_response_prepare.append(_route_header)
    app.on_response_prepare.append(add_rate_headers)
    origins = allowed_origins(settings)
    if origins:

        async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
            add_cors_headers(request, response, origins)

        app.on_response_prepare.append(cors_headers)
    return app


async def _request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """``x-request-id`` on every answer, errors included (the SDKs expose it; the admin API
    finds a request's trace by it)."""
    response.headers["x-request-id"] = request_id(request)


async def _route_header(request: web.Request, response: web.StreamResponse) -> None:
    """``x-onemin-route`` on a routed answer: route, model used, reason, evidence size."""
    routed = ROUTED.get()
    if routed is not None:
        response.headers[ROUTE_HEADER] = routed


def _resources(
    settings: Settings, fetch_resolver: AbstractResolver | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def open_and_close(app: web.Application) -> AsyncIterator[None]:
        # o200k serves nearly every model; cl100k loads in a thread on first use (32 MB).
        if settings.preload_tokenizer:
            await asyncio.to_thread(warm_up, ("gpt-4o",))
        upstream_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.upstream_pool_size, ttl_dns_cache=300),
            headers={"User-Agent": f"onemin-relay/{__version__}"},
            # one session serves every caller: a cookie set for one key must never reach another
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        allow = settings.fetch_allow_set
        resolver = GuardedResolver(fetch_resolver or aiohttp.ThreadedResolver(), allow)
        fetch_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=resolver, limit=64),
            headers={"User-Agent": f"onemin-relay/{__version__}"},
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        client = OneMinClient(upstream_session, settings)
        fetcher = ImageFetcher(
            fetch_session,
            max_bytes=settings.image_fetch_max_bytes,
            timeout=settings.image_fetch_timeout,
            allow_hosts=allow,
        )
        async with shared_state(settings) as shared, _gateway(settings, shared) as gateway:
            catalog = ModelCatalog(client, ttl=settings.models_ttl, shared=shared.catalog)
            app[SHARED] = shared
            app[GATEWAY] = gateway
            app[PIPELINE] = Pipeline(client, catalog, fetcher, settings, gateway, app[ROUTES])
            app[FEATURES] = Features(FeatureClient(client, settings), catalog, settings, gateway)
            app[RESPONSE_STORE] = shared.responses
            try:
                yield
            finally:
                await app[PIPELINE].learning.shadows.stop()
                await fetch_session.close()
                await upstream_session.close()

    return open_and_close


@asynccontextmanager
async def _gateway(settings: Settings, shared: SharedState) -> AsyncIterator[Gateway]:
    """The store (migrated), the ledger writer and the hold sweeper, for the app's life.
    On the way out (after aiohttp has let requests in flight finish) the ledger is drained
    before the store closes, so no settlement is lost to a shutdown."""
    store = open_store(settings)
    await store.open()
    try:
        await store.migrate()
        ledger = LedgerWriter(
            store,
            capacity=settings.ledger_queue_size,
            batch_size=settings.ledger_batch_size,
            dead_letter=os.path.join(settings.data_dir, DEAD_LETTER_FILE),
        )
        ledger.start()
        gateway = Gateway(store, ledger, RateLimits(shared.limit_store, settings), settings)
        maintenance = asyncio.create_task(gateway.balances.maintain(), name="hold-sweeper")
        try:
            yield gateway
        finally:
            maintenance.cancel()
            await asyncio.gather(maintenance, return_exceptions=True)
            await gateway.limits.drain()
            await ledger.drain(LEDGER_DRAIN_SECONDS)
    finally:
        await store.close()


def _cors_preflight(origins: frozenset[str]) -> Middleware:
    @web.middleware
    async def answer_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        return preflight(request, origins) or await handler(request)

    return answer_preflight


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves in the client's protocol; cancellation passes through untouched.
    Every request is also counted and timed here (one middleware layer, not two)."""
    metrics, started = request.app[METRICS], time.perf_counter()
    request[RECEIVED] = time.monotonic()  # for the request's trace
    try:
        response = await handler(request)
    except RelayError as exc:
        response = _render(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            metrics.observe(request, exc.status, time.perf_counter() - started)
            raise
        response = _render(request, _from_http_exception(exc))
    except asyncio.CancelledError:
        metrics.observe(request, 499, time.perf_counter() - started)  # the client left
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, canonical_path(request))
        response = _render(request, RelayError("the relay hit an internal error"))
    metrics.observe(request, response.status, time.perf_counter() - started)
    return response


def _render(request: web.Request, exc: RelayError) -> web.StreamResponse:
    request.app[METRICS].errors.labels(exc.code).inc()
    if exc.status >= 500:  # the operator's side of a 5xx: why, in the log (messages hold no keys)
        path = canonical_path(request)
        log.warning(
            "%s %s failed: %s (%s): %s", request.method, path, exc.status, exc.code, exc.message
        )
    return _renderer_for(request)(exc)


def _renderer_for(request: web.Request) -> ErrorRenderer:
    path = canonical_path(request)
    for prefix, renderer in ERROR_RENDERERS:
        if path.startswith(prefix):
            return renderer
    return render_openai_error


def _from_http_exception(exc: web.HTTPException) -> RelayError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("the request body is too large")
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("no such endpoint")
    error = (
        InvalidRequest(f"method {exc.method} is not allowed here")
        if isinstance(exc, web.HTTPMethodNotAllowed)
        else RelayError(exc.reason)
    )
    error.status = exc.status
    return error
