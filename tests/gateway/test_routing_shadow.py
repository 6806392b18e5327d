"""Shadow runs and the judge without a server: verdict parsing, exact comparison, the
bounded queue, who pays, and what becomes evidence."""

from __future__ import annotations

import asyncio

import pytest

from onemin_relay.gateway.judge import Judge, Reply, exact_verdict, judge_prompt, parse_verdict
from onemin_relay.gateway.ledger import LedgerFull
from onemin_relay.gateway.route_policy import Tally
from onemin_relay.gateway.shadow import ShadowJob, Shadows
from onemin_relay.gateway.storage import Settlement


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("VERDICT: TIE", "tie"),
        ("  verdict:   win \n", "win"),
        ("VERDICT: LOSS", "loss"),
        ("VERDICT: TIE\nVERDICT: LOSS", None),  # two verdicts: none
        ("The candidate is fine. VERDICT: TIE", None),  # not alone on its line
        ("VERDICT: MAYBE", None),
        ("", None),
    ],
)
def test_verdict_parsing_is_strict(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_the_judge_prompt_holds_the_rubric_and_both_answers() -> None:
    prompt = judge_prompt("What is 2 + 2?", "4", "four")
    assert "VERDICT: TIE" in prompt and "<reference>\n4\n</reference>" in prompt
    assert prompt.index("<request>") < prompt.index("<reference>") < prompt.index("<candidate>")


def test_tool_calls_and_json_are_compared_exactly() -> None:
    call = Reply("", (("get_weather", '{"city": "Paris"}'),))
    same = Reply("", (("get_weather", '{ "city":"Paris" }'),))
    other = Reply("", (("get_weather", '{"city": "Rome"}'),))
    assert exact_verdict(call, same) == "tie" and exact_verdict(call, other) == "loss"
    assert exact_verdict(Reply('{"a": 1}'), Reply('{ "a" : 1 }')) == "tie"
    assert exact_verdict(Reply('{"a": 1}'), Reply('{"a": 2}')) == "loss"
    assert exact_verdict(Reply('{"a": 1}'), Reply("not json")) == "loss"


class Ledger:
    def __init__(self, room: int = 100) -> None:
        self.rows: list[Settlement] = []
        self.room = room

    def take_slot(self) -> None:
        if self.room == 0:
            raise LedgerFull
        self.room -= 1

    def submit(self, settlement: Settlement) -> None:
        self.rows.append(settlement)


class World:
    """Candidates answer ``answers[model]``; the judge says ``verdict``; calls are counted."""

    def __init__(self, verdict: str = "TIE") -> None:
        self.verdict = verdict
        self.calls: list[str] = []
        self.evidence: list[tuple[str, str, str, str, Tally]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def replay(self, model: str) -> Reply:
        await self.gate.wait()
        self.calls.append(model)
        return Reply("Echo: hi", (), 7, 3, 4)

    async def ask(self, model: str, prompt: str) -> Reply:
        self.calls.append(model)
        return Reply(f"VERDICT: {self.verdict}", (), 5, 100, 3)

    async def add(self, project: str, route: str, kind: str, model: str, tally: Tally) -> None:
        self.evidence.append((project, route, kind, model, tally))


def job(world: World, served_by: str = "dear", kind: str = "chat") -> ShadowJob:
    return ShadowJob(
        request_id="req-1",
        project="default",
        route="cost-saver",
        kind=kind,
        incumbent="dear",
        candidates=("cheap", "cheaper"),
        served_by=served_by,
        served=Reply("Echo: hi", (), 50, 3, 4),
        question="hi",
        replay=world.replay,
    )


def shadows(world: World, ledger: Ledger, queue: int = 10, rate: float = 1.0) -> Shadows:
    judge = Judge("judge-model", world.ask)
    return Shadows(rate, 1, queue, judge, world.add, ledger, 3_000_000.0)


async def test_an_incumbents_answer_is_replayed_on_each_candidate_and_judged() -> None:
    world, ledger = World(), Ledger()
    runner = shadows(world, ledger)
    assert runner.offer(job(world))
    await runner.idle()
    await runner.stop()
    assert world.calls == ["cheap", "judge-model", "cheaper", "judge-model"]
    assert [(e[3], e[4]) for e in world.evidence] == [
        ("cheap", Tally(1.0, 1.0, 1)),
        ("cheaper", Tally(1.0, 1.0, 1)),
    ]
    rows = [s.row for s in ledger.rows]
    assert all(r.mode == "shadow" and r.key_id is None and r.charged == 0 for r in rows)
    assert [r.upstream_model for r in rows] == ["cheap", "judge-model", "cheaper", "judge-model"]
    assert rows[0].credits == 7 and rows[0].cost > 0, "shadow spend is the operator's cost"


async def test_a_candidates_answer_is_checked_against_the_incumbent() -> None:
    world, ledger = World("LOSS"), Ledger()
    runner = shadows(world, ledger)
    runner.offer(job(world, served_by="cheap"))
    await runner.idle()
    await runner.stop()
    assert world.calls == ["dear", "judge-model"]
    assert [(e[3], e[4]) for e in world.evidence] == [("cheap", Tally(0.0, 1.0, 1))]


async def test_tool_use_is_compared_without_a_judge() -> None:
    world, ledger = World(), Ledger()
    runner = shadows(world, ledger)
    runner.offer(job(world, kind="tools"))
    await runner.idle()
    await runner.stop()
    assert "judge-model" not in world.calls and len(world.evidence) == 2


async def test_the_queue_is_bounded_and_drops_when_full() -> None:
    world, ledger = World(), Ledger()
    world.gate.clear()  # the one worker blocks on its first job
    runner = shadows(world, ledger, queue=2)
    accepted = [runner.offer(job(world)) for _ in range(6)]
    await asyncio.sleep(0)
    assert accepted.count(False) >= 3 and runner.dropped == accepted.count(False)
    world.gate.set()
    await runner.idle()
    await runner.stop()


async def test_no_ledger_room_means_no_spend() -> None:
    world, ledger = World(), Ledger(room=0)
    runner = shadows(world, ledger)
    runner.offer(job(world))
    await runner.idle()
    await runner.stop()
    assert world.calls == [] and world.evidence == [] and ledger.rows == []


def test_sampling_follows_the_rate() -> None:
    world, ledger = World(), Ledger()
    draws = iter([0.05, 0.5, 0.09, 0.95])
    runner = Shadows(0.1, 1, 1, Judge("j", world.ask), world.add, ledger, 1.0, lambda: next(draws))
    assert [runner.wants() for _ in range(4)] == [True, False, True, False]
    assert not shadows(world, ledger, rate=0.0).wants(), "0 is off"
