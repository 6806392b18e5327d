"""The dashboard's routes under ``/dashboard``: login and logout, the guard every page sits
behind, and the stylesheet. Without ``ONEMIN_ADMIN_TOKEN`` none of it exists (404)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from onemin_relay.core.errors import NotFound
from onemin_relay.dashboard import conversations, keys, routing, views
from onemin_relay.dashboard.auth import (
    COOKIE,
    LOGIN_COOKIE,
    PATH,
    Auth,
    set_login_cookie,
    set_session_cookie,
)
from onemin_relay.dashboard.render import SESSION, STATIC, add_security_headers, page
from onemin_relay.surfaces.common import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AUTH = web.AppKey("dashboard_auth", Auth)
LOGIN: Final = f"{PATH}/login"
STATIC_TYPES: Final = {".css": "text/css", ".txt": "text/plain"}
YEAR: Final = 365 * 86_400


def add_routes(app: web.Application) -> None:
    """The dashboard, or (without an admin token) a 404 for every ``/dashboard`` path."""
    router = app.router
    if not app[SETTINGS].admin_token:
        router.add_route("*", PATH, dashboard_off)
        router.add_route("*", PATH + "/{tail:.*}", dashboard_off)
        return
    app[AUTH] = Auth(app[SETTINGS])
    app.on_response_prepare.append(add_security_headers)
    router.add_get(LOGIN, login_form)
    router.add_post(LOGIN, log_in)
    router.add_post(f"{PATH}/logout", guarded(log_out))
    router.add_get(PATH + "/static/{name}", static_file)
    router.add_get(PATH, guarded(views.overview))
    router.add_get(f"{PATH}/usage", guarded(views.usage))
    router.add_get(f"{PATH}/usage.csv", guarded(views.usage_csv))
    router.add_get(f"{PATH}/keys", guarded(keys.key_list))
    router.add_post(f"{PATH}/keys", guarded(keys.create))
    router.add_get(PATH + "/keys/{id}", guarded(keys.key_page))
    router.add_post(PATH + "/keys/{id}/revoke", guarded(keys.revoke))
    router.add_post(PATH + "/keys/{id}/topup", guarded(keys.top_up))
    router.add_post(PATH + "/keys/{id}/limits", guarded(keys.limits))
    router.add_get(f"{PATH}/conversations", guarded(conversations.conversation_list))
    router.add_get(PATH + "/conversations/{id}", guarded(conversations.conversation_page))
    router.add_get(PATH + "/requests/{id}", guarded(conversations.request_page))
    router.add_get(f"{PATH}/routing", guarded(routing.routing))
    router.add_route("*", PATH + "/{tail:.*}", guarded(not_found))


async def dashboard_off(request: web.Request) -> web.Response:
    raise NotFound("the dashboard is off (ONEMIN_ADMIN_TOKEN is not set)")


def guarded(handler: Handler) -> Handler:
    """``handler`` for a logged-in operator only (others are sent to the login form); a
    POST must also carry the session's CSRF token, else 403."""

    async def check(request: web.Request) -> web.StreamResponse:
        auth = request.app[AUTH]
        session = auth.session(request.cookies.get(COOKIE))
        if session is None:
            raise web.HTTPSeeOther(LOGIN)
        request[SESSION] = session
        if request.method == "POST":
            form = await request.post()
            if not auth.csrf_matches(session, str(form.get("csrf", ""))):
                return refused(request)
        return await handler(request)

    check.__name__ = handler.__name__
    return check


def refused(request: web.Request) -> web.Response:
    message = "This form has expired or did not come from the dashboard. Reload and try again."
    return page(request, "message.html", status=403, title="Refused", message=message)


async def not_found(request: web.Request) -> web.Response:
    return page(request, "message.html", status=404, title="Not found", message="No such page.")


async def login_form(request: web.Request, status: int = 200, error: str = "") -> web.Response:
    auth = request.app[AUTH]
    if auth.session(request.cookies.get(COOKIE)) is not None and request.method == "GET":
        raise web.HTTPSeeOther(PATH)
    allowed = auth.cookie_allowed(request)
    if not allowed:
        error = (
            "The dashboard is served over https only, except to this machine itself. "
            "Reach it over https, or through a trusted proxy (ONEMIN_TRUSTED_PROXIES) "
            "that sends X-Forwarded-Proto: https."
        )
    nonce = secrets.token_urlsafe(18)
    response = page(
        request,
        "login.html",
        status=status,
        title="Sign in",
        login_csrf=nonce,
        error=error,
        allowed=allowed,
    )
    set_login_cookie(response, nonce, auth.over_https(request))
    return response


async def log_in(request: web.Request) -> web.Response:
    """Check the token from the form body; a session cookie if it matches."""
    auth = request.app[AUTH]
    client = auth.client(request)
    wait = auth.limiter.retry_after(client)
    if wait:
        response = await login_form(request, 429, "Too many failed logins; wait a minute.")
        response.headers["Retry-After"] = str(wait)
        return response
    form = await request.post()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not secrets.compare_digest(str(form.get("csrf", "")), nonce):
        return refused(request)
    if not auth.cookie_allowed(request):
        return await login_form(request, 403)
    if not auth.token_matches(str(form.get("token", ""))):
        auth.limiter.failed(client)
        return await login_form(request, 401, "That is not the admin token.")
    _, cookie = auth.new_session()
    response = web.HTTPSeeOther(PATH)
    set_session_cookie(response, cookie, auth.over_https(request))
    response.del_cookie(LOGIN_COOKIE, path=PATH)
    raise response


async def log_out(request: web.Request) -> web.Response:
    request.app[AUTH].end(request[SESSION])
    response = web.HTTPSeeOther(LOGIN)
    response.del_cookie(COOKIE, path=PATH)
    raise response


async def static_file(request: web.Request) -> web.Response:
    """A file shipped in ``dashboard/static``, cached for a year (its URL names a version)."""
    name = request.match_info["name"]
    kind = next((t for ext, t in STATIC_TYPES.items() if name.endswith(ext)), None)
    source = STATIC / name
    if kind is None or "/" in name or name.startswith(".") or not source.is_file():
        raise web.HTTPSeeOther(LOGIN) if request.get(SESSION) is None else web.HTTPNotFound()
    return web.Response(
        body=source.read_bytes(),
        content_type=kind,
        charset="utf-8",
        headers={"Cache-Control": f"public, max-age={YEAR}, immutable"},
    )
