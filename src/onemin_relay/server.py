"""The HTTP server runner: aiohttp's, plus three protections it lacks.

* No echo of raw request bytes: when a request line or header is malformed or too long,
  aiohttp answers and logs an error that quotes the first hundred bytes of the offending
  line, which for ``Authorization`` or ``x-api-key`` is the client's key. These connections
  answer such requests with a generic 400 and log only the error's class.
* A deadline for a new connection's first request line and headers (as nginx's
  ``client_header_timeout``): aiohttp has none, so a client trickling bytes could hold a
  connection open for as long as it likes. Later requests on a kept-alive connection are
  bounded by aiohttp's keep-alive timeout.
* Caps on open connections, in total and per peer address (``ONEMIN_MAX_CONNECTIONS``,
  ``ONEMIN_MAX_CONNECTIONS_PER_IP``), taken from the app's settings and checked at accept;
  see :mod:`onemin_relay.connections`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from onemin_relay.connections import ConnectionCaps
from onemin_relay.metrics import METRICS
from onemin_relay.surfaces.common import SETTINGS

log = logging.getLogger("aiohttp.server")

_BAD_REQUEST = orjson.dumps(
    {
        "error": {
            "message": "malformed or oversized request line or header",
            "type": "invalid_request_error",
            "param": None,
            "code": "bad_request",
        }
    }
)


class _ScrubbingHandler(RequestHandler):
    _header_deadline: asyncio.TimerHandle | None = None
    _caps: ConnectionCaps | None = None
    _peer: str | None = None
    _refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        caps = getattr(self._manager, "caps", None)
        if caps is not None:
            peer = transport.get_extra_info("peername")
            self._peer = peer[0] if isinstance(peer, tuple) else None
            if not caps.admit(self._peer):
                self._refused = True
                cast(asyncio.Transport, transport).abort()  # before aiohttp sets anything up
                return
            self._caps = caps
        super().connection_made(transport)
        timeout = getattr(self._manager, "header_timeout", None)
        if timeout:
            self._header_deadline = self._loop.call_later(timeout, self._headers_overdue)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_deadline is not None and self._request_count:
            self._header_deadline.cancel()
            self._header_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        if self._caps is not None:
            self._caps.release(self._peer)
            self._caps = None
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        super().connection_lost(exc)

    def _headers_overdue(self) -> None:
        self._header_deadline = None
        if self._request_count == 0 and self.transport is not None:
            log.warning("closed a connection that sent no complete request headers in time")
            self.transport.close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        log.warning("rejected a malformed request from %s: %s", request.remote, type(exc).__name__)
        response = web.Response(
            status=status if 400 <= status < 500 else 400,
            body=_BAD_REQUEST,
            content_type="application/json",
        )
        response.force_close()
        return response


# Connections the kernel may queue before the relay accepts them. aiohttp's default, 128,
# drops the SYNs of a burst of a thousand clients on a busy machine, and their connects then
# time out; the kernel caps this at net.core.somaxconn.
LISTEN_BACKLOG = 1024


class _ScrubbingServer(web.Server):
    header_timeout: float | None = None
    caps: ConnectionCaps | None = None

    def __call__(self) -> RequestHandler:
        return _ScrubbingHandler(self, loop=self._loop, **self._kwargs)


class RelayRunner(web.AppRunner):
    """``web.AppRunner`` whose connections never quote request bytes in errors or logs,
    get ``header_timeout`` seconds to send their first request's headers, and are capped
    as the app's settings say."""

    def __init__(
        self, app: web.Application, *, header_timeout: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ScrubbingServer
        server.header_timeout = self._header_timeout  # type: ignore[attr-defined]
        server.caps = _caps_of(self.app)  # type: ignore[attr-defined]
        return server


def _caps_of(app: web.Application) -> ConnectionCaps | None:
    settings = app.get(SETTINGS)
    if settings is None or not (settings.max_connections or settings.max_connections_per_ip):
        return None
    caps = ConnectionCaps.from_settings(settings)
    metrics = app.get(METRICS)
    if metrics is not None:
        caps.instrument(metrics.registry)
    return caps
