"""Traces in the store, on both engines (the fixtures of ``test_storage``): written with their
ledger row, read back whole, listed by conversation with filters and pages, purged by age."""

from __future__ import annotations

import msgspec

from onemin_relay.gateway.storage import MIGRATIONS, Settlement, Store
from onemin_relay.gateway.trace_store import TRACES_MIGRATION, ToolCallRef, TraceDetail, TraceFilter
from tests.gateway import test_storage
from tests.gateway.test_storage import NOW, ledger_row, new_key

# the same stores as the rest of the store's behaviour tests: SQLite and PostgreSQL
make_store = test_storage.make_store
store = test_storage.store


def detail(conversation: str, at: float = NOW, **fields: object) -> TraceDetail:
    return TraceDetail(conversation_id=conversation, at=at, total_ms=12.5, **fields)  # type: ignore[arg-type]


async def settle(
    store: Store,
    request_id: str,
    conversation: str,
    at: float,
    *,
    key_id: str | None = None,
    model: str = "gpt-4o",
    status: int = 200,
) -> None:
    row = msgspec.structs.replace(
        ledger_row(request_id, key_id=key_id, model=model, at=at + 1, cost=5, credits=7),
        status=status,
        outcome="ok" if status < 400 else "error",
    )
    await store.settle([Settlement(row, key_id=key_id, trace=detail(conversation, at))])


def test_the_traces_table_is_a_migration() -> None:
    assert TRACES_MIGRATION in MIGRATIONS


async def test_a_trace_round_trips_every_field(store: Store) -> None:
    record = await new_key(store, balance=1000)
    row = ledger_row("req_t1", key_id=record.id, cost=3, credits=9, input_tokens=4)
    full = TraceDetail(
        conversation_id="conv-a",
        at=NOW,
        total_ms=40.0,
        user_id="user-1",
        route="fallback",
        parse_ms=0.5,
        policy_ms=1.5,
        ttfb_ms=20.0,
        upstream_id="rec-1",
        tool_calls=(ToolCallRef("call_1", "lookup"),),
        error_message=None,
        request_body='{"a": 1}',
        prompt_body="hi",
        reply_body="hello ✓",
    )
    await store.settle([Settlement(row, key_id=record.id, trace=full)])
    found = await store.trace("req_t1")
    assert found is not None
    assert msgspec.structs.asdict(found) == {
        **msgspec.structs.asdict(full),
        "request_id": "req_t1",
        "key_id": record.id,
        "project": "default",
        "mode": "managed",
        "surface": "openai.chat",
        "status": 200,
        "outcome": "ok",
        "requested_model": "gpt-4o",
        "upstream_model": "gpt-4o",
        "input_tokens": 4,
        "output_tokens": 0,
        "credits": 9,
        "cost": 3,
        "error_code": None,
    }
    assert await store.trace("req_missing") is None
    assert len(await store.ledger(None, 10)) == 1, "the ledger row is written with it"


async def test_a_request_settled_again_replaces_its_trace_but_not_anothers(
    store: Store,
) -> None:
    key = await new_key(store, balance=1000)
    await settle(store, "req_same", "first", NOW, key_id=key.id, status=502)
    await settle(store, "req_same", "second", NOW + 1, key_id=key.id)
    await settle(store, "req_same", "third", NOW + 2, key_id=None, status=418)
    found = await store.trace("req_same")
    assert found is not None
    assert (found.status, found.conversation_id, found.at) == (200, "first", NOW), (
        "the next attempt's outcome, the first's arrival; another caller's id changes nothing"
    )
    assert len(await store.ledger(None, 10)) == 3, "every attempt keeps its ledger row"


async def test_conversations_newest_first_with_their_totals(store: Store) -> None:
    key = await new_key(store, balance=1000)
    await settle(store, "r1", "conv-a", NOW, key_id=key.id, model="gpt-4o")
    await settle(store, "r2", "conv-b", NOW + 10, model="claude")
    await settle(store, "r3", "conv-a", NOW + 20, model="claude", status=502)
    listed = await store.conversations(TraceFilter())
    assert [c.conversation_id for c in listed] == ["conv-a", "conv-b"]
    first = listed[0]
    assert (first.requests, first.errors, first.first_at, first.last_at) == (2, 1, NOW, NOW + 20)
    assert (first.credits, first.keys, first.models) == (14, (key.id,), ("claude", "gpt-4o"))
    assert first.surfaces == ("openai.chat",)
    assert first.cost == 10


async def test_conversation_lists_its_requests_in_order_across_pages(store: Store) -> None:
    for n in range(5):
        await settle(store, f"r{n}", "conv-a", NOW + n)
    await settle(store, "other", "conv-b", NOW + 2.5)
    page = await store.conversation("conv-a", TraceFilter(limit=3))
    assert [t.request_id for t in page] == ["r0", "r1", "r2"]
    rest = await store.conversation("conv-a", TraceFilter(limit=3, after=(page[-1].at, "r2")))
    assert [t.request_id for t in rest] == ["r3", "r4"]


async def test_filters_by_key_model_status_and_time(store: Store) -> None:
    key = await new_key(store, balance=1000)
    await settle(store, "k1", "c1", NOW, key_id=key.id)
    await settle(store, "m1", "c2", NOW + 1, model="claude")
    await settle(store, "s1", "c3", NOW + 2, status=429)

    async def ids(**chosen: object) -> list[str]:
        return [t.request_id for t in await store.traces(TraceFilter(**chosen))]  # type: ignore[arg-type]

    assert await ids() == ["s1", "m1", "k1"]
    assert await ids(key_id=key.id) == ["k1"]
    assert await ids(model="claude") == ["m1"]
    assert await ids(status=429) == ["s1"]
    assert await ids(outcome="error") == ["s1"]
    assert await ids(since=NOW + 1, until=NOW + 2) == ["m1"]
    assert await ids(limit=1, after=(NOW + 2, "s1")) == ["m1"]
    listed = await store.conversations(TraceFilter(model="claude"))
    assert [c.conversation_id for c in listed] == ["c2"]
    paged = await store.conversations(TraceFilter(limit=1, after=(NOW + 2, "c3")))
    assert [c.conversation_id for c in paged] == ["c2"]


async def test_purge_removes_only_older_traces(store: Store) -> None:
    await settle(store, "old", "c", NOW - 100)
    await settle(store, "new", "c", NOW)
    assert await store.purge_traces(NOW - 50) == 1
    assert await store.trace("old") is None
    assert await store.trace("new") is not None
    assert len(await store.ledger(None, 10)) == 2, "the ledger is the money record: kept"
