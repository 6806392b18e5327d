"""The gateway store's behaviour, run against both engines: SQLite (a file per test) and
PostgreSQL (a database per test on the local server, which must be running: `.ci/run`
starts it).

The money tests are the point: a hold is taken only while the balance covers it, even with
hundreds of calls racing from one or two processes' worth of connections; settling charges
and releases in one step and never overdraws; a swept hold is released once, on the record.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest

from onemin_relay.gateway.keys import KeyRecord, issue
from onemin_relay.gateway.postgres_store import PostgresStore
from onemin_relay.gateway.sqlite_store import SqliteStore
from onemin_relay.gateway.storage import (
    MIGRATIONS,
    Hold,
    LedgerRow,
    Remembered,
    Settlement,
    Store,
    UsageRow,
)

ADMIN_URLS = (
    [os.environ["ONEMIN_TEST_POSTGRES_URL"]]
    if os.environ.get("ONEMIN_TEST_POSTGRES_URL")
    else [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "postgresql://root@127.0.0.1:5432/postgres",
    ]
)
DAY = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
NOW = DAY + 100.0

StoreFactory = Callable[..., Awaitable[Store]]


async def _admin_connection() -> tuple[asyncpg.Connection, str]:
    reasons = []
    for url in ADMIN_URLS:
        try:
            return await asyncpg.connect(url, timeout=5), url
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            reasons.append(f"{url}: {error}")
    pytest.fail("no PostgreSQL server to test against: " + "; ".join(reasons))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores on one fresh database (more than one act like separate processes)."""
    opened: list[Store] = []
    admin: asyncpg.Connection | None = None
    admin_url = ""
    database = f"onemin_test_{secrets.token_hex(6)}"
    if request.param == "postgres":
        admin, admin_url = await _admin_connection()
        await admin.execute(f"CREATE DATABASE {database}")

    async def make(*, migrate: bool = True, max_size: int = 10) -> Store:
        store: Store
        if admin is None:
            store = SqliteStore(str(tmp_path / "gateway.db"))
        else:
            url = _with_database(admin_url, database)
            store = PostgresStore(url, min_size=1, max_size=max_size)
        await store.open()
        opened.append(store)
        if migrate:
            await store.migrate()
        return store

    try:
        yield make
    finally:
        for store in opened:
            await store.close()
        if admin is not None:
            await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            await admin.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return await make_store()


# -- helpers ----------------------------------------------------------------------------------


async def new_key(store: Store, balance: int = 1000, **fields: object) -> KeyRecord:
    record = issue("managed", "test key", balance=balance).record
    if fields:
        record = msgspec.structs.replace(record, **fields)
    await store.add_key(record)
    return record


def hold(
    key_id: str,
    amount: int,
    *,
    owner: str = "process-a",
    expires_at: float = NOW + 60,
    request_id: str | None = None,
    model: str = "gpt-4o",
) -> Hold:
    return Hold(
        id="hold_" + secrets.token_hex(8),
        key_id=key_id,
        amount=amount,
        owner=owner,
        created_at=NOW,
        expires_at=expires_at,
        request_id=request_id or "req_" + secrets.token_hex(4),
        project="default",
        surface="openai.chat",
        model=model,
    )


def ledger_row(
    request_id: str,
    *,
    key_id: str | None = None,
    cost: int = 0,
    at: float = NOW,
    model: str = "gpt-4o",
    input_tokens: int = 0,
    output_tokens: int = 0,
    credits: int = 0,
) -> LedgerRow:
    return LedgerRow(
        at=at,
        request_id=request_id,
        key_id=key_id,
        project="default" if key_id else None,
        mode="managed" if key_id else "passthrough",
        surface="openai.chat",
        requested_model=model,
        upstream_model=model,
        status=200,
        outcome="ok",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        credits=credits,
        cost=cost,
    )


async def current(store: Store, key_id: str) -> KeyRecord:
    record = await store.key(key_id)
    assert record is not None
    return record


# -- schema -----------------------------------------------------------------------------------


async def test_migrate_is_idempotent_and_returns_the_version(make_store: StoreFactory) -> None:
    first, second = await make_store(migrate=False), await make_store(migrate=False)
    versions = await asyncio.gather(first.migrate(), second.migrate())
    assert list(versions) == [len(MIGRATIONS), len(MIGRATIONS)], "two at once both succeed"
    assert await first.migrate() == len(MIGRATIONS) >= 1
    assert await first.keys() == [], "the schema is in place and empty"


# -- keys -------------------------------------------------------------------------------------


async def test_keys_add_get_by_hash_and_list(store: Store) -> None:
    older = await new_key(store, balance=5, created_at=NOW - 10, models=("gpt-4o*", "claude-*"))
    newer = await new_key(store, balance=7, created_at=NOW, rpm=60, tpm=1000, expires_at=NOW + 9)
    assert await store.key(older.id) == older
    assert await store.key_by_hash(newer.hash) == newer
    assert (await current(store, older.id)).models == ("gpt-4o*", "claude-*")
    assert await store.key("key_missing") is None
    assert await store.key_by_hash("0" * 64) is None
    assert await store.keys() == [older, newer], "listed oldest first"


async def test_update_key_changes_fields_and_round_trips_models(store: Store) -> None:
    record = await new_key(store)
    updated = await store.update_key(
        record.id, {"name": "renamed", "models": ["gpt-4o", "o3-*"], "rpm": 5, "project": "p2"}
    )
    assert updated is not None
    assert (updated.name, updated.models, updated.rpm, updated.project) == (
        "renamed",
        ("gpt-4o", "o3-*"),
        5,
        "p2",
    )
    assert await store.key(record.id) == updated, "the change is stored"
    cleared = await store.update_key(record.id, {"models": []})
    assert cleared is not None and cleared.models == ()
    assert await store.update_key("key_missing", {"name": "x"}) is None
    with pytest.raises(ValueError):
        await store.update_key(record.id, {"balance": 10**12})
    assert (await current(store, record.id)).balance == record.balance


async def test_top_up_and_revoke(store: Store) -> None:
    record = await new_key(store, balance=1000)
    topped = await store.top_up(record.id, 250)
    assert topped is not None and topped.balance == 1250
    assert (await current(store, record.id)).balance == 1250
    assert await store.top_up("key_missing", 5) is None
    assert record.usable_at(NOW)
    revoked = await store.update_key(record.id, {"revoked_at": NOW})
    assert revoked is not None and revoked.revoked_at == NOW
    assert not (await current(store, record.id)).usable_at(NOW + 1)


# -- holds ------------------------------------------------------------------------------------


async def test_reserve_up_to_the_balance_and_no_further(store: Store) -> None:
    record = await new_key(store, balance=100)
    assert await store.reserve(hold(record.id, 60)) == (True, None)
    after = await current(store, record.id)
    assert (after.balance, after.reserved) == (100, 60)
    taken, refused = await store.reserve(hold(record.id, 50))
    assert not taken, "50 more than the 40 left is refused"
    assert refused is not None and (refused.balance, refused.reserved) == (100, 60)
    assert await store.reserve(hold(record.id, 40)) == (True, None)
    after = await current(store, record.id)
    assert after.reserved == 100 and after.available == 0
    taken, _ = await store.reserve(hold(record.id, 1))
    assert not taken
    assert await store.reserve(hold("key_missing", 1)) == (False, None)


async def test_concurrent_reserves_never_overdraw(make_store: StoreFactory) -> None:
    store = await make_store(max_size=20)
    record = await new_key(store, balance=1000)
    results = await asyncio.gather(*(store.reserve(hold(record.id, 10)) for _ in range(200)))
    assert sum(taken for taken, _ in results) == 100
    assert (await current(store, record.id)).reserved == 1000
    assert await store.sweep(NOW + 3600) == 100, "exactly one hold row per reservation taken"
    assert (await current(store, record.id)).reserved == 0


async def test_holds_arriving_together_are_taken_in_order_each_as_if_alone(
    store: Store,
) -> None:
    """Both stores take holds that queue up during a transaction in the next one; each is
    still judged on what those before it left, and a refused one sees that key as it was."""
    small, large = await new_key(store, balance=100), await new_key(store, balance=1000)
    amounts = [(small.id, 60), (large.id, 500), (small.id, 50), (small.id, 40), (large.id, 600)]
    amounts += [("key_missing", 1), (large.id, 500)]
    results = await asyncio.gather(*(store.reserve(hold(key, n)) for key, n in amounts))
    assert [taken for taken, _ in results] == [True, True, False, True, False, False, True]
    refused_small, refused_large = results[2][1], results[4][1]
    assert refused_small is not None and refused_small.reserved == 60
    assert refused_large is not None and refused_large.reserved == 500
    assert results[5][1] is None
    assert (await current(store, small.id)).reserved == 100
    assert (await current(store, large.id)).reserved == 1000
    assert await store.sweep(NOW + 3600) == 4, "one hold row per hold taken"


async def test_a_hold_whose_caller_left_while_it_was_taken_is_released_once(
    store: Store,
) -> None:
    """A caller that leaves while its hold is being taken settles it as refused at once
    (as the gateway does): whichever reaches the store first, the hold ends up released,
    exactly once, and the other caller's hold is untouched."""
    record = await new_key(store, balance=100)
    staying, leaving = hold(record.id, 30), hold(record.id, 50)
    first = asyncio.create_task(store.reserve(staying))
    second = asyncio.create_task(store.reserve(leaving))
    await asyncio.sleep(0.001)  # both are taken, in one transaction or in turn
    second.cancel()
    refusal = ledger_row(leaving.request_id, key_id=record.id, cost=0)
    await store.settle([Settlement(refusal, key_id=record.id, hold_id=leaving.id)])
    assert await first == (True, None)
    await asyncio.gather(second, return_exceptions=True)
    for _ in range(200):  # a release of an abandoned hold runs in the background
        if (await current(store, record.id)).reserved == 30:
            break
        await asyncio.sleep(0.01)
    after = await current(store, record.id)
    assert (after.balance, after.reserved) == (100, 30)
    assert await store.sweep(NOW + 3600) == 1, "only the staying hold is left"
    assert (await current(store, record.id)).reserved == 0


async def test_concurrent_reserves_from_two_stores_never_overdraw(
    make_store: StoreFactory,
) -> None:
    first, second = await make_store(max_size=10), await make_store(max_size=10)
    record = await new_key(first, balance=1000)
    calls = [(first if n % 2 else second).reserve(hold(record.id, 10)) for n in range(200)]
    results = await asyncio.gather(*calls)
    assert sum(taken for taken, _ in results) == 100
    assert (await current(second, record.id)).reserved == 1000
    assert (await current(first, record.id)).reserved == 1000
    assert await first.sweep(NOW + 3600) == 100


async def test_renew_extends_only_the_owners_holds(store: Store) -> None:
    record = await new_key(store, balance=1000)
    mine = [hold(record.id, 10, owner="a", expires_at=NOW) for _ in range(2)]
    theirs = hold(record.id, 25, owner="b", expires_at=NOW)
    for each in (*mine, theirs):
        assert (await store.reserve(each))[0]
    assert await store.renew("a", NOW + 1000) == 2
    assert await store.renew("nobody", NOW + 1000) == 0
    assert await store.sweep(NOW + 500) == 1, "only b's hold lapsed"
    assert (await current(store, record.id)).reserved == 20
    [row] = await store.ledger(record.id, 10)
    assert row.request_id == theirs.request_id


async def test_sweep_releases_only_expired_holds_on_the_record(store: Store) -> None:
    record = await new_key(store, balance=1000)
    lapsed = hold(record.id, 300, expires_at=NOW - 1, model="claude-sonnet-4")
    live = hold(record.id, 200, expires_at=NOW + 60)
    for each in (lapsed, live):
        assert (await store.reserve(each))[0]
    assert await store.sweep(NOW) == 1
    after = await current(store, record.id)
    assert (after.balance, after.reserved, after.spent) == (1000, 200, 0)
    [row] = await store.ledger(record.id, 10)
    assert (row.request_id, row.outcome, row.error_code) == (
        lapsed.request_id,
        "unsettled",
        "unsettled",
    )
    assert (row.key_id, row.upstream_model, row.charged, row.at) == (
        record.id,
        "claude-sonnet-4",
        0,
        NOW,
    )
    assert await store.sweep(NOW) == 0, "swept once"
    assert (await current(store, record.id)).reserved == 200


# -- settling ---------------------------------------------------------------------------------


async def test_settle_charges_and_releases_in_one_step(store: Store) -> None:
    record = await new_key(store, balance=1000)
    held = hold(record.id, 300)
    assert (await store.reserve(held))[0]
    row = ledger_row(held.request_id, key_id=record.id, cost=120, input_tokens=7)
    await store.settle([Settlement(row, key_id=record.id, hold_id=held.id)])
    after = await current(store, record.id)
    assert (after.balance, after.reserved, after.spent) == (880, 0, 120)
    [stored] = await store.ledger(record.id, 10)
    assert stored == msgspec.structs.replace(row, charged=120)


async def test_settle_never_overdraws(store: Store) -> None:
    record = await new_key(store, balance=100)
    held = hold(record.id, 50)
    assert (await store.reserve(held))[0]
    await store.settle(
        [Settlement(ledger_row("r1", key_id=record.id, cost=500), record.id, held.id)]
    )
    after = await current(store, record.id)
    assert (after.balance, after.reserved, after.spent) == (0, 0, 100)
    [row] = await store.ledger(record.id, 1)
    assert (row.cost, row.charged) == (500, 100), "charged only what was there"


async def test_settle_leaves_other_holds_covered(store: Store) -> None:
    record = await new_key(store, balance=100)
    first, other = hold(record.id, 30), hold(record.id, 50)
    for each in (first, other):
        assert (await store.reserve(each))[0]
    await store.settle(
        [Settlement(ledger_row("r1", key_id=record.id, cost=500), record.id, first.id)]
    )
    after = await current(store, record.id)
    assert (after.balance, after.reserved, after.spent) == (50, 50, 50)
    assert after.available == 0 and after.balance >= after.reserved


async def test_a_batch_settles_in_order(store: Store) -> None:
    record = await new_key(store, balance=100)
    other = await new_key(store, balance=10)
    batch = [
        Settlement(ledger_row("r1", key_id=record.id, cost=70), record.id),
        Settlement(ledger_row("r2", cost=999)),  # no key: recorded, nothing charged
        Settlement(ledger_row("r3", key_id=other.id, cost=4), other.id),
        Settlement(ledger_row("r4", key_id=record.id, cost=70), record.id),
    ]
    await store.settle(batch)
    charged = {row.request_id: row.charged for row in await store.ledger(None, 10)}
    assert charged == {"r1": 70, "r2": 0, "r3": 4, "r4": 30}
    assert (await current(store, record.id)).balance == 0
    assert (await current(store, other.id)).balance == 6
    await store.settle([])
    assert len(await store.ledger(None, 10)) == 4


async def test_settling_a_swept_hold_records_the_row_and_releases_once(store: Store) -> None:
    record = await new_key(store, balance=1000)
    held = hold(record.id, 300, expires_at=NOW - 1)
    keep = hold(record.id, 100)
    for each in (held, keep):
        assert (await store.reserve(each))[0]
    assert await store.sweep(NOW) == 1
    row = ledger_row(held.request_id, key_id=record.id, cost=40)
    await store.settle([Settlement(row, key_id=record.id, hold_id=held.id)])
    after = await current(store, record.id)
    assert (after.balance, after.reserved, after.spent) == (960, 100, 40)
    outcomes = [(r.request_id, r.outcome, r.charged) for r in await store.ledger(record.id, 10)]
    assert outcomes == [(held.request_id, "ok", 40), (held.request_id, "unsettled", 0)]


# -- reading the ledger -----------------------------------------------------------------------


async def test_usage_by_key_model_and_day(store: Store) -> None:
    alice = await new_key(store, balance=10_000)
    bob = await new_key(store, balance=10_000)
    next_day = DAY + 2 * 3600  # past midnight UTC
    rows = [
        ledger_row("a1", key_id=alice.id, cost=100, input_tokens=10, output_tokens=1, credits=5),
        ledger_row("a2", key_id=alice.id, cost=50, model="o3", at=next_day, input_tokens=20),
        ledger_row("b1", key_id=bob.id, cost=7, output_tokens=3, credits=2),
        ledger_row("p1", cost=1000, model="o3", at=next_day, input_tokens=1),
        ledger_row("old", key_id=alice.id, cost=1, at=DAY - 86_400),
    ]
    await store.settle([Settlement(r, key_id=r.key_id) for r in rows])
    by_key = await store.usage("key", DAY)
    assert sorted(by_key, key=lambda u: u.group) == sorted(
        [
            UsageRow(alice.id, 2, 30, 1, 5, 150),
            UsageRow(bob.id, 1, 0, 3, 2, 7),
            UsageRow("-", 1, 1, 0, 0, 0),
        ],
        key=lambda u: u.group,
    )
    assert await store.usage("model", DAY) == [
        UsageRow("gpt-4o", 2, 10, 4, 7, 107),
        UsageRow("o3", 2, 21, 0, 0, 50),
    ]
    assert await store.usage("day", DAY, key_id=alice.id) == [
        UsageRow("2023-11-14", 1, 10, 1, 5, 100),
        UsageRow("2023-11-15", 1, 20, 0, 0, 50),
    ]
    assert await store.usage("day", 0, key_id=alice.id) == [
        UsageRow("2023-11-13", 1, 0, 0, 0, 1),
        UsageRow("2023-11-14", 1, 10, 1, 5, 100),
        UsageRow("2023-11-15", 1, 20, 0, 0, 50),
    ]
    assert await store.usage("key", next_day + 1) == []


async def test_ledger_newest_first_with_a_limit(store: Store) -> None:
    record = await new_key(store, balance=1000)
    for n in range(5):
        row = ledger_row(f"r{n}", key_id=record.id, cost=1)
        await store.settle([Settlement(row, record.id)])
    await store.settle([Settlement(ledger_row("anon"))])
    assert [r.request_id for r in await store.ledger(record.id, 3)] == ["r4", "r3", "r2"]
    assert [r.request_id for r in await store.ledger(None, 2)] == ["anon", "r4"]
    assert len(await store.ledger(None, 100)) == 6
    assert await store.ledger("key_missing", 10) == []


async def test_ledger_rows_round_trip_every_field(store: Store) -> None:
    row = LedgerRow(
        at=NOW + 0.25,
        request_id="req_full",
        key_id=None,
        project=None,
        mode="passthrough",
        surface="anthropic.messages",
        requested_model="claude-3-5-sonnet-latest",
        upstream_model="claude-sonnet-4",
        status=502,
        outcome="error",
        input_tokens=11,
        output_tokens=22,
        credits=33,
        cost=44,
        charged=0,
        latency_ms=12.5,
        ttfb_ms=3.25,
        conversation_id="conv_1",
        error_code="upstream_error",
    )
    await store.settle([Settlement(row)])
    assert await store.ledger(None, 1) == [row]


# -- idempotency ------------------------------------------------------------------------------


async def test_remember_claims_then_reports_running_then_done(store: Store) -> None:
    assert await store.remember("h1", "k", NOW) is None
    assert await store.remember("h1", "k", NOW) == Remembered("running")
    assert await store.remember("h2", "k", NOW) is None, "scoped to its holder"
    await store.record_outcome("h1", "k", 201, "application/json", b'{"ok":true}')
    assert await store.remember("h1", "k", NOW + 1) == Remembered(
        "done", 201, "application/json", b'{"ok":true}'
    )
    await store.forget("h1", "k")
    assert await store.remember("h1", "k", NOW + 2) is None, "forgotten, free again"
    assert await store.remember("h2", "k", NOW) == Remembered("running")


async def test_forget_before_drops_only_older_claims(store: Store) -> None:
    assert await store.remember("h", "old", NOW - 100) is None
    assert await store.remember("h", "new", NOW) is None
    assert await store.forget_before(NOW - 50) == 1
    assert await store.forget_before(NOW - 50) == 0
    assert await store.remember("h", "old", NOW) is None, "the old claim was dropped"
    assert await store.remember("h", "new", NOW) == Remembered("running")


async def test_a_claim_running_past_its_lease_is_taken_over_but_a_result_is_kept(
    store: Store,
) -> None:
    assert await store.remember("h", "dead", NOW - 1000) is None
    assert await store.remember("h", "dead", NOW, stale_before=NOW - 2000) == Remembered(
        "running"
    ), "still inside its lease"
    assert await store.remember("h", "dead", NOW, stale_before=NOW - 500) is None, "taken over"
    assert await store.remember("h", "dead", NOW) == Remembered("running")
    assert await store.remember("h", "done", NOW - 1000) is None
    await store.record_outcome("h", "done", 200, "application/json", b"{}")
    kept = await store.remember("h", "done", NOW, stale_before=NOW - 500)
    assert kept == Remembered("done", 200, "application/json", b"{}")
