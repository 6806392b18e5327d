"""Deterministic reply text and token counts, so tests can assert exact output.

The reply echoes the last non-empty prompt line with any ``Role:`` label removed
(``"System: be brief\\n\\nUser: hi there"`` → ``"Echo: hi there"``); an empty prompt gets a
greeting. Suffixes show what the emulated model saw: `` [images: N]``, `` [files: N]``,
`` [web search]``, `` [history: N]``, `` [youtube: N]`` (YouTube links in the prompt, whose
transcripts the real service fetches; at most three count). Tokens are estimated at four
characters each, with no tokenizer, so the emulator stays independent of the relay; credits
follow the price rule in ``billing``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from onemin_relay.emulator.billing import chat_credits

GREETING = "Hello! How can I help you today?"
SERVER_CONTEXT_TOKENS = 7  # the live service reports inputToken above promptToken
_ROLE_LABEL = re.compile(r"^(system|developer|user|human|assistant|tool)\s*:\s*", re.IGNORECASE)
_PIECE = re.compile(r"\S+\s*|\s+")
_YOUTUBE = re.compile(
    r"https?://(?:www\.|m\.)?(?:youtube\.com/(?:watch\?v=|shorts/)|youtu\.be/)[\w-]+"
)
MAX_YOUTUBE_LINKS = 3


class Seen(msgspec.Struct, frozen=True):
    """What the emulated model received besides the prompt text."""

    images: int = 0
    files: int = 0
    web_search: bool = False
    history_turns: int = 0


class Usage(msgspec.Struct, frozen=True):
    prompt_token: int
    input_token: int
    output_token: int
    input_credit: int
    output_credit: int

    @property
    def total_token(self) -> int:
        return self.input_token + self.output_token

    @property
    def credit(self) -> int:
        return self.input_credit + self.output_credit


def reply_text(prompt: str, seen: Seen, override: str | None = None) -> str:
    """The answer to ``prompt``; ``override`` (the ``reply`` knob) wins over everything."""
    if override is not None:
        return override
    lines = [line.strip() for line in prompt.splitlines() if line.strip()]
    base = f"Echo: {_ROLE_LABEL.sub('', lines[-1])}" if lines else GREETING
    suffixes = [
        f" [images: {seen.images}]" if seen.images else "",
        f" [files: {seen.files}]" if seen.files else "",
        " [web search]" if seen.web_search else "",
        f" [history: {seen.history_turns}]" if seen.history_turns else "",
    ]
    videos = min(len(set(_YOUTUBE.findall(prompt))), MAX_YOUTUBE_LINKS)
    if videos:
        suffixes.append(f" [youtube: {videos}]")
    return base + "".join(suffixes)


def split_pieces(text: str) -> list[str]:
    """Word-ish stream deltas whose concatenation is exactly ``text``."""
    return _PIECE.findall(text)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def estimate_usage(prompt: str, context: str, result: str, prices: Mapping[str, Any]) -> Usage:
    """Token counts and credits; ``context`` is server-added text such as stored history,
    ``prices`` the model's ``creditMetadata``."""
    prompt_token = _tokens(prompt)
    context_token = math.ceil(len(context) / 4)
    input_token = prompt_token + SERVER_CONTEXT_TOKENS + context_token
    output_token = _tokens(result)
    input_credit, output_credit = chat_credits(prices, input_token, output_token)
    return Usage(
        prompt_token=prompt_token,
        input_token=input_token,
        output_token=output_token,
        input_credit=input_credit,
        output_credit=output_credit,
    )
