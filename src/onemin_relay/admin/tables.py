"""The command line's tables: keys, usage and ledger rows as aligned columns (rich)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from onemin_relay.admin.views import format_usd

WIDE = 200  # columns when stdout is not a terminal, so pipes and logs get whole rows


def console(stderr: bool = False) -> Console:
    """Plain output: no markup (names are the operator's text), no highlighting, no wrapping
    of rows into a narrow default width when writing to a pipe."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(
        file=stream,
        markup=False,
        highlight=False,
        emoji=False,
        width=None if stream.isatty() else WIDE,
    )


def _table(*headers: str, right: Iterable[str] = ()) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    aligned = set(right)
    for header in headers:
        table.add_column(header, justify="right" if header in aligned else "left")
    return table


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "*"
    return str(value)


def _money(key: dict[str, Any], field: str) -> str:
    return format_usd(key[field]) if key["kind"] == "managed" else "-"


def keys_table(keys: list[dict[str, Any]]) -> Table:
    table = _table(
        "ID", "NAME", "KIND", "PREFIX", "PROJECT", "STATUS", "BALANCE", "SPENT", "MODELS",
        "CREATED",
        right=("BALANCE", "SPENT"),
    )  # fmt: skip
    for key in keys:
        table.add_row(
            key["id"],
            key["name"],
            key["kind"],
            key["prefix"],
            key["project"],
            key["status"],
            _money(key, "balance_usd"),
            _money(key, "spent_usd"),
            _text(key["models"]),
            key["created_at"],
        )
    return table


KEY_FIELDS = (
    ("id", "ID"), ("name", "Name"), ("kind", "Kind"), ("prefix", "Prefix"),
    ("project", "Project"), ("status", "Status"), ("models", "Models"), ("rpm", "RPM"),
    ("tpm", "TPM"), ("created_at", "Created"), ("expires_at", "Expires"),
    ("revoked_at", "Revoked"),
)  # fmt: skip
MONEY_FIELDS = (
    ("balance_usd", "Balance"), ("reserved_usd", "Reserved"), ("available_usd", "Available"),
    ("spent_usd", "Spent"),
)  # fmt: skip


def key_table(key: dict[str, Any]) -> Table:
    """One key, a field per row."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for field, label in KEY_FIELDS:
        table.add_row(label, _text(key[field]))
    if key["kind"] == "managed":
        for field, label in MONEY_FIELDS:
            table.add_row(label, format_usd(key[field]))
    return table


def usage_table(group_by: str, rows: list[dict[str, Any]]) -> Table:
    numbers = ("REQUESTS", "INPUT TOKENS", "OUTPUT TOKENS", "CREDITS", "CHARGED")
    table = _table(group_by.upper(), *numbers, right=numbers)
    for row in rows:
        table.add_row(
            row["group"],
            f"{row['requests']:,}",
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            f"{row['credits']:,}",
            format_usd(row["charged_usd"]),
        )
    return table


def ledger_table(rows: list[dict[str, Any]]) -> Table:
    numbers = ("STATUS", "IN", "OUT", "CREDITS", "COST", "CHARGED", "MS")
    table = _table("AT", "KEY", "MODE", "SURFACE", "MODEL", "OUTCOME", *numbers, right=numbers)
    for row in rows:
        table.add_row(
            row["at"],
            _text(row["key_id"]),
            row["mode"],
            row["surface"],
            row["upstream_model"],
            row["outcome"] + (f" ({row['error_code']})" if row["error_code"] else ""),
            str(row["status"]),
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            f"{row['credits']:,}",
            format_usd(row["cost_usd"]),
            format_usd(row["charged_usd"]),
            f"{row['latency_ms']:,.0f}",
        )
    return table
