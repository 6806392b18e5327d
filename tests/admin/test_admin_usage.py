"""Usage and the ledger through the admin API: settlements read back in dollars and ISO
times, grouped by key, model and day; and a managed key's real call, charged and recorded."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from onemin_relay.gateway.keys import usd_to_nanos
from onemin_relay.gateway.storage import LedgerRow, Settlement
from tests.admin.conftest import CHAT, Relay, create, is_iso_utc


def _row(key_id: str, model: str, at: float, cost_usd: float, tokens: int) -> LedgerRow:
    return LedgerRow(
        at=at,
        request_id=uuid.uuid4().hex,
        key_id=key_id,
        project="default",
        mode="managed",
        surface="/v1/chat/completions",
        requested_model=model,
        upstream_model=model,
        status=200,
        outcome="ok",
        input_tokens=tokens,
        output_tokens=2 * tokens,
        credits=10 * tokens,
        cost=usd_to_nanos(cost_usd),
        latency_ms=12.5,
    )


def test_usage_and_ledger_read_back_settlements(admin: Relay) -> None:
    key = create(admin, balance_usd=1)
    model_a, model_b = f"model-a-{uuid.uuid4().hex[:6]}", f"model-b-{uuid.uuid4().hex[:6]}"
    now = time.time()
    rows = [
        _row(key["id"], model_a, now - 2, 0.25, 100),
        _row(key["id"], model_b, now - 1, 0.5, 10),
        _row(key["id"], model_a, now, 0.125, 1),
    ]
    admin.run(admin.store.settle([Settlement(row, key_id=key["id"]) for row in rows]))

    status, ledger = admin.call("GET", f"/admin/v1/ledger?key_id={key['id']}")
    assert status == 200 and ledger["object"] == "list"
    assert [r["request_id"] for r in ledger["data"]] == [r.request_id for r in reversed(rows)]
    newest = ledger["data"][0]
    assert "cost" not in newest and "charged" not in newest
    assert newest["cost_usd"] == newest["charged_usd"] == 0.125
    assert newest["upstream_model"] == model_a and newest["input_tokens"] == 1
    assert is_iso_utc(newest["at"])
    assert abs(datetime.fromisoformat(newest["at"]).timestamp() - now) < 1
    status, one = admin.call("GET", f"/admin/v1/ledger?key_id={key['id']}&limit=1")
    assert status == 200 and len(one["data"]) == 1

    status, by_key = admin.call("GET", f"/admin/v1/usage?key_id={key['id']}")
    assert status == 200 and by_key["group_by"] == "key" and is_iso_utc(by_key["since"])
    assert by_key["data"] == [
        {
            "group": key["id"],
            "requests": 3,
            "input_tokens": 111,
            "output_tokens": 222,
            "credits": 1110,
            "charged_usd": 0.875,
        }
    ]
    status, by_model = admin.call("GET", f"/admin/v1/usage?group_by=model&key_id={key['id']}")
    assert {r["group"]: r["requests"] for r in by_model["data"]} == {model_a: 2, model_b: 1}
    status, by_day = admin.call("GET", f"/admin/v1/usage?group_by=day&key_id={key['id']}")
    assert status == 200 and sum(r["requests"] for r in by_day["data"]) == 3
    assert all(len(r["group"]) == 10 for r in by_day["data"]), "YYYY-MM-DD"
    later = int(now) + 3600
    status, none = admin.call("GET", f"/admin/v1/usage?since={later}&key_id={key['id']}")
    assert status == 200 and none["data"] == []
    in_paris = datetime.fromtimestamp(now - 60, timezone(timedelta(hours=2))).isoformat()
    status, offset = admin.call("GET", f"/admin/v1/usage?since={in_paris}&key_id={key['id']}")
    assert status == 200 and offset["data"][0]["requests"] == 3, "unencoded '+' still an offset"

    shown = admin.call("GET", f"/admin/v1/keys/{key['id']}")[1]
    assert shown["spent_usd"] == 0.875 and shown["balance_usd"] == 0.125


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("usage?group_by=week", "group_by"),
        ("usage?since=yesterday", "since"),
        ("ledger?limit=0", "limit"),
        ("ledger?limit=1001", "limit"),
        ("ledger?limit=ten", "limit"),
    ],
)
def test_usage_and_ledger_reject_bad_queries(admin: Relay, query: str, param: str) -> None:
    status, answer = admin.call("GET", f"/admin/v1/{query}")
    assert status == 400, answer
    assert answer["error"]["param"] == param


def test_usage_and_ledger_defaults(admin: Relay) -> None:
    status, usage = admin.call("GET", "/admin/v1/usage")
    assert status == 200 and usage["object"] == "list" and usage["group_by"] == "key"
    since = datetime.fromisoformat(usage["since"]).timestamp()
    assert abs(since - (time.time() - 30 * 86_400)) < 60
    assert isinstance(usage["data"], list)
    status, ledger = admin.call("GET", "/admin/v1/ledger?limit=1000")
    assert status == 200 and isinstance(ledger["data"], list)


def test_a_managed_call_shows_in_the_ledger_usage_and_balance(admin: Relay) -> None:
    key = create(admin, balance_usd=1)
    status, reply = admin.call("POST", "/v1/chat/completions", CHAT, token=key["key"])
    assert status == 200, reply
    admin.flush_ledger()
    status, ledger = admin.call("GET", f"/admin/v1/ledger?key_id={key['id']}")
    assert status == 200 and len(ledger["data"]) == 1
    row = ledger["data"][0]
    assert (row["mode"], row["status"], row["outcome"]) == ("managed", 200, "ok")
    assert row["key_id"] == key["id"] and row["charged_usd"] > 0
    shown = admin.call("GET", f"/admin/v1/keys/{key['id']}")[1]
    assert shown["spent_usd"] == row["charged_usd"]
    assert shown["balance_usd"] == pytest.approx(1 - row["charged_usd"])
    assert shown["reserved_usd"] == 0.0
    usage = admin.call("GET", f"/admin/v1/usage?key_id={key['id']}")[1]
    assert usage["data"][0]["requests"] == 1
    assert usage["data"][0]["charged_usd"] == row["charged_usd"]
