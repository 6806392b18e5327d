"""The routing policy's math: Wilson bounds, floors, the cheapest qualifying candidate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from onemin_relay.gateway.route_policy import (
    LABEL_WEIGHT,
    Floor,
    Tally,
    choose,
    qualifies,
    wilson_lower,
)

BALANCED = Floor(floor=0.9, confidence=0.95, min_samples=30)
COST_SAVER = Floor(floor=0.8, confidence=0.8, min_samples=10)


def tally(good: int, bad: int) -> Tally:
    result = Tally()
    for _ in range(good):
        result = result.add("tie")
    for _ in range(bad):
        result = result.add("loss")
    return result


def test_wilson_known_value() -> None:
    # 45 of 50 at 95 % one-sided (z = 1.645): about 0.8085
    assert abs(wilson_lower(45, 50, 0.95) - 0.8085) < 0.001
    assert wilson_lower(0, 0, 0.95) == 0.0


@given(
    st.integers(min_value=0, max_value=500),
    st.integers(min_value=1, max_value=500),
    st.floats(min_value=0.5, max_value=0.999),
)
def test_wilson_bound_lies_below_the_observed_rate(good: int, extra: int, conf: float) -> None:
    total = good + extra
    bound = wilson_lower(good, total, conf)
    assert 0.0 <= bound <= good / total + 1e-9


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0.5, max_value=0.99))
def test_more_confidence_means_a_lower_bound(n: int, conf: float) -> None:
    assert wilson_lower(n, n, min(0.999, conf + 0.005)) <= wilson_lower(n, n, conf) + 1e-12


def test_cost_saver_moves_before_balanced() -> None:
    tallies = {"cheap": tally(20, 0)}
    assert choose("dear", ["cheap"], tallies, COST_SAVER).model == "cheap"
    assert choose("dear", ["cheap"], tallies, BALANCED).model == "dear", "too few for balanced"
    tallies = {"cheap": tally(40, 0)}
    decided = choose("dear", ["cheap"], tallies, BALANCED)
    assert (decided.model, decided.reason, decided.evidence) == ("cheap", "evidence", 40)


def test_a_worse_candidate_never_takes_traffic() -> None:
    tallies = {"bad": tally(10, 30)}
    for floor in (BALANCED, COST_SAVER):
        decided = choose("dear", ["bad"], tallies, floor)
        assert (decided.model, decided.reason, decided.evidence) == ("dear", "incumbent", 40)


def test_the_cheapest_qualifying_candidate_wins() -> None:
    tallies = {"cheapest": tally(5, 5), "cheap": tally(30, 0), "mid": tally(30, 0)}
    assert choose("dear", ["cheapest", "cheap", "mid"], tallies, COST_SAVER).model == "cheap"


def test_negative_labels_move_traffic_back() -> None:
    good = tally(20, 0)
    assert qualifies(good, COST_SAVER)
    for _ in range(3):
        good = good.add("loss", LABEL_WEIGHT)
    assert not qualifies(good, COST_SAVER), "three bad labels weigh as nine verdicts"
    assert choose("dear", ["cheap"], {"cheap": good}, COST_SAVER).model == "dear"
