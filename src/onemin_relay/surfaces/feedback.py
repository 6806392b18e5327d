"""``POST /v1/feedback``: an application says what its users thought of a routed answer.

``{"request_id" | "response_id": "…", "score": <number>, "comment": "…"}``: the request's
``x-request-id``, or the answer's ``id`` (``chatcmpl-…``, ``msg_…``, Gemini's
``responseId``); a positive score means the answer was good, a negative one that it was
bad. A label on an answer a cheaper candidate gave becomes evidence for or against that
candidate, weighing more than a judge's verdict (``route_policy.LABEL_WEIGHT``). Only the
project that asked may label its answers, each once. The comment is accepted for the client's
sake and not kept.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.surfaces.common import PIPELINE, caller_from, json_response, read_body

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class _FeedbackBody(msgspec.Struct, forbid_unknown_fields=True):
    score: Annotated[float, msgspec.Meta(ge=-1e6, le=1e6)]
    request_id: Id | None = None
    response_id: Id | None = None
    comment: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None


_decoder = msgspec.json.Decoder(_FeedbackBody)


async def feedback(request: web.Request) -> web.Response:
    body = await read_body(request, _decoder)
    given = body.request_id or body.response_id
    if given is None:
        raise InvalidRequest("name the answer: request_id or response_id", param="request_id")
    pipeline = request.app[PIPELINE]
    caller = caller_from(request, "x-api-key")
    project = await pipeline.project_of(caller)
    result = await pipeline.learning.feedback(project, given, body.score)
    return json_response({"object": "feedback", **msgspec.to_builtins(result)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/feedback", feedback)
