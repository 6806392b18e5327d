"""OpenAI ``GET /v1/models`` and ``GET /v1/models/{id}`` from the live 1min.ai catalog, and
the relay's routing aliases (``onemin/auto`` …), so that apps that pick a model from the list
can pick one of those too."""

from __future__ import annotations

from aiohttp import web

from onemin_relay.core.types import ModelInfo
from onemin_relay.gateway.routing_config import ALIASES
from onemin_relay.surfaces.anthropic import messages as anthropic
from onemin_relay.surfaces.common import PIPELINE, json_response


def render_model(model: ModelInfo, created: int) -> dict[str, object]:
    return {
        "id": model.id,
        "object": "model",
        "created": created,
        "owned_by": model.provider or "1min-ai",
        "name": model.name,
        "type": model.kind,
        "capabilities": {"vision": model.vision},
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
    }


def render_alias(alias: str, created: int) -> dict[str, object]:
    return {
        "id": alias,
        "object": "model",
        "created": created,
        "owned_by": "onemin-relay",
        "name": f"{alias} (the relay picks the model: see x-onemin-route)",
        "type": "chat",
    }


async def list_models(request: web.Request) -> web.Response:
    if "anthropic-version" in request.headers:  # an Anthropic SDK pointed at the root
        return await anthropic.list_models(request)
    models, created = await request.app[PIPELINE].models()
    data = [render_model(m, created) for m in models]
    data += [render_alias(alias, created) for alias in ALIASES if alias.startswith("onemin/")]
    return json_response({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.Response:
    wanted = request.match_info["model"]
    if wanted in ALIASES:
        _, created = await request.app[PIPELINE].models()
        return json_response(render_alias(wanted, created))
    model, created = await request.app[PIPELINE].model(wanted)
    return json_response(render_model(model, created))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    app.router.add_get("/models", list_models)
