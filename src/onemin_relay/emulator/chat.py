"""``POST /api/chat-with-ai[?isStreaming=true]`` and the answer both chat paths share."""

from __future__ import annotations

import time

import msgspec
from aiohttp import web

from onemin_relay.emulator.bodies import Invalid, convert, read_json
from onemin_relay.emulator.catalog import ModelEntry, usable_model
from onemin_relay.emulator.demo_replies import model_reply
from onemin_relay.emulator.faults import Faults
from onemin_relay.emulator.records import AiRecord, chat_record
from onemin_relay.emulator.replies import Seen, estimate_usage, reply_text, split_pieces
from onemin_relay.emulator.respond import envelope_for, error_response, json_response
from onemin_relay.emulator.state import CONFIG, FAULTS, STATE
from onemin_relay.emulator.stream import StreamBody, StreamWriter, run_stream

CHAT_FEATURE = "UNIFY_CHAT_WITH_AI"
DONE = {"message": "Stream completed"}


class _WebSearch(msgspec.Struct, rename="camel"):
    web_search: bool = False


class _Settings(msgspec.Struct, rename="camel"):
    web_search_settings: _WebSearch | None = None


class _Attachments(msgspec.Struct):
    images: list[str] = []
    files: list[str] = []


class _PromptObject(msgspec.Struct, rename="camel"):
    prompt: str
    conversation_id: str | None = None
    settings: _Settings | None = None
    attachments: _Attachments | None = None


class _ChatBody(msgspec.Struct, rename="camel"):
    """The fields the emulator reads; unknown keys (temperature, tools, …) are ignored."""

    model: str
    prompt_object: _PromptObject


class Ask(msgspec.Struct, frozen=True):
    """A chat request reduced to what shapes the answer, whichever API it came from."""

    prompt: str
    images: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    web_search: bool = False
    conversation_id: str | None = None


class Answer(msgspec.Struct, frozen=True):
    deltas: tuple[str, ...]  # content events in order, the empty first delta included
    record: AiRecord


def _crawl_lines(count: int) -> list[str]:
    return [f"🌐 Crawling site https://example.com/page-{n}\n" for n in range(1, count + 1)]


def answer(request: web.Request, ask: Ask, model: ModelEntry, feature: str) -> Answer:
    """Work out the reply, remember it in the conversation, and build the record."""
    state, faults = request.app[STATE], request[FAULTS]
    started = time.monotonic()
    conversation = state.conversations.get(ask.conversation_id or "")
    history = list(conversation.turns) if conversation else []
    seen = Seen(
        images=sum(map(state.is_image, ask.images)),
        files=sum(map(state.is_file, ask.files)),
        web_search=ask.web_search,
        history_turns=len(history),
    )
    scripted = state.faults.take_reply(request.headers["API-KEY"], model.model_id)
    if scripted is None and request.app[CONFIG].replies == "model":
        reply = model_reply(ask.prompt, model.model_id, seen)
    else:
        reply = reply_text(ask.prompt, seen, scripted)
    crawl = _crawl_lines(faults.crawl_lines)
    result = "".join(crawl) + reply
    if conversation:
        conversation.turns.append((ask.prompt, reply))
    context = "".join(f"{prompt}\n{said}\n" for prompt, said in history)
    usage = estimate_usage(ask.prompt, context, result, model.credit_metadata)
    record = chat_record(
        api_key=request.headers["API-KEY"],
        model=model,
        feature=feature,
        prompt=ask.prompt,
        result=result,
        usage=usage,
        conversation_id=ask.conversation_id,
        faults=faults,
        started=started,
    )
    if faults.record_failed:
        return Answer(deltas=("",), record=record)
    state.accounts.charge(request.headers["API-KEY"], usage.credit)
    after_crawl = [""] if crawl else []
    return Answer(deltas=("", *crawl, *after_crawl, *split_pieces(reply)), record=record)


def prompt_invalid(request: web.Request) -> Invalid:
    """Validation failures inside ``promptObject`` are 422s (§8); others plain 400s."""

    def respond(field: str, message: str) -> web.Response:
        if not field.startswith("promptObject"):
            return error_response(400, "INVALID_REQUEST", message)
        details = [{"field": field.removeprefix("promptObject."), "message": message}]
        return error_response(
            422,
            "PROMPT_OBJECT_VALIDATION_FAILED",
            "Invalid prompt object",
            envelope=envelope_for(request),
            details=details,
        )

    return respond


def is_streaming(request: web.Request) -> bool:
    return request.query.get("isStreaming", "").lower() == "true"


def unsupported_model(model_id: str) -> str:
    return f"Model {model_id} is not supported"


async def chat_with_ai(request: web.Request) -> web.StreamResponse:
    body = convert(await read_json(request), _ChatBody, prompt_invalid(request))
    prompt_object = body.prompt_object
    streaming = is_streaming(request)
    model = usable_model(CHAT_FEATURE, body.model)
    if model is None:
        message = unsupported_model(body.model)
        if streaming:
            return await run_stream(request, "text/event-stream", _error_only(message))
        return error_response(400, "UNSUPPORTED_MODEL", message)
    attachments = prompt_object.attachments or _Attachments()
    settings = prompt_object.settings or _Settings()
    ask = Ask(
        prompt=prompt_object.prompt,
        images=tuple(attachments.images),
        files=tuple(attachments.files),
        web_search=bool(settings.web_search_settings and settings.web_search_settings.web_search),
        conversation_id=prompt_object.conversation_id,
    )
    result = answer(request, ask, model, CHAT_FEATURE)
    if not streaming:
        return json_response({"aiRecord": result.record})
    faults = request[FAULTS]
    return await run_stream(
        request, "text/event-stream", lambda writer: _emit(writer, result, faults)
    )


def _error_only(message: str) -> StreamBody:
    async def body(writer: StreamWriter) -> bool:
        await writer.event("error", {"error": message})
        return True

    return body


async def _emit(writer: StreamWriter, result: Answer, faults: Faults) -> bool:
    """The SSE sequence: ``content``*, ``result``, ``done`` — bent by the stream knobs."""
    deltas = list(result.deltas)
    if faults.duplicate_final:
        deltas.append("".join(deltas))
    for sent, delta in enumerate(deltas):
        stop = await _interrupt(writer, faults, sent, at_end=False)
        if stop is not None:
            return stop
        await writer.event("content", {"content": delta})
    stop = await _interrupt(writer, faults, len(deltas), at_end=True)
    if stop is not None:
        return stop
    if not faults.no_result:
        await writer.event("result", {"aiRecord": result.record})
    if not faults.no_done:
        await writer.event("done", DONE)
    return True


async def _interrupt(
    writer: StreamWriter, faults: Faults, sent: int, *, at_end: bool
) -> bool | None:
    """Carry out the error/stall/reset knob due after ``sent`` content events, if any.

    A count beyond the number of content events fires after the last one. Returns whether
    the response should still be finished normally, or ``None`` when nothing was due.
    """

    def due(after: int | None) -> bool:
        return after is not None and (after == sent or (at_end and after > sent))

    if due(faults.error_after_chunks):
        await writer.event("error", {"error": faults.error_message})
        return True
    if due(faults.stall_after_chunks):
        await writer.stall()
        return False
    if due(faults.reset_after_chunks):
        writer.reset()
        return False
    return None
