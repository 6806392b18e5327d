"""The admin API, ``/admin/v1``: issue, inspect, change, revoke and top up gateway keys,
read usage and the ledger, and read conversations and request traces (``admin/traces.py``).

It exists only when ``ONEMIN_ADMIN_TOKEN`` is set (every ``/admin`` path is a 404
otherwise) and answers only ``Authorization: Bearer <token>`` (401 for anything else).
A key's secret appears once, in the answer that creates it; the store keeps only its hash.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from onemin_relay.admin import operations as ops
from onemin_relay.admin import traces
from onemin_relay.admin.views import iso, key_object, ledger_object, listing, usage_object
from onemin_relay.core.errors import AuthenticationFailed, NotFound
from onemin_relay.gateway.storage import Store
from onemin_relay.surfaces.common import GATEWAY, SETTINGS, bearer_or_header, json_response

PREFIX = "/admin/v1"
Handler = Callable[[web.Request], Awaitable[web.Response]]
NO_STORE = {"Cache-Control": "no-store"}


def add_routes(app: web.Application) -> None:
    """The admin routes, or (without an admin token) a 404 for every ``/admin`` path."""
    if not app[SETTINGS].admin_token:
        app.router.add_route("*", "/admin", admin_off)
        app.router.add_route("*", "/admin/{tail:.*}", admin_off)
        return
    router = app.router
    router.add_post(f"{PREFIX}/keys", guarded(create_key))
    router.add_get(f"{PREFIX}/keys", guarded(list_keys))
    router.add_get(PREFIX + "/keys/{id}", guarded(show_key))
    router.add_patch(PREFIX + "/keys/{id}", guarded(change_key))
    router.add_delete(PREFIX + "/keys/{id}", guarded(revoke_key))
    router.add_post(PREFIX + "/keys/{id}/topups", guarded(top_up_key))
    router.add_get(f"{PREFIX}/usage", guarded(usage))
    router.add_get(f"{PREFIX}/ledger", guarded(ledger))
    traces.add_routes(router, PREFIX, guarded)
    # matched only after the routes above; keeps /admin paths out of the relay-key paths
    router.add_route("*", "/admin/{tail:.*}", guarded(no_such_endpoint))


async def admin_off(request: web.Request) -> web.Response:
    raise NotFound("the admin API is off (ONEMIN_ADMIN_TOKEN is not set)")


async def no_such_endpoint(request: web.Request) -> web.Response:
    raise NotFound(f"no admin endpoint {request.method} {request.path}")


def guarded(handler: Handler) -> Handler:
    """``handler`` behind the admin bearer token, compared in constant time."""

    async def check(request: web.Request) -> web.Response:
        token = request.app[SETTINGS].admin_token
        if not token:
            raise NotFound("the admin API is off (ONEMIN_ADMIN_TOKEN is not set)")
        presented = bearer_or_header(request) or ""
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise AuthenticationFailed(
                "missing or wrong admin token: send 'Authorization: Bearer <ONEMIN_ADMIN_TOKEN>'"
            )
        return await handler(request)

    check.__name__ = handler.__name__
    check.__doc__ = handler.__doc__
    return check


def _store(request: web.Request) -> Store:
    return request.app[GATEWAY].store


def _reply(payload: dict[str, Any], status: int = 200) -> web.Response:
    return json_response(payload, status=status, headers=NO_STORE)


async def create_key(request: web.Request) -> web.Response:
    """Issue a key; the answer holds its secret, which is never shown again."""
    body = ops.decoded(await request.read(), ops.NewKeyRequest)
    new = await ops.create_key(_store(request), body)
    return _reply({**key_object(new.record), "key": new.secret}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    records = await _store(request).keys()
    return _reply(listing([key_object(record) for record in records]))


async def show_key(request: web.Request) -> web.Response:
    record = await ops.find_key(_store(request), request.match_info["id"])
    return _reply(key_object(record))


async def change_key(request: web.Request) -> web.Response:
    changes = ops.decoded(await request.read(), ops.KeyChanges)
    record = await ops.change_key(_store(request), request.match_info["id"], changes)
    return _reply(key_object(record))


async def revoke_key(request: web.Request) -> web.Response:
    record = await ops.revoke_key(_store(request), request.match_info["id"])
    return _reply(key_object(record))


async def top_up_key(request: web.Request) -> web.Response:
    body = ops.decoded(await request.read(), ops.TopUpRequest)
    record = await ops.top_up_key(_store(request), request.match_info["id"], body)
    return _reply(key_object(record))


async def usage(request: web.Request) -> web.Response:
    query = request.query
    grouping = ops.group_by(query.get("group_by"))
    start = ops.since(query.get("since"))
    rows = await ops.usage(_store(request), grouping, start, query.get("key_id"))
    data = [usage_object(row) for row in rows]
    return _reply(listing(data, group_by=grouping, since=iso(start)))


async def ledger(request: web.Request) -> web.Response:
    limit = ops.ledger_limit(request.query.get("limit"))
    rows = await ops.ledger(_store(request), request.query.get("key_id"), limit)
    return _reply(listing([ledger_object(row) for row in rows]))
