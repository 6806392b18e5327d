"""The learning loop end to end against the emulator: shadow runs, the judge's verdicts,
labels, and traffic moving to a cheap candidate and back.

The emulator's judge is scripted: the operator key's ``reply`` knob, bent to the judge model
only, makes every verdict a tie (a candidate as good as the incumbent) or a loss (worse).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from onemin_relay.gateway.route_report import savings
from onemin_relay.surfaces.common import GATEWAY, PIPELINE
from tests.conftest import Stack

JUDGE, INCUMBENT, CHEAP = "sonar", "gpt-4o", "gpt-4o-mini"
ROUTES = f"""
[projects.default.routes.balanced]
incumbent = "{INCUMBENT}"
candidates = ["{CHEAP}"]
fallbacks = []

[projects.default.routes.cost-saver]
incumbent = "{INCUMBENT}"
candidates = ["{CHEAP}"]
fallbacks = []
"""


class Loop:
    def __init__(self, stack: Stack, url: str, app: object, api_key: str) -> None:
        self.stack, self.app = stack, app
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0)

    def ask(self, route: str, text: str = "What is 2 + 2?") -> tuple[str, str]:
        """(model used, x-onemin-route), once the shadow runs it started are done."""
        raw = self.client.chat.completions.with_raw_response.create(
            model=f"onemin/{route}", messages=[{"role": "user", "content": text}]
        )
        self.settle()
        return raw.parse().model, raw.headers["x-onemin-route"]

    def settle(self) -> None:
        """Wait for the shadow runs started so far, then for the ledger to be written."""

        async def settled() -> None:
            await self.app[PIPELINE].learning.shadows.idle()  # type: ignore[index]
            for _ in range(500):
                if self.app[GATEWAY].ledger.pending == 0:  # type: ignore[index]
                    return
                await asyncio.sleep(0.01)

        self.stack.on_relay(settled())


@pytest.fixture
def loop(stack: Stack, api_key: str, tmp_path: Path) -> Iterator[Loop]:
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES, encoding="utf-8")
    with stack.another_relay(shadow_rate=1.0, judge_model=JUDGE, routes_file=str(routes)) as (
        url,
        app,
    ):
        running = Loop(stack, url, app, api_key)
        try:
            yield running
        finally:
            running.client.close()
            stack.set_faults(stack.operator_key)


def judge_says(stack: Stack, verdict: str) -> None:
    stack.set_faults(stack.operator_key, models=[JUDGE], reply=f"VERDICT: {verdict}")


def test_cost_saver_moves_first_balanced_later_and_labels_move_it_back(
    loop: Loop, stack: Stack, api_key: str
) -> None:
    judge_says(stack, "TIE")
    for _ in range(10):
        assert loop.ask("balanced")[0] == INCUMBENT
        assert loop.ask("cost-saver")[0] == INCUMBENT
    model, route = loop.ask("cost-saver")
    assert model == CHEAP and "reason=evidence" in route and "evidence=10" in route, route
    assert loop.ask("balanced")[0] == INCUMBENT, "balanced wants 30 samples"
    long_model, long_route = loop.ask("cost-saver", "word " * 13_000 + "\nWhat is 2 + 2?")
    assert long_model == INCUMBENT and "kind=long" in long_route, "evidence is kept per kind"
    for _ in range(19):
        loop.ask("balanced")
    assert loop.ask("balanced")[0] == CHEAP, "30 ties at 95 % clear the 0.9 floor"

    served = loop.client.chat.completions.with_raw_response.create(
        model="onemin/cost-saver", messages=[{"role": "user", "content": "hi"}]
    )
    request_id = served.headers["x-request-id"]
    assert served.parse().id == f"chatcmpl-{request_id}"
    loop.settle()
    label = loop.client.post(
        "/feedback", body={"response_id": served.parse().id, "score": -1}, cast_to=object
    )
    assert label == {
        "object": "feedback", "request_id": request_id, "recorded": True, "model": CHEAP,
        "route": "onemin/cost-saver", "reason": None,
    }  # fmt: skip
    model, route = loop.ask("cost-saver")
    assert model == INCUMBENT and "reason=incumbent" in route, "a bad label moves it back"

    store = loop.app[GATEWAY].store  # type: ignore[index]
    shadow_rows = [r for r in loop.stack.on_relay(store.ledger(None, 1000)) if r.mode == "shadow"]
    assert shadow_rows and all(r.key_id is None and r.charged == 0 for r in shadow_rows)
    assert {r.upstream_model for r in shadow_rows} == {CHEAP, INCUMBENT, JUDGE}
    asked = len([r for r in stack.chat_requests(api_key)])
    assert asked == 10 * 2 + 2 + 1 + 19 + 1 + 1 + 1, "shadows never spend the caller's key"
    saved = loop.stack.on_relay(store.routed_usage(0))
    catalog = loop.stack.on_relay(loop.app[PIPELINE]._catalog.get())  # type: ignore[index]
    by_route = {s.route: s for s in savings(saved, catalog)}
    cost_saver = by_route["onemin/cost-saver"]
    assert cost_saver.by_candidates == 2 and cost_saver.saved_credits > 0
    assert cost_saver.shadow_credits > 0, "shadow spend is reported beside the saving"


def test_a_worse_candidate_never_takes_traffic(loop: Loop, stack: Stack) -> None:
    judge_says(stack, "LOSS")
    for _ in range(30):
        loop.ask("cost-saver")
    model, route = loop.ask("cost-saver")
    assert model == INCUMBENT and "evidence=30" in route, route
    assert loop.ask("balanced")[0] == INCUMBENT


def test_labels_need_the_answers_project(loop: Loop, stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError):
        loop.client.post("/feedback", body={"request_id": "req_nope", "score": 1}, cast_to=object)
    with pytest.raises(openai.BadRequestError):
        loop.client.post("/feedback", body={"score": 1}, cast_to=object)


def test_streamed_answers_are_shadowed_too(loop: Loop, stack: Stack) -> None:
    judge_says(stack, "TIE")
    chunks = loop.client.chat.completions.create(
        model="onemin/cost-saver", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hi"
    loop.settle()
    store = loop.app[GATEWAY].store  # type: ignore[index]
    rows = loop.stack.on_relay(store.evidence("default"))
    assert [(r.route, r.kind, r.candidate, r.tally.samples) for r in rows] == [
        ("cost-saver", "chat", CHEAP, 1)
    ]
