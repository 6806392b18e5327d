"""Upstream bodies captured from the live service (docs/1min-api.md §4.1), shared by tests."""

from __future__ import annotations

from typing import Any

# The metadata block of a live chat response.
LIVE_METADATA: dict[str, Any] = {
    "credit": 45,
    "inputToken": 98,
    "totalToken": 101,
    "inputCredit": 44,
    "outputToken": 3,
    "promptToken": 11,
    "finishReason": "stop",
    "outputCredit": 1,
    "executionTime": 0.365,
}
