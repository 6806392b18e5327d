"""Tool calling emulated over 1min.ai, through the OpenAI, Anthropic and Gemini SDKs.

The emulator's scripted replies play a model that follows the tool contract (or fails to),
so each protocol's two-step loop (call → tool result → final answer) runs end to end.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gt

from tests.conftest import Stack

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
    "required": ["city"],
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER},
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Web search",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    },
]
CALL_OSLO = '<tool_calls>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</tool_calls>'
ASK = [{"role": "user", "content": "What's the weather in Oslo?"}]


def prompts(stack: Stack, api_key: str) -> list[str]:
    return [r["body"]["promptObject"]["prompt"] for r in stack.chat_requests(api_key)]


# -- OpenAI chat --------------------------------------------------------------------------


def test_openai_two_step_loop(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO, "It is raining in Oslo."])
    first = client.chat.completions.create(model="gpt-4o", messages=ASK, tools=OPENAI_TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert "get_weather" in prompts(stack, api_key)[0], "the tools are described to the model"

    second = client.chat.completions.create(
        model="gpt-4o",
        tools=OPENAI_TOOLS,
        messages=[
            *ASK,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "rain, 7 °C"},
        ],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is raining in Oslo."
    history = prompts(stack, api_key)[1]
    assert "rain, 7 °C" in history and "get_weather" in history


def test_openai_stream_text_then_tool_call(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["Let me check that.\n" + CALL_OSLO])
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=ASK, tools=OPENAI_TOOLS, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "Let me check that."
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert [(tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == [
        ("get_weather", {"city": "Oslo"})
    ]
    assert calls[0].id and calls[0].index == 0
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_openai_stream_keeps_prose_after_the_call(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["  Let me check.\n" + CALL_OSLO + "\nBack soon."])
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=ASK, tools=OPENAI_TOOLS, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Let me check." in text and text.rstrip().endswith("Back soon.")


def test_bad_tool_schema_is_400_before_any_upstream_call(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    tools = [{"type": "function", "function": {"name": "x", "parameters": {"type": "nope"}}}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ASK, tools=tools)
    assert caught.value.param and caught.value.param.startswith("tools")
    assert stack.chat_requests(api_key) == []


def test_openai_stream_plain_text_is_not_held(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["Oslo is a city in Norway with many parks."])
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=ASK, tools=OPENAI_TOOLS, stream=True
        )
    )
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(deltas) == "Oslo is a city in Norway with many parks."
    assert len(deltas) > 3, "plain text keeps streaming in pieces when tools are offered"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_parallel_calls(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    both = (
        '<tool_calls>[{"name": "get_weather", "arguments": {"city": "Oslo"}},'
        ' {"name": "search", "arguments": {"q": "Oslo events"}}]</tool_calls>'
    )
    stack.set_faults(api_key, replies=[both])
    message = client.chat.completions.create(model="gpt-4o", messages=ASK, tools=OPENAI_TOOLS)
    names = [c.function.name for c in message.choices[0].message.tool_calls]
    assert names == ["get_weather", "search"]
    assert len({c.id for c in message.choices[0].message.tool_calls}) == 2


def test_openai_tool_choice_none_sends_no_contract(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO])
    completion = client.chat.completions.create(
        model="gpt-4o", messages=ASK, tools=OPENAI_TOOLS, tool_choice="none"
    )
    assert completion.choices[0].message.tool_calls is None
    assert "get_weather" not in prompts(stack, api_key)[0]


def test_openai_tool_choice_required_repairs_a_text_answer(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["It is probably cold.", CALL_OSLO])
    completion = client.chat.completions.create(
        model="gpt-4o", messages=ASK, tools=OPENAI_TOOLS, tool_choice="required"
    )
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert len(prompts(stack, api_key)) == 2


def test_openai_named_tool_choice(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(
        api_key, replies=['<tool_calls>[{"name": "search", "arguments": {"q": "x"}}]</tool_calls>']
    )
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=ASK,
        tools=OPENAI_TOOLS,
        tool_choice={"type": "function", "function": {"name": "search"}},
    )
    assert completion.choices[0].message.tool_calls[0].function.name == "search"
    assert "get_weather" not in prompts(stack, api_key)[0], "only the named tool is offered"


def test_openai_invalid_arguments_fail_cleanly(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    bad = '<tool_calls>[{"name": "get_weather", "arguments": {"unit": "K"}}]</tool_calls>'
    stack.set_faults(api_key, replies=[bad])
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ASK, tools=OPENAI_TOOLS)
    assert caught.value.status_code == 502
    assert caught.value.code == "tool_call_failed"
    repair = prompts(stack, api_key)[1]
    assert "city" in repair, "the repair prompt shows the schema error"


def test_openai_identical_call_loop_is_stopped(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO])
    history = list(ASK)
    for n in range(3):
        call = {
            "id": f"call_{n}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
        history += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{n}", "content": "rain"},
        ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=history, tools=OPENAI_TOOLS)
    assert caught.value.code == "tool_loop_detected"


def test_openai_unknown_named_tool_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o",
            messages=ASK,
            tools=OPENAI_TOOLS,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert caught.value.param == "tool_choice"


# -- Anthropic ----------------------------------------------------------------------------

CLAUDE = "claude-haiku-4-5-20251001"
CLAUDE_TOOLS = [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER}]


def test_anthropic_tool_use_loop(claude: anthropic.Anthropic, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO, "Rainy."])
    first = claude.messages.create(model=CLAUDE, max_tokens=100, tools=CLAUDE_TOOLS, messages=ASK)
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Oslo"}
    second = claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        tools=CLAUDE_TOOLS,
        messages=[
            *ASK,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rain"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Rainy."


def test_anthropic_stream_input_json_delta(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["Checking.\n" + CALL_OSLO])
    with claude.messages.stream(
        model=CLAUDE, max_tokens=100, tools=CLAUDE_TOOLS, messages=ASK
    ) as stream:
        kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in stream]
        final = stream.get_final_message()
    assert ("content_block_delta", "input_json_delta") in kinds
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "text" and final.content[0].text.strip() == "Checking."
    assert final.content[1].type == "tool_use" and final.content[1].input == {"city": "Oslo"}


def test_anthropic_tool_choice_any_and_tool(
    claude: anthropic.Anthropic, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["no tool for you", CALL_OSLO])
    message = claude.messages.create(
        model=CLAUDE, max_tokens=100, tools=CLAUDE_TOOLS, messages=ASK, tool_choice={"type": "any"}
    )
    assert message.stop_reason == "tool_use"
    stack.set_faults(api_key, replies=[CALL_OSLO])
    message = claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        tools=CLAUDE_TOOLS,
        messages=ASK,
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert message.content[-1].name == "get_weather"


# -- Gemini -------------------------------------------------------------------------------


def test_gemini_function_call_loop(gemini: genai.Client, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO, "Rainy in Oslo."])
    tool = gt.Tool(
        function_declarations=[
            gt.FunctionDeclaration(
                name="get_weather",
                description="Weather now",
                parameters=gt.Schema(
                    type=gt.Type.OBJECT,
                    properties={"city": gt.Schema(type=gt.Type.STRING)},
                    required=["city"],
                ),
            )
        ]
    )
    config = gt.GenerateContentConfig(
        tools=[tool], automatic_function_calling=gt.AutomaticFunctionCallingConfig(disable=True)
    )
    first = gemini.models.generate_content(
        model="gemini-2.5-flash", contents="Weather in Oslo?", config=config
    )
    (call,) = first.function_calls
    assert call.name == "get_weather" and call.args == {"city": "Oslo"}
    second = gemini.models.generate_content(
        model="gemini-2.5-flash",
        config=config,
        contents=[
            gt.Content(role="user", parts=[gt.Part(text="Weather in Oslo?")]),
            first.candidates[0].content,
            gt.Content(
                role="user",
                parts=[
                    gt.Part.from_function_response(name="get_weather", response={"sky": "rain"})
                ],
            ),
        ],
    )
    assert second.text == "Rainy in Oslo."
    assert '"sky":"rain"' in prompts(stack, api_key)[1]


def test_gemini_stream_function_call(gemini: genai.Client, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO])
    tool = gt.Tool(
        function_declarations=[
            gt.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER)
        ]
    )
    chunks = list(
        gemini.models.generate_content_stream(
            model="gemini-2.5-flash",
            contents="Weather in Oslo?",
            config=gt.GenerateContentConfig(tools=[tool]),
        )
    )
    calls = [fc for c in chunks for fc in c.function_calls or ()]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Oslo"})]


# -- OpenAI Responses ---------------------------------------------------------------------

RESPONSES_TOOLS = [
    {"type": "function", "name": "get_weather", "description": "Weather now", "parameters": WEATHER}
]


def test_responses_function_call_loop(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO, "It is raining in Oslo."])
    first = client.responses.create(
        model="gpt-4o", input="What's the weather in Oslo?", tools=RESPONSES_TOOLS
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Oslo"}
    second = client.responses.create(
        model="gpt-4o",
        previous_response_id=first.id,
        tools=RESPONSES_TOOLS,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rain"}],
    )
    assert second.output_text == "It is raining in Oslo."
    history = prompts(stack, api_key)[1]
    assert "What's the weather in Oslo?" in history and "rain" in history
    assert "get_weather" in history, "the earlier call is part of the continued conversation"


def test_responses_stream_function_call(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=[CALL_OSLO])
    with client.responses.stream(
        model="gpt-4o", input="What's the weather in Oslo?", tools=RESPONSES_TOOLS
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    assert kinds[-1] == "response.completed"
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert json.loads(call.arguments) == {"city": "Oslo"}


def test_responses_web_search_tool_turns_on_web_search(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    response = client.responses.create(
        model="gpt-4o", input="news today", tools=[{"type": "web_search"}]
    )
    assert response.output_text == "Echo: news today [web search]"
