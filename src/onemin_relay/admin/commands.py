"""``onemin-relay keys|usage|ledger|db``: the admin API's work from a shell, on the store the
environment names (``ONEMIN_DATA_DIR`` or ``ONEMIN_DATABASE_URL``), with no relay running.

Tables for people, ``--json`` for scripts (the admin API's shapes). A key's secret is
printed once, by ``keys create``. Mistakes exit 2 and unknown keys exit 1, with a message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import RenderableType

from onemin_relay.admin import operations as ops
from onemin_relay.admin import tables, traces
from onemin_relay.admin.views import format_usd, iso, key_object, ledger_object, usage_object
from onemin_relay.core.errors import InvalidRequest, NotFound, RelayError
from onemin_relay.gateway import describe_store, open_store
from onemin_relay.gateway.storage import Store
from onemin_relay.settings import Settings, SettingsError, parse_duration

T = TypeVar("T")

keys = typer.Typer(no_args_is_help=True, help="Issue, list, revoke and top up gateway keys.")
db = typer.Typer(no_args_is_help=True, help="The gateway store (SQLite or PostgreSQL).")
traces_cli = typer.Typer(no_args_is_help=True, help="Request traces in the gateway store.")

# how the command line names the fields the shared validation reports
OPTIONS = {
    "name": "--name",
    "kind": "--kind",
    "balance_usd": "--balance",
    "models": "--model",
    "rpm": "--rpm",
    "tpm": "--tpm",
    "expires_at": "--expires",
    "project": "--project",
    "amount_usd": "AMOUNT_USD",
    "group_by": "--group-by",
    "since": "--since",
    "limit": "--limit",
    "id": "ID",
}

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


class Kind(StrEnum):
    managed = "managed"
    relay = "relay"


class Clearable(StrEnum):
    """What ``keys update --clear`` removes: a limit, the expiry, or the model list (all)."""

    rpm = "rpm"
    tpm = "tpm"
    expires = "expires"
    models = "models"


class Grouping(StrEnum):
    key = "key"
    model = "model"
    day = "day"


def register(cli: typer.Typer) -> None:
    """Add the admin commands to the ``onemin-relay`` command line."""
    cli.add_typer(keys, name="keys")
    cli.command("usage")(usage)
    cli.command("ledger")(ledger)
    cli.add_typer(db, name="db")
    cli.add_typer(traces_cli, name="traces")


# -- running against the store ------------------------------------------------------------


def on_store(work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the environment's store (migrated), run ``work``, close it; errors exit cleanly."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        fail(str(exc), 2)
    try:
        return asyncio.run(_with_store(settings, work))
    except NotFound as exc:
        fail(exc.message, 1)
    except InvalidRequest as exc:
        fail(command_line_message(exc), 2)
    except RelayError as exc:
        fail(exc.message, 1)
    except Exception as exc:
        fail(f"the store ({describe_store(settings)}) failed: {exc}", 1)


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    store = open_store(settings)
    try:
        await store.open()
        await store.migrate()
        return await work(store)
    finally:
        await store.close()


def command_line_message(exc: InvalidRequest) -> str:
    """A validation error in the command line's words: ``--rpm: Expected `int` >= 0``."""
    message = exc.message.removeprefix("invalid request: ").split(" - at `$", 1)[0]
    field = (exc.param or "").split(".")[0].split("[")[0]
    option = OPTIONS.get(field)
    if option is None:
        return message
    quoted = f"'{field}'"
    if message.startswith(quoted):
        return option + message[len(quoted) :]
    return f"{option}: {message}"


def fail(message: str, code: int) -> NoReturn:
    tables.console(stderr=True).print(f"error: {message}")
    raise typer.Exit(code)


def show(payload: Any, as_json: bool, *renderables: RenderableType | str) -> None:
    if as_json:
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    out = tables.console()
    for renderable in renderables:
        out.print(renderable)


# -- keys ----------------------------------------------------------------------------------


@keys.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="What the key is for (shown in lists)")],
    kind: Annotated[Kind, typer.Option(help="managed: prepaid; relay: caller pays")] = Kind.managed,
    balance: Annotated[float, typer.Option(help="Opening balance, USD (managed keys)")] = 0.0,
    model: Annotated[
        list[str] | None, typer.Option(help="Allowed model glob (repeatable; none: all)")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry: ISO-8601 or epoch")] = None,
    project: Annotated[str, typer.Option(help="Project the usage is booked to")] = "default",
    as_json: JsonOption = False,
) -> None:
    """Issue a key. Its secret is printed now and never again."""
    fields = {
        "name": name,
        "kind": kind.value,
        "balance_usd": balance,
        "models": model or [],
        "rpm": rpm,
        "tpm": tpm,
        "expires_at": expires,
        "project": project,
    }
    new = on_store(lambda store: ops.create_key(store, ops.typed(fields, ops.NewKeyRequest)))
    key = key_object(new.record)
    show(
        {**key, "key": new.secret},
        as_json,
        tables.key_table(key),
        "",
        f"Key: {new.secret}",
        "Save it now: it will not be shown again.",
    )


@keys.command("list")
def list_keys(as_json: JsonOption = False) -> None:
    """Every key, oldest first (never their secrets)."""
    records = on_store(lambda store: store.keys())
    data = [key_object(record) for record in records]
    body = tables.keys_table(data) if data else "No keys yet: create one with 'keys create'."
    show({"object": "list", "data": data}, as_json, body)


@keys.command("show")
def show_key(
    key_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False
) -> None:
    """One key's details."""
    key = key_object(on_store(lambda store: ops.find_key(store, key_id)))
    show(key, as_json, tables.key_table(key))


@keys.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False
) -> None:
    """Revoke a key: calls with it are refused from now on."""
    key = key_object(on_store(lambda store: ops.revoke_key(store, key_id)))
    show(key, as_json, f"Revoked {key['id']} at {key['revoked_at']}.", tables.key_table(key))


@keys.command("update")
def update_key(
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Allowed model glob (repeatable; replaces the list)")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry: ISO-8601 or epoch")] = None,
    project: Annotated[str | None, typer.Option(help="Project the usage is booked to")] = None,
    clear: Annotated[
        list[Clearable] | None, typer.Option(help="Remove a limit or the expiry (repeatable)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a key's name, models, limits, expiry or project; what is not given stays."""
    given = {"name": name, "rpm": rpm, "tpm": tpm, "expires_at": expires, "project": project}
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if model is not None:
        changes["models"] = model
    for field in clear or []:
        cleared = "expires_at" if field is Clearable.expires else field.value
        changes[cleared] = [] if field is Clearable.models else None
    if not changes:
        fail("nothing to change: give at least one option (see --help)", 2)
    key = key_object(
        on_store(lambda store: ops.change_key(store, key_id, ops.typed(changes, ops.KeyChanges)))
    )
    show(key, as_json, f"Updated {key['id']}.", tables.key_table(key))


@keys.command("topup")
def top_up_key(
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    amount_usd: Annotated[float, typer.Argument(metavar="AMOUNT_USD", help="Dollars to add")],
    as_json: JsonOption = False,
) -> None:
    """Add to a managed key's balance."""
    request = {"amount_usd": amount_usd}
    record = on_store(
        lambda store: ops.top_up_key(store, key_id, ops.typed(request, ops.TopUpRequest))
    )
    key = key_object(record)
    added = format_usd(amount_usd)
    message = f"Added {added} to {key['id']}: balance {format_usd(key['balance_usd'])}."
    show(key, as_json, message, tables.key_table(key))


# -- usage, ledger, store ------------------------------------------------------------------


def usage(
    group_by: Annotated[Grouping, typer.Option(help="One row per key, model or day")] = (
        Grouping.key
    ),
    since: Annotated[
        str | None, typer.Option(help="From this ISO-8601 date/time or epoch [30 days ago]")
    ] = None,
    key_id: Annotated[str | None, typer.Option(help="Only this key")] = None,
    as_json: JsonOption = False,
) -> None:
    """Requests, tokens, credits and charges from the ledger."""

    async def read(store: Store) -> tuple[float, list[dict[str, Any]]]:
        start = ops.since(since)
        rows = await ops.usage(store, ops.group_by(group_by.value), start, key_id)
        return start, [usage_object(row) for row in rows]

    start, data = on_store(read)
    payload = {"object": "list", "group_by": group_by.value, "since": iso(start), "data": data}
    empty = f"No usage since {iso(start)}."
    show(payload, as_json, tables.usage_table(group_by.value, data) if data else empty)


def ledger(
    key_id: Annotated[str | None, typer.Option(help="Only this key's rows")] = None,
    limit: Annotated[int, typer.Option(help=f"Rows, newest first (at most {ops.LEDGER_MAX})")] = (
        ops.LEDGER_LIMIT
    ),
    as_json: JsonOption = False,
) -> None:
    """The latest ledger rows: one per request, with what it cost and what was charged."""

    async def read(store: Store) -> list[dict[str, Any]]:
        rows = await ops.ledger(store, key_id, ops.ledger_limit(limit))
        return [ledger_object(row) for row in rows]

    data = on_store(read)
    body = tables.ledger_table(data) if data else "The ledger is empty."
    show({"object": "list", "data": data}, as_json, body)


@traces_cli.command("purge")
def purge_traces(
    older_than: Annotated[
        str | None,
        typer.Option(help="Age such as 7d, 12h or 30m [ONEMIN_TRACE_RETENTION]"),
    ] = None,
) -> None:
    """Delete the traces of requests older than the given age (the ledger is kept)."""
    try:
        age = parse_duration(older_than or Settings.from_env().trace_retention)
    except (ValueError, SettingsError) as exc:
        fail(f"--older-than: {exc}", 2)
    if age <= 0:
        fail("--older-than: give an age above zero (ONEMIN_TRACE_RETENTION is 0: keep)", 2)
    deleted = on_store(lambda store: traces.purge(store, time.time() - age))
    typer.echo(f"Deleted {deleted} traces older than {older_than or 'the retention period'}.")


@db.command("upgrade")
def upgrade() -> None:
    """Apply pending migrations to the store and print its schema version."""
    version = on_store(lambda store: store.migrate())
    settings = Settings.from_env()
    typer.echo(f"Schema version {version}: {describe_store(settings)}")
