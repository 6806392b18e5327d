"""OpenAI ``GET /v1/models`` and ``GET /v1/models/{id}`` from the live 1min.ai catalog."""

from __future__ import annotations

from aiohttp import web

from onemin_relay.core.types import ModelInfo
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


async def list_models(request: web.Request) -> web.Response:
    if "anthropic-version" in request.headers:  # an Anthropic SDK pointed at the root
        return await anthropic.list_models(request)
    models, created = await request.app[PIPELINE].models()
    return json_response({"object": "list", "data": [render_model(m, created) for m in models]})


async def get_model(request: web.Request) -> web.Response:
    model, created = await request.app[PIPELINE].model(request.match_info["model"])
    return json_response(render_model(model, created))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    app.router.add_get("/models", list_models)
