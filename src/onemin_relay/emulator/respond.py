"""JSON responses and 1min.ai's two error envelopes (§8).

400s always use the live ``{"errorCode", "message", "details"?}`` shape, ``details`` being a
JSON-encoded string. 401, 422 and 429 were never captured live, so for them the envelope is
switchable to the documented ``{"success": false, "error": {code, message, details?}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web

from onemin_relay.emulator.billing import INSUFFICIENT_CREDITS, INSUFFICIENT_MESSAGE
from onemin_relay.emulator.faults import Envelope, Faults
from onemin_relay.emulator.state import CONFIG, FAULTS

SWITCHABLE = frozenset({401, 422, 429})
_encoder = msgspec.json.Encoder()
encode = _encoder.encode

_KNOWN_ERRORS = {
    400: ("INVALID_REQUEST", "Missing required parameters or invalid format"),
    401: ("UNAUTHORIZED", "Invalid or missing API key"),
    422: ("PROMPT_OBJECT_VALIDATION_FAILED", "Invalid prompt object"),
    429: ("RATE_LIMITED", "Too many requests"),
}


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_bytes_response(data, dumps=encode, status=status, headers=headers)


def envelope_for(request: web.Request) -> Envelope:
    """The key's ``error_envelope`` knob, else the app's configured envelope."""
    return request[FAULTS].error_envelope or request.app[CONFIG].error_envelope


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    envelope: Envelope = "flat",
    details: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    if envelope == "documented" and status in SWITCHABLE:
        error: dict[str, Any] = {"code": code, "message": message}
        if details:
            error["details"] = details
        return json_response({"success": False, "error": error}, status, headers)
    body = {"errorCode": code, "message": message}
    if details:
        body["details"] = encode(details).decode()
    return json_response(body, status, headers)


def forced_status_response(status: int, faults: Faults, envelope: Envelope) -> web.Response:
    """The answer to a request hit by the ``status`` knob."""
    headers = {}
    if faults.retry_after is not None:
        headers["Retry-After"] = f"{faults.retry_after:g}"
    phrase = HTTPStatus(status).phrase
    if faults.status_body_text:
        return web.Response(status=status, text=f"{status} {phrase}", headers=headers)
    code, message = _KNOWN_ERRORS.get(status, (phrase.upper().replace(" ", "_"), phrase))
    return error_response(status, code, message, envelope=envelope, headers=headers)


def unauthorized(envelope: Envelope) -> web.Response:
    code, message = _KNOWN_ERRORS[401]
    return error_response(401, code, message, envelope=envelope)


def insufficient_credits() -> web.Response:
    """The answer to a call from a key whose credits have run out (always the flat shape)."""
    return error_response(402, INSUFFICIENT_CREDITS, INSUFFICIENT_MESSAGE)
