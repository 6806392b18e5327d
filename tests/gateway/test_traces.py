"""Trace capture's pure parts: keys scrubbed from bodies, bodies capped with a marker, client
ids checked, the header winning over the body, durations read; and a trace the store refuses
never costs its request's ledger row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from onemin_relay.core.types import Caller, ChatRequest
from onemin_relay.gateway.ledger import LedgerWriter
from onemin_relay.gateway.sqlite_store import SqliteStore
from onemin_relay.gateway.storage import Settlement
from onemin_relay.gateway.trace_store import TraceDetail, TraceFilter
from onemin_relay.gateway.traces import (
    REDACTED,
    cap,
    client_id,
    joined,
    metadata_id,
    scrub,
)
from onemin_relay.settings import Settings, SettingsError, parse_duration
from tests.gateway.test_ledger_writer import _row


def test_scrub_removes_relay_and_managed_keys_and_the_callers_secrets() -> None:
    text = "a sk-onemin-AbC_d-9 b rk-onemin-XyZ c 1min-key-123456 d"
    cleaned = scrub(text, ("1min-key-123456",))
    assert cleaned == f"a {REDACTED} b {REDACTED} c {REDACTED} d"


def test_scrub_ignores_secrets_too_short_to_be_keys() -> None:
    assert scrub("abc abc", ("abc",)) == "abc abc", "a 3-letter 'key' would shred any text"


def test_cap_cuts_at_the_byte_limit_with_a_marker_and_keeps_utf8_whole() -> None:
    assert cap("short", 10) == "short"
    cut = cap("é" * 10, 5)  # two bytes each: two whole characters fit
    assert cut == "éé…[truncated 16 bytes]"


def test_cap_drops_nuls_and_lone_surrogates_no_engine_would_store() -> None:
    assert cap("a\x00b\ud800c", 100) == "ab?c"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("conv-1.a:b@c/d+e=f", "conv-1.a:b@c/d+e=f"),
        ("has space", None),
        ('quote"', None),
        ("x" * 201, None),
        ("", None),
        (42, None),
        (None, None),
    ],
)
def test_client_ids_are_short_plain_text(value: object, expected: str | None) -> None:
    assert client_id(value) == expected


def test_metadata_ids_come_only_from_an_object() -> None:
    assert metadata_id({"conversation_id": "c1"}, "conversation_id") == "c1"
    assert metadata_id(["conversation_id"], "conversation_id") is None
    assert metadata_id({"conversation_id": {"x": 1}}, "conversation_id") is None


def test_the_header_wins_over_the_body_and_the_body_fills_in() -> None:
    request = ChatRequest(model="m", messages=(), conversation_id="body", user="body-user")
    from_header = joined(Caller(api_key=None, conversation_id="header"), request)
    assert (from_header.conversation_id, from_header.user) == ("header", "body-user")
    plain = Caller(api_key=None)
    assert joined(plain, ChatRequest(model="m", messages=())) is plain


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("12h", 43_200), ("30d", 2_592_000), ("0", 0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", ["soon", "-1d", "nan", "infd", ""])
def test_a_bad_retention_fails_at_start_up(value: str) -> None:
    with pytest.raises(SettingsError, match="TRACE_RETENTION"):
        Settings(trace_retention=value)


def test_bad_trace_settings_fail_at_start_up() -> None:
    with pytest.raises(SettingsError, match="TRACE_BODIES"):
        Settings(trace_bodies="all")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="TRACE_BODY_LIMIT"):
        Settings(trace_body_limit=0)


class RefusesTraces(SqliteStore):
    """A store that refuses, for good, any settlement carrying a trace."""

    async def settle(self, batch: list[Settlement]) -> None:
        if any(item.trace is not None for item in batch):
            raise sqlite3.IntegrityError("refused")
        await super().settle(batch)


async def test_a_refused_trace_never_costs_its_ledger_row(tmp_path: Path) -> None:
    store = RefusesTraces(str(tmp_path / "db"))
    await store.open()
    await store.migrate()
    writer = LedgerWriter(store, capacity=10, batch_size=5, dead_letter=str(tmp_path / "dead"))
    writer.start()
    for name in "ab":
        writer.take_slot()
        trace = TraceDetail(conversation_id="c", at=1.0, total_ms=1.0)
        writer.submit(Settlement(_row(name), trace=trace))
    assert await writer.drain(10)
    assert sorted(r.request_id for r in await store.ledger(None, 10)) == ["a", "b"]
    assert writer.dead == 0 and not (tmp_path / "dead").exists()
    assert await store.traces(TraceFilter()) == []
    await store.close()
