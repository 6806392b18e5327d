"""OpenAI Responses: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``.

Requests are parsed in :mod:`.responses_parse`; this module renders response objects
and stream events and runs the handlers. Decisions on what 1min.ai lacks:

* ``reasoning.effort`` / ``reasoning_effort`` are validated and echoed in ``reasoning`` and
  have no effect: 1min.ai has no reasoning knob (``reasoning_tokens`` is always 0).
  ``max_output_tokens`` is echoed and not enforced, for the same reason; ``temperature``,
  ``top_p`` and the like are ignored.
* ``text.format`` (or the older top-level ``response_format``) ``json_object`` /
  ``json_schema`` answers are validated, and repaired, by the pipeline before anything is
  sent. A stream of such an answer therefore starts only once the whole answer is known
  (time to first byte is the whole reply) and carries it as one delta; an answer that never
  validates is a 502 before the stream starts, never a stream of invalid JSON.
* ``store`` (default true) keeps the response for ``GET``, ``DELETE`` and
  ``previous_response_id`` in the app's response store (:mod:`onemin_relay.gateway.response_store`),
  scoped to the caller's key. A follow-up gets the earlier conversation (its input and the
  assistant's answer, not its ``instructions``, as OpenAI documents) before its own input.
  An unknown, expired, unstored or another caller's id is a 400 on ``previous_response_id``
  (code ``previous_response_not_found``, as OpenAI answers) and a 404 on ``GET`` /
  ``DELETE``. Failed streams are stored too, so ``GET`` reports the failure.

A stream is the event sequence the official SDK accumulates into its final ``Response``::

    response.created, response.in_progress, response.output_item.added,
    response.content_part.added, response.output_text.delta…, response.output_text.done,
    response.content_part.done, response.output_item.done,
    response.completed (response.incomplete when the model stopped at its length limit)

each with ``sequence_number`` counting from 0. If the upstream fails after the headers, the
stream ends with ``response.failed`` (the error in ``response.error``, the partial text as an
``incomplete`` message) and then an ``error`` event; never with ``response.completed``. The
``error`` event carries its fields both flat (as the API reference documents) and nested under
``error`` (as the live API sends them), so the SDK raises ``APIError`` instead of yielding an
event a client might ignore.
"""

from __future__ import annotations

import msgspec
import orjson
from aiohttp import web

from onemin_relay.core.errors import InvalidRequest, NotFound
from onemin_relay.core.types import (
    Caller,
    Message,
    TextPart,
    ToolCall,
)
from onemin_relay.gateway.response_store import ResponseStore, StoredResponse, owner_of
from onemin_relay.surfaces.common import (
    PIPELINE,
    RESPONSE_STORE,
    SETTINGS,
    caller_from,
    json_response,
    read_json,
    write_stream,
)
from onemin_relay.surfaces.openai.errors import render_error_frame
from onemin_relay.surfaces.openai.responses_objects import render_result
from onemin_relay.surfaces.openai.responses_parse import (
    ResponsesCall,
    decode_body,
    parse_request,
)
from onemin_relay.surfaces.openai.responses_stream import render_events

# -- handlers -----------------------------------------------------------------------------


class PreviousResponseNotFound(InvalidRequest):
    code = "previous_response_not_found"


class _Thread(msgspec.Struct, array_like=True, frozen=True):
    """What a stored response keeps for a follow-up: the conversation so far, and the id of
    the trace conversation it belongs to (a follow-up joins it)."""

    messages: tuple[Message, ...] = ()
    conversation_id: str | None = None


_conversation_encoder = msgspec.msgpack.Encoder()
_conversation_decoder = msgspec.msgpack.Decoder(_Thread)


async def create_response(request: web.Request) -> web.StreamResponse:
    body = decode_body(await read_json(request))
    caller = caller_from(request, "x-api-key")
    await request.app[PIPELINE].identify(caller)
    store = request.app[RESPONSE_STORE]
    owner = owner_of(caller.api_key)
    thread = await _history(store, body.previous_response_id, owner)
    call = _continuing(parse_request(body, thread.messages), thread, caller)

    async def remember(response: bytes, text: str, calls: tuple[ToolCall, ...]) -> None:
        if call.shell.store:
            await _remember(store, owner, call, response, text, calls)

    pipeline = request.app[PIPELINE]
    if not body.stream:
        result = await pipeline.chat(call.chat, caller)
        shell = msgspec.structs.replace(call.shell, model=result.model)  # the model used
        response = orjson.dumps(render_result(shell, result))
        await remember(response, result.text, result.tool_calls)
        return web.Response(body=response, content_type="application/json")
    async with pipeline.stream(call.chat, caller) as stream:
        shell = msgspec.structs.replace(call.shell, model=stream.model)
        frames = render_events(stream, shell, remember)
        timeout = request.app[SETTINGS].write_timeout
        return await write_stream(request, frames, render_error_frame, timeout)


def _continuing(call: ResponsesCall, thread: _Thread, caller: Caller) -> ResponsesCall:
    """The call in its trace conversation: the one the client names (header, then
    metadata), else the previous response's, else a new one named after this request."""
    named = caller.conversation_id or call.chat.conversation_id or thread.conversation_id
    chat = msgspec.structs.replace(call.chat, conversation_id=named or caller.request_id)
    return msgspec.structs.replace(call, chat=chat)


async def _history(store: ResponseStore, response_id: str | None, owner: str) -> _Thread:
    if response_id is None:
        return _Thread()
    entry = await store.get(response_id, owner)
    if entry is None:
        raise PreviousResponseNotFound(
            f"Previous response with id {response_id[:100]!r} not found.",
            param="previous_response_id",
        )
    return _conversation_decoder.decode(entry.conversation)


async def _remember(
    store: ResponseStore,
    owner: str,
    call: ResponsesCall,
    response: bytes,
    text: str,
    calls: tuple[ToolCall, ...],
) -> None:
    parts = (TextPart(text),) if text else ()
    answer = (Message("assistant", parts, tool_calls=calls),) if text or calls else ()
    thread = _Thread(call.conversation + answer, call.chat.conversation_id)
    conversation = _conversation_encoder.encode(thread)
    await store.put(StoredResponse(call.shell.id, owner, response, conversation))


async def _stored(request: web.Request) -> tuple[ResponseStore, str, str]:
    """The store, the caller's owner id and the response id named in the path."""
    caller = caller_from(request, "x-api-key")
    await request.app[PIPELINE].identify(caller)
    return request.app[RESPONSE_STORE], owner_of(caller.api_key), request.match_info["id"]


async def retrieve_response(request: web.Request) -> web.Response:
    if request.query.get("stream", "").lower() in ("true", "1"):
        raise InvalidRequest("streaming a stored response is not supported", param="stream")
    store, owner, response_id = await _stored(request)
    entry = await store.get(response_id, owner)
    if entry is None:
        raise _not_found(response_id)
    return web.Response(body=entry.response, content_type="application/json")


async def delete_response(request: web.Request) -> web.Response:
    store, owner, response_id = await _stored(request)
    if not await store.delete(response_id, owner):
        raise _not_found(response_id)
    return json_response({"id": response_id, "object": "response", "deleted": True})


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id {response_id[:100]!r} not found.")


def add_routes(app: web.Application) -> None:
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/responses", create_response)
        app.router.add_get(f"{prefix}/responses/{{id}}", retrieve_response)
        app.router.add_delete(f"{prefix}/responses/{{id}}", delete_response)
