"""From 1min.ai's reply to the client's answer: tool calls and JSON formats, with repairs.

1min.ai has neither tools nor response formats, so the pipeline asks in words (the tool
contract and the JSON instructions are in the prompt) and this module holds the model to
it: tool calls are parsed out of the reply, JSON is extracted and validated, and a reply
that clearly tried and failed gets a bounded number of repair calls that show the model its
errors. Every call is billed by 1min.ai, so the usage reported covers all of them.

When retries run out the client gets a clean error (``ToolCallFailed`` or
``StructuredOutputFailed``, 502), never a malformed call or invalid JSON passed off as a
success.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import msgspec

from onemin_relay.core.errors import StructuredOutputFailed, ToolCallFailed, ToolLoopDetected
from onemin_relay.core.structured import StructuredOutputError, parse_reply
from onemin_relay.core.structured import repair_prompt as json_repair_prompt
from onemin_relay.core.tokens import count_tokens_async
from onemin_relay.core.tools import (
    ParsedReply,
    ToolCallError,
    ToolStreamSplitter,
    repeated_call,
)
from onemin_relay.core.tools import parse_reply as parse_tool_reply
from onemin_relay.core.tools import repair_prompt as tool_repair_prompt
from onemin_relay.core.types import (
    Finish,
    FinishReason,
    Message,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
    ToolSpec,
    Usage,
)
from onemin_relay.settings import Settings
from onemin_relay.upstream import ChatCall, ChatRecord, OneMinClient

T = TypeVar("T")


class Plan(msgspec.Struct, frozen=True):
    """A prepared call and what its answer must satisfy."""

    call: ChatCall
    api_key: str
    response_format: ResponseFormat | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    history: tuple[Message, ...] = ()


class Answer(msgspec.Struct, frozen=True):
    text: str
    reason: FinishReason
    usage: Usage
    calls: tuple[ToolCall, ...] = ()


class Answerer:
    def __init__(self, client: OneMinClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    async def complete(self, plan: Plan) -> Answer:
        """One whole answer: call, then hold the reply to the tool contract and JSON format."""
        record = await self._client.chat(plan.call, plan.api_key)
        usage = record.usage or await estimate_usage(plan.call, record.text)
        text = record.text
        if plan.tools:
            parsed, usage = await self._tool_answer(plan, record, usage)
            if parsed.calls:
                return Answer(parsed.text, "tool_calls", usage, parsed.calls)
            text = parsed.text
        if plan.response_format is not None:
            record = msgspec.structs.replace(record, text=text)
            text, usage = await self._json_answer(plan, plan.response_format, record, usage)
        return Answer(text, record.finish_reason, usage)

    async def stream(
        self, plan: Plan, events: AsyncIterator[StreamEvent]
    ) -> AsyncIterator[StreamEvent]:
        """Stream text as it comes, holding back only what may be a tool call.

        The hold rule is ``ToolStreamSplitter``'s: a reply that opens like JSON, or text from
        a possible tool-call tag on, waits for the end of the reply, which is then parsed.
        """
        splitter = ToolStreamSplitter()
        shown: list[str] = []
        async for event in events:
            if isinstance(event, TextDelta):
                safe = splitter.feed(event.text)
                if safe:
                    shown.append(safe)
                    yield TextDelta(safe)
            elif isinstance(event, Finish):
                async for tail in self._finish_stream(
                    plan, "".join(shown), splitter.finish(), event
                ):
                    yield tail

    async def _finish_stream(
        self, plan: Plan, shown: str, held: str, finish: Finish
    ) -> AsyncIterator[StreamEvent]:
        usage = finish.usage or await estimate_usage(plan.call, shown + held)
        record = ChatRecord(
            text=shown + held, finish_reason=finish.reason, usage=usage, record_id=None
        )
        parsed, usage = await self._tool_answer(plan, record, usage)
        # ParsedReply.text is tidied (pieces around calls stripped, joined by a blank line):
        # emit what follows the part already shown, compared without its outer whitespace.
        seen = shown.strip()
        rest = parsed.text[len(seen) :] if parsed.text.startswith(seen) else ""
        if rest:
            yield TextDelta(rest)
        for index, call in enumerate(parsed.calls):
            yield ToolCallEvent(index, call)
        yield Finish("tool_calls" if parsed.calls else finish.reason, usage)

    # -- holding the reply to its contract ---------------------------------------------

    async def _tool_answer(
        self, plan: Plan, record: ChatRecord, usage: Usage
    ) -> tuple[ParsedReply, Usage]:
        async def judge(text: str) -> ParsedReply:
            return parse_tool_reply(
                text, plan.tools, plan.tool_choice, parallel=plan.parallel_tool_calls
            )

        def repair(reply: str, errors: list[str]) -> str:
            return tool_repair_prompt(plan.call.prompt, reply, errors, plan.tools, plan.tool_choice)

        try:
            parsed, usage = await self._repairing(
                plan, record, usage, judge, repair, self._settings.tool_repair_retries
            )
        except ToolCallError as exc:
            failed = ToolCallFailed(
                f"the model did not produce a valid tool call: {'; '.join(exc.errors)}"
            )
            failed.usage = exc.usage
            raise failed from None
        looping = repeated_call(plan.history, parsed.calls, self._settings.max_identical_tool_calls)
        if looping is not None:
            loop = ToolLoopDetected(
                f"the model called {looping.name!r} with the same arguments "
                f"{self._settings.max_identical_tool_calls} times already; stopping a loop",
                param="messages",
            )
            loop.usage = usage
            raise loop
        return parsed, usage

    async def _json_answer(
        self, plan: Plan, fmt: ResponseFormat, record: ChatRecord, usage: Usage
    ) -> tuple[str, Usage]:
        async def judge(text: str) -> str:
            # in a thread: a client's schema ``pattern`` may backtrack for long
            return await asyncio.to_thread(parse_reply, text, fmt)

        def repair(reply: str, errors: list[str]) -> str:
            return json_repair_prompt(plan.call.prompt, reply, errors, fmt)

        retries = self._settings.structured_retries
        try:
            return await self._repairing(plan, record, usage, judge, repair, retries)
        except StructuredOutputError as exc:
            failed = StructuredOutputFailed(
                f"the model's answer did not match the requested format after {retries + 1} "
                f"attempt(s): {'; '.join(exc.errors)}",
                param="response_format",
            )
            failed.usage = exc.usage
            raise failed from None

    async def _repairing(
        self,
        plan: Plan,
        record: ChatRecord,
        usage: Usage,
        judge: Callable[[str], Awaitable[T]],
        repair: Callable[[str, list[str]], str],
        retries: int,
    ) -> tuple[T, Usage]:
        """``judge`` the reply; while it raises and retries remain, ask again with ``repair``."""
        attempt = 0
        while True:
            try:
                return await judge(record.text), usage
            except (StructuredOutputError, ToolCallError) as exc:
                if attempt >= retries:
                    exc.usage = usage
                    raise
                call = msgspec.structs.replace(plan.call, prompt=repair(exc.reply, exc.errors))
            attempt += 1
            record = await self._client.chat(call, plan.api_key)
            usage = add_usage(usage, record.usage or await estimate_usage(call, record.text))


async def estimate_usage(call: ChatCall, reply: str) -> Usage:
    prompt_tokens = await count_tokens_async(call.prompt, call.model)
    reply_tokens = await count_tokens_async(reply, call.model)
    return Usage(prompt_tokens, reply_tokens, estimated=True)


def add_usage(first: Usage, second: Usage) -> Usage:
    credits = None
    if first.credits is not None and second.credits is not None:
        credits = first.credits + second.credits
    return Usage(
        first.input_tokens + second.input_tokens,
        first.output_tokens + second.output_tokens,
        estimated=first.estimated or second.estimated,
        credits=credits,
    )
