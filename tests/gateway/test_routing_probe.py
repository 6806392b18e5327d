"""A route account (``x-onemin-route``, the ledger's route) names models a client may have
made up: a failed fallback's name never breaks the header or forges a field."""

from __future__ import annotations

import contextvars

from onemin_relay.gateway.routing import RoutePlan, parse_account
from onemin_relay.gateway.storage import Store
from tests.gateway.test_storage import make_store, store

__all__ = ["make_store", "store"]  # the fixtures, for both engines


def test_a_made_up_model_name_cannot_break_or_forge_the_account() -> None:
    plan = RoutePlan(("x", "gpt-4o"), "onemin/auto", "cheapest", incumbent="gpt-4o")
    plan.tried.append("nope\r\nX-Evil: 1; model=forged; incumbent=forged")
    # chose() sets this request's route header: in a context of its own, so that a relay
    # started later in this process does not inherit it
    text = contextvars.Context().run(plan.chose, "gpt-4o" + "é" * 3)
    assert all(" " <= ch <= "~" for ch in text), text
    fields = parse_account(text)
    assert fields["model"].startswith("gpt-4o") and fields["incumbent"] == "gpt-4o", fields
    assert "forged" not in fields.values()


def test_a_long_made_up_name_is_cut() -> None:
    plan = RoutePlan(("x", "gpt-4o"), "fallbacks", "asked")
    plan.tried.extend(["n" * 5000, "m" * 5000])
    assert len(plan.header("gpt-4o")) < 400


async def test_an_answer_takes_one_label(store: Store) -> None:
    assert await store.add_label("default", "req-1")
    assert not await store.add_label("default", "req-1")
    assert not await store.add_label("other", "req-1")
    assert await store.add_label("default", "req-2")
