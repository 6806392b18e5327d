"""How routes learn: the evidence the router reads, shadow runs after routed answers, and
the application's own labels (``POST /v1/feedback``).

The gateway pieces are pure or store-bound (``gateway/route_policy``, ``judge``, ``shadow``,
``evidence``); this module wires them to the upstream client: a shadow replays the request
as the pipeline prepared it (tool contract and JSON rules included, repairs and all) on
another model with the operator's key, and the judge is asked the same way.
"""

from __future__ import annotations

import time

import msgspec

from onemin_relay.answers import Answer, Answerer, Plan
from onemin_relay.core.errors import InvalidRequest, NotFound
from onemin_relay.core.ids import unique_id
from onemin_relay.core.types import Caller, Usage
from onemin_relay.gateway.judge import Judge, Reply
from onemin_relay.gateway.metering import StreamMeter
from onemin_relay.gateway.policy import Gateway
from onemin_relay.gateway.route_policy import LABEL_WEIGHT, Tally
from onemin_relay.gateway.routing import RoutePlan, parse_account
from onemin_relay.gateway.shadow import ShadowJob, Shadows
from onemin_relay.gateway.storage import Store
from onemin_relay.settings import Settings
from onemin_relay.upstream import ChatCall, OneMinClient

EVIDENCE_TTL = 5.0  # seconds the router trusts what it last read of a project's evidence
RESPONSE_PREFIXES = ("chatcmpl-", "msg_")  # a routed answer's id is its request id, dressed


class Feedback(msgspec.Struct, frozen=True):
    request_id: str
    recorded: bool
    model: str | None = None
    route: str | None = None
    reason: str | None = None


class Learning:
    def __init__(
        self, client: OneMinClient, answers: Answerer, gateway: Gateway, settings: Settings
    ) -> None:
        self._client = client
        self._answers = answers
        self._gateway = gateway
        self._operator_key = settings.api_key or ""
        self._cache: dict[str, tuple[float, dict[tuple[str, str], dict[str, Tally]]]] = {}
        self.judge = Judge(settings.judge_model, self._ask)
        self.shadows = Shadows(
            settings.shadow_rate if settings.api_key else 0.0,
            settings.shadow_concurrency,
            settings.shadow_queue,
            self.judge,
            self.add_evidence,
            gateway.ledger,
            settings.credits_per_usd,
        )

    @property
    def _store(self) -> Store:
        return self._gateway.store

    async def tallies(self, project: str, route: str, kind: str) -> dict[str, Tally]:
        """What is known of each candidate of a route for one kind of request (cached)."""
        cached = self._cache.get(project)
        if cached is None or time.monotonic() - cached[0] > EVIDENCE_TTL:
            by_route: dict[tuple[str, str], dict[str, Tally]] = {}
            for row in await self._store.evidence(project):
                by_route.setdefault((row.route, row.kind), {})[row.candidate] = row.tally
            cached = self._cache[project] = (time.monotonic(), by_route)
        return cached[1].get((route, kind), {})

    async def add_evidence(
        self, project: str, route: str, kind: str, candidate: str, tally: Tally
    ) -> None:
        await self._store.add_evidence(project, route, kind, candidate, tally)
        self._cache.pop(project, None)

    def after(self, route: RoutePlan, plan: Plan, answer: Answer, request_id: str) -> None:
        """Maybe shadow a routed request that answered (sampled, queued, never awaited).
        Requests with attachments are left out: the caller's uploads are not the
        operator's to reuse."""
        name = route.label.removeprefix("onemin/")
        if name == route.label or plan.call.images or plan.call.files or not route.incumbent:
            return
        if not self.shadows.wants():
            return

        async def replay(model: str) -> Reply:
            call = msgspec.structs.replace(plan.call, model=model)
            again = msgspec.structs.replace(plan, call=call, api_key=self._operator_key)
            return reply_of(await self._answers.complete(again))

        self.shadows.offer(
            ShadowJob(
                request_id=request_id,
                project=route.project,
                route=name,
                kind=route.kind,
                incumbent=route.incumbent,
                candidates=route.candidates,
                served_by=route.used,
                served=reply_of(answer),
                question=plan.call.prompt,
                replay=replay,
            )
        )

    def after_stream(
        self, route: RoutePlan | None, plan: Plan, meter: StreamMeter, request_id: str
    ) -> None:
        """Maybe shadow a routed stream that ended well. Tool calls a stream made are not
        kept by its meter, so streams with tools are left out."""
        finish = meter.finish
        if route is None or finish is None or meter.error is not None or plan.tools:
            return
        usage = finish.usage or Usage(0, 0)
        self.after(route, plan, Answer("".join(meter.text), finish.reason, usage), request_id)

    async def feedback(self, project: str | None, given_id: str, score: float) -> Feedback:
        """An application's label on a routed answer: a positive score counts as the
        candidate that answered being as good as the incumbent, a negative one as worse,
        each weighing as ``LABEL_WEIGHT`` judge verdicts."""
        if score == 0:
            raise InvalidRequest("score must be positive (good) or negative (bad)", param="score")
        request_id = next(
            (given_id[len(p) :] for p in RESPONSE_PREFIXES if given_id.startswith(p)), given_id
        )
        rows = [r for r in await self._store.routed_rows(request_id) if r[2] < 400]
        mine = [r for r in rows if (r[0] or "default") == (project or "default")]
        if not mine or mine[-1][1] is None:
            raise NotFound(f"no routed answer {given_id!r} of this project")
        fields = parse_account(mine[-1][1])
        model, route = fields.get("model"), fields.get("route", "")
        name, kind = route.removeprefix("onemin/"), fields.get("kind", "chat")
        if model is None or name == route:
            return Feedback(request_id, False, model, route, "not routed by an alias")
        if model == fields.get("incumbent"):
            return Feedback(request_id, False, model, route, "the incumbent answered")
        if not await self._store.add_label(project or "default", request_id):
            return Feedback(request_id, False, model, route, "already labelled")
        tally = Tally().add("tie" if score > 0 else "loss", LABEL_WEIGHT)
        await self.add_evidence(project or "default", name, kind, model, tally)
        return Feedback(request_id, True, model, route)

    async def _ask(self, model: str, prompt: str) -> Reply:
        record = await self._client.chat(ChatCall(model=model, prompt=prompt), self._operator_key)
        usage = record.usage
        if usage is None:
            return Reply(record.text)
        return Reply(record.text, (), usage.credits or 0, usage.input_tokens, usage.output_tokens)


def answer_id(caller: Caller) -> str:
    """A routed answer's id is its request's, so that feedback may name either."""
    return caller.request_id or unique_id()


def reply_of(answer: Answer) -> Reply:
    """An answer as shadows and the judge see it."""
    usage = answer.usage
    calls = tuple((call.name, call.arguments) for call in answer.calls)
    return Reply(answer.text, calls, usage.credits or 0, usage.input_tokens, usage.output_tokens)
