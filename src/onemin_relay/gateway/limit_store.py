"""Counting for the rate limits: sliding windows and in-flight sets, in memory or in Redis.

Every admission checks all of its windows and in-flight caps and, only if every one has
room, counts the request in all of them: one step, so no two requests can both take the last
slot. In memory that step never awaits (one event loop, one process); in Redis it is one Lua
script, which Redis runs alone, so processes on any number of hosts share exact counts.

Windows are sliding-window counters (the ``limits`` library's strategy, measured exact here):
the count of the current fixed window plus the previous one's weighted by how much of it the
sliding window still covers. ``limits`` checks and counts one limit at a time, so a request
refused by its token limit would already have used up a request; admitting against several
limits at once, all or nothing, needs the script. Redis's clock is used there, so hosts with
skewed clocks still agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

CAP_RETRY_SECONDS = 1.0  # a request in flight may end any moment


class Window(msgspec.Struct, frozen=True):
    """One sliding-window limit to check: ``cost`` against ``limit`` per window."""

    subject: str  # e.g. "ip:203.0.113.9:requests"
    limit: int
    cost: int


class Cap(msgspec.Struct, frozen=True):
    """At most ``limit`` requests in flight for ``subject``."""

    subject: str
    limit: int


class WindowState(msgspec.Struct, frozen=True):
    remaining: int
    reset: float  # seconds until the window holds nothing again


class Admission(msgspec.Struct, frozen=True):
    """The answer: admitted, or which window or cap refused and when to retry; the state of
    every window (after counting this request, if admitted)."""

    admitted: bool
    refused_window: int | None = None  # index into the windows checked
    refused_cap: int | None = None  # index into the caps checked
    retry_after: float = 0.0
    states: tuple[WindowState, ...] = ()
    window_index: int = 0  # the fixed window the costs were counted in


class LimitStore(Protocol):
    async def admit(
        self, windows: list[Window], caps: list[Cap], member: str, lease: float
    ) -> Admission: ...
    async def adjust(self, subject: str, window_index: int, delta: int) -> None:
        """Correct a cost counted in ``window_index`` (an estimate) by ``delta``."""
        ...

    async def release(self, caps: list[Cap], member: str) -> None: ...
    async def finish(
        self, caps: list[Cap], member: str, corrections: list[str], window_index: int, delta: int
    ) -> None:
        """A request ended: leave its in-flight sets and correct its token ``corrections``
        windows by ``delta`` (one round trip where the store is remote)."""
        ...


def estimate(previous: float, current: float, elapsed: float, window: float) -> float:
    return previous * (window - elapsed) / window + current


def retry_after(
    previous: float, current: float, elapsed: float, window: float, limit: int, cost: int
) -> float:
    """Seconds until ``cost`` fits under ``limit`` (assuming nothing else is counted)."""
    need = limit - cost
    if current <= need:
        if previous <= 0:
            return 0.0
        return max(0.0, window - window * (need - current) / previous - elapsed)
    return (window - elapsed) + max(0.0, window - window * need / current)


def reset_after(previous: float, current: float, elapsed: float, window: float) -> float:
    if current > 0:
        return (window - elapsed) + window
    return window - elapsed if previous > 0 else 0.0


def judge(
    windows: list[Window],
    counts: list[tuple[float, float]],
    elapsed: float,
    window: float,
    index: int,
    refused: int | None,
    full: int | None,
) -> Admission:
    """The admission a store decided (``refused`` window, ``full`` cap, or neither), with
    every window's state and, when refused, how long until the request would fit."""
    admitted = refused is None and full is None
    states = []
    for check, (previous, current) in zip(windows, counts, strict=True):
        cost = check.cost if admitted else 0
        left = check.limit - estimate(previous, current, elapsed, window) - cost
        reset = reset_after(previous, current + cost, elapsed, window)
        states.append(WindowState(max(0, math.floor(left)), reset))
    if refused is not None:
        (previous, current), check = counts[refused], windows[refused]
        wait = retry_after(previous, current, elapsed, window, check.limit, check.cost)
        return Admission(False, refused, None, wait, tuple(states), index)
    if full is not None:
        return Admission(False, None, full, CAP_RETRY_SECONDS, tuple(states), index)
    return Admission(True, None, None, 0.0, tuple(states), index)


class MemoryLimitStore:
    """Counts for one process. Nothing here awaits, so an admission is one atomic step."""

    def __init__(self, window: float, clock: Callable[[], float] = time.time) -> None:
        self._window = window
        self._clock = clock
        self._counts: dict[tuple[str, int], float] = {}
        self._in_flight: dict[str, dict[str, float]] = {}
        self._pruned = 0

    async def admit(
        self, windows: list[Window], caps: list[Cap], member: str, lease: float
    ) -> Admission:
        now = self._clock()
        index = math.floor(now / self._window)
        elapsed = now - index * self._window
        self._prune(index)
        counts: list[tuple[float, float]] = []
        refused = None
        for position, check in enumerate(windows):
            previous = self._counts.get((check.subject, index - 1), 0.0)
            current = self._counts.get((check.subject, index), 0.0)
            counts.append((previous, current))
            over = estimate(previous, current, elapsed, self._window) + check.cost > check.limit
            if over and refused is None:
                refused = position
        full = None if refused is not None else self._full_cap(caps, now)
        admission = judge(windows, counts, elapsed, self._window, index, refused, full)
        if admission.admitted:
            for check in windows:
                key = (check.subject, index)
                self._counts[key] = self._counts.get(key, 0.0) + check.cost
            for cap in caps:
                self._in_flight.setdefault(cap.subject, {})[member] = now + lease
        return admission

    async def adjust(self, subject: str, window_index: int, delta: int) -> None:
        self._adjust(subject, window_index, delta)

    async def finish(
        self, caps: list[Cap], member: str, corrections: list[str], window_index: int, delta: int
    ) -> None:
        self.finish_now(caps, member, corrections, window_index, delta)

    def finish_now(
        self,
        caps: Sequence[Cap],
        member: str,
        corrections: Sequence[str],
        window_index: int,
        delta: int,
    ) -> None:
        """``finish`` without awaiting: nothing here waits, so a request's end needs no task."""
        self._release(caps, member)
        for subject in corrections:
            self._adjust(subject, window_index, delta)

    async def release(self, caps: list[Cap], member: str) -> None:
        self._release(caps, member)

    def _adjust(self, subject: str, window_index: int, delta: int) -> None:
        key = (subject, window_index)
        if key in self._counts:
            self._counts[key] = max(0.0, self._counts[key] + delta)

    def _release(self, caps: Sequence[Cap], member: str) -> None:
        for cap in caps:
            members = self._in_flight.get(cap.subject)
            if members is not None:
                members.pop(member, None)
                if not members:
                    del self._in_flight[cap.subject]

    def _full_cap(self, caps: list[Cap], now: float) -> int | None:
        """The first cap with no room (members past their lease no longer count)."""
        for position, cap in enumerate(caps):
            members = self._in_flight.get(cap.subject, {})
            if len(members) >= cap.limit:  # only then can lapsed members matter
                for member in [m for m, until in members.items() if until < now]:
                    del members[member]
            if len(members) >= cap.limit:
                return position
        return None

    def _prune(self, index: int) -> None:
        """Once per new window, drop counts no window can see any more."""
        if index == self._pruned:
            return
        self._pruned = index
        for key in [k for k in self._counts if k[1] < index - 1]:
            del self._counts[key]
