"""Retry policy for calls that provably never reached 1min.ai.

A chat call spends credits, so only a request the upstream did not process is retried: a
failed connect, or a 429/503 answered before any body. Retries draw on a budget that refills
by a fraction of the traffic, so an outage cannot multiply the load on the upstream.
"""

from __future__ import annotations

import random


class RetryBudget:
    """Allows ``ratio`` retries per request on average, plus a small reserve."""

    def __init__(self, ratio: float = 0.1, reserve: float = 3.0) -> None:
        self._ratio = ratio
        self._reserve = reserve
        self._tokens = reserve

    def record_request(self) -> None:
        self._tokens = min(self._reserve + 100 * self._ratio, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def backoff_delay(attempt: int, retry_after: float | None, cap: float) -> float | None:
    """Seconds to wait before retry ``attempt`` (1-based), or None when waiting is not worth it.

    A ``Retry-After`` longer than ``cap`` is left to the client: the relay answers 429 with
    that header instead of holding the connection.
    """
    if retry_after is not None:
        return retry_after if retry_after <= cap else None
    return min(cap, 0.2 * 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2)
