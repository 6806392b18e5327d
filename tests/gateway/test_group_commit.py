"""Group commit: what queues up during a transaction shares the next one, in order; a caller
gone before its turn takes nothing; a failed transaction fails only the callers in it."""

from __future__ import annotations

import asyncio

import pytest

from onemin_relay.gateway.group_commit import GroupCommit


class Store:
    """Commits one batch at a time, each held open until ``release`` lets it finish."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_next = False

    async def commit(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise OSError("the store went away")
        return [item * 10 for item in items]


async def _until(condition: object) -> None:
    for _ in range(1000):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_a_lone_call_goes_at_once_and_the_queue_goes_together() -> None:
    store = Store()
    group = GroupCommit(store.commit)
    first = asyncio.create_task(group.submit(1))
    await _until(lambda: store.batches == [[1]])
    rest = [asyncio.create_task(group.submit(n)) for n in range(2, 7)]
    await asyncio.sleep(0)
    store.release.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40, 50, 60]
    assert store.batches == [[1], [2, 3, 4, 5, 6]]


async def test_a_caller_gone_before_its_turn_takes_nothing() -> None:
    store = Store()
    group = GroupCommit(store.commit)
    first = asyncio.create_task(group.submit(1))
    await _until(lambda: len(store.batches) == 1)
    leaving, staying = asyncio.create_task(group.submit(2)), asyncio.create_task(group.submit(3))
    await asyncio.sleep(0)
    leaving.cancel()
    store.release.set()
    assert (await first, await staying) == (10, 30)
    assert store.batches == [[1], [3]]


async def test_a_failed_transaction_fails_its_callers_only() -> None:
    store = Store()
    group = GroupCommit(store.commit)
    store.fail_next = True
    doomed = asyncio.create_task(group.submit(1))
    await _until(lambda: len(store.batches) == 1)
    later = asyncio.create_task(group.submit(2))
    store.release.set()
    with pytest.raises(OSError, match="went away"):
        await doomed
    assert await later == 20
    assert await group.submit(3) == 30  # the next burst starts a committer of its own


async def test_a_batch_holds_at_most_max_batch_items_in_order() -> None:
    store = Store()
    group = GroupCommit(store.commit, max_batch=2)
    first = asyncio.create_task(group.submit(1))
    await _until(lambda: store.batches == [[1]])
    rest = [asyncio.create_task(group.submit(n)) for n in range(2, 7)]
    await asyncio.sleep(0)
    store.release.set()
    assert [await first, *await asyncio.gather(*rest)] == [10, 20, 30, 40, 50, 60]
    assert store.batches == [[1], [2, 3], [4, 5], [6]]


def _even(item: int) -> bool:
    return item % 2 == 0


async def _one_lingering(item: int) -> tuple[Store, GroupCommit[int, int], asyncio.Task[int]]:
    """A group whose odd items wait (up to an hour) for an even one, ``item`` waiting in it."""
    store = Store()
    store.release.set()
    group: GroupCommit[int, int] = GroupCommit(store.commit, urgent=_even, linger=3600)
    waiting = asyncio.create_task(group.submit(item))
    for _ in range(20):
        await asyncio.sleep(0)
    return store, group, waiting


async def test_an_item_that_can_wait_rides_with_the_next_urgent_one() -> None:
    """Odd items here are not urgent: they wait for an even one (up to an hour: it comes
    first), and both go in one batch, in the order they came."""
    store, group, waiting = await _one_lingering(1)
    assert store.batches == [] and not waiting.done()
    assert await group.submit(2) == 20
    assert await waiting == 10
    assert store.batches == [[1, 2]]


async def test_an_item_that_can_wait_goes_alone_when_nothing_urgent_comes() -> None:
    store = Store()
    store.release.set()
    group = GroupCommit(store.commit, urgent=_even, linger=0.01)
    assert await asyncio.wait_for(group.submit(1), timeout=5) == 10
    assert store.batches == [[1]]


async def test_urgent_items_never_wait_for_the_linger() -> None:
    """While a batch is out, what queues behind it goes next at once if any of it is
    urgent; the items that can wait go with it."""
    store = Store()
    group = GroupCommit(store.commit, urgent=_even, linger=3600)
    first = asyncio.create_task(group.submit(2))
    await _until(lambda: store.batches == [[2]])
    rest = [asyncio.create_task(group.submit(n)) for n in (3, 4, 5)]
    await asyncio.sleep(0)
    store.release.set()
    finished = asyncio.gather(first, *rest)
    assert await asyncio.wait_for(finished, timeout=5) == [20, 30, 40, 50]
    assert store.batches == [[2], [3, 4, 5]]


async def test_what_a_full_batch_leaves_behind_waits_only_if_none_of_it_is_urgent() -> None:
    store = Store()
    group = GroupCommit(store.commit, max_batch=2, urgent=_even, linger=3600)
    first = asyncio.create_task(group.submit(2))
    await _until(lambda: store.batches == [[2]])
    # behind the batch out: 4, 6 fill the next batch; 7 (not urgent) is left alone after it
    rest = [asyncio.create_task(group.submit(n)) for n in (4, 6, 7)]
    await asyncio.sleep(0)
    store.release.set()
    assert await asyncio.wait_for(asyncio.gather(first, *rest[:2]), timeout=5) == [20, 40, 60]
    for _ in range(20):
        await asyncio.sleep(0)
    assert not rest[2].done()  # waiting for an urgent item to ride with
    assert await group.submit(8) == 80
    assert await rest[2] == 70
    assert store.batches == [[2], [4, 6], [7, 8]]


async def test_a_caller_gone_while_its_item_lingers_takes_nothing() -> None:
    store, group, leaving = await _one_lingering(1)
    leaving.cancel()
    assert await group.submit(2) == 20
    assert store.batches == [[2]]


async def test_a_fault_in_the_committer_fails_its_callers_instead_of_stranding_them() -> None:
    """Here the second look at item 3 fails (the committer's, after a batch of one took 1):
    both callers get the error rather than waiting forever."""
    store = Store()
    store.release.set()
    looks: list[int] = []

    def urgent(item: int) -> bool:
        looks.append(item)
        if looks.count(3) == 2:
            raise ValueError("cannot tell")
        return True

    group = GroupCommit(store.commit, max_batch=1, urgent=urgent, linger=3600)
    calls = [asyncio.create_task(group.submit(n)) for n in (1, 3)]
    done = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=5)
    assert [type(outcome) for outcome in done] == [ValueError, ValueError]
    assert store.batches == []
