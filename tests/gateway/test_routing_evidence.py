"""Routing's evidence and routed ledger rows, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from onemin_relay.gateway.route_policy import Tally
from onemin_relay.gateway.storage import MIGRATIONS, LedgerRow, Settlement, Store
from tests.gateway.test_storage import NOW, make_store, store

__all__ = ["make_store", "store"]  # the fixtures, for both engines


async def test_evidence_adds_up_per_project_route_kind_and_candidate(store: Store) -> None:
    await store.add_evidence("default", "balanced", "chat", "cheap", Tally(1.0, 1.0, 1))
    await store.add_evidence("default", "balanced", "chat", "cheap", Tally(0.0, 3.0, 1))
    await store.add_evidence("default", "balanced", "tools", "cheap", Tally(1.0, 1.0, 1))
    await store.add_evidence("other", "balanced", "chat", "cheap", Tally(1.0, 1.0, 1))
    rows = await store.evidence("default")
    assert [(r.kind, r.candidate, r.tally) for r in rows] == [
        ("chat", "cheap", Tally(1.0, 4.0, 2)),
        ("tools", "cheap", Tally(1.0, 1.0, 1)),
    ]
    assert len(await store.evidence()) == 3


async def test_routed_ledger_rows_keep_their_route(store: Store) -> None:
    account = "route=onemin/balanced; model=cheap; reason=evidence; evidence=40"

    def row(status: int, route: str | None, model: str) -> Settlement:
        return Settlement(
            LedgerRow(
                at=NOW,
                request_id="req-1",
                key_id=None,
                project="default",
                mode="byok",
                surface="openai.chat",
                requested_model="onemin/balanced",
                upstream_model=model,
                status=status,
                outcome="ok" if status < 400 else "error",
                input_tokens=10,
                output_tokens=20,
                credits=30,
                route=route,
            )
        )

    await store.settle([row(502, account, "dear"), row(200, account, "cheap")])
    await store.settle([row(200, None, "plain")])
    assert await store.routed_rows("req-1") == [
        ("default", account, 502),
        ("default", account, 200),
    ]
    assert [r.route for r in await store.ledger(None, 10)].count(account) == 2
    usage = await store.routed_usage(NOW - 1)
    assert usage == [
        (account, "dear", 10, 20, 30, 502, "byok"),
        (account, "cheap", 10, 20, 30, 200, "byok"),
    ]
    assert await store.migrate() == len(MIGRATIONS)
