"""A shadow run that ends in something other than a relay error (a raw network error, or
the shutdown cancelling it mid-call) goes on the ledger as failed, not as a 200."""

from __future__ import annotations

import asyncio

from onemin_relay.gateway.judge import Reply
from tests.gateway.test_routing_shadow import Ledger, World, job, shadows


class Broken(World):
    async def replay(self, model: str) -> Reply:
        self.calls.append(model)
        raise ConnectionResetError("the connection dropped")


class Stalled(World):
    async def replay(self, model: str) -> Reply:
        self.calls.append(model)
        await asyncio.Event().wait()
        raise AssertionError("never resumed")


async def test_an_unexpected_error_is_recorded_as_one() -> None:
    world, ledger = Broken(), Ledger()
    runner = shadows(world, ledger)
    runner.offer(job(world))
    await runner.idle()
    await runner.stop()
    rows = [s.row for s in ledger.rows]
    assert [r.upstream_model for r in rows] == ["cheap"]  # the job ends at its failure
    assert all(r.status == 500 and r.outcome == "error" for r in rows), rows
    assert world.evidence == []


async def test_a_run_cancelled_at_shutdown_is_not_recorded_as_ok() -> None:
    world, ledger = Stalled(), Ledger()
    runner = shadows(world, ledger)
    runner.offer(job(world))
    for _ in range(100):  # until the worker is inside the call
        if world.calls:
            break
        await asyncio.sleep(0)
    await runner.stop()
    rows = [s.row for s in ledger.rows]
    assert len(rows) == 1 and rows[0].status == 499 and rows[0].outcome == "error", rows
