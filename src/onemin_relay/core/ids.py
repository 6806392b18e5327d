"""Ids unique across processes without a system call per id.

A random prefix per process and a counter: ``uuid4`` reads ``os.urandom`` every time, which
was 7 % of the relay's CPU under load. These ids name things (requests, completions); they
are not secrets and must not be used where guessing one would grant anything.
"""

from __future__ import annotations

import itertools
import secrets

_PROCESS = secrets.token_hex(8)
_COUNTER = itertools.count()


def unique_id(prefix: str = "") -> str:
    """``prefix`` + 16 hex digits of this process + a counter of at least 8 hex digits."""
    return f"{prefix}{_PROCESS}{next(_COUNTER):08x}"
