"""CORS, so browser-based clients can call the relay's API routes (never the admin API).

``ONEMIN_CORS_ORIGINS`` lists the origins allowed (comma-separated, or ``*``). Its default,
``auto``, is ``*`` while callers must bring a key of their own: the API authenticates by
bearer key, never by cookie, so a page on another origin can do nothing its own key could not.
With ``ONEMIN_ALLOW_ANONYMOUS`` on, any page a user visits could spend the operator's key
through the user's browser, so ``auto`` then allows no origin at all.
"""

from __future__ import annotations

from aiohttp import web

from onemin_relay.settings import Settings

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
EXPOSED_HEADERS = ", ".join(
    (
        "x-request-id", "retry-after", "idempotent-replayed",
        "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
    )
)  # fmt: skip
PREFLIGHT_MAX_AGE = "600"
CLOSED_PREFIXES = ("/admin", "/metrics")


def allowed_origins(settings: Settings) -> frozenset[str]:
    raw = settings.cors_origins.strip()
    if raw == "auto":
        raw = "" if settings.allow_anonymous and settings.api_key else "*"
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _grant(request: web.Request, origins: frozenset[str]) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for this request, if any."""
    origin = request.headers.get("Origin")
    if not origin or request.path.startswith(CLOSED_PREFIXES):
        return None
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


def preflight(request: web.Request, origins: frozenset[str]) -> web.Response | None:
    """The answer to a CORS preflight (``OPTIONS`` with ``Access-Control-Request-Method``)."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    granted = _grant(request, origins)
    if granted is None:
        return web.Response(status=403, text="CORS: origin not allowed")
    headers = {
        "Access-Control-Allow-Origin": granted,
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": request.headers.get(
            "Access-Control-Request-Headers", "authorization, content-type"
        ),
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        "Vary": "Origin",
    }
    return web.Response(status=204, headers=headers)


def add_cors_headers(
    request: web.Request, response: web.StreamResponse, origins: frozenset[str]
) -> None:
    granted = _grant(request, origins)
    if granted is not None:
        response.headers["Access-Control-Allow-Origin"] = granted
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers.add("Vary", "Origin")
