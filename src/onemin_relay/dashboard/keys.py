"""The keys pages: list and create (the new key is shown once), and per key its state,
recent calls, top-up, limits and revocation. Forms go through the same validation as the
admin API (``admin/operations.py``); a mistake is shown on the page with a 400."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, Final

from aiohttp import web
from multidict import MultiDictProxy

from onemin_relay.admin import operations as ops
from onemin_relay.admin.views import key_status
from onemin_relay.core.errors import InvalidRequest, NotFound, RelayError
from onemin_relay.dashboard.auth import PATH
from onemin_relay.dashboard.render import page
from onemin_relay.dashboard.views import store_of

RECENT_CALLS: Final = 20
DONE: Final = {  # ?done=… after a successful form: a fixed message, never echoed input
    "topup": "Balance topped up.",
    "limits": "Limits saved.",
    "revoked": "Key revoked: calls with it are refused from now on.",
}
Form = MultiDictProxy[Any]


def _text(form: Form, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _number(form: Form, name: str, kind: type[float] | type[int]) -> float | int | None:
    text = _text(form, name)
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise InvalidRequest(f"'{name}' must be {what}", param=name) from None


def _models(form: Form) -> list[str]:
    return [glob for glob in _text(form, "models").replace(",", " ").split() if glob]


def new_key_fields(form: Form) -> dict[str, Any]:
    """The create form as the admin API's ``NewKeyRequest`` fields (blanks left out)."""
    fields: dict[str, Any] = {
        "name": _text(form, "name"),
        "kind": _text(form, "kind") or "managed",
        "models": _models(form),
        "balance_usd": _number(form, "balance_usd", float),
        "rpm": _number(form, "rpm", int),
        "tpm": _number(form, "tpm", int),
        "expires_at": _text(form, "expires_at") or None,
        "project": _text(form, "project") or None,
    }
    return {name: value for name, value in fields.items() if value is not None}


async def key_list(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    records = sorted(await store_of(request).keys(), key=lambda r: r.created_at, reverse=True)
    now = time.time()
    rows = [(record, key_status(record, now)) for record in records]
    context: dict[str, Any] = {"created": None, "error": "", "form": {}, **extra}
    return page(request, "keys.html", status=status, title="Keys", rows=rows, **context)


async def create(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        fields = new_key_fields(form)
        new = await ops.create_key(store_of(request), ops.typed(fields, ops.NewKeyRequest))
    except InvalidRequest as exc:
        kept = {name: _text(form, name) for name in ("name", "kind", "models", "project")}
        return await key_list(request, 400, error=exc.message, form=kept)
    return await key_list(request, 201, created=(new.record, new.secret))


async def key_page(request: web.Request, status: int = 200, error: str = "") -> web.Response:
    store = store_of(request)
    try:
        record = await ops.find_key(store, request.match_info["id"])
    except NotFound:
        return page(request, "message.html", status=404, title="Not found",
                    message="There is no such key.")  # fmt: skip
    calls = await store.ledger(record.id, RECENT_CALLS)
    done = DONE.get(request.query.get("done", ""), "")
    return page(
        request, "key.html", status=status, title=record.name, key=record,
        status_text=key_status(record), calls=calls, error=error, done=done,
    )  # fmt: skip


async def _after(request: web.Request, change: Awaitable[object], done: str) -> web.Response:
    """Run ``change``; back to the key's page with a note, or the page with the error."""
    try:
        await change
    except RelayError as exc:
        return await key_page(request, 404 if isinstance(exc, NotFound) else 400, exc.message)
    raise web.HTTPSeeOther(f"{PATH}/keys/{request.match_info['id']}?done={done}")


async def revoke(request: web.Request) -> web.Response:
    key_id = request.match_info["id"]
    return await _after(request, ops.revoke_key(store_of(request), key_id), "revoked")


async def top_up(request: web.Request) -> web.Response:
    form = await request.post()

    async def apply() -> None:
        amount = _number(form, "amount_usd", float)
        body = ops.typed({"amount_usd": amount}, ops.TopUpRequest)
        await ops.top_up_key(store_of(request), request.match_info["id"], body)

    return await _after(request, apply(), "topup")


async def limits(request: web.Request) -> web.Response:
    form = await request.post()

    async def apply() -> None:
        changes = {
            "rpm": _number(form, "rpm", int),
            "tpm": _number(form, "tpm", int),
            "models": _models(form),
        }
        body = ops.typed(changes, ops.KeyChanges)
        await ops.change_key(store_of(request), request.match_info["id"], body)

    return await _after(request, apply(), "limits")
