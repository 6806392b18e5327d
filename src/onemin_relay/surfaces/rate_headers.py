"""The rate-limit headers clients read, from the windows the request was counted in.

OpenAI: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, resets as durations
(``1s``, ``6m0s``). Anthropic: ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``,
resets as RFC 3339 times. Of several windows of a kind (per IP, per key) the headers show the
one with the least room left.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from aiohttp import web

from onemin_relay.gateway.limits import RATE_STATE, Counted, Kind
from onemin_relay.relay_path import canonical_path

ANTHROPIC_PATHS = ("/anthropic/", "/v1/messages")


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the headers, when the request went through the limits."""
    counted = RATE_STATE.get()
    if not counted:
        return
    anthropic = canonical_path(request).startswith(ANTHROPIC_PATHS)
    for kind in ("requests", "tokens"):
        tightest = _tightest(counted, kind)
        if tightest is None:
            continue
        headers = _anthropic(tightest, kind) if anthropic else _openai(tightest, kind)
        response.headers.update(headers)


def _tightest(counted: tuple[Counted, ...], kind: Kind) -> Counted | None:
    of_kind = [c for c in counted if c.kind == kind]
    return min(of_kind, key=lambda c: c.state.remaining, default=None)


def _openai(counted: Counted, kind: Kind) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(counted.limit),
        f"x-ratelimit-remaining-{kind}": str(counted.state.remaining),
        f"x-ratelimit-reset-{kind}": duration(counted.state.reset),
    }


def _anthropic(counted: Counted, kind: Kind) -> dict[str, str]:
    at = datetime.fromtimestamp(time.time() + counted.state.reset, UTC).replace(microsecond=0)
    return {
        f"anthropic-ratelimit-{kind}-limit": str(counted.limit),
        f"anthropic-ratelimit-{kind}-remaining": str(counted.state.remaining),
        f"anthropic-ratelimit-{kind}-reset": at.isoformat().replace("+00:00", "Z"),
    }


def duration(seconds: float) -> str:
    """OpenAI's style: ``120ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"
