"""The HTTP server runner: aiohttp's, minus the echo of raw request bytes.

When a request line or header is malformed or too long, aiohttp answers and logs an error
that quotes the first hundred bytes of the offending line, which for ``Authorization`` or
``x-api-key`` is the client's key. This runner's connections answer such requests with a
generic 400 and log only the error's class.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

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


class _ScrubbingServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ScrubbingHandler(self, loop=self._loop, **self._kwargs)


class RelayRunner(web.AppRunner):
    """``web.AppRunner`` whose connections never quote request bytes in errors or logs."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ScrubbingServer
        return server
