"""OpenAI ``POST /v1/embeddings``: a clear refusal, since 1min.ai offers no embeddings model.

Without it the path answers a bare "no such endpoint"; a LiteLLM or LangChain user pointing
an embeddings client at the relay should see at once that the service has none to give.
"""

from __future__ import annotations

from aiohttp import web

from onemin_relay.core.errors import NotFound


class EmbeddingsNotSupported(NotFound):
    code = "embeddings_not_supported"


MESSAGE = (
    "1min.ai offers no embeddings model, so this relay cannot serve /v1/embeddings; "
    "use an embeddings provider directly"
)


async def embeddings(request: web.Request) -> web.Response:
    raise EmbeddingsNotSupported(MESSAGE, param="model")


def add_routes(app: web.Application) -> None:
    for prefix in ("/v1", ""):  # as for chat: clients whose base URL lacks /v1
        app.router.add_post(f"{prefix}/embeddings", embeddings)
