"""Which model a route sends traffic to, from the evidence gathered so far. Pure math.

Each candidate of a route has a tally of comparisons with the route's incumbent: how often
it was at least as good (a win or a tie) out of how many, labels from the application
weighing more than the judge's verdicts. A candidate takes the traffic when the lower
bound of its win-or-tie rate (Wilson score interval, one-sided, at the route's confidence)
clears the route's quality floor and it has enough samples; of those, the cheapest wins.
Evidence that turns against a candidate pulls its bound below the floor, and the traffic
moves back on the next decision.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Literal, TypeAlias

import msgspec

Verdict: TypeAlias = Literal["win", "tie", "loss"]
JUDGE_WEIGHT = 1.0
LABEL_WEIGHT = 3.0  # an application's own label counts as three judge verdicts


class Tally(msgspec.Struct, frozen=True):
    """A candidate's record against the incumbent: weighted wins-or-ties of a weighted
    total, and how many comparisons stand behind them."""

    good: float = 0.0
    total: float = 0.0
    samples: int = 0

    def add(self, verdict: Verdict, weight: float = JUDGE_WEIGHT) -> Tally:
        good = weight if verdict != "loss" else 0.0
        return Tally(self.good + good, self.total + weight, self.samples + 1)


class Floor(msgspec.Struct, frozen=True):
    """How good a candidate must be shown to be: its win-or-tie rate's lower bound at
    ``confidence`` must reach ``floor``, over at least ``min_samples`` comparisons."""

    floor: float
    confidence: float
    min_samples: int


class Choice(msgspec.Struct, frozen=True):
    model: str
    reason: Literal["evidence", "incumbent"]
    evidence: int  # comparisons behind the decision


def wilson_lower(good: float, total: float, confidence: float) -> float:
    """The lower bound of the one-sided Wilson score interval for ``good`` of ``total``."""
    if total <= 0:
        return 0.0
    z = _z(confidence)
    p = min(1.0, max(0.0, good / total))
    z2 = z * z
    centre = p + z2 / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, (centre - spread) / (1 + z2 / total))


@functools.lru_cache(maxsize=16)
def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(confidence)


def qualifies(tally: Tally, floor: Floor) -> bool:
    return tally.samples >= floor.min_samples and (
        wilson_lower(tally.good, tally.total, floor.confidence) >= floor.floor
    )


def choose(
    incumbent: str,
    cheapest_first: Sequence[str],
    tallies: Mapping[str, Tally],
    floor: Floor,
) -> Choice:
    """The cheapest candidate the evidence clears, else the incumbent."""
    for candidate in cheapest_first:
        tally = tallies.get(candidate)
        if tally is not None and qualifies(tally, floor):
            return Choice(candidate, "evidence", tally.samples)
    seen = sum(tallies[c].samples for c in cheapest_first if c in tallies)
    return Choice(incumbent, "incumbent", seen)
