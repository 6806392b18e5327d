"""1min.ai error bodies (both envelopes) mapped to core errors."""

from __future__ import annotations

import json

import pytest

from onemin_relay.core.errors import (
    AuthenticationFailed,
    InvalidRequest,
    ModelNotFound,
    RateLimited,
    UpstreamError,
    UpstreamUnavailable,
)
from onemin_relay.upstream.errors import error_from_response

LIVE_MISSING_FIELDS = {
    "errorCode": "MISSING_REQUIRED_FIELDS",
    "message": "Missing required fields for gpt-image-1-mini model: quality. "
    "Please provide all required parameters.",
    "details": json.dumps(
        [{"field": "quality", "message": "Field 'quality' is required for gpt-image-1-mini"}]
    ),
}
LIVE_BUSY_HIDING_CAUSE = {
    "errorCode": "EXTERNAL_API_RESPONSE_WITH_ERROR",
    "message": "The alibaba service is a bit busy right now.",
    "context": {"service": "alibaba"},
    "details": json.dumps(
        {"response": {"status": 400, "data": {"message": "The size does not match 1664*928."}}}
    ),
}


def body(data: object) -> bytes:
    return json.dumps(data).encode()


def test_unsupported_model_is_model_not_found() -> None:
    error = error_from_response(
        400, body({"errorCode": "UNSUPPORTED_MODEL", "message": "Model x is not supported"})
    )
    assert isinstance(error, ModelNotFound)
    assert error.status == 404
    assert error.message == "Model x is not supported"


def test_details_json_string_messages_are_surfaced() -> None:
    error = error_from_response(400, body(LIVE_MISSING_FIELDS))
    assert isinstance(error, InvalidRequest)
    assert "Field 'quality' is required" in error.message


def test_busy_message_keeps_the_real_cause_from_details() -> None:
    error = error_from_response(400, body(LIVE_BUSY_HIDING_CAUSE))
    assert "The size does not match" in error.message


def test_documented_envelope_is_read() -> None:
    documented = {"success": False, "error": {"code": "INVALID_REQUEST", "message": "bad format"}}
    error = error_from_response(400, body(documented))
    assert error.message == "bad format"


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (401, b'{"message":"Invalid API Key"}', AuthenticationFailed),
        (429, b"", RateLimited),
        (500, b"<html>oops</html>", UpstreamError),
        (503, b"down", UpstreamUnavailable),
        (
            422,
            body({"errorCode": "PROMPT_OBJECT_VALIDATION_FAILED", "message": "x"}),
            UpstreamError,
        ),
    ],
)
def test_status_mapping(status: int, payload: bytes, expected: type) -> None:
    assert type(error_from_response(status, payload)) is expected


def test_retry_after_is_parsed() -> None:
    error = error_from_response(429, b"{}", "12")
    assert isinstance(error, RateLimited)
    assert error.retry_after == 12.0


def test_upstream_401_message_never_echoes_the_body() -> None:
    error = error_from_response(401, body({"message": "Invalid API key sk-secret-123"}))
    assert "sk-secret-123" not in error.message


def test_non_json_5xx_body_is_not_passed_through() -> None:
    error = error_from_response(502, b"Traceback: internal path /srv/app.py")
    assert "/srv/app.py" not in error.message
