"""One chat request through policy and upstream, whatever protocol it arrived in.

    handle → _prepare (model, prompt; gateway admit; attachments) → upstream call
           → usage → gateway settle

Surfaces call ``Pipeline.chat`` for a whole result or ``Pipeline.stream`` for events; both
return core types only. The gateway is asked twice per call: ``admit`` before anything is
sent upstream (attachments included), ``settle`` once the call has ended, however it ended.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import NoReturn

import msgspec

from onemin_relay.answers import Answer, Answerer, Plan, estimate_usage
from onemin_relay.attachments import Attachments
from onemin_relay.core.errors import (
    InvalidRequest,
    ModelNotFound,
    NotFound,
    UnsupportedModel,
)
from onemin_relay.core.ids import unique_id
from onemin_relay.core.prompt import FlatPrompt, flatten
from onemin_relay.core.structured import check_schema, instructions
from onemin_relay.core.tokens import estimate_input_tokens
from onemin_relay.core.tools import check_tools, render_tools
from onemin_relay.core.types import (
    Caller,
    ChatRequest,
    ChatResult,
    Finish,
    ModelInfo,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    ToolCallEvent,
    ToolSpec,
)
from onemin_relay.gateway.chat_billing import ChatBill, ChatBilling, Sent
from onemin_relay.gateway.keys import KeyRecord
from onemin_relay.gateway.metering import StreamMeter
from onemin_relay.gateway.policy import Gateway
from onemin_relay.gateway.routing import RoutePlan, Router, attempt_failed, first_events
from onemin_relay.gateway.routing_config import RouteBook
from onemin_relay.learning import Learning, answer_id
from onemin_relay.media import ImageFetcher
from onemin_relay.settings import Settings
from onemin_relay.upstream import RECORDS, ChatCall, ModelCatalog, OneMinClient

ONLINE_SUFFIX = ":online"


class ChatStream(msgspec.Struct):
    """An open stream: identity known up front, events to iterate (the last is a Finish)."""

    id: str
    model: str
    created: int
    events: AsyncIterator[StreamEvent]
    call: ChatCall  # what went upstream, for a local input-token estimate

    async def estimate_input_tokens(self) -> int:
        """Input tokens of the prompt actually sent, before 1min.ai reports its own count."""
        attachments = len(self.call.images) + len(self.call.files)
        return await estimate_input_tokens(self.call.prompt, self.call.model, attachments)


class Pipeline:
    def __init__(
        self,
        client: OneMinClient,
        catalog: ModelCatalog,
        fetcher: ImageFetcher,
        settings: Settings,
        gateway: Gateway,
        routes: RouteBook | None = None,
    ) -> None:
        self._client = client
        self._catalog = catalog
        self._attachments = Attachments(client, fetcher, settings)
        self._settings = settings
        self._gateway = gateway
        self._billing = ChatBilling(gateway, settings)
        self._answers = Answerer(client, settings)
        self.learning = Learning(client, self._answers, gateway, settings)
        self._router = Router(
            routes or RouteBook(),
            catalog.get,
            self.project_of,
            self.learning.tallies,
            max_attempts=settings.fallback_attempts,
            deadline=settings.fallback_deadline,
        )

    async def chat(self, request: ChatRequest, caller: Caller) -> ChatResult:
        route = await self._router.plan(request, caller)
        if route is None:
            answer = await self._answer(request, caller)
        else:
            answer = await self._router.run(
                route, lambda name, _: self._answer(request, caller, route, name)
            )
        return ChatResult(
            id=unique_id() if route is None else answer_id(caller),
            model=request.model if route is None else route.used,
            text=answer.text,
            finish_reason=answer.reason,
            usage=answer.usage,
            created=int(time.time()),
            tool_calls=answer.calls,
        )

    @asynccontextmanager
    async def stream(self, request: ChatRequest, caller: Caller) -> AsyncIterator[ChatStream]:
        """Stream a reply. A reply bound to a JSON format is validated (and repaired) before
        anything is sent, then streamed whole: a client never receives JSON that fails.
        With tools, text streams as it comes and possible calls are held (``answers.py``).
        With a fallback left, nothing is passed on before the first real event arrived."""
        route = await self._router.plan(request, caller)
        if route is None:
            opened = await self._open(request, caller)
        else:
            opened = await self._router.run(
                route, lambda name, more: self._open(request, caller, route, name, more)
            )
        try:
            async with opened.stack:
                yield opened.stream
        except BaseException as exc:
            _reraise(opened.bill.failed(exc, opened.meter.partial_usage()), exc)
        opened.bill.finished(opened.meter)
        self.learning.after_stream(route, opened.plan, opened.meter, opened.bill.grant.request_id)

    async def _answer(
        self,
        request: ChatRequest,
        caller: Caller,
        route: RoutePlan | None = None,
        model: str | None = None,
    ) -> Answer:
        plan, bill = await self._prepare(request, caller, route, model)
        try:
            answer = await self._answers.complete(plan)
        except BaseException as exc:
            attempt_failed(bill.failed(exc), exc, route)
        bill.settled(200, answer.usage, answer.text, answer.calls)
        if route is not None:
            self.learning.after(route, plan, answer, bill.grant.request_id)
        return answer

    async def _open(
        self,
        request: ChatRequest,
        caller: Caller,
        route: RoutePlan | None = None,
        model: str | None = None,
        more: bool = False,
    ) -> _Opened:
        plan, bill = await self._prepare(request, caller, route, model)
        meter = bill.meter(request)
        stack = AsyncExitStack()
        try:
            if plan.response_format is not None:
                answer = await self._answers.complete(plan)
                events = meter.watch(_replay(answer))
            else:
                opening = self._client.stream_chat(plan.call, plan.api_key)
                if more:  # a fallback is left: wait for the first real event to commit
                    wait = self._settings.first_byte_timeout
                    upstream = await first_events(stack, opening, wait)
                else:
                    upstream = await stack.enter_async_context(opening)
                call = plan.call
                events = meter.watch(upstream, lambda text: estimate_usage(call, text))
                if plan.tools:
                    events = meter.outcome(self._answers.stream(plan, events))
        except BaseException as exc:
            await stack.aclose()
            attempt_failed(bill.failed(exc, meter.partial_usage()), exc, route)
        shown = request.model if route is None else plan.call.model
        stream_id = unique_id() if route is None else answer_id(caller)
        stream = ChatStream(stream_id, shown, int(time.time()), events, plan.call)
        return _Opened(stream, bill, meter, stack, plan)

    @property
    def catalog(self) -> ModelCatalog:
        """The cached model catalog (the dashboard's routing page resolves routes with it)."""
        return self._catalog

    async def models(self) -> tuple[list[ModelInfo], int]:
        """Every usable model and when the list was fetched (epoch seconds)."""
        catalog = await self._catalog.get()
        return catalog.models, int(catalog.fetched_at)

    async def model(self, model_id: str) -> tuple[ModelInfo, int]:
        """One catalog entry by its exact id, and when the catalog was fetched."""
        catalog = await self._catalog.get()
        info = catalog.get(model_id)
        if info is None:
            raise ModelNotFound(f"the model {model_id!r} does not exist", param="model")
        return info, int(catalog.fetched_at)

    async def project_of(self, caller: Caller) -> str | None:
        """The project an alias is routed for: the gateway key's (BYOK: the default)."""
        _, key, _ = await self._gateway.identify(caller)
        return key.project if key is not None else None

    async def identify(self, caller: Caller) -> None:
        """Check the caller's credentials (401 if wrong) without admitting a call."""
        await self._gateway.identify(caller)

    async def key_state(self, caller: Caller) -> KeyRecord:
        """The caller's own gateway key as stored now; 404 for a plain 1min.ai key."""
        _, key, _ = await self._gateway.identify(caller)
        if key is None:
            raise NotFound("this is a 1min.ai key, not a relay or managed key of this relay")
        return key

    async def count_tokens(self, request: ChatRequest, caller: Caller) -> int:
        """Input tokens the request would cost, without uploading or calling anything."""
        await self._gateway.identify(caller)
        route = await self._router.plan(request, caller)  # an alias counts as its choice
        name, _ = split_online_suffix(route.models[0] if route is not None else request.model)
        info = await self._model_info(name)
        model = info.id if info is not None else name
        flat = flatten(request.messages)
        prompt, _, _ = _prompt(request, flat)  # what _prepare would send, contracts included
        return await estimate_input_tokens(prompt, model, len(flat.images) + len(flat.files))

    # -- preparation -----------------------------------------------------------------

    async def _prepare(
        self,
        request: ChatRequest,
        caller: Caller,
        route: RoutePlan | None = None,
        routed_model: str | None = None,
    ) -> tuple[Plan, ChatBill]:
        name, web_search = split_online_suffix(routed_model or request.model)
        flat = flatten(request.messages)
        if not flat.text.strip() and not flat.images and not flat.files:
            raise InvalidRequest("the conversation has no content", param="messages")
        try:
            info = await self._model_info(name)
        except ModelNotFound as exc:
            attempt_failed(exc, exc, route)
        model = info.id if info is not None else name
        if flat.images and info is not None and not info.vision:
            raise UnsupportedModel(f"model {model!r} does not accept images", param="model")
        prompt, fmt, tools = _prompt(request, flat)
        attachments = len(flat.images) + len(flat.files)
        sent = Sent(model, info, prompt, attachments, bool(tools), fmt is not None)
        bill = await self._billing.admit(caller, request, sent)
        if bill.grant.notes is not None:
            RECORDS.set(bill.grant.notes.records)  # the trace learns 1min.ai's record ids
        if route is not None:
            bill.grant.route = route.chose(model)
        try:
            images, files = await self._attachments.send(flat, bill.api_key)
        except BaseException as exc:
            _reraise(bill.failed(exc), exc)
        call = ChatCall(
            model=model,
            prompt=prompt,
            images=images,
            files=files,
            web_search=web_search or request.web_search,
        )
        plan = Plan(
            call=call,
            api_key=bill.api_key,
            response_format=fmt,
            tools=tools,
            tool_choice=request.tool_choice,
            parallel_tool_calls=request.parallel_tool_calls,
            history=request.messages,
        )
        return plan, bill

    async def _model_info(self, model: str) -> ModelInfo | None:
        """The catalog entry for a chat model; None when the catalog cannot be read."""
        return await self._catalog.checked(model, "chat")


def split_online_suffix(model: str) -> tuple[str, bool]:
    """``gpt-4o:online`` → (``gpt-4o``, web search on). Other ``:`` suffixes are model ids."""
    if model.endswith(ONLINE_SUFFIX):
        return model[: -len(ONLINE_SUFFIX)], True
    return model, False


def _prompt(
    request: ChatRequest, flat: FlatPrompt
) -> tuple[str, ResponseFormat | None, tuple[ToolSpec, ...]]:
    """The one prompt 1min.ai gets: the conversation, then the tool contract and the JSON
    instructions the relay adds; with the format and tools they hold the answer to."""
    fmt = request.response_format
    if fmt is not None and fmt.kind == "text":
        fmt = None
    if fmt is not None:
        check_schema(fmt)
    tools = _offered_tools(request)
    contract = render_tools(tools, request.tool_choice, request.parallel_tool_calls)
    extras = [text for text in (contract, instructions(fmt) if fmt else "") if text]
    prompt = "\n\n".join([flat.text, *extras]) if flat.text else "\n\n".join(extras)
    return prompt, fmt, tools


def _offered_tools(request: ChatRequest) -> tuple[ToolSpec, ...]:
    """The tools the model may call (checked before anything is billed): none when the
    client said ``tool_choice: none``."""
    choice = request.tool_choice
    if request.tools or choice is not None:
        check_tools(request.tools, choice)
    if choice is not None and choice.mode == "none":
        return ()
    return request.tools


class _Opened(msgspec.Struct):
    """A stream that has started well: what to hand the surface and how to settle it."""

    stream: ChatStream
    bill: ChatBill
    meter: StreamMeter
    stack: AsyncExitStack
    plan: Plan


def _reraise(seen: BaseException, exc: BaseException) -> NoReturn:
    """Raise what the client should see in place of ``exc`` (``exc`` itself, usually)."""
    if seen is exc:
        raise exc
    raise seen from exc


async def _replay(answer: Answer) -> AsyncIterator[StreamEvent]:
    if answer.text:
        yield TextDelta(answer.text)
    for index, call in enumerate(answer.calls):
        yield ToolCallEvent(index, call)
    yield Finish(answer.reason, answer.usage)
