"""What a call may cost before it is made, and what it did cost, in 1min.ai credits.

1min.ai publishes prices per model in the catalog's ``creditMetadata`` and reports each call's
charge in its record (``metadata.credit``). The relay needs the most a call can cost before
sending it (the hold), and a fallback when a record carries no charge. The rule mirrors what
1min.ai bills (see the emulator's ``billing`` module, which follows the same documented rule):

* chat: per side, ``ceil(tokens × price × CREDITS_PER_PRICE_UNIT)`` with ``INPUT`` / ``OUTPUT``
  in USD per million tokens. The hold takes the prompt's tokens with a margin (1min.ai counts
  with the provider's tokenizer and adds context of its own) and the most output the call may
  produce: the client's ``max_tokens`` or else the model's ``MAX_OUTPUT_TOKEN``.
* images: the price table's entry for each call (by quality, size, mode), or its largest
  entry, per image (a midjourney batch of four is one charge); speech to text: ``ALL`` per
  started minute; text to speech: ``ALL`` per 100 characters.

Credits become USD at the operator's rate (``ONEMIN_CREDITS_PER_USD``), rounded up to the
nano-dollar so a charge is never under the cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from onemin_relay.core.errors import UpstreamUnavailable
from onemin_relay.core.types import ModelInfo
from onemin_relay.gateway.keys import NANOS_PER_USD

CREDITS_PER_PRICE_UNIT = 3.0  # credits per token for a price of $1 per million tokens
INPUT_MARGIN = 1.25  # tokenizers differ; 1min.ai adds server-side context
INPUT_OVERHEAD_TOKENS = 64
DEFAULT_MAX_OUTPUT = 16_384  # when the catalog does not say


def chat_credits(info: ModelInfo, input_tokens: int, output_tokens: int) -> int:
    """Credits for a chat call with these token counts."""
    price_in, price_out = _token_prices(info)
    return _side(input_tokens, price_in) + _side(output_tokens, price_out)


def chat_hold(
    info: ModelInfo, prompt_tokens: int, max_output: int | None, calls: int = 1
) -> tuple[int, int]:
    """(credits to hold, output tokens covered per call) for ``calls`` chat calls with this
    prompt. ``max_output`` lowers the hold only where the relay can enforce it (a plain
    stream, which it cuts there): 1min.ai takes no output limit, so a whole answer may run
    to the model's own maximum."""
    output = output_allowance(info, max_output)
    inputs = math.ceil(prompt_tokens * INPUT_MARGIN) + INPUT_OVERHEAD_TOKENS
    return chat_credits(info, inputs, output) * calls, output


def output_allowance(info: ModelInfo, max_output: int | None) -> int:
    ceiling = info.max_output_tokens or DEFAULT_MAX_OUTPUT
    return min(max_output, ceiling) if max_output is not None and max_output > 0 else ceiling


def image_call_credits(info: ModelInfo, prompt_object: dict[str, Any], images: int) -> int:
    """One image call: the price table read level by level by the call's ``quality``
    (default ``standard``), ``size`` (``1024x1024``), ``mode`` (``fast``) or ``ALL``, the
    largest entry where none matches; × the images the call is charged for."""
    choices = tuple(
        str(prompt_object.get(name) or default)
        for name, default in (("quality", "standard"), ("size", "1024x1024"), ("mode", "fast"))
    )
    table: Any = _table(info)
    while isinstance(table, dict):
        key = next((c for c in (*choices, "ALL") if c in table), None)
        if key is None:
            break
        table = table[key]
    price = table if isinstance(table, int | float) and not isinstance(table, bool) else None
    each = math.ceil(price) if price is not None else _largest(table)
    return each * images


def transcription_credits(info: ModelInfo, seconds: float | None) -> int:
    minutes = max(1, math.ceil((seconds or 60) / 60))
    return _flat(info) * minutes


def speech_credits(info: ModelInfo, characters: int) -> int:
    return _flat(info) * max(1, math.ceil(characters / 100))


def credits_to_nanos(credits: int, credits_per_usd: float) -> int:
    """USD nanos for ``credits`` at the operator's rate, rounded up."""
    return math.ceil(credits * NANOS_PER_USD / credits_per_usd)


def _side(tokens: int, price: float) -> int:
    # rounded first, so float noise (20 × 0.15 × 3 = 9.000000000000002) is not a credit
    return math.ceil(round(tokens * price * CREDITS_PER_PRICE_UNIT, 6))


def _token_prices(info: ModelInfo) -> tuple[float, float]:
    table = info.credit_metadata or {}
    price_in, price_out = table.get("INPUT"), table.get("OUTPUT")
    if not isinstance(price_in, int | float) or not isinstance(price_out, int | float):
        raise UpstreamUnavailable(f"1min.ai lists no token prices for {info.id!r}; cannot bill it")
    return float(price_in), float(price_out)


def _table(info: ModelInfo) -> dict[str, Any]:
    if not info.credit_metadata:
        raise UpstreamUnavailable(f"1min.ai lists no prices for {info.id!r}; cannot bill it")
    return info.credit_metadata


def _flat(info: ModelInfo) -> int:
    value = _table(info).get("ALL")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.ceil(value)
    return _largest(_table(info))


def _largest(table: Any) -> int:
    if not isinstance(table, dict):
        return 0
    return max((math.ceil(v) for v in _numbers(table)), default=0)


def _numbers(table: dict[str, Any]) -> Iterator[float]:
    for value in table.values():
        if isinstance(value, dict):
            yield from _numbers(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield value
