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
KINDS: tuple[Kind, ...] = ("requests", "tokens")


def _names(template: str) -> dict[Kind, tuple[str, str, str]]:
    """Per kind, the names of its limit, remaining and reset headers."""
    return {
        kind: (
            template.format(kind=kind, part="limit"),
            template.format(kind=kind, part="remaining"),
            template.format(kind=kind, part="reset"),
        )
        for kind in KINDS
    }


_OPENAI_NAMES = _names("x-ratelimit-{part}-{kind}")
_ANTHROPIC_NAMES = _names("anthropic-ratelimit-{kind}-{part}")


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the headers, when the request went through the limits."""
    counted = RATE_STATE.get()
    if not counted:
        return
    anthropic = canonical_path(request).startswith(ANTHROPIC_PATHS)
    headers = response.headers
    for kind, names in (_ANTHROPIC_NAMES if anthropic else _OPENAI_NAMES).items():
        tightest = _tightest(counted, kind)
        if tightest is None:
            continue
        limit, remaining, reset = names
        headers[limit] = str(tightest.limit)
        headers[remaining] = str(tightest.state.remaining)
        headers[reset] = _reset_at(tightest) if anthropic else duration(tightest.state.reset)


def _tightest(counted: tuple[Counted, ...], kind: Kind) -> Counted | None:
    """Of the windows of ``kind``, the one with the least room left."""
    found = None
    for window in counted:
        if window.kind == kind and (
            found is None or window.state.remaining < found.state.remaining
        ):
            found = window
    return found


def _reset_at(counted: Counted) -> str:
    """Anthropic's style: when the window is empty again, as an RFC 3339 time."""
    at = datetime.fromtimestamp(time.time() + counted.state.reset, UTC).replace(microsecond=0)
    return at.isoformat().replace("+00:00", "Z")


def duration(seconds: float) -> str:
    """OpenAI's style: ``120ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"
