"""What an admitted call carries, how it ended, and the ledger row the two make.

A :class:`Grant` is made by ``Gateway.admit`` and travels with the call; :class:`Spent` says
how it ended; :func:`ledger_row` turns both into the row ``Gateway.settle`` writes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Literal, TypeAlias

import msgspec

from onemin_relay.core.errors import RelayError
from onemin_relay.core.types import Caller
from onemin_relay.gateway.keys import KeyRecord
from onemin_relay.gateway.limits import RateGrant
from onemin_relay.gateway.storage import LedgerRow, Outcome, Settlement
from onemin_relay.gateway.traces import TraceNotes, trace_detail

Mode: TypeAlias = Literal["byok", "relay", "managed", "anonymous"]
TEXT_LIMIT = 200
CLIENT_CLOSED = 499  # nginx's status for a client that left before the answer


class Grant(msgspec.Struct):
    """An admitted call: the key it goes upstream with and what it may spend."""

    request_id: str
    mode: Mode
    api_key: str  # the 1min.ai key sent upstream; never logged
    surface: str
    requested_model: str
    started: float
    key: KeyRecord | None = None
    hold_id: str | None = None
    hold: int = 0  # nano-USD held
    first_byte: float | None = None
    settled: bool = False
    rate: RateGrant | None = None  # what the rate limits counted, to correct and release
    answered: bool = False  # 1min.ai did the work (and billed it), whatever happens next
    reported_credits: int | None = None  # what 1min.ai said it charged, summed
    notes: TraceNotes | None = None  # what its trace learns on the way (None: traces off)
    conversation_id: str | None = None  # the one the client named, else the request's id
    route: str | None = None  # how routing chose the model (x-onemin-route), if it did

    def upstream_answered(self, credit: int | None) -> None:
        """Record that an upstream call finished, and what 1min.ai said it cost."""
        self.answered = True
        if credit is not None:
            self.reported_credits = (self.reported_credits or 0) + credit

    @classmethod
    def begin(
        cls,
        caller: Caller,
        mode: Mode,
        key: KeyRecord | None,
        requested_model: str,
        api_key: str = "",
        rate: RateGrant | None = None,
    ) -> Grant:
        """A grant starting now, for ``caller``'s request."""
        return cls(
            request_id=caller.request_id or uuid.uuid4().hex,
            mode=mode,
            api_key=api_key,
            surface=caller.surface,
            requested_model=requested_model,
            started=time.monotonic(),
            key=key,
            rate=rate,
            conversation_id=caller.conversation_id or caller.request_id or None,
        )

    @property
    def paid(self) -> bool:
        return self.key is not None and self.mode == "managed"

    def __repr__(self) -> str:  # the upstream key stays out of logs and tracebacks
        return f"Grant(request_id={self.request_id!r}, mode={self.mode!r}, hold={self.hold})"


class Spent(msgspec.Struct, frozen=True):
    """How a call ended, for its settlement."""

    status: int
    upstream_model: str
    input_tokens: int = 0
    output_tokens: int = 0
    credits: int = 0
    cost: int = 0  # nano-USD
    error_code: str | None = None
    conversation_id: str | None = None


def status_of(exc: BaseException) -> int:
    """The status a call that ended with ``exc`` goes on the ledger with."""
    if isinstance(exc, RelayError):
        return exc.status
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return CLIENT_CLOSED
    return 500


def refusal(grant: Grant, model: str, status: int, code: str) -> Settlement:
    """A refused call's row: nothing sent upstream, nothing charged, its hold (if one was
    taken after all) released."""
    row = ledger_row(grant, Spent(status, model, error_code=code), "refused")
    key_id = grant.key.id if grant.paid and grant.key is not None else None
    return Settlement(row, key_id=key_id, hold_id=grant.hold_id, trace=trace_detail(grant, row))


def ledger_row(grant: Grant, spent: Spent, outcome: Outcome) -> LedgerRow:
    elapsed = (time.monotonic() - grant.started) * 1000
    ttfb = None if grant.first_byte is None else (grant.first_byte - grant.started) * 1000
    if ttfb is None and outcome == "ok":
        ttfb = elapsed  # a whole answer: its first byte left with the rest
    key = grant.key
    return LedgerRow(
        at=time.time(),
        request_id=_text(grant.request_id),
        key_id=key.id if key else None,
        project=key.project if key else None,
        mode=grant.mode,
        surface=_text(grant.surface),
        requested_model=_text(grant.requested_model),
        upstream_model=_text(spent.upstream_model),
        status=spent.status,
        outcome=outcome,
        input_tokens=spent.input_tokens,
        output_tokens=spent.output_tokens,
        credits=spent.credits,
        cost=spent.cost if grant.paid else 0,
        latency_ms=elapsed,
        ttfb_ms=ttfb,
        conversation_id=_text(spent.conversation_id or grant.conversation_id or grant.request_id),
        error_code=spent.error_code,
        route=grant.route,
    )


def _text(value: str) -> str:
    """Client-supplied text as a ledger column holds it: no NULs, at most 200 characters."""
    return value.replace("\x00", "")[:TEXT_LIMIT]
