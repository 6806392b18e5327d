"""How the admin API and the command line show keys, usage and the ledger.

Stored values are epoch seconds and integer nano-USD; what an operator sees is ISO-8601 UTC
and US dollars. A key's hash never leaves the store, and its secret is shown only once, by
whoever created it.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import msgspec

from onemin_relay.gateway.keys import KeyRecord, nanos_to_usd
from onemin_relay.gateway.storage import LedgerRow, UsageRow

KeyStatus: TypeAlias = Literal["active", "revoked", "expired"]
# ``…T10:00:00+02:00`` in a query string arrives as ``…T10:00:00 02:00`` (``+`` is a space)
_QUERY_PLUS = re.compile(r"(T[\d:.]+) (\d\d:?\d\d)$")
LATEST_EPOCH = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last second ISO-8601 can show


def iso(when: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC (``2025-01-31T12:00:00Z``); None stays None."""
    if when is None:
        return None
    moment = datetime.fromtimestamp(when, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(value: str | float) -> float:
    """Epoch seconds from an ISO-8601 date or date-time (UTC unless it says otherwise) or an
    epoch number, given as a number or as text. Raises ``ValueError`` with the reason."""
    if not isinstance(value, str):
        return _checked_epoch(float(value))
    text = _QUERY_PLUS.sub(r"\1+\2", value.strip())
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return _checked_epoch(number)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is neither an ISO-8601 date/time nor epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _checked_epoch(moment.timestamp())


def _checked_epoch(seconds: float) -> float:
    if not math.isfinite(seconds) or not 0 <= seconds <= LATEST_EPOCH:
        raise ValueError(f"{seconds!r} is not a time between 1970 and 9999 in epoch seconds")
    return seconds


def usd(nanos: int) -> float:
    return nanos_to_usd(nanos)


def format_usd(amount: float) -> str:
    """Dollars for a table: at least two decimals, down to the nano-dollar when it matters."""
    text = f"{amount:,.9f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def key_status(record: KeyRecord, now: float | None = None) -> KeyStatus:
    if record.revoked_at is not None:
        return "revoked"
    moment = time.time() if now is None else now
    if record.expires_at is not None and moment >= record.expires_at:
        return "expired"
    return "active"


def key_object(record: KeyRecord, now: float | None = None) -> dict[str, Any]:
    """A key as the admin API shows it: never its hash, never its secret."""
    return {
        "id": record.id,
        "object": "key",
        "name": record.name,
        "kind": record.kind,
        "prefix": record.prefix,
        "project": record.project,
        "models": list(record.models),
        "rpm": record.rpm,
        "tpm": record.tpm,
        "expires_at": iso(record.expires_at),
        "created_at": iso(record.created_at),
        "revoked_at": iso(record.revoked_at),
        "balance_usd": usd(record.balance),
        "reserved_usd": usd(record.reserved),
        "spent_usd": usd(record.spent),
        "available_usd": usd(record.available),
        "status": key_status(record, now),
    }


def usage_object(row: UsageRow) -> dict[str, Any]:
    return {
        "group": row.group,
        "requests": row.requests,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "credits": row.credits,
        "charged_usd": usd(row.charged),
    }


def ledger_object(row: LedgerRow) -> dict[str, Any]:
    """A ledger row with dollars for nano-USD and an ISO time for epoch seconds."""
    fields = msgspec.structs.asdict(row)
    cost, charged = fields.pop("cost"), fields.pop("charged")
    fields["at"] = iso(row.at)
    fields["cost_usd"] = usd(cost)
    fields["charged_usd"] = usd(charged)
    return fields


def listing(data: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"object": "list", **extra, "data": data}
