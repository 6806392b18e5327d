"""Ledger rows → time buckets for the overview's charts (pure; no I/O).

The bucket width adapts to the span the rows cover (a minute up to a day), so a quiet relay
and a busy one both get a readable chart of a few dozen bars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from onemin_relay.gateway.storage import LedgerRow

STEPS: Final = (60, 300, 900, 3600, 6 * 3600, 86_400)
MAX_BUCKETS: Final = 48
MIN_BUCKETS: Final = 12  # a burst within one minute still shows as a bar among quiet ones


@dataclass(slots=True)
class Bucket:
    start: float
    requests: int = 0
    errors: int = 0
    charged: int = 0  # nano-USD
    latencies: list[float] = field(default_factory=list)

    def percentile(self, fraction: float) -> float | None:
        """The latency (ms) below which ``fraction`` of the bucket's requests finished."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Timeline:
    step: int
    buckets: list[Bucket]

    @property
    def labels(self) -> list[str]:
        shape = "%m-%d" if self.step >= 86_400 else "%H:%M"
        return [datetime.fromtimestamp(b.start, UTC).strftime(shape) for b in self.buckets]


def step_for(span: float) -> int:
    """The narrowest bucket width that fits ``span`` seconds in ``MAX_BUCKETS`` buckets."""
    return next((s for s in STEPS if span / s <= MAX_BUCKETS), STEPS[-1])


def timeline(rows: Sequence[LedgerRow], now: float) -> Timeline:
    """Requests, errors (status ≥ 400), money charged and latencies per bucket, from the
    oldest row's bucket to now; empty buckets included so gaps show as gaps."""
    if not rows:
        return Timeline(STEPS[0], [])
    oldest = min(row.at for row in rows)
    step = step_for(max(now - oldest, 1.0))
    first = math.floor(oldest / step) * step
    count = min(max(int((now - first) // step) + 1, MIN_BUCKETS), MAX_BUCKETS + 1)
    first = math.floor(now / step) * step - (count - 1) * step
    buckets = [Bucket(first + index * step) for index in range(count)]
    for row in rows:
        index = int((row.at - first) // step)
        if not 0 <= index < count:
            continue
        bucket = buckets[index]
        bucket.requests += 1
        bucket.errors += row.status >= 400
        bucket.charged += row.charged
        bucket.latencies.append(row.latency_ms)
    return Timeline(step, buckets)
