"""Gateway keys: what they look like, how they are stored, and what a presented credential is.

Two kinds are issued by the operator:

* **relay keys** (``rk-onemin-…``) go in the URL path (``/<relay-key>/v1``); the caller's own
  1min.ai key goes in the API-key field and is forwarded upstream;
* **managed keys** (``sk-onemin-…``) go in the API-key field; the operator's 1min.ai key goes
  upstream and the call is paid from the key's prepaid balance.

Only the SHA-256 of a key is stored, with a short display prefix; the whole key is shown once,
when it is created. Anything else presented in the API-key field is taken to be a 1min.ai key.
"""

from __future__ import annotations

import fnmatch
import hashlib
import secrets
import time
from typing import Literal, TypeAlias

import msgspec

KeyKind: TypeAlias = Literal["relay", "managed"]
RELAY_PREFIX = "rk-onemin-"
MANAGED_PREFIX = "sk-onemin-"
PREFIXES: dict[KeyKind, str] = {"relay": RELAY_PREFIX, "managed": MANAGED_PREFIX}
DISPLAY_CHARS = 4  # characters of the secret part kept for display
NANOS_PER_USD = 1_000_000_000


class KeyRecord(msgspec.Struct, frozen=True):
    """One issued key as stored: money in nano-USD, times in epoch seconds."""

    id: str
    hash: str
    prefix: str
    name: str
    kind: KeyKind
    project: str = "default"
    models: tuple[str, ...] = ()  # globs; empty allows every model
    rpm: int | None = None
    tpm: int | None = None
    expires_at: float | None = None
    created_at: float = 0.0
    revoked_at: float | None = None
    balance: int = 0
    reserved: int = 0
    spent: int = 0

    def usable_at(self, now: float) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def allows(self, model: str) -> bool:
        """Whether the key may call ``model`` (matched case-insensitively against its globs)."""
        if not self.models:
            return True
        folded = model.lower()
        return any(fnmatch.fnmatchcase(folded, pattern.lower()) for pattern in self.models)

    @property
    def available(self) -> int:
        return self.balance - self.reserved


class NewKey(msgspec.Struct, frozen=True):
    """A freshly issued key: the record to store and the secret to show once."""

    record: KeyRecord
    secret: str


def issue(
    kind: KeyKind,
    name: str,
    *,
    project: str = "default",
    balance: int = 0,
    models: tuple[str, ...] = (),
    rpm: int | None = None,
    tpm: int | None = None,
    expires_at: float | None = None,
) -> NewKey:
    secret = PREFIXES[kind] + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")
    record = KeyRecord(
        id="key_" + secrets.token_hex(6),
        hash=hash_key(secret),
        prefix=display_prefix(secret),
        name=name,
        kind=kind,
        project=project,
        models=models,
        rpm=rpm,
        tpm=tpm,
        expires_at=expires_at,
        created_at=time.time(),
        balance=balance,
    )
    return NewKey(record, secret)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """``sk-onemin-AbCd…``: enough to tell keys apart in a list, useless to an attacker."""
    for prefix in PREFIXES.values():
        if secret.startswith(prefix):
            return secret[: len(prefix) + DISPLAY_CHARS] + "…"
    return secret[:DISPLAY_CHARS] + "…"


def kind_of(credential: str) -> KeyKind | None:
    """Which kind of gateway key ``credential`` looks like; None for anything else."""
    if credential.startswith(RELAY_PREFIX):
        return "relay"
    if credential.startswith(MANAGED_PREFIX):
        return "managed"
    return None


def usd_to_nanos(amount: float) -> int:
    return round(amount * NANOS_PER_USD)


def nanos_to_usd(nanos: int) -> float:
    return nanos / NANOS_PER_USD
