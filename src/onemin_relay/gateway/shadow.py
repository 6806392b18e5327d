"""Shadow runs: a sampled share of routed traffic replayed on the other side, off the path.

When the incumbent answered a routed request, its cheaper candidates answer it again in the
background; when a candidate answered, the incumbent does. The judge compares each pair and
the verdict becomes evidence (``route_policy``). Sampling is ``ONEMIN_SHADOW_RATE`` (0, the
default, is off); jobs wait in a bounded queue that drops when full and run on a fixed
number of workers, so shadows never slow or block a request. Every shadow and judge call
spends the operator's 1min.ai key and is recorded in the ledger as the operator's (mode
``shadow``, no key): never charged to the caller.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from onemin_relay.core.errors import RelayError
from onemin_relay.gateway.grants import status_of
from onemin_relay.gateway.judge import EXACT_KINDS, Judge, Reply, exact_verdict, parse_verdict
from onemin_relay.gateway.ledger import LedgerFull
from onemin_relay.gateway.pricing import credits_to_nanos
from onemin_relay.gateway.route_policy import Tally, Verdict
from onemin_relay.gateway.storage import LedgerRow, Settlement

log = logging.getLogger(__name__)


class SpendLedger(Protocol):
    """Where shadow spend is recorded (``LedgerWriter``)."""

    def take_slot(self) -> None: ...
    def submit(self, settlement: Settlement) -> None: ...


Replay = Callable[[str], Awaitable[Reply]]  # the request again, on a model, operator's key
AddEvidence = Callable[[str, str, str, str, Tally], Awaitable[None]]


class ShadowJob(msgspec.Struct, frozen=True):
    """A routed request that answered, to replay on the other side."""

    request_id: str
    project: str
    route: str  # the route's name: auto, balanced, cost-saver
    kind: str
    incumbent: str
    candidates: tuple[str, ...]
    served_by: str
    served: Reply
    question: str  # the request as the judge reads it
    replay: Replay


class Shadows:
    def __init__(
        self,
        rate: float,
        concurrency: int,
        queue_size: int,
        judge: Judge,
        add_evidence: AddEvidence,
        ledger: SpendLedger,
        credits_per_usd: float,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.rate = rate
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(queue_size)
        self._concurrency = concurrency
        self._judge = judge
        self._add_evidence = add_evidence
        self._ledger = ledger
        self._credits_per_usd = credits_per_usd
        self._sample = sample
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.done = 0

    def wants(self) -> bool:
        """Whether to shadow this request (decided before building the job)."""
        return self.rate > 0 and self._sample() < self.rate

    def offer(self, job: ShadowJob) -> bool:
        """Queue ``job`` unless the queue is full (then it is dropped and counted)."""
        if not self._workers:
            self._start()
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def idle(self) -> None:
        """Wait until every queued job has run (tests, shutdown)."""
        await self._queue.join()

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    def _start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{n}") for n in range(self._concurrency)
        ]

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._run(job)
            except RelayError as exc:
                log.info("shadow run for %s failed: %s", job.request_id, exc.message)
            except Exception:
                log.exception("shadow run for %s failed", job.request_id)
            finally:
                self.done += 1
                self._queue.task_done()

    async def _run(self, job: ShadowJob) -> None:
        if job.served_by == job.incumbent:
            for candidate in job.candidates:
                reply = await self._spend(job, candidate, functools.partial(job.replay, candidate))
                await self._decide(job, candidate, job.served, reply)
        elif job.served_by in job.candidates:
            incumbent = job.incumbent
            reference = await self._spend(job, incumbent, functools.partial(job.replay, incumbent))
            await self._decide(job, job.served_by, reference, job.served)

    async def _decide(self, job: ShadowJob, candidate: str, reference: Reply, reply: Reply) -> None:
        verdict = await self._verdict(job, reference, reply)
        if verdict is not None:
            tally = Tally().add(verdict)
            await self._add_evidence(job.project, job.route, job.kind, candidate, tally)

    async def _verdict(self, job: ShadowJob, reference: Reply, reply: Reply) -> Verdict | None:
        if job.kind in EXACT_KINDS:
            return exact_verdict(reference, reply)
        judge = self._judge
        said = await self._spend(
            job, judge.model, lambda: judge.rule(job.question, reference.text, reply.text)
        )
        verdict = parse_verdict(said.text)
        if verdict is None:
            log.warning("the judge %s gave no verdict for %s", judge.model, job.request_id)
        return verdict

    async def _spend(
        self, job: ShadowJob, model: str, call: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        """Run ``call`` with a ledger slot held, and record what it spent as the operator's."""
        try:
            self._ledger.take_slot()
        except LedgerFull:
            raise RelayError("the ledger is full; shadow run skipped") from None
        started = time.monotonic()
        status, reply = 200, Reply("")
        try:
            reply = await call()
        except BaseException as exc:  # a network error or a shutdown too: not a 200
            status = status_of(exc)
            raise
        finally:
            self._ledger.submit(Settlement(self._row(job, model, status, reply, started)))
        return reply

    def _row(
        self, job: ShadowJob, model: str, status: int, reply: Reply, started: float
    ) -> LedgerRow:
        return LedgerRow(
            at=time.time(),
            request_id=job.request_id,
            key_id=None,
            project=job.project,
            mode="shadow",
            surface="shadow",
            requested_model=f"onemin/{job.route}",
            upstream_model=model,
            status=status,
            outcome="ok" if status < 400 else "error",
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            credits=reply.credits,
            cost=credits_to_nanos(reply.credits, self._credits_per_usd),
            latency_ms=(time.monotonic() - started) * 1000,
            route=f"route=onemin/{job.route}; model={model}; reason=shadow; kind={job.kind}",
        )
