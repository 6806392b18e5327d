"""The one interface the pipeline asks: ``admit`` before upstream, ``settle`` after.

``admit`` answers "may this caller make this call, and at what most-cost": it finds who is
calling (bring-your-own-key, relay key in the path, managed key), refuses what the operator
has closed, checks the key's models, holds the most the call can cost against a managed
key's balance (402 before anything is sent upstream) and takes a ledger slot (503 if the
ledger cannot keep up). ``settle`` answers "what did it cost": it charges the real cost,
releases the rest of the hold and writes the ledger row, in one transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TypeAlias

from onemin_relay.core.errors import (
    AuthenticationFailed,
    InsufficientBalance,
    PermissionDenied,
    RelayError,
    UpstreamUnavailable,
)
from onemin_relay.core.types import Caller
from onemin_relay.gateway.balances import Balances, new_hold_id
from onemin_relay.gateway.grants import Grant, Mode, Spent, ledger_row, refusal, status_of
from onemin_relay.gateway.key_cache import KeyCache
from onemin_relay.gateway.keys import KeyRecord, hash_key, kind_of
from onemin_relay.gateway.ledger import LedgerFull, LedgerWriter
from onemin_relay.gateway.limits import RateLimits
from onemin_relay.gateway.pricing import credits_to_nanos
from onemin_relay.gateway.storage import Outcome, Settlement, Store
from onemin_relay.gateway.traces import Tracing, trace_detail
from onemin_relay.settings import Settings

log = logging.getLogger(__name__)

# the statuses of the calls settled in this request (set by whoever wants to know, e.g. the
# idempotency middleware; a stream's failure never reaches it as an exception)
SETTLED: ContextVar[list[int] | None] = ContextVar("onemin_settled", default=None)
HoldEstimate: TypeAlias = Callable[[], Awaitable[int]]  # nano-USD


class Gateway:
    def __init__(
        self, store: Store, ledger: LedgerWriter, limits: RateLimits, settings: Settings
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.limits = limits
        self._settings = settings
        self.tracing = Tracing(settings)
        self._keys = KeyCache(settings.key_cache_seconds)  # admission's reads only
        self.balances = Balances(
            store,
            owner=f"relay-{uuid.uuid4().hex[:12]}",
            lease=settings.hold_lease,
            sweep_interval=settings.sweep_interval,
            trace_retention=settings.trace_retention_seconds,
        )

    async def identify(self, caller: Caller) -> tuple[Mode, KeyRecord | None, str]:
        """(mode, gateway key, 1min.ai key to send upstream); 401/403 for the wrong ones."""
        return await self._identify(caller, cached=False)

    async def _identify(self, caller: Caller, cached: bool) -> tuple[Mode, KeyRecord | None, str]:
        """``cached`` (admission): a key as read up to ONEMIN_KEY_CACHE_SECONDS ago."""
        presented = caller.api_key
        if caller.relay_key is not None:
            return await self._relay_mode(caller.relay_key, presented, cached)
        if presented and kind_of(presented) == "relay":
            raise AuthenticationFailed(
                "this is a relay key: put it in the URL path (https://host/<relay-key>/v1) "
                "and send your 1min.ai key as the API key"
            )
        if presented and kind_of(presented) == "managed":
            key = await self._known_key(presented, "managed", cached)
            return "managed", key, self._server_key("managed keys")
        if presented:
            if self._settings.require_relay_key:
                raise AuthenticationFailed(
                    "this relay requires a relay key in the URL path "
                    "(https://host/<relay-key>/v1) or a managed key (sk-onemin-…)"
                )
            return "byok", None, presented
        if self._settings.allow_anonymous and self._settings.api_key:
            return "anonymous", None, self._settings.api_key
        raise AuthenticationFailed(
            "no API key: send your 1min.ai key or a managed key (sk-onemin-…) as "
            "'Authorization: Bearer <key>' or 'x-api-key'"
        )

    async def admit(
        self,
        caller: Caller,
        requested_model: str,
        upstream_model: str,
        estimate: HoldEstimate,
        tokens: int = 0,
    ) -> Grant:
        """Admit one call: who, which model, the rate limits (``tokens`` is its estimate),
        a ledger slot, and for a paid call a hold of ``estimate()``, its most-cost."""
        began = time.monotonic()
        mode, key, api_key = await self._identify(caller, cached=True)
        if key is not None and not key.allows(upstream_model):
            self._refuse(caller, mode, key, requested_model, 403, "model_not_allowed")
            raise PermissionDenied(f"this key may not use the model {requested_model!r}")
        try:
            rate = await self.limits.admit(caller, key, api_key, tokens)
        except RelayError as exc:
            if key is not None:
                self._refuse(caller, mode, key, requested_model, exc.status, exc.code)
            raise
        grant = Grant.begin(caller, mode, key, requested_model, api_key, rate)
        grant.notes = self.tracing.notes(caller, began)
        try:
            self._take_slot()
        except RelayError:
            self.limits.settle(rate, 0)
            raise
        if grant.paid and key is not None:
            await self._hold(grant, key, upstream_model, estimate)
        if grant.notes is not None:
            grant.notes.admitted = time.monotonic()
        return grant

    async def _hold(
        self, grant: Grant, key: KeyRecord, upstream_model: str, estimate: HoldEstimate
    ) -> None:
        grant.hold_id = new_hold_id()
        try:
            grant.hold = await estimate()
            await self.balances.hold(
                key,
                grant.hold,
                hold_id=grant.hold_id,
                request_id=grant.request_id,
                surface=grant.surface,
                model=upstream_model,
            )
        except BaseException as exc:
            status, code = (
                (exc.status, exc.code) if isinstance(exc, RelayError) else (503, "not_held")
            )
            # releases the hold if the store took it before the failure
            self.ledger.submit(refusal(grant, upstream_model, status, code))
            if grant.rate is not None:
                self.limits.settle(grant.rate, 0)
            raise

    def settle(self, grant: Grant, spent: Spent) -> None:
        """Queue the settlement: charge, release, ledger row (one transaction, batched)."""
        if grant.settled:
            return
        grant.settled = True
        if grant.rate is not None:
            self.limits.settle(grant.rate, spent.input_tokens + spent.output_tokens)
        statuses = SETTLED.get()
        if statuses is not None:
            statuses.append(spent.status)
        outcome: Outcome = "ok" if spent.status < 400 else "error"
        row = ledger_row(grant, spent, outcome)
        key = grant.key
        paid_key = key.id if grant.paid and key else None
        trace = trace_detail(grant, row)
        self.ledger.submit(Settlement(row, key_id=paid_key, hold_id=grant.hold_id, trace=trace))

    def as_seen_by_caller(self, grant: Grant, exc: BaseException) -> BaseException:
        """1min.ai saying the account is out of credits is the caller's own problem when it
        is the caller's key (402), but the operator's when it is the operator's (503)."""
        spends_operator = grant.mode in ("managed", "anonymous")
        if spends_operator and type(exc) is InsufficientBalance:
            log.error("1min.ai says the account of ONEMIN_API_KEY is out of credits")
            return UpstreamUnavailable(
                "the relay's 1min.ai account is out of credits; try again later"
            )
        return exc

    @asynccontextmanager
    async def flat_call(
        self, caller: Caller, requested_model: str, upstream_model: str, credits: int | None
    ) -> AsyncIterator[Grant]:
        """Admit, run and settle a call priced up front (images, audio, speech): held and
        charged at the price rule's figure, nothing charged when it fails. ``None``: no
        price is known, which only a caller who pays 1min.ai directly may accept."""
        rate = self._settings.credits_per_usd
        cost = 0 if credits is None else credits_to_nanos(credits, rate)

        async def most_cost() -> int:
            if credits is None:
                raise UpstreamUnavailable(f"1min.ai lists no price for {upstream_model!r}")
            return cost

        grant = await self.admit(caller, requested_model, upstream_model, most_cost)
        try:
            yield grant
        except BaseException as exc:
            seen = self.as_seen_by_caller(grant, exc)
            if grant.notes is not None:
                grant.notes.failed(seen)
            code = seen.code if isinstance(seen, RelayError) else None
            spent = self._flat_spent(grant, status_of(seen), upstream_model, credits, code)
            self.settle(grant, spent)
            if seen is not exc:
                raise seen from exc
            raise
        self.settle(grant, self._flat_spent(grant, 200, upstream_model, credits))

    def _flat_spent(
        self,
        grant: Grant,
        status: int,
        model: str,
        estimate: int | None,
        code: str | None = None,
    ) -> Spent:
        """Once 1min.ai has done the work it is paid for, even if the client left before
        the end: its reported credit, else the price rule's figure."""
        if not grant.answered:
            return Spent(status, model, error_code=code)
        credits = grant.reported_credits
        if credits is None:
            credits = estimate or 0
        cost = credits_to_nanos(credits, self._settings.credits_per_usd)
        return Spent(status, model, credits=credits, cost=cost, error_code=code)

    # -- steps -----------------------------------------------------------------------------

    async def _relay_mode(
        self, relay_key: str, presented: str | None, cached: bool
    ) -> tuple[Mode, KeyRecord | None, str]:
        if kind_of(relay_key) != "relay":
            raise AuthenticationFailed(
                "the URL path holds something that is not a relay key: put your 1min.ai key "
                "in the API key field, and only a relay key (rk-onemin-…) in the path"
            )
        key = await self._known_key(relay_key, "relay", cached)
        if not presented or kind_of(presented) is not None:
            raise AuthenticationFailed(
                "with a relay key in the URL path, send your own 1min.ai key as the API key "
                "('Authorization: Bearer <1min.ai key>', 'x-api-key' or 'x-goog-api-key')"
            )
        return "relay", key, presented

    async def _known_key(self, secret: str, kind: str, cached: bool) -> KeyRecord:
        key = await self._keys.read(hash_key(secret), self.store.key_by_hash, fresh=not cached)
        if key is None or key.kind != kind:
            raise AuthenticationFailed(f"unknown {kind} key")
        if key.revoked_at is not None:
            raise AuthenticationFailed(f"this {kind} key has been revoked")
        if not key.usable_at(time.time()):
            raise AuthenticationFailed(f"this {kind} key has expired")
        return key

    def _server_key(self, what: str) -> str:
        if not self._settings.api_key:
            raise UpstreamUnavailable(f"{what} need the operator's 1min.ai key (ONEMIN_API_KEY)")
        return self._settings.api_key

    def _take_slot(self) -> None:
        try:
            self.ledger.take_slot()
        except LedgerFull:
            raise UpstreamUnavailable(
                "the relay cannot record usage right now; try again shortly"
            ) from None

    def _refuse(
        self, caller: Caller, mode: Mode, key: KeyRecord, model: str, status: int, code: str
    ) -> None:
        grant = Grant.begin(caller, mode, key, model)
        grant.notes = self.tracing.notes(caller, None)
        self._take_slot()
        self.ledger.submit(refusal(grant, model, status, code))
