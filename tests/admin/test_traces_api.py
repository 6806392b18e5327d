"""The admin API's conversations and traces on a live relay: listed newest first with their
totals, filtered, a page at a time, one conversation in order, one trace; mistakes are 400s
naming the parameter, unknown ids 404s, and nothing answers without the admin token.
(Traces made by real requests through each protocol are in tests/sdk/test_conversations.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from onemin_relay.gateway.storage import LedgerRow, Settlement
from onemin_relay.gateway.trace_store import ToolCallRef, TraceDetail
from tests.admin.conftest import TOKEN, Relay, serve

START = time.time() - 3600  # an hour ago, inside the default window


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """A relay whose store holds three conversations (settled directly, as the ledger would)."""
    for relay in serve(tmp_path_factory.mktemp("traces-data"), admin_token=TOKEN):
        settlements = [
            _settled("req_a1", "conv-a", START, model="gpt-4o"),
            _settled("req_b1", "conv-b", START + 10, model="claude-3-haiku", status=429),
            _settled("req_a2", "conv-a", START + 20, model="claude-3-haiku"),
            _settled("req_c1", "conv-c", START + 30, model="gpt-4o", key_id="key_x"),
        ]
        relay.run(relay.store.settle(settlements))
        yield relay


def _settled(
    request_id: str,
    conversation: str,
    at: float,
    *,
    model: str,
    status: int = 200,
    key_id: str | None = None,
) -> Settlement:
    row = LedgerRow(
        at=at + 1,
        request_id=request_id,
        key_id=key_id,
        project="default" if key_id else None,
        mode="byok",
        surface="openai.chat",
        requested_model=model,
        upstream_model=model,
        status=status,
        outcome="ok" if status < 400 else "refused",
        input_tokens=3,
        output_tokens=4,
        credits=10,
        error_code="rate_limited" if status >= 400 else None,
    )
    detail = TraceDetail(
        conversation_id=conversation,
        at=at,
        total_ms=900.0,
        user_id="u-1",
        parse_ms=0.25,
        policy_ms=1.5,
        ttfb_ms=300.0,
        tool_calls=(ToolCallRef("call_1", "lookup"),),
        error_message="slow down" if status >= 400 else None,
    )
    return Settlement(row, trace=detail)


def ids(items: list[dict[str, Any]], field: str) -> list[str]:
    return [item[field] for item in items]


def test_conversations_newest_first_with_totals(seeded: Relay) -> None:
    status, body = seeded.call("GET", "/admin/v1/conversations")
    assert status == 200, body
    assert ids(body["data"], "conversation_id") == ["conv-c", "conv-a", "conv-b"]
    conv_a = body["data"][1]
    assert conv_a["requests"] == 2 and conv_a["errors"] == 0
    assert conv_a["models"] == ["claude-3-haiku", "gpt-4o"]
    assert conv_a["users"] == ["u-1"] and conv_a["credits"] == 20
    assert conv_a["first_timestamp"] == START and conv_a["last_timestamp"] == START + 20
    assert body["has_more"] is False and body["next_cursor"] is None


def test_conversations_page_by_cursor(seeded: Relay) -> None:
    seen: list[str] = []
    path = "/admin/v1/conversations?limit=2"
    for _ in range(3):
        status, body = seeded.call("GET", path)
        assert status == 200, body
        seen += ids(body["data"], "conversation_id")
        if not body["has_more"]:
            break
        path = f"/admin/v1/conversations?limit=2&cursor={body['next_cursor']}"
    assert seen == ["conv-c", "conv-a", "conv-b"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("key_id=key_x", ["conv-c"]),
        ("model=claude-3-haiku", ["conv-a", "conv-b"]),
        ("status=429", ["conv-b"]),
        ("status=refused", ["conv-b"]),
        (f"since={START + 5:.0f}&until={START + 25:.0f}", ["conv-a", "conv-b"]),
    ],
)
def test_conversations_filtered(seeded: Relay, query: str, expected: list[str]) -> None:
    status, body = seeded.call("GET", f"/admin/v1/conversations?{query}")
    assert status == 200, body
    assert ids(body["data"], "conversation_id") == expected


def test_one_conversation_in_order_and_one_trace(seeded: Relay) -> None:
    status, body = seeded.call("GET", "/admin/v1/conversations/conv-a")
    assert status == 200, body
    assert ids(body["data"], "request_id") == ["req_a1", "req_a2"]
    status, trace = seeded.call("GET", "/admin/v1/requests/req_b1")
    assert status == 200, trace
    assert trace["conversation_id"] == "conv-b" and trace["status"] == 429
    assert trace["error"] == {"code": "rate_limited", "message": "slow down"}
    assert trace["timings"] == {
        "parse_ms": 0.25,
        "policy_ms": 1.5,
        "upstream_first_byte_ms": 300.0,
        "total_ms": 900.0,
    }
    assert trace["tool_calls"] == [{"id": "call_1", "name": "lookup"}]
    assert trace["bodies"] is None, "nothing captured at the default level"


def test_requests_newest_first_and_filtered(seeded: Relay) -> None:
    status, body = seeded.call("GET", "/admin/v1/requests?model=gpt-4o")
    assert status == 200, body
    assert ids(body["data"], "request_id") == ["req_c1", "req_a1"]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/admin/v1/conversations?limit=0", "limit"),
        ("/admin/v1/conversations?limit=x", "limit"),
        ("/admin/v1/conversations?status=teapot", "status"),
        ("/admin/v1/requests?since=yesterday", "since"),
        ("/admin/v1/requests?cursor=!!", "cursor"),
    ],
)
def test_bad_parameters_are_400_naming_them(seeded: Relay, path: str, param: str) -> None:
    status, body = seeded.call("GET", path)
    assert status == 400, body
    assert body["error"]["param"] == param


@pytest.mark.parametrize(
    "path", ["/admin/v1/conversations/conv-none", "/admin/v1/requests/req_none"]
)
def test_unknown_ids_are_404(seeded: Relay, path: str) -> None:
    status, body = seeded.call("GET", path)
    assert status == 404, body
    assert body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    ["/admin/v1/conversations", "/admin/v1/conversations/conv-a", "/admin/v1/requests/req_a1"],
)
def test_nothing_answers_without_the_admin_token(seeded: Relay, path: str) -> None:
    status, body = seeded.call("GET", path, token="wrong")
    assert status == 401, body
    assert "conv-a" not in str(body)
