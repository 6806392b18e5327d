"""What the admin API and the command line do to the store, validated the same way.

Input arrives as msgspec Structs that forbid unknown fields; anything wrong becomes an
``InvalidRequest`` naming the field, an unknown key a ``NotFound``. The API renders those in
OpenAI's error envelope; the command line prints them and exits non-zero.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Final, TypeVar, get_args

import msgspec
from msgspec import UNSET, Meta, UnsetType

from onemin_relay.admin.views import parse_time
from onemin_relay.core.errors import InvalidRequest, NotFound
from onemin_relay.gateway import key_cache
from onemin_relay.gateway.keys import KeyKind, KeyRecord, NewKey, issue, usd_to_nanos
from onemin_relay.gateway.storage import GroupBy, LedgerRow, Store, UsageRow

T = TypeVar("T")

MAX_USD: Final = 1_000_000_000.0  # one amount; keeps nano-USD sums far inside 64 bits
MAX_LIMIT: Final = 10**12  # requests or tokens per minute
USAGE_DAYS: Final = 30
LEDGER_LIMIT: Final = 100
LEDGER_MAX: Final = 1000
GROUPS: Final[tuple[str, ...]] = get_args(GroupBy)

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Glob = Annotated[str, Meta(min_length=1, max_length=200)]
Usd = Annotated[float, Meta(ge=0, le=MAX_USD)]
Limit = Annotated[int, Meta(ge=0, le=MAX_LIMIT)]
When = str | float


class NewKeyRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Name
    kind: KeyKind = "managed"
    balance_usd: Usd = 0.0
    models: list[Glob] = []
    rpm: Limit | None = None
    tpm: Limit | None = None
    expires_at: When | None = None
    project: Name = "default"


class KeyChanges(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Name | UnsetType = UNSET
    models: list[Glob] | UnsetType = UNSET
    rpm: Limit | UnsetType | None = UNSET
    tpm: Limit | UnsetType | None = UNSET
    expires_at: When | UnsetType | None = UNSET
    project: Name | UnsetType = UNSET


class TopUpRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    amount_usd: Annotated[float, Meta(gt=0, le=MAX_USD)]


def typed(data: Any, into: type[T]) -> T:
    """Plain values as ``into``; a schema error becomes a 400 naming the field."""
    try:
        return msgspec.convert(data, into)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}", param=field_of(str(exc))) from None


def decoded(raw: bytes, into: type[T]) -> T:
    """A JSON body as ``into``; a schema error becomes a 400 naming the field."""
    if not raw.strip():
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        return msgspec.json.decode(raw, type=into)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}", param=field_of(str(exc))) from None
    except (msgspec.DecodeError, RecursionError):
        raise InvalidRequest("the request body is not valid JSON") from None


def field_of(message: str) -> str | None:
    """The field a msgspec error names: ``… - at `$.models[0]` `` → ``models[0]``,
    ``Object missing required field `name` `` and ``… unknown field `x` `` → the field."""
    path = ""
    marker = "- at `$"
    start = message.rfind(marker)
    if start >= 0:
        path = message[start + len(marker) :].rstrip("`").lstrip(".")
    for phrase in ("missing required field `", "unknown field `"):
        at = message.find(phrase)
        if at >= 0:
            field = message[at + len(phrase) :].split("`", 1)[0]
            return f"{path}.{field}" if path else field
    return path or None


def when(value: When | None, param: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidRequest(f"'{param}': {exc}", param=param) from None


def globs(models: list[str]) -> None:
    """Model globs are stored comma-separated, so one glob cannot hold a comma."""
    for index, glob in enumerate(models):
        if "," in glob:
            raise InvalidRequest(
                f"model glob {glob!r} holds a comma; give each glob separately",
                param=f"models[{index}]",
            )


async def create_key(store: Store, request: NewKeyRequest) -> NewKey:
    if request.kind == "relay" and request.balance_usd > 0:
        raise InvalidRequest(
            "relay keys carry no balance (their calls are paid with the caller's own 1min.ai "
            "key); give a balance only to managed keys",
            param="balance_usd",
        )
    globs(request.models)
    new = issue(
        request.kind,
        request.name,
        project=request.project,
        balance=usd_to_nanos(request.balance_usd),
        models=tuple(request.models),
        rpm=request.rpm,
        tpm=request.tpm,
        expires_at=when(request.expires_at, "expires_at"),
    )
    await store.add_key(new.record)
    return new


async def find_key(store: Store, key_id: str) -> KeyRecord:
    return found(await store.key(key_id), key_id)


def found(record: KeyRecord | None, key_id: str) -> KeyRecord:
    if record is None:
        raise NotFound(f"no key with id {key_id!r}", param="id")
    return record


async def change_key(store: Store, key_id: str, changes: KeyChanges) -> KeyRecord:
    values: dict[str, object] = {
        name: getattr(changes, name)
        for name in changes.__struct_fields__
        if getattr(changes, name) is not UNSET
    }
    if not isinstance(changes.models, UnsetType):
        globs(changes.models)
    expires = changes.expires_at
    if not isinstance(expires, UnsetType):
        values["expires_at"] = when(expires, "expires_at")
    record = found(await store.update_key(key_id, values), key_id)
    key_cache.changed()
    return record


async def revoke_key(store: Store, key_id: str) -> KeyRecord:
    """Revoke a key from now on; a key already revoked keeps its first revocation time."""
    record = await find_key(store, key_id)
    if record.revoked_at is not None:
        return record
    record = found(await store.update_key(key_id, {"revoked_at": time.time()}), key_id)
    key_cache.changed()  # this process's relays stop taking it at once
    return record


async def top_up_key(store: Store, key_id: str, request: TopUpRequest) -> KeyRecord:
    record = await find_key(store, key_id)
    if record.kind != "managed":
        raise InvalidRequest(
            "only managed keys carry a balance; relay keys are paid with the caller's own "
            "1min.ai key",
            param="id",
        )
    amount = usd_to_nanos(request.amount_usd)
    if amount < 1:
        raise InvalidRequest("'amount_usd' is below one nano-dollar", param="amount_usd")
    return found(await store.top_up(key_id, amount), key_id)


def group_by(value: str | None) -> GroupBy:
    chosen = value or "key"
    if chosen not in GROUPS:
        raise InvalidRequest(f"'group_by' must be one of {', '.join(GROUPS)}", param="group_by")
    return chosen  # type: ignore[return-value]


def since(value: str | None, now: float | None = None) -> float:
    """The start of a usage report: the given time, or ``USAGE_DAYS`` days ago."""
    if not value:
        return (time.time() if now is None else now) - USAGE_DAYS * 86_400
    start = when(value, "since")
    assert start is not None
    return start


def ledger_limit(value: str | int | None) -> int:
    if value is None or value == "":
        return LEDGER_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= LEDGER_MAX:
        raise InvalidRequest(
            f"'limit' must be a whole number from 1 to {LEDGER_MAX}", param="limit"
        )
    return limit


async def usage(
    store: Store, grouping: GroupBy, start: float, key_id: str | None = None
) -> list[UsageRow]:
    return await store.usage(grouping, start, key_id or None)


async def ledger(store: Store, key_id: str | None, limit: int) -> list[LedgerRow]:
    return await store.ledger(key_id or None, limit)
