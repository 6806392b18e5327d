"""``GET /v1/key``: a gateway key's holder reads its own state (balance, holds, limits)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from onemin_relay.gateway.keys import KeyRecord, nanos_to_usd
from onemin_relay.surfaces.common import PIPELINE, caller_from, json_response


def render_key(key: KeyRecord) -> dict[str, Any]:
    return {
        "object": "key",
        "id": key.id,
        "name": key.name,
        "kind": key.kind,
        "prefix": key.prefix,
        "project": key.project,
        "balance_usd": nanos_to_usd(key.balance),
        "reserved_usd": nanos_to_usd(key.reserved),
        "spent_usd": nanos_to_usd(key.spent),
        "available_usd": nanos_to_usd(key.available),
        "models": list(key.models),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "expires_at": _iso(key.expires_at),
        "created_at": _iso(key.created_at),
    }


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


async def key_state(request: web.Request) -> web.Response:
    key = await request.app[PIPELINE].key_state(caller_from(request, "x-api-key"))
    return json_response(render_key(key))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/key", key_state)
