"""Request ids: unique, unguessable from one another, and in the order they were issued."""

from __future__ import annotations

import itertools
import re
import time

from onemin_relay.core.ids import unguessable_id, unique_id


def test_request_ids_are_unique_and_shaped() -> None:
    ids = [unguessable_id("req_") for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"req_[0-9a-f]{28}", one) for one in ids)


def test_request_ids_sort_by_the_time_they_were_issued() -> None:
    earlier = [unguessable_id() for _ in range(100)]
    time.sleep(0.003)
    later = [unguessable_id() for _ in range(100)]
    assert max(earlier) < min(later)


def test_the_part_after_the_time_does_not_follow_from_the_last_id() -> None:
    secrets = [unguessable_id()[12:] for _ in range(2_000)]
    # a counter would share its leading digits from one id to the next; a keyed hash does not
    assert len({one[:4] for one in secrets}) > 1_000
    assert not any(b == format(int(a, 16) + 1, "016x") for a, b in itertools.pairwise(secrets))


def test_unique_ids_count_on_within_a_process() -> None:
    first, second = unique_id("x"), unique_id("x")
    assert first != second and first[:17] == second[:17]
