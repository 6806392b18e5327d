"""What each call costs in credits, and the credit account of each API key.

The price rule, used for every ``credit`` the emulator reports or charges:

* **Chat** (``/api/chat-with-ai``, JSON and SSE, and the legacy chat features): each side
  costs ``ceil(tokens × price × 3)`` credits, where ``price`` is the model's
  ``creditMetadata`` ``INPUT`` (for ``inputToken``) or ``OUTPUT`` (for ``outputToken``): the
  vendor's list price in USD per 1M tokens. That is 3 credits per token per $1/1M, so
  3,000,000 credits buy $1 of list-price tokens. The record's ``metadata`` carries
  ``inputCredit``, ``outputCredit`` and ``credit = inputCredit + outputCredit``.
* **Images** (``IMAGE_GENERATOR``, ``IMAGE_VARIATOR``): the matching value of the model's
  ``creditMetadata`` table × the images the call makes. The table is read level by level,
  each level keyed by the call's ``quality`` (default ``standard``), ``size`` (default
  ``1024x1024``), ``mode`` (default ``fast``) or ``ALL``: dall-e-3's
  ``{"standard": {"1024x1024": 40000, …}, "hd": {…}}`` by quality then size, gpt-image's
  ``{low, medium, high}`` by quality, dall-e-2's by size, a flat ``{"ALL": n}``, and
  midjourney's ``{"fast", "relax", …}`` by mode. Midjourney is charged once per call, though
  it makes 4 images. A level where no key matches costs the largest number in it.
* **Speech to text / audio translation**: ``ALL`` × the audio's minutes, rounded up (at
  least 1; 1 when the duration cannot be read from the file).
* **Text to speech**: ``ALL`` × ``ceil(characters / 100)``.

Feature records carry the call's ``credit`` in ``metadata`` beside their other keys.

**Accounts.** Every key starts unlimited with nothing used; ``PUT /_emulator/account/{key}``
sets a ``credit_limit``. Each successful billed call (a record not ``FAILED``) adds its
credit to the key's ``used_credit``. Once ``used_credit >= credit_limit``, chat and feature
calls are refused before anything is done: HTTP 402 ``{"errorCode": "INSUFFICIENT_CREDITS",
"message": "You do not have enough credits to perform this action"}``, a plain JSON answer
for streaming chat too. A call admitted with credits left is served in full, so
``used_credit`` may end above the limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec

CREDITS_PER_TOKEN_DOLLAR = 3  # credits per token for each $1 of list price per 1M tokens
DEFAULT_QUALITY = "standard"
DEFAULT_SIZE = "1024x1024"
DEFAULT_MODE = "fast"
ALL = "ALL"
SPEECH_CHARACTERS = 100  # text to speech is charged per started block of this many
INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
INSUFFICIENT_MESSAGE = "You do not have enough credits to perform this action"


def token_credits(tokens: int, price: object) -> int:
    """``ceil(tokens × price × 3)``, computed exactly (``price`` as written, not as a float)."""
    if not isinstance(price, int | float) or isinstance(price, bool):
        return 0
    return math.ceil(Decimal(tokens) * Decimal(str(price)) * CREDITS_PER_TOKEN_DOLLAR)


def chat_credits(prices: Mapping[str, Any], input_token: int, output_token: int) -> tuple[int, int]:
    """(inputCredit, outputCredit) for a chat exchange with a model's ``creditMetadata``."""
    return (
        token_credits(input_token, prices.get("INPUT")),
        token_credits(output_token, prices.get("OUTPUT")),
    )


def _largest(table: object) -> int:
    if isinstance(table, Mapping):
        return max((_largest(value) for value in table.values()), default=0)
    if isinstance(table, int | float) and not isinstance(table, bool):
        return math.ceil(table)
    return 0


def table_price(table: object, choices: tuple[str, ...] = ()) -> int:
    """The value of a ``creditMetadata`` table for a call described by ``choices``.

    At each level the first of ``choices`` (then ``ALL``) that is a key is followed; a level
    with no matching key, or a value that is not a number, costs the largest number in it.
    """
    while isinstance(table, Mapping):
        key = next((c for c in (*choices, ALL) if c in table), None)
        if key is None:
            return _largest(table)
        table = table[key]
    return _largest(table)


def image_credits(
    table: Mapping[str, Any],
    *,
    quality: str | None,
    size: str | None,
    mode: str | None,
    images: int,
) -> int:
    """An image call's credits: the table's price for the call × ``images`` charged."""
    choices = (quality or DEFAULT_QUALITY, size or DEFAULT_SIZE, mode or DEFAULT_MODE)
    return table_price(table, choices) * images


def audio_minutes_credits(table: Mapping[str, Any], seconds: float | None) -> int:
    """Speech to text / translation: ``ALL`` × started minutes (1 if unknown)."""
    minutes = 1 if seconds is None else max(1, math.ceil(seconds / 60))
    return table_price(table) * minutes


def speech_credits(table: Mapping[str, Any], characters: int) -> int:
    """Text to speech: ``ALL`` × started blocks of 100 characters."""
    return table_price(table) * math.ceil(characters / SPEECH_CHARACTERS)


class Account(msgspec.Struct):
    """A key's credit account as ``GET /_emulator/account/{key}`` shows it."""

    credit_limit: int | None = None  # None: unlimited
    used_credit: int = 0

    @property
    def exhausted(self) -> bool:
        return self.credit_limit is not None and self.used_credit >= self.credit_limit


class AccountLimit(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``PUT /_emulator/account/{key}``."""

    credit_limit: int | None = None

    def __post_init__(self) -> None:
        if self.credit_limit is not None and self.credit_limit < 0:
            raise ValueError("credit_limit must not be negative")


_limit_decoder = msgspec.json.Decoder(AccountLimit)


def parse_limit(body: bytes) -> AccountLimit:
    """Decode a PUT body; raises ``msgspec.ValidationError`` / ``DecodeError`` with the reason."""
    return _limit_decoder.decode(body or b"{}")


class AccountBook:
    """Credit accounts per API key; a key never seen is unlimited with nothing used."""

    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {}

    def get(self, api_key: str) -> Account:
        account = self._accounts.get(api_key)
        return Account(account.credit_limit, account.used_credit) if account else Account()

    def _own(self, api_key: str) -> Account:
        return self._accounts.setdefault(api_key, Account())

    def set_limit(self, api_key: str, credit_limit: int | None) -> Account:
        """Set the key's limit, keeping what it has used so far."""
        self._own(api_key).credit_limit = credit_limit
        return self.get(api_key)

    def reset(self, api_key: str) -> None:
        self._accounts.pop(api_key, None)

    def charge(self, api_key: str, credit: int) -> None:
        self._own(api_key).used_credit += credit

    def exhausted(self, api_key: str) -> bool:
        account = self._accounts.get(api_key)
        return account is not None and account.exhausted
