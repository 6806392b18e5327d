"""Test controls under ``/_emulator/`` — never part of the 1min.ai API.

* ``PUT /_emulator/faults/{api_key}`` — replace that key's fault knobs (JSON ``Faults``;
  key ``*`` covers every key without its own); answers the stored knobs.
* ``DELETE /_emulator/faults/{api_key}`` — back to healthy (or to the ``*`` knobs).
* ``PUT /_emulator/account/{api_key}`` — JSON ``{"credit_limit": <int or null>}`` sets the
  key's credit limit (``null``: unlimited, the default) and keeps what it has used; answers
  ``{"credit_limit": …, "used_credit": …}``. Billing and the 402 are in ``billing``.
* ``GET /_emulator/account/{api_key}`` — that key's ``{"credit_limit", "used_credit"}``.
* ``DELETE /_emulator/account/{api_key}`` — back to unlimited with nothing used.
* ``GET /_emulator/requests[?api_key=K]`` — recorded requests, oldest first.
* ``DELETE /_emulator/requests`` — forget them.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from onemin_relay.emulator.billing import parse_limit
from onemin_relay.emulator.faults import parse_faults
from onemin_relay.emulator.respond import json_response
from onemin_relay.emulator.state import STATE

CONTROL_PREFIX = "/_emulator/"


async def put_faults(request: web.Request) -> web.Response:
    try:
        faults = parse_faults(await request.read())
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return json_response({"error": str(exc)}, status=400)
    request.app[STATE].faults.put(request.match_info["api_key"], faults)
    return json_response(faults)


async def delete_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.delete(request.match_info["api_key"])
    return web.Response(status=204)


async def put_account(request: web.Request) -> web.Response:
    try:
        limit = parse_limit(await request.read())
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return json_response({"error": str(exc)}, status=400)
    accounts = request.app[STATE].accounts
    return json_response(accounts.set_limit(request.match_info["api_key"], limit.credit_limit))


async def get_account(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].accounts.get(request.match_info["api_key"]))


async def delete_account(request: web.Request) -> web.Response:
    request.app[STATE].accounts.reset(request.match_info["api_key"])
    return web.Response(status=204)


async def list_requests(request: web.Request) -> web.Response:
    api_key = request.query.get("api_key")
    recorded = request.app[STATE].requests
    return json_response([r for r in recorded if api_key is None or r.api_key == api_key])


async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].requests.clear()
    return web.Response(status=204)


def add_control_routes(app: web.Application) -> None:
    app.router.add_put(CONTROL_PREFIX + "faults/{api_key}", put_faults)
    app.router.add_delete(CONTROL_PREFIX + "faults/{api_key}", delete_faults)
    app.router.add_put(CONTROL_PREFIX + "account/{api_key}", put_account)
    app.router.add_get(CONTROL_PREFIX + "account/{api_key}", get_account)
    app.router.add_delete(CONTROL_PREFIX + "account/{api_key}", delete_account)
    app.router.add_get(CONTROL_PREFIX + "requests", list_requests)
    app.router.add_delete(CONTROL_PREFIX + "requests", clear_requests)
