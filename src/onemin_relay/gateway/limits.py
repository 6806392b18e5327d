"""Rate limits: requests and tokens per minute per client IP and per key, and requests in
flight per IP, per key and per 1min.ai key, all checked and counted in one step.

Tokens are admitted on an estimate, the prompt (at four characters a token) plus the output
the request may ask for (``max_tokens``, else ``ONEMIN_EXPECTED_OUTPUT_TOKENS``), and corrected
once the call has ended by the difference from what 1min.ai reports. A long reply therefore
counts in full, and a short one gives back what it did not use, in the window where it was
counted. The state of the tightest windows is kept for the response's rate-limit headers.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import secrets
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any, Literal, TypeAlias

import msgspec

from onemin_relay.core.errors import RateLimited, UpstreamUnavailable
from onemin_relay.core.types import Caller
from onemin_relay.gateway.keys import KeyRecord
from onemin_relay.gateway.limit_store import (
    Admission,
    Cap,
    LimitStore,
    MemoryLimitStore,
    Window,
    WindowState,
)
from onemin_relay.settings import Settings

_PROCESS = secrets.token_hex(6)
_ADMISSIONS = itertools.count()

log = logging.getLogger(__name__)

Kind: TypeAlias = Literal["requests", "tokens"]
_IP_RPM = "requests per minute for this IP"
_IP_TPM = "tokens per minute for this IP"
_KEY_RPM = "requests per minute for this key"
_KEY_TPM = "tokens per minute for this key"


class Counted(msgspec.Struct, frozen=True):
    """One window a request was checked against, for headers and messages."""

    label: str  # "per-IP requests per minute"
    kind: Kind
    limit: int
    state: WindowState


# the windows of the request being served, for its rate-limit headers (app.py)
RATE_STATE: ContextVar[tuple[Counted, ...] | None] = ContextVar("onemin_rate", default=None)


class RateGrant(msgspec.Struct):
    """What an admitted request was counted in, to correct and release when it ends."""

    member: str
    token_windows: tuple[str, ...] = ()
    caps: tuple[Cap, ...] = ()
    estimate: int = 0
    window_index: int = 0


class RateLimits:
    def __init__(self, store: LimitStore, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._lease = settings.total_timeout + 60
        self.healthy = True
        self._pending: set[asyncio.Task[None]] = set()
        # a store in this process ends a request at once, with no task to schedule and run
        self._finish_now = store.finish_now if isinstance(store, MemoryLimitStore) else None

    async def admit(
        self, caller: Caller, key: KeyRecord | None, upstream_key: str, tokens: int
    ) -> RateGrant:
        """Count the request everywhere it is limited, or raise 429 naming the limit."""
        labelled = self._windows(caller, key, tokens)
        windows = [window for _, _, window in labelled]
        caps = self._caps(caller, key, upstream_key)
        # unique per admission: a client may choose its request id (x-request-id), and a
        # repeated one must not count as one request in the limits' sets
        member = f"{caller.request_id}:{_PROCESS}{next(_ADMISSIONS):x}"
        if not windows and not caps:
            return RateGrant(member)
        try:
            admission = await self._store.admit(windows, caps, member, self._lease)
        except asyncio.CancelledError:
            # the client left while the store answered: it may have counted the request
            # in flight, and nothing else would take it out until its lease ran out
            self._in_background(self._store.release(caps, member))
            raise
        except Exception as exc:
            return self._store_failed(exc, member)
        self.healthy = True
        self._remember(labelled, admission)
        if not admission.admitted:
            raise self._refusal(labelled, caps, admission)
        token_windows = tuple(w.subject for kind, _, w in labelled if kind == "tokens")
        return RateGrant(member, token_windows, tuple(caps), tokens, admission.window_index)

    def settle(self, grant: RateGrant, tokens_used: int | None) -> None:
        """Correct the token estimate and leave the in-flight sets (in the background)."""
        if not grant.caps and not grant.token_windows:
            return
        delta = 0 if tokens_used is None else tokens_used - grant.estimate
        if self._finish_now is not None:
            self._finish_now(
                grant.caps, grant.member, grant.token_windows, grant.window_index, delta
            )
            return
        self._in_background(self._settle(grant, delta))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` past the request's end (or cancellation); ``drain`` waits for it."""
        task = asyncio.get_running_loop().create_task(self._quietly(work))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _quietly(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:
            log.warning("rate limits: could not finish a request (%s)", type(exc).__name__)

    async def _settle(self, grant: RateGrant, delta: int) -> None:
        try:
            await self._store.finish(
                list(grant.caps), grant.member, list(grant.token_windows), grant.window_index, delta
            )
        except Exception as exc:
            log.warning("rate limits: could not settle a request (%s)", type(exc).__name__)

    async def drain(self) -> None:
        """Wait for the requests' last counting (before the store's connection closes)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _windows(
        self, caller: Caller, key: KeyRecord | None, tokens: int
    ) -> list[tuple[Kind, str, Window]]:
        settings, ip = self._settings, caller.client_ip
        found: list[tuple[Kind, str, Window]] = []
        if settings.ip_rpm:
            found.append(("requests", _IP_RPM, Window(f"ip:{ip}:rpm", settings.ip_rpm, 1)))
        if settings.ip_tpm and tokens > 0:
            found.append(("tokens", _IP_TPM, Window(f"ip:{ip}:tpm", settings.ip_tpm, tokens)))
        if key is not None:
            if key.rpm:
                found.append(("requests", _KEY_RPM, Window(f"key:{key.id}:rpm", key.rpm, 1)))
            if key.tpm and tokens > 0:
                found.append(("tokens", _KEY_TPM, Window(f"key:{key.id}:tpm", key.tpm, tokens)))
        return found

    def _caps(self, caller: Caller, key: KeyRecord | None, upstream_key: str) -> list[Cap]:
        settings = self._settings
        caps = []
        if settings.ip_max_in_flight:
            caps.append(Cap(f"ip:{caller.client_ip}", settings.ip_max_in_flight))
        if key is not None and settings.key_max_in_flight:
            caps.append(Cap(f"key:{key.id}", settings.key_max_in_flight))
        if settings.upstream_max_in_flight:
            caps.append(Cap(upstream_subject(upstream_key), settings.upstream_max_in_flight))
        return caps

    def _remember(self, labelled: list[tuple[Kind, str, Window]], admission: Admission) -> None:
        counted = []
        for (kind, label, window), state in zip(labelled, admission.states, strict=True):
            counted.append(Counted(label, kind, window.limit, state))
        RATE_STATE.set(tuple(counted))

    def _refusal(
        self, labelled: list[tuple[Kind, str, Window]], caps: list[Cap], admission: Admission
    ) -> RateLimited:
        wait = admission.retry_after
        if admission.refused_window is not None:
            _, label, window = labelled[admission.refused_window]
            if window.cost > window.limit:
                message = (
                    f"this request alone ({window.cost} tokens estimated) exceeds the limit of "
                    f"{window.limit} {label}; ask for fewer max_tokens"
                )
                return RateLimited(message, retry_after=None)
            return RateLimited(f"rate limit reached: {window.limit} {label}", retry_after=wait)
        cap = caps[admission.refused_cap or 0]
        what = cap.subject.split(":", 1)[0]
        owner = {"ip": "this IP", "key": "this key", "upstream": "this 1min.ai key"}[what]
        return RateLimited(
            f"too many requests in flight for {owner} (at most {cap.limit} at once)",
            retry_after=wait,
        )

    def _store_failed(self, exc: Exception, member: str) -> RateGrant:
        self.healthy = False
        log.error("rate limits: the limit store failed (%s)", type(exc).__name__)
        if self._settings.limits_on_store_error == "open":
            return RateGrant(member)
        raise UpstreamUnavailable(
            "rate limits cannot be checked right now; try again shortly"
        ) from None


@functools.lru_cache(maxsize=1024)
def upstream_subject(upstream_key: str) -> str:
    """The in-flight cap's subject for a 1min.ai key: a hash, never the key (it is stored,
    in Redis too); remembered, as the same few keys come back on every request."""
    return "upstream:" + hashlib.sha256(upstream_key.encode()).hexdigest()[:24]


def token_estimate(prompt_chars: int, max_output: int | None, expected_output: int) -> int:
    """Tokens a request is admitted on: the prompt at four characters a token, plus the
    output it may ask for."""
    return prompt_chars // 4 + (max_output if max_output else expected_output)
