"""The gateway's side of one chat request: what to hold, how far a stream may run, and the
settlement once it has ended, however it ended. The pipeline asks for a :class:`ChatBill`
before anything goes upstream and hands it the outcome afterwards."""

from __future__ import annotations

import msgspec

from onemin_relay.core.errors import RelayError, UpstreamUnavailable
from onemin_relay.core.tokens import estimate_input_tokens
from onemin_relay.core.types import Caller, ChatRequest, ModelInfo, ToolCall, Usage
from onemin_relay.gateway import metering, pricing
from onemin_relay.gateway.grants import CLIENT_CLOSED, Grant, status_of
from onemin_relay.gateway.limits import token_estimate
from onemin_relay.gateway.metering import StreamMeter
from onemin_relay.gateway.policy import Gateway
from onemin_relay.gateway.traces import joined, noted_request
from onemin_relay.settings import Settings


class Sent(msgspec.Struct, frozen=True):
    """What a chat request will send upstream, as far as its price goes."""

    model: str
    info: ModelInfo | None
    prompt: str
    attachments: int
    tools: bool
    formatted: bool

    @property
    def plain(self) -> bool:
        """One call whose output the relay can watch and cut: no repairs to come."""
        return not self.tools and not self.formatted


class ChatBill:
    """One admitted chat request: its grant, and how to settle it."""

    def __init__(self, gateway: Gateway, grant: Grant, sent: Sent, rate: float) -> None:
        self._gateway = gateway
        self.grant = grant
        self._sent = sent
        self._info = sent.info
        self._model = sent.model
        self._rate = rate

    @property
    def api_key(self) -> str:
        return self.grant.api_key

    def meter(self, request: ChatRequest) -> StreamMeter:
        """A stream's meter; a paid plain stream is cut at its ``max_tokens`` (its hold)."""
        allowance = None
        if self.grant.paid and self._info is not None:
            limit = request.max_output_tokens if self._sent.plain else None
            allowance = pricing.output_allowance(self._info, limit)
        return StreamMeter(self.grant, self._model, self._sent.prompt, allowance)

    def settled(
        self,
        status: int,
        usage: Usage | None,
        text: str | None = None,
        calls: tuple[ToolCall, ...] = (),
    ) -> None:
        """Settle a call that ended with ``status``; ``text`` and ``calls``: its answer."""
        if self.grant.notes is not None:
            self.grant.notes.answered(text, calls)
        spent = metering.spent(status, self._model, self._info, usage, self._rate)
        self._gateway.settle(self.grant, spent)

    def failed(self, exc: BaseException, usage: Usage | None = None) -> BaseException:
        """Settle a call that failed (for the upstream work it had already done); the error
        the client should see."""
        seen = self._gateway.as_seen_by_caller(self.grant, exc)
        if self.grant.notes is not None:
            self.grant.notes.failed(seen)
        error = seen if isinstance(seen, RelayError) else None
        if usage is None and error is not None:
            usage = error.usage
        status = status_of(seen)
        spent = metering.spent(status, self._model, self._info, usage, self._rate, error)
        self._gateway.settle(self.grant, spent)
        return seen

    def finished(self, meter: StreamMeter) -> None:
        """Settle a stream the surface has stopped reading: at its end, at an error it
        turned into an event, or before either (the client left)."""
        if self.grant.notes is not None:
            self.grant.notes.answered(meter.text, meter.calls)
        if meter.error is not None:
            self.failed(meter.error, meter.partial_usage())
        elif meter.finish is None:
            self.settled(CLIENT_CLOSED, meter.partial_usage())
        else:
            self.settled(200, meter.finish.usage)


class ChatBilling:
    def __init__(self, gateway: Gateway, settings: Settings) -> None:
        self._gateway = gateway
        self._rate = settings.credits_per_usd
        self._tool_repairs = settings.tool_repair_retries
        self._format_repairs = settings.structured_retries
        self._expected_output = settings.expected_output_tokens

    async def admit(self, caller: Caller, request: ChatRequest, sent: Sent) -> ChatBill:
        """Admit the request, holding (for a managed key) the most it can cost: every call
        it may make (repairs included) at the model's maximum output, or for a plain
        stream, which the relay cuts there, at ``max_tokens``."""
        info, model, prompt, attachments = sent.info, sent.model, sent.prompt, sent.attachments
        calls = 1 + (self._tool_repairs if sent.tools else 0)
        calls += self._format_repairs if sent.formatted else 0
        bounded = request.max_output_tokens if request.stream and calls == 1 else None

        async def most_cost() -> int:
            if info is None:
                raise UpstreamUnavailable("the 1min.ai price list is unavailable; cannot bill")
            tokens = await estimate_input_tokens(prompt, info.id, attachments)
            credits, _ = pricing.chat_hold(info, tokens, bounded, calls)
            return pricing.credits_to_nanos(credits, self._rate)

        tokens = token_estimate(len(prompt), request.max_output_tokens, self._expected_output)
        caller = joined(caller, request)
        grant = await self._gateway.admit(caller, request.model, model, most_cost, tokens)
        noted_request(grant.notes, request, prompt)
        return ChatBill(self._gateway, grant, sent, self._rate)
