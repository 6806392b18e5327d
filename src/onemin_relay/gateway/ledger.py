"""The ledger writer: settlements written in batches off the request path, never dropped.

A request takes a slot when it is admitted and gives it back only once its settlement (the
money change and its ledger row, one transaction) is committed. The slots are bounded: when
the store falls behind or is down, new requests are refused with 503 before anything is sent
upstream, rather than served without a record. While the store is unreachable a batch is
retried; a batch the store refuses is written one settlement at a time, so one it rejects for
good cannot hold up the rest: that one goes to the dead-letter file (one JSON line each, in
the data directory) and the error log, never silently away. ``drain`` waits for every
pending row on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque

import msgspec

from onemin_relay.gateway.storage import Settlement, Store

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
# each batch gathers rows for this long (or until it is full) before its transaction: at low
# traffic a commit per row cost ~10x the CPU of a row in a batch (bench.ledger), and each
# batch is a hop to the store's thread; holds already bound what is owed meanwhile. 50 ms
# rather than 10: with rows appended at the end of their indexes, a commit's fixed cost is
# most of a small batch's (bench.ab: -124 us of relay CPU per request at c=64, -206 at c=1)
GATHER_SECONDS = 0.05


class LedgerFull(Exception):
    """No slot left for another request's ledger row."""


class LedgerWriter:
    def __init__(
        self, store: Store, *, capacity: int, batch_size: int, dead_letter: str | None = None
    ) -> None:
        self._store = store
        self._dead_letter = dead_letter
        self._capacity = capacity
        self._batch_size = batch_size
        self._in_use = 0
        self._pending: deque[Settlement] = deque()
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failures = 0
        self.dead = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    def take_slot(self) -> None:
        """Reserve room for one request's row; raises ``LedgerFull`` when there is none."""
        if self._in_use >= self._capacity:
            raise LedgerFull
        self._in_use += 1

    def submit(self, settlement: Settlement) -> None:
        """Queue a settlement for a request that holds a slot (freed once it is written)."""
        self._pending.append(settlement)
        self._idle.clear()
        self._wake.set()
        if len(self._pending) >= self._batch_size:
            self._full.set()

    async def drain(self, grace: float) -> bool:
        """Wait until every queued settlement is written (or ``grace`` seconds pass); then stop."""
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            log.error("ledger: %d settlements still unwritten at shutdown", len(self._pending))
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return not self._pending

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._gather()
                batch = [self._pending[i] for i in range(min(self._batch_size, len(self._pending)))]
                await self._write(batch)
                for _ in batch:
                    self._pending.popleft()
                self._in_use -= len(batch)
                self.written += len(batch)
            self._idle.set()

    async def _gather(self) -> None:
        """Let a batch fill: for ``GATHER_SECONDS``, or until ``batch_size`` rows wait. Each
        batch gathers, not only the first after a quiet spell: otherwise, under steady
        traffic, the rows that arrive while a batch is written go out as a trickle of tiny
        transactions (one thread hop and commit each)."""
        if len(self._pending) >= self._batch_size:
            return
        self._full.clear()
        try:
            async with asyncio.timeout(GATHER_SECONDS):
                await self._full.wait()
        except TimeoutError:
            pass

    async def _write(self, batch: list[Settlement]) -> None:
        """Write a batch, retrying while the store is unreachable; a batch it refuses is
        written one settlement at a time, and a single one it refuses is set aside."""
        attempt = 0
        while True:
            try:
                await self._store.settle(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                if not self._store.transient(exc):
                    break
                log.error("ledger: store unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
                attempt += 1
        if len(batch) == 1:
            if batch[0].trace is not None:  # a trace refused never costs its ledger row
                log.error("ledger: the store refused a trace; writing its row without it")
                await self._write([msgspec.structs.replace(batch[0], trace=None)])
                return
            self._set_aside(batch[0])
            return
        for settlement in batch:
            await self._write([settlement])

    def _set_aside(self, settlement: Settlement) -> None:
        """A settlement the store keeps refusing: kept in the dead-letter file and the log.
        Its hold, if any, stays in the store and is swept as unsettled."""
        self.dead += 1
        line = msgspec.json.encode(settlement)
        log.error("ledger: set aside a settlement the store refused: %s", line.decode())
        if self._dead_letter is not None:
            try:
                os.makedirs(os.path.dirname(self._dead_letter) or ".", exist_ok=True)
                with open(self._dead_letter, "ab") as out:
                    out.write(line + b"\n")
                    os.fsync(out.fileno())
            except OSError as exc:
                log.error("ledger: dead-letter file unwritable (%s)", exc)
