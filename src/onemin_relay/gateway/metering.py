"""What a call cost, measured as it runs: the settlement's figures and a stream's output cap.

1min.ai's own charge (the record's ``credit``) wins; a local estimate at the catalog's prices
stands in only where the record has none. A paid stream is watched as it flows: once its
reply could cost more than the hold covers, it is ended with a clear error rather than run
past what the key's balance was holding.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

from onemin_relay.core.errors import InsufficientBalance, RelayError
from onemin_relay.core.tokens import count_tokens_async, count_tokens_now
from onemin_relay.core.types import (
    Finish,
    ModelInfo,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from onemin_relay.gateway import pricing
from onemin_relay.gateway.grants import Grant, Spent


class HoldExceeded(InsufficientBalance):
    code = "hold_exceeded"


def spent(
    status: int,
    model: str,
    info: ModelInfo | None,
    usage: Usage | None,
    credits_per_usd: float,
    error: RelayError | None = None,
) -> Spent:
    """The settlement figures for a chat call that ended with ``status``."""
    if usage is None:
        code = error.code if error else None
        return Spent(status=status, upstream_model=model, error_code=code)
    credits = usage.credits
    if credits is None:
        credits = _estimated_credits(info, usage)
    return Spent(
        status=status,
        upstream_model=model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        credits=credits,
        cost=pricing.credits_to_nanos(credits, credits_per_usd),
        error_code=error.code if error else None,
    )


def _estimated_credits(info: ModelInfo | None, usage: Usage) -> int:
    if info is None or not info.credit_metadata:
        return 0
    try:
        return pricing.chat_credits(info, usage.input_tokens, usage.output_tokens)
    except RelayError:
        return 0


class StreamMeter:
    """Watches a stream for its settlement: first byte, text so far, the final usage."""

    def __init__(self, grant: Grant, model: str, prompt: str, output_allowance: int | None) -> None:
        self._grant = grant
        self._model = model
        self._prompt = prompt
        self._allowance = output_allowance
        self._checked_at = 0
        self.text: list[str] = []
        self.size = 0  # UTF-8 bytes of text so far
        self.finish: Finish | None = None
        self.error: RelayError | None = None
        self.calls: tuple[ToolCall, ...] = ()  # the tool calls the client was sent

    async def watch(
        self,
        events: AsyncIterator[StreamEvent],
        estimate: Callable[[str], Awaitable[Usage]] | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Pass events on, watching them: first byte, text so far (held to the allowance),
        the finish (its usage counted by ``estimate`` from the text when 1min.ai gave none),
        tool calls, and the error the stream ended with, which the surface turns into an
        error event. One generator, not one per concern: each layer costs every delta."""
        try:
            async for event in events:
                if self._grant.first_byte is None:
                    self._grant.first_byte = time.monotonic()
                if isinstance(event, TextDelta):
                    self.text.append(event.text)
                    self.size += len(event.text.encode())
                    await self._check_allowance()
                elif isinstance(event, Finish):
                    if event.usage is None and estimate is not None:
                        event = Finish(event.reason, await estimate("".join(self.text)))
                    self.finish = event
                elif isinstance(event, ToolCallEvent):
                    self.calls += (event.call,)
                yield event
        except RelayError as exc:
            self.error = exc
            raise

    def partial_usage(self) -> Usage | None:
        """What a stream that did not finish used, as far as the relay saw it. Counted in
        place: this runs while the request is being cancelled, where awaiting is unsafe (and
        so is loading a tokenizer: an estimate when none is loaded yet, as for a plain
        1min.ai key with token limits off; a managed key's hold has loaded it)."""
        if self.finish is not None and self.finish.usage is not None:
            return self.finish.usage
        if self.size == 0:
            return None
        inputs = count_tokens_now(self._prompt, self._model)
        return Usage(inputs, count_tokens_now("".join(self.text), self._model), estimated=True)

    async def outcome(self, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        """Around what a stream's watched events become (tool calls parsed out of the text):
        the calls the client was sent, and the error the stream ended with."""
        try:
            async for event in events:
                if isinstance(event, ToolCallEvent):
                    self.calls += (event.call,)
                yield event
        except RelayError as exc:
            self.error = exc
            raise

    async def _check_allowance(self) -> None:
        """A token is at least one byte, so below the allowance in bytes nothing needs
        counting; past it, count for real every 256 bytes."""
        allowance = self._allowance
        if allowance is None or self.size <= allowance or self.size - self._checked_at < 256:
            return
        self._checked_at = self.size
        tokens = await count_tokens_async("".join(self.text), self._model)
        if tokens > allowance:
            raise HoldExceeded(
                f"the reply passed {allowance} output tokens, the most this key's balance "
                "was holding for it; ask for fewer tokens (max_tokens) or top up the key"
            )
