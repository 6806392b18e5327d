"""OpenAI ``/v1/images/generations``, ``/v1/images/variations`` and ``/v1/images/edits``.

How each model's parameters are mapped is in ``features.py``. Defaults when the client names
no model: ``gpt-image-1-mini`` for generations (cheap, and the model 1min.ai relays that probed
the live service default to), ``dall-e-2`` for variations (OpenAI's variation model).

``/v1/images/edits`` answers 404: 1min.ai lists an ``IMAGE_EDITOR`` feature, but its request
shape is documented nowhere we could read (API doc §3.8 has only the name), and guessing it
would spend credits on calls that fail. Nothing is sent upstream.

1min.ai returns no revised prompt, so ``revised_prompt`` is never set.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from onemin_relay.core.errors import InvalidRequest, NotFound
from onemin_relay.core.media_types import (
    ImageRequest,
    ImageResponseFormat,
    ImageResult,
    VariationRequest,
)
from onemin_relay.surfaces.common import (
    FEATURES,
    SETTINGS,
    caller_from,
    convert,
    json_response,
    read_body,
)
from onemin_relay.surfaces.openai.audio import Form, read_form

DEFAULT_MODEL = "gpt-image-1-mini"
DEFAULT_VARIATION_MODEL = "dall-e-2"

_Quality = Literal["low", "medium", "high", "xhigh", "max", "auto", "standard", "hd"]


class _GenerateBody(msgspec.Struct):
    prompt: str
    model: str | None = None
    n: int | None = None
    size: str | None = None
    quality: _Quality | None = None
    style: Literal["vivid", "natural"] | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    output_format: str | None = None
    output_compression: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    response_format: Literal["url", "b64_json"] | None = None
    stream: bool | None = None


_decoder = msgspec.json.Decoder(_GenerateBody)


def parse_request(body: _GenerateBody) -> ImageRequest:
    if not body.prompt.strip():
        raise InvalidRequest("'prompt' must not be empty", param="prompt")
    if body.stream:
        raise InvalidRequest("streamed image generation is not supported", param="stream")
    return ImageRequest(
        model=(body.model or DEFAULT_MODEL).strip(),
        prompt=body.prompt,
        n=1 if body.n is None else body.n,
        size=body.size,
        quality=body.quality,
        style=body.style,
        background=body.background,
        output_format=body.output_format,
        output_compression=body.output_compression,
        response_format=body.response_format,
    )


def parse_object(data: Any) -> ImageRequest:
    """A request body already decoded from JSON (LiteLLM's arguments, for one)."""
    return parse_request(convert(data, _GenerateBody))


def render_result(result: ImageResult) -> dict[str, object]:
    data = [
        {"url": image.url} if image.url is not None else {"b64_json": image.b64_json}
        for image in result.images
    ]
    return {"created": result.created, "data": data}


async def generations(request: web.Request) -> web.Response:
    image_request = parse_request(await read_body(request, _decoder))
    features = request.app[FEATURES]
    result = await features.generate_images(image_request, caller_from(request, "x-api-key"))
    return json_response(render_result(result))


async def variations(request: web.Request) -> web.Response:
    limit = request.app[SETTINGS].image_fetch_max_bytes
    form = await read_form(request, {"image": limit})
    upload = form.files.get("image")
    if upload is None:
        raise InvalidRequest("'image' is required: the image to vary", param="image")
    n = form.integer("n")
    variation = VariationRequest(
        model=(form.text("model") or DEFAULT_VARIATION_MODEL).strip(),
        image=upload.data,
        filename=upload.filename,
        n=1 if n is None else n,
        size=form.text("size"),
        response_format=_response_format(form),
    )
    result = await request.app[FEATURES].vary_image(variation, caller_from(request, "x-api-key"))
    return json_response(render_result(result))


def _response_format(form: Form) -> ImageResponseFormat | None:
    match form.text("response_format"):
        case None:
            return None
        case "url":
            return "url"
        case "b64_json":
            return "b64_json"
    raise InvalidRequest("'response_format' must be url or b64_json", param="response_format")


async def edits(request: web.Request) -> web.Response:
    raise NotFound(
        "image edits are not available: 1min.ai's IMAGE_EDITOR request shape is undocumented; "
        "use /v1/images/generations or /v1/images/variations"
    )


def add_routes(app: web.Application) -> None:
    for prefix in ("/v1", ""):  # as for chat: clients whose base URL lacks /v1
        app.router.add_post(f"{prefix}/images/generations", generations)
        app.router.add_post(f"{prefix}/images/variations", variations)
        app.router.add_post(f"{prefix}/images/edits", edits)
