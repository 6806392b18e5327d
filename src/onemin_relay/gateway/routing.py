"""Which models a chat request tries, in order, and how far it may fall back.

A plain model id needs no routing (the pipeline's fast path). An alias (``onemin/auto``,
``onemin/balanced``, ``onemin/cost-saver``, or ``onemin-…`` in a URL) becomes its route's
choice: the cheapest candidate the evidence clears, else the incumbent, then the route's
fallbacks. Fallbacks given with the request (OpenRouter's ``models: [...]`` or a
``fallbacks`` field) come after the model asked for.

A fallback is tried only when the attempt before it failed upstream before anything reached
the client, for a reason another model may not share (unsupported or disabled model, 429,
5xx, connect or first-byte timeout), within a bounded number of attempts and a deadline.
A request's own 4xx is never retried; neither is anything once the client has bytes. Each
attempt is admitted and settled on its own: its own hold, its own ledger row.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from contextvars import ContextVar
from typing import Literal, NoReturn, Protocol, TypeAlias, TypeVar

import msgspec

from onemin_relay.core.errors import (
    ModelNotFound,
    RateLimited,
    StructuredOutputFailed,
    ToolCallFailed,
    UpstreamError,
    UpstreamTimeout,
)
from onemin_relay.core.types import (
    Caller,
    ChatRequest,
    ModelInfo,
    StreamEvent,
    TextDelta,
)
from onemin_relay.gateway.route_policy import Choice, Tally, choose
from onemin_relay.gateway.routing_config import (
    ALIASES,
    DEFAULT_PROJECT,
    Route,
    RouteBook,
    RouteName,
    builtin_models,
    price,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Kind: TypeAlias = Literal["chat", "tools", "structured", "long"]
LONG_CONTEXT_CHARS = 64_000  # about 16 k tokens: a long-context request
ROUTE_HEADER = "x-onemin-route"
SHOWN_NAME = 100  # characters of a model name a route account shows
_UNSHOWN = re.compile(r"[^!-~]|[;=,]")  # all but printable ASCII, and the account's separators
# this request's route account, for the x-onemin-route header (set by RoutePlan.chose)
ROUTED: ContextVar[str | None] = ContextVar("onemin_routed", default=None)

Evidence: TypeAlias = Callable[[str, RouteName, Kind], Awaitable[dict[str, Tally]]]
ProjectOf: TypeAlias = Callable[[Caller], Awaitable[str | None]]


class Catalog(Protocol):
    """The live catalog as routing reads it (``upstream.models.Catalog``)."""

    @property
    def models(self) -> list[ModelInfo]: ...
    def get(self, model_id: str) -> ModelInfo | None: ...
    def resolve(self, name: str) -> ModelInfo | None: ...


class AttemptFailed(Exception):
    """One attempt's failure, already settled: ``seen`` is what the client would get."""

    def __init__(self, seen: BaseException, cause: BaseException) -> None:
        super().__init__(str(seen))
        self.seen = seen
        self.cause = cause

    def reraise(self) -> NoReturn:
        if self.seen is self.cause:
            raise self.cause
        raise self.seen from self.cause


def attempt_failed(seen: BaseException, exc: BaseException, route: RoutePlan | None) -> NoReturn:
    """An attempt failed (and is settled): for a routed request, say so to the router,
    which may try the next model; else raise what the client should see."""
    failed = AttemptFailed(seen, exc)
    if route is not None and isinstance(exc, Exception):
        raise failed
    failed.reraise()


class RoutePlan(msgspec.Struct):
    """The models a request will try, and why the first was chosen."""

    models: tuple[str, ...]
    label: str  # onemin/<route>, or "fallbacks" for a plain model with fallbacks
    reason: str
    evidence: int = 0
    project: str = DEFAULT_PROJECT
    kind: Kind = "chat"
    incumbent: str | None = None
    candidates: tuple[str, ...] = ()  # the route's, cheapest first
    tried: list[str] = []  # models that failed, in order
    used: str = ""  # the model of the latest attempt

    def chose(self, model: str) -> str:
        """Record that ``model`` is being tried; the route's account of it (also set as
        this request's ``x-onemin-route``)."""
        self.used = model
        text = self.header(model)
        ROUTED.set(text)
        return text

    def header(self, used: str) -> str:
        """``x-onemin-route``: route, the model used, why, and how much evidence stood
        behind the choice (no key, no prompt)."""
        tried = ",".join(map(_shown, self.tried))
        reason = f"fallback after {tried}" if self.tried else self.reason
        text = (
            f"route={self.label}; model={_shown(used)}; reason={reason}; evidence={self.evidence}"
        )
        text += f"; kind={self.kind}"
        return text + (f"; incumbent={self.incumbent}" if self.incumbent else "")


def parse_account(text: str) -> dict[str, str]:
    """A route account (``x-onemin-route``, the ledger's ``route``) as its fields."""
    fields = (part.partition("=") for part in text.split("; "))
    return {name.strip(): value.strip() for name, sep, value in fields if sep}


def fallback_worthy(exc: BaseException) -> bool:
    """Whether another model may succeed where this one failed before answering."""
    if isinstance(exc, StructuredOutputFailed | ToolCallFailed):
        return False  # the model answered (and was paid); it only missed the format
    return isinstance(exc, ModelNotFound | RateLimited | UpstreamError)


def fallback_list(model: str, *lists: list[str] | None) -> tuple[str, ...]:
    """A request's own fallbacks (``models``, ``fallbacks``), in order, without ``model``."""
    seen = {model.strip()}
    found: list[str] = []
    for names in lists:
        for name in names or ():
            if name.strip() and name.strip() not in seen:
                seen.add(name.strip())
                found.append(name.strip())
    return tuple(found)


def request_kind(request: ChatRequest) -> Kind:
    """The class of request evidence is kept for: tools, JSON formats, long inputs, chat."""
    if request.tools:
        return "tools"
    fmt = request.response_format
    if fmt is not None and fmt.kind != "text":
        return "structured"
    size = 0
    for message in request.messages:
        for part in message.parts:
            size += len(getattr(part, "text", ""))
    return "long" if size > LONG_CONTEXT_CHARS else "chat"


class Router:
    def __init__(
        self,
        book: RouteBook,
        catalog: Callable[[], Awaitable[Catalog]],
        project_of: ProjectOf,
        evidence: Evidence | None = None,
        max_attempts: int = 3,
        deadline: float = 30.0,
    ) -> None:
        self.book = book
        self._catalog = catalog
        self._project_of = project_of
        self._evidence = evidence
        self._max_attempts = max_attempts
        self._deadline = deadline
        self._resolved: dict[tuple[str, RouteName], tuple[Catalog, RouteModels]] = {}

    async def plan(self, request: ChatRequest, caller: Caller) -> RoutePlan | None:
        """The plan for an alias or a request with fallbacks; None for a plain model."""
        name = ALIASES.get(request.model)
        if name is None:
            if not request.fallbacks:
                return None
            return RoutePlan(_unique((request.model, *request.fallbacks)), "fallbacks", "asked")
        project = await self._project_of(caller) or DEFAULT_PROJECT
        route = self.book.route(project, name)
        models = await self.route_models(project, route)
        kind = request_kind(request)
        tallies = await self._evidence(project, name, kind) if self._evidence else {}
        choice: Choice = choose(models.incumbent, models.candidates, tallies, route.floor)
        chain = (choice.model, models.incumbent, *request.fallbacks, *models.fallbacks)
        return RoutePlan(
            models=_unique(chain),
            label=route.label,
            reason=choice.reason,
            evidence=choice.evidence,
            project=project,
            kind=kind,
            incumbent=models.incumbent,
            candidates=models.candidates,
        )

    async def route_models(self, project: str, route: Route) -> RouteModels:
        """The route's models as catalog ids (cached per catalog snapshot)."""
        catalog = await self._catalog()
        cached = self._resolved.get((project, route.name))
        if cached is not None and cached[0] is catalog:
            return cached[1]
        models = resolve_route(route, catalog)
        self._resolved[project, route.name] = (catalog, models)
        return models

    async def run(self, plan: RoutePlan, attempt: Callable[[str, bool], Awaitable[T]]) -> T:
        """``attempt(model, more)`` each model in turn until one answers; ``more`` says
        whether a fallback remains (a stream then waits for its first byte before
        committing). Only an :class:`AttemptFailed` worth a fallback moves on."""
        deadline = time.monotonic() + self._deadline
        models = plan.models[: self._max_attempts]
        for index, model in enumerate(models):
            more = index + 1 < len(models) and time.monotonic() < deadline
            try:
                return await attempt(model, more)
            except AttemptFailed as failed:
                if not (more and fallback_worthy(failed.cause)) or time.monotonic() > deadline:
                    failed.reraise()
                log.info("model %s failed (%s); falling back", model, type(failed.cause).__name__)
                plan.tried.append(model)
        raise AssertionError("unreachable: the last attempt returns or raises")


class RouteModels(msgspec.Struct, frozen=True):
    incumbent: str
    candidates: tuple[str, ...]  # cheapest first, all cheaper than the incumbent
    fallbacks: tuple[str, ...]


def resolve_route(route: Route, catalog: Catalog) -> RouteModels:
    """A route's models as ids of ``catalog``; ids the catalog lacks are left out (and
    logged), the built-in choice stands in for what the route leaves open."""
    builtin_incumbent, builtin_candidates, builtin_fallbacks = builtin_models(catalog.models)

    def ids(names: tuple[str, ...]) -> list[str]:
        found = []
        for name in names:
            info = catalog.resolve(name)
            if info is None:
                log.warning("route %s: the catalog has no model %r", route.label, name)
            else:
                found.append(info.id)
        return found

    incumbent = next(iter(ids((route.incumbent,))), None) if route.incumbent else None
    incumbent = incumbent or builtin_incumbent
    top = catalog.get(incumbent)
    ceiling = price(top) if top is not None else float("inf")
    named = builtin_candidates if route.candidates is None else tuple(ids(route.candidates))
    infos = [catalog.get(c) for c in named if c != incumbent]
    cheaper = sorted((i for i in infos if i is not None and price(i) < ceiling), key=price)
    fallbacks = builtin_fallbacks if route.fallbacks is None else tuple(ids(route.fallbacks))
    return RouteModels(incumbent, tuple(i.id for i in cheaper), fallbacks)


async def first_events(
    stack: AsyncExitStack,
    opening: AbstractAsyncContextManager[AsyncIterator[StreamEvent]],
    within: float,
) -> AsyncIterator[StreamEvent]:
    """Open a stream (closed with ``stack``) and wait, at most ``within`` seconds from the
    start, for its first real event (text, a call, its end), so that a failure before it
    can still go to a fallback; then the stream, from its start. 1min.ai opens with an
    empty delta, which does not count."""
    held: list[StreamEvent] = []
    try:
        async with asyncio.timeout(within):
            events = await stack.enter_async_context(opening)
            async for event in events:
                held.append(event)
                if not isinstance(event, TextDelta) or event.text:
                    break
    except TimeoutError as exc:
        if isinstance(exc, UpstreamTimeout):
            raise
        raise UpstreamTimeout(f"1min.ai sent nothing within {within:g} s") from None
    return _replayed(held, events)


async def _replayed(
    held: list[StreamEvent], events: AsyncIterator[StreamEvent]
) -> AsyncIterator[StreamEvent]:
    for event in held:
        yield event
    async for event in events:  # an ended stream yields nothing more
        yield event


def _shown(name: str) -> str:
    """A model name as a route account shows it: a client's made-up name (a fallback that
    failed) may hold no line break, separator or non-ASCII (a header could not carry it, or
    it would forge a field) and no more than ``SHOWN_NAME`` characters."""
    return _UNSHOWN.sub("?", name[:SHOWN_NAME])


def _unique(models: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m for m in models if m))
