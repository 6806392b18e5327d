"""Prepaid balances: hold the most a call can cost, and release holds nobody will settle.

A hold is one conditional update (``balance - reserved >= amount``), so a burst of calls can
never overdraw a key however they interleave, in one process or many. The process that took a
hold renews its lease while it runs; if it dies, the lease runs out and any process's sweeper
releases the hold and records the call as unsettled on the ledger, never silently.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from onemin_relay.core.errors import InsufficientPrepaidBalance
from onemin_relay.gateway.keys import KeyRecord, nanos_to_usd
from onemin_relay.gateway.storage import Hold, Store

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL = 24 * 3600.0


class Balances:
    def __init__(
        self,
        store: Store,
        *,
        owner: str,
        lease: float,
        sweep_interval: float,
        trace_retention: float = 0.0,
    ) -> None:
        self._store = store
        self._trace_retention = trace_retention  # seconds; 0: traces are kept
        self.owner = owner  # this process, in the holds it takes
        self._lease = lease
        self._interval = sweep_interval

    async def hold(
        self,
        key: KeyRecord,
        amount: int,
        *,
        hold_id: str,
        request_id: str,
        surface: str,
        model: str,
    ) -> None:
        """Hold ``amount`` nano-USD on ``key`` as ``hold_id``, or 402 with the key's state.

        Interrupted (a client gone, the store failing), the hold may still have been taken:
        the caller settles ``hold_id`` either way, which releases it if it exists."""
        if amount < 0:
            raise ValueError("a hold cannot be negative")
        now = time.time()
        hold = Hold(
            id=hold_id,
            key_id=key.id,
            amount=amount,
            owner=self.owner,
            created_at=now,
            expires_at=now + self._lease,
            request_id=request_id,
            project=key.project,
            surface=surface,
            model=model,
        )
        taken, record = await self._store.reserve(hold)
        if not taken:
            state = record or key
            raise InsufficientPrepaidBalance(
                nanos_to_usd(state.balance), nanos_to_usd(state.reserved), nanos_to_usd(amount)
            )

    async def maintain(self) -> None:
        """Every interval: renew this process's holds, sweep everyone's expired ones, forget
        idempotency keys older than a day and traces past their retention. Runs until
        cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.tend(time.time())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("hold maintenance failed: %s", exc)

    async def tend(self, now: float) -> int:
        await self._store.renew(self.owner, now + self._lease)
        swept = await self._store.sweep(now)
        if swept:
            log.warning("released %d holds left by a stopped process (unsettled)", swept)
        await self._store.forget_before(now - IDEMPOTENCY_TTL)
        if self._trace_retention > 0:
            await self._store.purge_traces(now - self._trace_retention)
        return swept


def new_hold_id() -> str:
    return "hold_" + secrets.token_hex(8)
