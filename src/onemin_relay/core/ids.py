"""Ids unique across processes without a system call per id.

``uuid4`` reads ``os.urandom`` every time, which was 7 % of the relay's CPU under load.
:func:`unique_id` is a random prefix per process and a counter: it names things nobody could
use by guessing (completions). :func:`unguessable_id` keys a hash of the counter with a secret
of the process: a request's id is what ``POST /v1/feedback`` takes to label its answer, so
knowing one must mean having seen the answer, not counting on from one's own.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets

_PROCESS = secrets.token_hex(8)
_COUNTER = itertools.count()
_SECRET = secrets.token_bytes(16)
_UNGUESSABLE = itertools.count()


def unique_id(prefix: str = "") -> str:
    """``prefix`` + 16 hex digits of this process + a counter of at least 8 hex digits."""
    return f"{prefix}{_PROCESS}{next(_COUNTER):08x}"


def unguessable_id(prefix: str = "") -> str:
    """``prefix`` + 24 hex digits that no earlier id of this process tells (~1 µs)."""
    counter = next(_UNGUESSABLE).to_bytes(8, "little")
    return prefix + hashlib.blake2b(counter, key=_SECRET, digest_size=12).hexdigest()
