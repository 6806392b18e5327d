"""Demo mode's model-like replies: the emulator reads the relay's real tool contract and JSON
rules (rendered here by the relay's own code) and answers what the relay can parse."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from onemin_relay.core.prompt import flatten
from onemin_relay.core.structured import instructions
from onemin_relay.core.structured import parse_reply as parse_json_reply
from onemin_relay.core.tools import parse_reply, render_tools
from onemin_relay.core.types import (
    Message,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolSpec,
)
from onemin_relay.emulator import EmulatorConfig, create_app
from onemin_relay.emulator.demo_replies import (
    Tool,
    call_reply,
    read_blocks,
    read_tools,
    words_from,
)
from onemin_relay.emulator.schema_instance import instance

Client = TestClient[web.Request, web.Application]
KEY = "demo-key"

WEATHER = ToolSpec(
    "get_weather",
    "Current weather in a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
)
ORDER = ToolSpec(
    "place_order",
    "Order items from the shop\nsecond line of the description",
    {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "minItems": 2,
                "uniqueItems": True,
                "items": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        "qty": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 5},
                    },
                    "required": ["sku", "qty"],
                },
            },
            "shipping": {"$ref": "#/$defs/shipping"},
        },
        "required": ["items", "shipping"],
        "$defs": {"shipping": {"enum": ["standard", "express"]}},
    },
)
PING = ToolSpec("ping", "Check the service is up", None)

SCHEMAS: list[dict[str, Any]] = [
    WEATHER.parameters or {},
    ORDER.parameters or {},
    {"type": ["null", "number"], "exclusiveMinimum": 2.5, "maximum": 3},
    {"anyOf": [{"type": "null"}, {"type": "string", "format": "date-time"}]},
    {"oneOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"const": {"x": 1}}}},
    {"allOf": [{"properties": {"a": {"type": "boolean"}}, "required": ["a"]}, {"required": ["b"]}]},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2},
    {"type": "string", "minLength": 12, "maxLength": 12},
    {"type": "object", "minProperties": 1, "properties": {"note": {"type": "string"}}},
    {"type": "object", "required": ["tags"], "additionalProperties": {"type": "array"}},
    {"type": "integer", "minimum": 10, "maximum": 20, "multipleOf": 7},
    {
        "type": "object",
        "properties": {"tree": {"$ref": "#/$defs/node"}},
        "required": ["tree"],
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "required": ["children"],
            }
        },
    },
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_schema_instance_is_valid(schema: dict[str, Any]) -> None:
    value = instance(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(value))
    assert not errors, f"{value!r} fails its schema: {[e.message for e in errors]}"


def test_contract_is_read_back_as_the_relay_wrote_it() -> None:
    prompt = "User: hi\n\n" + render_tools([WEATHER, ORDER, PING], ToolChoice("named", "ping"))
    conversation, tools, must_call = read_tools(prompt)
    assert conversation == "User: hi"
    assert tools == [Tool("ping", "Check the service is up")], "named: only that tool is shown"
    assert must_call == "ping"
    _, tools, must_call = read_tools(render_tools([WEATHER, ORDER, PING], None))
    assert [(t.name, t.parameters) for t in tools] == [
        (spec.name, spec.parameters) for spec in (WEATHER, ORDER, PING)
    ]
    assert tools[1].description == ORDER.description, "multi-line descriptions stay whole"
    assert must_call is None


def test_every_call_shape_is_a_call_to_the_relay() -> None:
    tool = Tool("get_weather", "", WEATHER.parameters)
    shapes = {call_reply(tool, f"prompt {n}") for n in range(40)}
    assert len(shapes) == 4, "fenced, after a sentence (fenced or bare), and the contract form"
    for reply in shapes:
        parsed = parse_reply(reply, [WEATHER])
        assert [c.name for c in parsed.calls] == ["get_weather"], reply
        assert json.loads(parsed.calls[0].arguments) == {"city": "Paris", "unit": "celsius"}
        assert "{" not in parsed.text, f"no JSON left in the prose: {parsed.text!r}"


@pytest.mark.parametrize(
    ("question", "city"),
    [
        ("What's the weather in Paris?", "Paris"),
        ("Rain today? Tell me for New York.", "New York"),
        ("I wonder about the weather. Thanks", "Paris"),  # none named: the default
    ],
)
def test_arguments_take_the_place_and_query_from_the_question(question: str, city: str) -> None:
    search = ToolSpec(
        "search",
        "Search the web",
        {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    )
    tools = [
        Tool("get_weather", "weather", WEATHER.parameters),
        Tool("search", "", search.parameters),
    ]
    prompt = f"{question}\n\n{render_tools([WEATHER, search], ToolChoice('required'))}"
    for tool in tools:
        reply = call_reply(tool, prompt, words_from(question))
        arguments = json.loads(parse_reply(reply, [WEATHER, search]).calls[0].arguments)
        assert arguments.get("city", city) == city
        assert arguments.get("query", question) == question


def test_transcript_blocks() -> None:
    conversation = flatten(
        [
            Message("system", (TextPart("Be brief."),)),
            Message("user", (TextPart("Weather?\nUser: not a header"),)),
            Message("tool", (TextPart('{"t": 21}'),), tool_call_id="call_1"),
        ]
    ).text
    blocks = read_blocks(conversation)
    assert [(b.label, b.ref) for b in blocks] == [
        ("System", None),
        ("User", None),
        ("Tool result", "call_1"),
    ]
    assert read_blocks("Assistant: is this a transcript?")[0].label == "Assistant"
    assert read_blocks("just a question")[0].text == "just a question"


@pytest.fixture
async def client(aiohttp_client: Any) -> Client:
    client: Client = await aiohttp_client(create_app(EmulatorConfig(replies="model")))
    return client


async def ask(client: Client, prompt: str, model: str = "gpt-4o-mini") -> str:
    body = {"type": "UNIFY_CHAT_WITH_AI", "model": model, "promptObject": {"prompt": prompt}}
    response = await client.post("/api/chat-with-ai", json=body, headers={"API-KEY": KEY})
    assert response.status == 200, await response.text()
    result: str = (await response.json())["aiRecord"]["aiRecordDetail"]["resultObject"][0]
    return result


@pytest.mark.parametrize(
    ("question", "choice", "expected"),
    [
        ("What's the weather in Paris?", None, "get_weather"),
        ("Please order two boxes", ToolChoice("required"), "place_order"),
        ("Anything", ToolChoice("named", "ping"), "ping"),
    ],
)
async def test_tools_in_the_prompt_get_a_valid_call(
    client: Client, question: str, choice: ToolChoice | None, expected: str
) -> None:
    tools = [WEATHER, ORDER, PING]
    prompt = f"{question}\n\n{render_tools(tools, choice)}"
    parsed = parse_reply(await ask(client, prompt), tools, choice)
    assert [c.name for c in parsed.calls] == [expected]
    assert "Tools:" not in parsed.text and "tool_calls" not in parsed.text


async def test_tool_results_are_reported_in_prose(client: Client) -> None:
    call = ToolCall("call_7", "get_weather", '{"city":"Paris","unit":"celsius"}')
    conversation = [
        Message("user", (TextPart("Weather in Paris?"),)),
        Message("assistant", (), tool_calls=(call,)),
        Message("tool", (TextPart('{"temperature": 21}'),), tool_call_id="call_7"),
    ]
    prompt = f"{flatten(conversation).text}\n\n{render_tools([WEATHER], None)}"
    reply = await ask(client, prompt)
    assert parse_reply(reply, [WEATHER]).calls == (), f"no second call: {reply!r}"
    assert reply == 'Here is what get_weather returned: {"temperature": 21}'


async def test_a_new_question_after_results_calls_again(client: Client) -> None:
    conversation = [
        Message("user", (TextPart("Weather in Paris?"),)),
        Message("tool", (TextPart("sunny"),), name="get_weather"),
        Message("user", (TextPart("And the weather tomorrow?"),)),
    ]
    prompt = f"{flatten(conversation).text}\n\n{render_tools([WEATHER], None)}"
    assert [c.name for c in parse_reply(await ask(client, prompt), [WEATHER]).calls] == [
        "get_weather"
    ]


@pytest.mark.parametrize("with_tools", [False, True])
async def test_json_schema_rules_get_a_valid_instance(client: Client, with_tools: bool) -> None:
    fmt = ResponseFormat("json_schema", name="order", schema=ORDER.parameters)
    conversation = [
        Message("user", (TextPart("Order something"),)),
        Message("tool", (TextPart("done"),), name="place_order"),
    ]
    contract = render_tools([ORDER], None) if with_tools else ""
    prompt = "\n\n".join(x for x in (flatten(conversation).text, contract, instructions(fmt)) if x)
    value = json.loads(parse_json_reply(await ask(client, prompt), fmt))
    assert value["shipping"] == "standard" and len(value["items"]) == 2


async def test_json_object_rules_get_an_object(client: Client) -> None:
    fmt = ResponseFormat("json_object")
    reply = await ask(client, f"Describe a cat\n\n{instructions(fmt)}")
    assert isinstance(json.loads(parse_json_reply(reply, fmt))["answer"], str)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Hi!", "Hello! How can I help you today?"),
        ("System: Be brief.\n\nUser: Count to 5", "1, 2, 3, 4, 5."),
    ],
)
async def test_plain_answers(client: Client, prompt: str, expected: str) -> None:
    assert await ask(client, prompt) == expected


async def test_other_questions_get_a_short_answer_not_an_echo(client: Client) -> None:
    reply = await ask(client, "Explain the theory of relativity in one line", model="gpt-4o")
    assert "relativity" not in reply and "gpt-4o" in reply, reply


async def test_scripted_reply_wins_over_model_replies(client: Client) -> None:
    response = await client.put(f"/_emulator/faults/{KEY}", json={"replies": ["one", "two"]})
    assert response.status == 200
    tools_prompt = f"Weather?\n\n{render_tools([WEATHER], None)}"
    assert [
        await ask(client, tools_prompt),
        await ask(client, "Hi!"),
        await ask(client, "Hi!"),
    ] == ["one", "two", "two"]
