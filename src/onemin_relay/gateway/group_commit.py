"""Group commit: calls that arrive while a transaction is under way share the next one.

A hold on an embedded store is a transaction of its own, and on SQLite its ``COMMIT`` is most
of its cost (about 200 µs of CPU on a small machine, whatever it holds). Under a burst, the
holds that queue up behind one transaction go together in the next, each still applied in
turn, so none can see money another has already taken. A lone call waits for nobody: the
first one starts a transaction at once.

A caller that leaves before its item is taken takes nothing (its item is dropped). Once taken,
the item's transaction is ahead of anything the caller does next (settling the hold, say): on
SQLite it is already queued on the store's thread; on PostgreSQL it has already asked the pool
for a connection (served in turn) and locks its keys first, and a settlement, which the ledger
writes at least 50 ms later, locks the same keys first, so it waits for the hold's commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        commit: Callable[[list[Item]], Awaitable[list[Result]]],
        max_batch: int | None = None,
        *,
        urgent: Callable[[Item], bool] | None = None,
        linger: float = 0.0,
    ) -> None:
        """``commit`` applies a batch in one transaction and returns one result per item,
        in order. Whatever a caller does once its item is taken must reach the store after
        that item's transaction (the module doc says how each store ensures it). A batch
        holds at most ``max_batch`` items (None: every item waiting).

        With ``urgent``, items it calls not urgent wait up to ``linger`` seconds for an
        urgent one to share its transaction (a batch goes at once when one is waiting); one
        left behind a full batch waits up to ``linger`` again."""
        self._commit = commit
        self._max_batch = max_batch
        self._urgent = urgent
        self._linger = linger
        self._urgent_waiting = asyncio.Event()
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        urgent = self._urgent is None or self._urgent(item)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if urgent:
            self._urgent_waiting.set()
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_all())
        return await future

    async def _commit_all(self) -> None:
        try:
            while self._waiting:
                if not self._urgent_waiting.is_set():
                    await self._wait_for_urgent()
                taken = self._waiting[: self._max_batch]
                left = self._waiting[len(taken) :]
                if self._urgent is not None and not any(self._urgent(item) for item, _ in left):
                    self._urgent_waiting.clear()
                self._waiting = left
                batch = [(item, future) for item, future in taken if not future.done()]
                if batch:
                    await self._commit_batch(batch)
        except asyncio.CancelledError:  # the store is closing: nobody is left waiting
            for _, future in self._waiting:
                future.cancel()
            self._waiting = []
            raise
        except BaseException as exc:  # a fault here must not leave callers waiting forever
            for _, future in self._waiting:
                if not future.done():
                    future.set_exception(exc)
            self._waiting = []
            raise
        finally:
            self._committer = None

    async def _wait_for_urgent(self) -> None:
        try:
            async with asyncio.timeout(self._linger):
                await self._urgent_waiting.wait()
        except TimeoutError:
            pass

    async def _commit_batch(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        """A transaction that fails fails every item in it, as it would have each alone (what
        fails one hold here, a store locked or gone, fails them all)."""
        try:
            results = await self._commit([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
