"""The errors a request can end with, each carrying its HTTP status and a stable code.

    RelayError                      500  internal_error
    ├── InvalidRequest              400  invalid_request
    │   ├── UnsupportedModel        400  model_not_supported
    │   └── ToolLoopDetected        400  tool_loop_detected
    ├── AuthenticationFailed        401  invalid_api_key
    ├── InsufficientBalance         402  insufficient_balance
    │   └── InsufficientPrepaidBalance  402  insufficient_prepaid_balance (+ amounts)
    ├── PermissionDenied            403  permission_denied
    ├── NotFound                    404  not_found
    │   └── ModelNotFound           404  model_not_found
    ├── Conflict                    409  idempotency_conflict
    ├── PayloadTooLarge             413  payload_too_large
    ├── RateLimited                 429  rate_limited      (retry_after seconds)
    └── UpstreamError               502  upstream_error
        ├── UpstreamStreamError     502  upstream_stream_error
        ├── StructuredOutputFailed  502  structured_output_failed
        ├── ToolCallFailed          502  tool_call_failed
        ├── UpstreamUnavailable     503  upstream_unavailable
        └── UpstreamTimeout         504  upstream_timeout  (also a TimeoutError)

A surface chooses only the envelope; the class decides the status. Messages are written
for the client and must never contain a credential. ``kind``, when set, is the error
``type`` every envelope shows instead of its protocol's own word, and ``details`` are extra
fields added to the envelope's error object.
"""

from __future__ import annotations

from typing import Any

from onemin_relay.core.types import Usage


class RelayError(Exception):
    status: int = 500
    code: str = "internal_error"
    kind: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.details: dict[str, Any] = {}
        self.usage: Usage | None = None  # upstream work already done (and billed), if any


class InvalidRequest(RelayError):
    status = 400
    code = "invalid_request"


class UnsupportedModel(InvalidRequest):
    code = "model_not_supported"


class ToolLoopDetected(InvalidRequest):
    """The model keeps making the same call with the same arguments: an agent loop."""

    code = "tool_loop_detected"


class AuthenticationFailed(RelayError):
    status = 401
    code = "invalid_api_key"


class InsufficientBalance(RelayError):
    status = 402
    code = "insufficient_balance"


class InsufficientPrepaidBalance(InsufficientBalance):
    """A managed key's balance, less what its calls in flight hold, cannot cover the most
    this call may cost. Nothing was sent upstream."""

    code = "insufficient_prepaid_balance"
    kind = "insufficient_prepaid_balance"

    def __init__(self, balance_usd: float, reserved_usd: float, required_usd: float) -> None:
        super().__init__("Insufficient prepaid balance.")
        self.details = {
            "balance_usd": balance_usd,
            "reserved_usd": reserved_usd,
            "required_usd": required_usd,
        }


class PermissionDenied(RelayError):
    status = 403
    code = "permission_denied"


class NotFound(RelayError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(RelayError):
    """A request with the same ``Idempotency-Key`` is still running."""

    status = 409
    code = "idempotency_conflict"


class PayloadTooLarge(RelayError):
    status = 413
    code = "payload_too_large"


class RateLimited(RelayError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(RelayError):
    status = 502
    code = "upstream_error"


class UpstreamStreamError(UpstreamError):
    code = "upstream_stream_error"


class StructuredOutputFailed(UpstreamError):
    """The model's answer still failed the requested JSON format after the repair retries."""

    code = "structured_output_failed"


class ToolCallFailed(UpstreamError):
    """The model tried to call a tool but still got it wrong after the repair retries."""

    code = "tool_call_failed"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError, TimeoutError):
    status = 504
    code = "upstream_timeout"
