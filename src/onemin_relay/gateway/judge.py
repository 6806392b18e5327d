"""Is a candidate's answer at least as good as the incumbent's? The judge decides.

For plain chat and long-context requests a judge model (``ONEMIN_JUDGE_MODEL``, a 1min.ai
model) reads both answers under a written rubric and must answer with exactly one verdict
line; anything else is no verdict (and no evidence). Where the answer is a tool call or JSON
bound to a schema, no judge is asked: the answers are compared exactly (the same calls with
the same arguments, the same JSON value), since a near miss there is a miss.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import msgspec
import orjson

from onemin_relay.gateway.route_policy import Verdict

RUBRIC = """You compare two answers to the same request: REFERENCE, from a trusted model, and \
CANDIDATE, from a cheaper one. Judge only what the request asks for:
- correctness: facts, numbers, code and reasoning must be right;
- completeness: every part of the request is answered;
- instructions: the format, length, language and constraints asked for are followed;
- clarity: the answer is clear and not padded.
Style differences that do not matter to the request count as a tie.
Reply with exactly one line and nothing else:
VERDICT: WIN   (the candidate is better)
VERDICT: TIE   (the candidate is as good)
VERDICT: LOSS  (the candidate is worse)"""

EXACT_KINDS = frozenset({"tools", "structured"})  # compared exactly, no judge asked
_VERDICT = re.compile(r"VERDICT:\s*(WIN|TIE|LOSS)")
_VERDICTS: dict[str, Verdict] = {"WIN": "win", "TIE": "tie", "LOSS": "loss"}


class Reply(msgspec.Struct, frozen=True):
    """One model's answer to a request, and what producing it used."""

    text: str
    calls: tuple[tuple[str, str], ...] = ()  # (tool name, arguments as JSON)
    credits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


Ask = Callable[[str, str], Awaitable[Reply]]  # (model, prompt) → its answer


def judge_prompt(question: str, reference: str, candidate: str) -> str:
    """The judge's whole prompt: the rubric, the request and both answers, fenced."""
    return (
        f"{RUBRIC}\n\n<request>\n{question}\n</request>\n\n"
        f"<reference>\n{reference}\n</reference>\n\n<candidate>\n{candidate}\n</candidate>"
    )


def parse_verdict(text: str) -> Verdict | None:
    """The verdict of a judge's reply: exactly one ``VERDICT: WIN|TIE|LOSS`` line, alone on
    the reply (whitespace aside); anything else, two verdicts included, is None."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        return None
    match = _VERDICT.fullmatch(lines[0].upper())
    return _VERDICTS[match.group(1)] if match else None


def exact_verdict(reference: Reply, candidate: Reply) -> Verdict:
    """Tool calls and schema-bound JSON: a tie when the same, else a loss."""
    if reference.calls or candidate.calls:
        same = _calls(reference) == _calls(candidate)
    else:
        same = _json(reference.text) == _json(candidate.text)
    return "tie" if same else "loss"


def _calls(reply: Reply) -> list[tuple[str, object]]:
    return [(name, _json(arguments)) for name, arguments in reply.calls]


def _json(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return ("not JSON", text.strip())


class Judge:
    """The judge model, and how to ask it (with the operator's key)."""

    def __init__(self, model: str, ask: Ask) -> None:
        self.model = model
        self._ask = ask

    async def rule(self, question: str, reference: str, candidate: str) -> Reply:
        """The judge's reply (read it with ``parse_verdict``)."""
        return await self._ask(self.model, judge_prompt(question, reference, candidate))
