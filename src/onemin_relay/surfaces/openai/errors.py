"""OpenAI's error envelope, shared by every OpenAI-compatible endpoint."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from onemin_relay.core.errors import (
    AuthenticationFailed,
    InsufficientBalance,
    PermissionDenied,
    RateLimited,
    RelayError,
    UpstreamError,
)
from onemin_relay.surfaces.common import error_response


def error_type(exc: RelayError) -> str:
    match exc:
        case AuthenticationFailed():
            return "authentication_error"
        case PermissionDenied():
            return "permission_error"
        case InsufficientBalance():
            return "insufficient_quota"
        case RateLimited():
            return "rate_limit_error"
        case UpstreamError():
            return "upstream_error"
    return "invalid_request_error" if exc.status < 500 else "server_error"


def error_body(exc: RelayError) -> dict[str, dict[str, Any]]:
    return {
        "error": {
            "message": exc.message,
            "type": exc.kind or error_type(exc),
            "param": exc.param,
            "code": exc.code,
            **exc.details,
        }
    }


def render_error(exc: RelayError) -> web.Response:
    return error_response(exc, error_body(exc))


def render_error_frame(exc: RelayError) -> bytes:
    """The in-stream error: the SDKs raise on a ``data:`` object with an ``error`` key."""
    return b"data: " + orjson.dumps(error_body(exc)) + b"\n\n"
