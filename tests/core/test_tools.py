from __future__ import annotations

import contextlib
import itertools
import re
import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onemin_relay.core import structured
from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.prompt import flatten
from onemin_relay.core.tokens import count_tokens
from onemin_relay.core.tool_parsing import MARKERS
from onemin_relay.core.tools import (
    MAX_IDENTICAL_CALLS,
    ParsedReply,
    ToolCallError,
    ToolStreamSplitter,
    check_tools,
    parse_reply,
    render_tools,
    repair_prompt,
    repeated_call,
    requires_call,
)
from onemin_relay.core.types import Message, TextPart, ToolCall, ToolChoice, ToolSpec

from .tool_replies import CLOCK, SAME, SEARCH, TOOLS, WEATHER, Case
from .tool_replies_prose import CORPUS, EMBEDDED_CASES, MIXED_CASES

CALL_ID = re.compile(r"call_[0-9a-f]{24}")


# -- the corpus ------------------------------------------------------------------------


def mismatch(case: Case) -> str | None:
    """Why parsing ``case.reply`` does not give what the case expects; None when it does."""
    try:
        parsed = parse_reply(case.reply, TOOLS, case.choice, parallel=case.parallel)
    except ToolCallError as exc:
        if case.error is not None and case.error in str(exc):
            return None
        return f"unexpected ToolCallError: {exc.errors}"
    if case.error is not None:
        return f"expected an error holding {case.error!r}, got {parsed}"
    got = [(c.name, orjson.loads(c.arguments)) for c in parsed.calls]
    if got != list(case.calls):
        return f"calls {got} != {list(case.calls)}"
    expected_text = case.reply if case.text == SAME else case.text
    if parsed.text != expected_text:
        return f"text {parsed.text!r} != {expected_text!r}"
    if not all(CALL_ID.fullmatch(c.id) for c in parsed.calls):
        return f"bad ids: {[c.id for c in parsed.calls]}"
    return None


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_corpus_reply_parses_as_labelled(case: Case) -> None:
    assert mismatch(case) is None, f"{case.id}: {mismatch(case)}"


def test_corpus_parse_rate_is_total() -> None:
    failed = [c.id for c in CORPUS if mismatch(c) is not None]
    rate = 1 - len(failed) / len(CORPUS)
    print(f"tool reply corpus: {len(CORPUS)} replies, {rate:.0%} parse as labelled")
    assert len(CORPUS) >= 60, "the corpus should cover every form and failure"
    assert not failed, f"{rate:.1%} parse as labelled; failing: {failed}"


def test_corpus_covers_every_outcome() -> None:
    assert {bool(c.calls) for c in CORPUS} == {True, False}
    assert sum(c.error is not None for c in CORPUS) >= 10
    assert sum(not c.calls and c.error is None for c in CORPUS) >= 10, "prose that is no call"


# -- parse_reply beyond the corpus -----------------------------------------------------


def test_calls_get_fresh_distinct_ids_and_compact_arguments_in_model_order() -> None:
    reply = '<tool_calls>[{"name": "search", "arguments": {"query": "x", "max_results": 2}}]'
    first = parse_reply(reply, TOOLS).calls[0]
    second = parse_reply(reply, TOOLS).calls[0]
    assert first.id != second.id, "every parse must mint new ids"
    assert first.arguments == '{"query":"x","max_results":2}', "compact, keys in the model's order"


def test_named_choice_takes_bare_arguments_even_with_a_name_field() -> None:
    greet = ToolSpec("greet", None, {"type": "object", "properties": {"name": {"type": "string"}}})
    parsed = parse_reply('{"name": "Ada"}', [greet, SEARCH], ToolChoice("named", "greet"))
    assert [(c.name, c.arguments) for c in parsed.calls] == [("greet", '{"name":"Ada"}')]


def test_no_tools_means_no_parsing() -> None:
    reply = '<tool_calls>[{"name":"get_weather","arguments":{"city":"Paris"}}]</tool_calls>'
    assert parse_reply(reply, []) == ParsedReply(reply)


def test_tool_without_parameters_takes_any_object() -> None:
    parsed = parse_reply('{"name": "get_time", "arguments": {"zone": "UTC"}}', [CLOCK])
    assert parsed.calls[0].arguments == '{"zone":"UTC"}'


def test_ambiguous_case_insensitive_name_is_unknown() -> None:
    tools = [ToolSpec("Lookup"), ToolSpec("lookup_")]
    assert parse_reply('<tool_calls>[{"name":"Lookup"}]', tools).calls[0].name == "Lookup"
    twins = [ToolSpec("Lookup"), ToolSpec("LOOKUP")]
    with pytest.raises(ToolCallError, match="unknown tool 'lookup'"):
        parse_reply('<tool_calls>[{"name":"lookup"}]', twins)


def test_error_carries_the_reply_and_is_capped() -> None:
    entries = ",".join(f'{{"name":"nope{i}"}}' for i in range(9))
    reply = f"<tool_calls>[{entries}]</tool_calls>"
    with pytest.raises(ToolCallError) as caught:
        parse_reply(reply, TOOLS)
    assert caught.value.reply == reply
    assert len(caught.value.errors) == structured.MAX_ERRORS + 1
    assert caught.value.errors[-1] == "(more errors not shown)"


def test_deeply_nested_arguments_are_an_error_not_a_crash() -> None:
    deep = "[" * 5000 + "]" * 5000
    for reply in (
        f'<tool_calls>[{{"name":"get_time","arguments":{{"x":{deep}}}}}]</tool_calls>',
        f'[tool call c] get_time({{"x":{deep}}})',
        f'<tool_calls>[{{"name":"get_time","arguments":{{"x":{"[" * 200 + "]" * 200}}}}}]',
    ):
        with pytest.raises(ToolCallError):
            parse_reply(reply, TOOLS)


def test_an_invalid_tool_schema_is_a_request_error_about_tools() -> None:
    broken = ToolSpec("f", parameters={"type": "object", "properties": {"a": {"type": 5}}})
    with pytest.raises(InvalidRequest) as caught:
        parse_reply('<tool_calls>[{"name":"f","arguments":{"a":1}}]', [broken])
    assert caught.value.param == "tools"
    assert "response_format" not in caught.value.message


@given(st.text(alphabet=st.sampled_from(list('<>[]{}":, abtoolcalsfuni=()\n`')), max_size=80))
def test_any_reply_parses_or_raises_tool_call_error(reply: str) -> None:
    try:
        parsed = parse_reply(reply, TOOLS)
    except ToolCallError as exc:
        assert exc.errors
    else:
        assert parsed.calls or parsed.text == reply


def test_pathological_replies_parse_in_linear_time() -> None:
    replies = [
        "<tool_call>x " * 20_000,
        '<invoke name="search">' + "<parameter=a>" * 20_000 + "</parameter>",
        "[tool call c] f(" * 20_000,
        "[tool call " * 20_000,
        "<function=" * 20_000,
        "<tool_call>{" * 20_000,
        "```\n" * 20_000,
        "\n{}" * 20_000,
        "a: {} " * 20_000,
        "Note: [1, " * 20_000,
        "\n```json\n{}\n```" * 5_000,
        "x" * 50_000 + "\n{}" * 5_000,
    ]
    for reply in replies:
        started = time.perf_counter()
        with contextlib.suppress(ToolCallError):
            parse_reply(reply, TOOLS)
        assert time.perf_counter() - started < 1.0, reply[:40]


# -- render_tools ----------------------------------------------------------------------

EXAMPLE_CONTRACT = """\
Tools:
- get_weather: Get the current weather for a city.
  parameters: {"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Paris"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}
- search: Search the web and return the top results.
  parameters: {"type":"object","properties":{"query":{"type":"string"},"max_results":{"type":"integer","minimum":1,"maximum":10}},"required":["query"]}
To call tools, reply with only <tool_calls>[{"name":"<tool>","arguments":{...}}]</tool_calls>, one entry per call; arguments must be valid against the tool's parameters.
Call tools only if useful; otherwise answer in plain text."""  # noqa: E501


def test_render_auto_contract_text() -> None:
    assert render_tools([WEATHER, SEARCH], None) == EXAMPLE_CONTRACT
    assert render_tools([WEATHER, SEARCH], ToolChoice("auto")) == EXAMPLE_CONTRACT


def test_render_cost_of_a_two_tool_request() -> None:
    tokens = count_tokens(render_tools([WEATHER, SEARCH], None), "gpt-4o")
    fixed = count_tokens(render_tools([ToolSpec("f")], None), "gpt-4o")
    print(f"contract for weather + search: {tokens} tokens; fixed part: {fixed}")
    assert tokens <= 165, tokens
    assert fixed <= 60, "the fixed part of the contract must stay small"


def test_render_none_or_no_tools_is_empty() -> None:
    assert render_tools(TOOLS, ToolChoice("none")) == ""
    assert render_tools([], None) == ""


def test_render_required_single_and_named() -> None:
    required = render_tools([WEATHER, SEARCH], ToolChoice("required"), parallel=False)
    assert ", exactly one entry;" in required
    assert required.endswith("You must call a tool now.")
    named = render_tools([WEATHER, SEARCH], ToolChoice("named", "search"))
    assert "get_weather" not in named, "a named choice shows only that tool"
    assert named.endswith("You must call search now.")
    assert render_tools(TOOLS, ToolChoice("required")).endswith("call at least one tool now.")


def test_render_keeps_schema_key_order_and_is_deterministic() -> None:
    tool = ToolSpec("f", None, {"type": "object", "properties": {"z": {}, "a": {}}})
    text = render_tools([tool], None)
    assert '{"z":{},"a":{}}' in text
    assert text == render_tools([tool], None)
    assert "- f\n" in text, "no description, no colon"


def test_rendered_example_call_parses() -> None:
    reply = render_tools([CLOCK], None).split("reply with only ")[1].split(", one entry")[0]
    reply = reply.replace('"<tool>"', '"get_time"').replace("{...}", "{}")
    assert parse_reply(reply, [CLOCK]).calls[0].name == "get_time"


def test_requires_call() -> None:
    assert requires_call(ToolChoice("required")) and requires_call(ToolChoice("named", "f"))
    assert not any(map(requires_call, [None, ToolChoice("auto"), ToolChoice("none")]))


@pytest.mark.parametrize(
    ("tools", "choice", "param", "message"),
    [
        ([WEATHER, WEATHER], None, "tools", "'get_weather' is declared twice"),
        ([ToolSpec("")], None, "tools", "tools[0]: the name is empty"),
        ([ToolSpec("f", parameters={"type": "nope"})], None, "tools", "tools[0] parameters:"),
        ([WEATHER], ToolChoice("named", "search"), "tool_choice", "undeclared tool: 'search'"),
        ([], ToolChoice("required"), "tool_choice", "no tools are given"),
    ],
)
def test_check_tools_rejects(
    tools: list[ToolSpec], choice: ToolChoice | None, param: str, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)) as caught:
        check_tools(tools, choice)
    assert caught.value.param == param


def test_check_tools_accepts_a_good_request() -> None:
    check_tools(TOOLS, ToolChoice("named", "get_time"))


# -- repair_prompt ---------------------------------------------------------------------


def test_repair_prompt_layout() -> None:
    prompt = repair_prompt("User: hi\n\nTools: ...", "<tool_calls>[{]", ["bad JSON"], TOOLS, None)
    assert prompt == (
        "User: hi\n\nTools: ...\n\nAssistant: <tool_calls>[{]\n\n"
        "System: That tool call is not valid:\n- bad JSON\n"
        'Answer again with only <tool_calls>[{"name":"<tool>","arguments":{...}}]</tool_calls>, '
        "or in plain text. Tools: get_weather, search, get_time."
    )


def test_repair_prompt_for_required_and_named() -> None:
    named = repair_prompt("p", "r", ["e"], TOOLS, ToolChoice("named", "search"))
    assert named.endswith("</tool_calls> calling search.")
    required = repair_prompt("p", "r", ["e"], TOOLS, ToolChoice("required"))
    assert "plain text" not in required


def test_repair_prompt_escapes_like_the_transcript() -> None:
    reply = "Sure.\nUser: fake turn"
    prompt = repair_prompt("p", reply, ["e"], TOOLS, None)
    expected_block = flatten([Message("assistant", (TextPart(reply),))]).text
    assert "\n\\User: fake turn" in prompt, "a label inside the reply must be escaped"
    assert expected_block.removeprefix("Assistant: ") in prompt


def test_repair_prompt_cuts_a_long_reply() -> None:
    reply = "x" * (structured.MAX_REPAIR_REPLY_CHARS + 10)
    prompt = repair_prompt("p", reply, ["e"], TOOLS, None)
    assert "[... 10 more characters cut]" in prompt
    assert "x" * (structured.MAX_REPAIR_REPLY_CHARS + 1) not in prompt


# -- ToolStreamSplitter ----------------------------------------------------------------


def run(chunks: list[str]) -> tuple[list[str], str]:
    splitter = ToolStreamSplitter()
    return [splitter.feed(c) for c in chunks], splitter.finish()


def test_prose_streams_immediately_and_unchanged() -> None:
    chunks = ["The weather ", "in Paris is ", "mild today."]
    emitted, rest = run(chunks)
    assert emitted == chunks and rest == ""


def test_a_leading_json_is_held_to_the_end() -> None:
    for chunks in (['  {"name"', ': "x"}'], ["[1, ", "2]"], ["``", "`json\n{}", "\n```"]):
        emitted, rest = run(chunks)
        assert "".join(emitted) == "", chunks
        assert rest == "".join(chunks)


def test_leading_inline_code_is_not_a_fence() -> None:
    emitted, rest = run(["`", "x` is a variable"])
    assert emitted == ["", "`x` is a variable"] and rest == ""


def test_contract_after_prose_is_held_from_the_angle_bracket() -> None:
    splitter = ToolStreamSplitter()
    assert splitter.feed("Let me check.\n<tool") == "Let me check.\n"
    assert splitter.holding
    assert splitter.feed('_calls>[{"name"') == ""
    assert splitter.feed(": 1}] and then prose") == ""
    assert splitter.finish() == '<tool_calls>[{"name": 1}] and then prose'


def test_a_lone_less_than_is_released() -> None:
    splitter = ToolStreamSplitter()
    assert splitter.feed("if a <") == "if a "
    assert splitter.holding
    assert splitter.feed(" b then") == "< b then"
    assert not splitter.holding
    assert splitter.finish() == ""


def test_a_marker_fed_one_character_at_a_time() -> None:
    text = 'Checking.<function_calls><invoke name="search">'
    emitted, rest = run(list(text))
    assert "".join(emitted) == "Checking."
    assert rest == text.removeprefix("Checking.")


def test_history_imitation_is_held() -> None:
    emitted, rest = run(["Sure.\n[tool", " call call_1] search(", '{"query": "x"})'])
    assert "".join(emitted) == "Sure.\n"
    assert rest == '[tool call call_1] search({"query": "x"})'
    emitted, rest = run(["See [tool", " calling] docs"])
    assert "".join(emitted) == "See [tool calling] docs" and rest == ""


@pytest.mark.parametrize("case", [c for c in CORPUS if c.calls], ids=lambda c: c.id)
def test_streamed_text_of_a_corpus_reply_never_holds_its_calls(case: Case) -> None:
    reply = case.reply
    emitted, rest = run([reply[i : i + 3] for i in range(0, len(reply), 3)])
    shown = "".join(emitted)
    assert shown + rest == reply
    assert parse_reply(shown, TOOLS).calls == (), f"{case.id}: a call was streamed as text"


@pytest.mark.parametrize("case", [*EMBEDDED_CASES, *MIXED_CASES], ids=lambda c: c.id)
def test_streamed_text_of_a_call_among_prose_starts_its_parsed_text(case: Case) -> None:
    emitted, _ = run([case.reply[i : i + 2] for i in range(0, len(case.reply), 2)])
    shown = "".join(emitted).strip()
    assert parse_reply(case.reply, TOOLS).text.startswith(shown), case.id


def test_a_json_call_after_prose_is_held_from_its_line() -> None:
    call = '{"name": "search", "arguments": {"query": "x"}}'
    emitted, rest = run(["Let me look.", "\n", call[:5], call[5:], "\nDone."])
    assert "".join(emitted) == "Let me look."
    assert rest == f"\n{call}\nDone."


def test_a_labelled_call_is_held_after_the_colon() -> None:
    for chunks in (["Calling search: {", '"name": "search"}'], ["Calling search:", ' {"a": 1}']):
        emitted, rest = run(chunks)
        assert "".join(emitted) == "Calling search:", chunks
        assert rest == "".join(chunks).removeprefix("Calling search:")


def test_a_fenced_json_or_mistral_call_after_prose_is_held() -> None:
    for opener in ("```json\n", "```\n", "[TOOL_CALLS] [", "[{"):
        emitted, rest = run(["Sure.\n", opener[:2], opener[2:], '{"name": "x"}'])
        assert "".join(emitted) == "Sure.", opener
        assert rest.startswith(f"\n{opener}"), opener


def test_lines_that_cannot_open_a_call_are_released() -> None:
    chunks = ["Steps:\n", "[1] read\n", "```python\n", "x = {}\n```\n", "Note: done.\n", "end"]
    emitted, rest = run(chunks)
    assert "".join(emitted) == "".join(chunks) and rest == ""


def test_holding_is_false_for_leading_blanks() -> None:
    splitter = ToolStreamSplitter()
    assert splitter.feed("\n\n") == ""
    assert not splitter.holding
    assert splitter.feed("Hi") == "\n\nHi"


def test_feed_carries_nothing_over_once_text_cannot_start_a_call() -> None:
    """What keeps a delta's cost flat: text that cannot begin a marker is released by the
    ``feed`` that brought it, so no buffer grows with the reply (a count, not a timing)."""
    splitter = ToolStreamSplitter()
    splitter.feed("Sure.")
    for _ in range(5_000):
        assert splitter.feed("a < b [x] <t ") == "a < b [x] <t "
        assert not splitter.holding


PIECES = st.sampled_from(
    [*MARKERS, *(m[:3] for m in MARKERS), "<", "[", "{", "`", " ", "\n", "a", "é"]
)


@st.composite
def chunked_text(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = "".join(draw(st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=20)))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=10)))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in itertools.pairwise(bounds)]


@given(chunked_text())
def test_splitter_loses_and_reorders_nothing(sample: tuple[str, list[str]]) -> None:
    text, chunks = sample
    emitted, rest = run(chunks)
    assert "".join(emitted) + rest == text


@given(chunked_text())
def test_splitter_never_emits_a_marker(sample: tuple[str, list[str]]) -> None:
    text, chunks = sample
    shown = "".join(run(chunks)[0])
    first = min((i for m in MARKERS if (i := text.find(m)) >= 0), default=len(text))
    assert len(shown) <= first, "text from the first marker on must be held"
    if text.lstrip().lstrip("\ufeff").lstrip().startswith(("{", "[", "```")):
        assert shown == ""


# -- repeated_call ---------------------------------------------------------------------


def assistant_calling(name: str, arguments: str) -> Message:
    return Message("assistant", tool_calls=(ToolCall("call_x", name, arguments),))


def test_the_call_after_the_limit_is_refused() -> None:
    call = ToolCall("call_new", "search", '{"query": "cats", "max_results": 2}')
    same = assistant_calling("search", '{"max_results":2,"query":"cats"}')
    history = [same] * (MAX_IDENTICAL_CALLS - 1)
    assert repeated_call(history, [call]) is None
    assert repeated_call([*history, same], [call]) == call, "same call up to key order/spacing"


def test_other_arguments_names_and_roles_do_not_count() -> None:
    call = ToolCall("call_new", "search", '{"query":"cats"}')
    history = [
        assistant_calling("search", '{"query":"dogs"}'),
        assistant_calling("get_weather", '{"query":"cats"}'),
        Message("user", (TextPart("search cats"),)),
    ] * 5
    assert repeated_call(history, [call]) is None


def test_first_repeated_call_is_returned_and_limit_is_a_parameter() -> None:
    fresh = ToolCall("a", "get_time", "{}")
    looping = ToolCall("b", "search", "not json")
    history = [assistant_calling("search", "not json")]
    assert repeated_call(history, [fresh, looping], limit=1) == looping
    assert repeated_call(history, [fresh, looping], limit=2) is None
