"""Pages from Jinja2 templates, autoescaped everywhere, with the dashboard's security headers.

Templates and the stylesheet ship inside the package; the stylesheet's URL carries a hash of
its content, so it can be cached for a year and still change with a release.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from typing import Any, Final
from urllib.parse import quote

import jinja2
from aiohttp import web

from onemin_relay.admin.views import format_usd, iso, usd
from onemin_relay.dashboard.auth import PATH, Session

STATIC: Final = resources.files("onemin_relay.dashboard") / "static"
SESSION = web.RequestKey("dashboard_session", Session)
NAV: Final = (
    (PATH, "Overview"),
    (f"{PATH}/keys", "Keys"),
    (f"{PATH}/usage", "Usage"),
    (f"{PATH}/conversations", "Conversations"),
    (f"{PATH}/routing", "Routing"),
)

# No script runs on these pages at all; styles come only from our own stylesheet.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("onemin_relay.dashboard", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = format_usd
    env.filters["nanousd"] = lambda nanos: format_usd(usd(nanos))
    env.filters["when"] = lambda epoch: (iso(epoch) or "").replace("T", " ").rstrip("Z")
    env.filters["count"] = lambda number: f"{number:,}"
    env.filters["pretty"] = pretty
    env.filters["segment"] = lambda text: quote(str(text), safe="")  # one URL path segment
    env.globals["nav"] = NAV
    env.globals["stylesheet"] = f"{PATH}/static/dashboard.css?v={static_version()}"
    return env


def pretty(text: str) -> str:
    """A body for reading: JSON indented, anything else as it is."""
    if not text.lstrip().startswith(("{", "[")):
        return text
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text  # a capped body is cut mid-JSON


@functools.cache
def static_version() -> str:
    return hashlib.sha256((STATIC / "dashboard.css").read_bytes()).hexdigest()[:12]


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """``template`` rendered for the logged-in operator (its forms get the CSRF token)."""
    session = request.get(SESSION)
    html = (
        environment()
        .get_template(template)
        .render(csrf=session.csrf if session else "", path=request.path, **context)
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer under ``/dashboard`` (pages, redirects, errors, static files) gets them."""
    if request.path == PATH or request.path.startswith(PATH + "/"):
        response.headers.update(SECURITY_HEADERS)
