"""OpenAI Responses through the official SDK: input forms, formats, streams, stored turns."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pydantic
import pytest

from tests.conftest import PNG_1X1, Stack

DATA_URI = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
PERSON_FORMAT = {"format": {"type": "json_schema", "name": "person", "schema": PERSON}}
STREAM_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


class Person(pydantic.BaseModel):
    name: str
    age: int


def prompts(stack: Stack, api_key: str) -> list[str]:
    return [r["body"]["promptObject"]["prompt"] for r in stack.chat_requests(api_key)]


def uploads(stack: Stack, api_key: str) -> list[dict[str, Any]]:
    return [r for r in stack.upstream_requests(api_key) if r["path"] == "/api/assets"]


def collapsed(types: list[str]) -> list[str]:
    """Event types with each run of deltas shown once."""
    return [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]]


def other_client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.relay_url}/v1", api_key="other-key", max_retries=0)


# -- input forms ----------------------------------------------------------------------------


def test_string_input(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="hello there")
    assert response.output_text == "Echo: hello there"
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == "gpt-4o-mini"
    (message,) = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert message.role == "assistant" and message.content[0].type == "output_text"
    usage = response.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert prompts(stack, api_key) == ["hello there"], "a lone user turn is sent verbatim"


async def test_async_client_and_message_list(
    async_client: openai.AsyncOpenAI, stack: Stack, api_key: str
) -> None:
    response = await async_client.responses.create(
        model="gpt-4o-mini",
        input=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
    )
    assert response.output_text == "Echo: again"
    assert prompts(stack, api_key) == [
        "System: Be brief.\n\nUser: hi\n\nAssistant: hello\n\nUser: again"
    ]


def test_typed_items_and_developer_role(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    client.responses.create(
        model="gpt-4o-mini",
        input=[
            {"type": "message", "role": "developer", "content": "Rules."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "part one"},
                    {"type": "input_text", "text": "part two"},
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "answer", "annotations": []}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ok"}]},
        ],
    )
    assert prompts(stack, api_key) == [
        "System: Rules.\n\nUser: part one\npart two\n\nAssistant: answer\n\nUser: ok"
    ]


def test_items_without_type_are_messages(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    # n8n sends bare {"role", "content"} items inside a list
    response = client.responses.create(
        model="gpt-4o-mini",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "no type here"}]}],
    )
    assert response.output_text == "Echo: no type here"


def test_function_call_history_reaches_the_prompt(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    client.responses.create(
        model="gpt-4o-mini",
        input=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
    )
    (prompt,) = prompts(stack, api_key)
    assert 'Assistant:\n[tool call call_1] weather({"city":"Paris"})' in prompt
    assert prompt.endswith("Tool result (call_1): sunny")


@pytest.mark.parametrize("source", ["data", "https"])
def test_input_image(client: openai.OpenAI, stack: Stack, api_key: str, source: str) -> None:
    url = DATA_URI if source == "data" else stack.images_url + "/cat.png"
    response = client.responses.create(
        model="gpt-4o",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is it?"},
                    {"type": "input_image", "image_url": url, "detail": "auto"},
                ],
            }
        ],
    )
    assert response.output_text == "Echo: what is it? [images: 1]"
    (upload,) = uploads(stack, api_key)
    assert upload["body"]["filename"].endswith(".png")


def test_input_file_pdf(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    response = client.responses.create(
        model="gpt-4o",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "summarise"},
                    {
                        "type": "input_file",
                        "filename": "report.pdf",
                        "file_data": f"data:application/pdf;base64,{pdf}",
                    },
                ],
            }
        ],
    )
    assert response.output_text == "Echo: summarise [files: 1]"
    (upload,) = uploads(stack, api_key)
    assert upload["body"]["filename"] == "report.pdf"


def test_image_by_file_id_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="gpt-4o",
            input=[{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}],
        )
    assert caught.value.param == "input[0].content[0]"
    assert "Files API" in caught.value.message


# -- request options ------------------------------------------------------------------------


def test_instructions_reach_the_upstream_prompt(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    response = client.responses.create(model="gpt-4o-mini", instructions="Be terse.", input="hi")
    assert response.instructions == "Be terse."
    assert prompts(stack, api_key) == ["System: Be terse.\n\nUser: hi"]


def test_metadata_reasoning_and_max_output_tokens_are_echoed(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    response = client.responses.create(
        model="gpt-4o-mini",
        input="hi",
        metadata={"ticket": "T-1"},
        reasoning={"effort": "high"},
        max_output_tokens=64,
    )
    assert response.metadata == {"ticket": "T-1"}
    assert response.reasoning.effort == "high"
    assert response.max_output_tokens == 64
    assert prompts(stack, api_key) == ["hi"], "1min.ai has no reasoning knob: nothing is sent"
    legacy = client.responses.create(
        model="gpt-4o-mini", input="hi", extra_body={"reasoning_effort": "minimal"}
    )
    assert legacy.reasoning.effort == "minimal"


def test_unknown_reasoning_effort_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o-mini", input="hi", reasoning={"effort": "extreme"})
    assert caught.value.param == "reasoning.effort"


# -- structured output ----------------------------------------------------------------------


def test_json_schema_is_repaired_and_parses(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=['{"name": "Ada"}', 'Here: {"name": "Ada", "age": 36}'])
    response = client.responses.create(model="gpt-4o", input="Who?", text=PERSON_FORMAT)
    assert json.loads(response.output_text) == {"name": "Ada", "age": 36}
    assert response.text.format.type == "json_schema" and response.text.format.name == "person"
    first, repair = prompts(stack, api_key)
    assert '"person"' in first, "the schema is shown to the model"
    assert "'age' is a required property" in repair, "the repair shows the model its error"


def test_parse_with_a_pydantic_model(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=['```json\n{"name": "Ada", "age": 36}\n```'])
    response = client.responses.parse(model="gpt-4o", input="Who?", text_format=Person)
    assert response.output_parsed == Person(name="Ada", age=36)


def test_json_object(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=['Sure! {"a": 1}'])
    response = client.responses.create(
        model="gpt-4o", input="json please", text={"format": {"type": "json_object"}}
    )
    assert json.loads(response.output_text) == {"a": 1}


def test_older_top_level_response_format(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=['{"name": "Ada", "age": 36}'])
    chat_style = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    response = client.responses.create(
        model="gpt-4o", input="Who?", extra_body={"response_format": chat_style}
    )
    assert json.loads(response.output_text) == {"name": "Ada", "age": 36}
    assert response.text.format.type == "json_schema"


def test_unknown_format_type_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o", input="x", text={"format": {"type": "xml"}})
    assert caught.value.param == "text.format.type"
    assert caught.value.type == "invalid_request_error"


def test_invalid_schema_is_refused(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    bad = {"format": {"type": "json_schema", "name": "x", "schema": {"type": "nonsense"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o", input="x", text=bad)
    assert caught.value.param == "text.format"
    assert caught.value.body["message"].startswith("text.format: invalid JSON Schema")
    assert stack.chat_requests(api_key) == [], "nothing was sent upstream"


# -- streaming ------------------------------------------------------------------------------


def test_stream_event_sequence(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    with client.responses.create(
        model="gpt-4o-mini", input="one two three four", stream=True
    ) as stream:
        events = list(stream)
    types = [e.type for e in events]
    assert collapsed(types) == STREAM_ORDER
    assert types.count("response.output_text.delta") >= 2, "text arrives in pieces"
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events))), "sequence numbers count from 0 without gaps"
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert len(ids) == 1, "one response id throughout"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Echo: one two three four"
    done = events[-1].response
    assert done.status == "completed" and done.output_text == text
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    assert events[0].response.status == "in_progress" and events[0].response.output == []


async def test_stream_helper_final_response(
    async_client: openai.AsyncOpenAI, stack: Stack, api_key: str
) -> None:
    async with async_client.responses.stream(
        model="gpt-4o-mini", input="stream me", instructions="Be brief."
    ) as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert collapsed(types) == STREAM_ORDER
    assert final.output_text == "Echo: stream me"
    assert final.instructions == "Be brief."
    fetched = await async_client.responses.retrieve(final.id)
    assert fetched.output_text == final.output_text, "a streamed response is stored"


def test_json_schema_stream_sends_only_validated_json(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["nope", '{"name": "Ada", "age": 36}'])
    with client.responses.stream(model="gpt-4o", input="Who?", text_format=Person) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ['{"name":"Ada","age":36}'], "validated first, then sent whole"
    assert final.output_parsed == Person(name="Ada", age=36)
    assert len(stack.chat_requests(api_key)) == 2


def test_json_schema_stream_that_never_validates_fails_before_streaming(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["I cannot do JSON."])
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="gpt-4o", input="Who?", text=PERSON_FORMAT, stream=True)
    assert caught.value.status_code == 502
    assert caught.value.code == "structured_output_failed"


def test_upstream_error_mid_stream_fails_the_response(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, error_after_chunks=2, error_message="provider exploded")
    events: list[Any] = []
    with (
        pytest.raises(openai.APIError) as caught,
        client.responses.create(model="gpt-4o-mini", input="fail midway", stream=True) as stream,
    ):
        events.extend(stream)
    assert "provider exploded" in caught.value.message
    types = [e.type for e in events]
    assert "response.completed" not in types
    assert types[-1] == "response.failed", "the failure reaches the SDK as an event first"
    failed = events[-1].response
    assert failed.status == "failed" and "provider exploded" in failed.error.message
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith("Echo:") and failed.output[0].content[0].text == text
    assert client.responses.retrieve(failed.id).status == "failed"


async def test_stream_helper_raises_on_upstream_error(
    async_client: openai.AsyncOpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, error_after_chunks=1)
    with pytest.raises(openai.APIError):
        async with async_client.responses.stream(model="gpt-4o-mini", input="x") as stream:
            async for _ in stream:
                pass


def test_length_limit_ends_incomplete(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, finish_reason="max_tokens")
    response = client.responses.create(model="gpt-4o-mini", input="long story")
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    with client.responses.create(model="gpt-4o-mini", input="long", stream=True) as stream:
        last = list(stream)[-1]
    assert last.type == "response.incomplete"


# -- stored responses -----------------------------------------------------------------------


def test_previous_response_id_continues_the_conversation(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    first = client.responses.create(
        model="gpt-4o-mini", input="my name is Ada", instructions="Talk like a pirate."
    )
    with client.responses.stream(
        model="gpt-4o-mini", input="what is my name?", previous_response_id=first.id
    ) as stream:
        second = stream.get_final_response()
    third = client.responses.create(
        model="gpt-4o-mini", input="thanks", previous_response_id=second.id
    )
    assert second.previous_response_id == first.id
    assert third.output_text == "Echo: thanks"
    _, second_prompt, third_prompt = prompts(stack, api_key)
    assert second_prompt == (
        "User: my name is Ada\n\nAssistant: Echo: my name is Ada\n\nUser: what is my name?"
    ), "the first turn and its answer come first; its instructions are not carried over"
    assert third_prompt.startswith(second_prompt + "\n\nAssistant: Echo: what is my name?")


def test_new_instructions_apply_to_a_continued_conversation(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    first = client.responses.create(model="gpt-4o-mini", input="hi")
    client.responses.create(
        model="gpt-4o-mini", input="more", instructions="Be brief.", previous_response_id=first.id
    )
    assert prompts(stack, api_key)[1] == (
        "System: Be brief.\n\nUser: hi\n\nAssistant: Echo: hi\n\nUser: more"
    )


def test_retrieve_and_delete(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="keep me", metadata={"k": "v"})
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == "Echo: keep me"
    assert fetched.metadata == {"k": "v"}
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="forget me", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o-mini", input="x", previous_response_id=created.id)


def test_another_key_cannot_see_a_stored_response(client: openai.OpenAI, stack: Stack) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="private")
    with other_client(stack) as other:
        with pytest.raises(openai.NotFoundError) as caught:
            other.responses.retrieve(created.id)
        assert caught.value.status_code == 404
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(created.id)
        with pytest.raises(openai.BadRequestError):
            other.responses.create(model="gpt-4o-mini", input="x", previous_response_id=created.id)
    assert client.responses.retrieve(created.id).id == created.id, "the owner still has it"


def test_unknown_previous_response_id(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="gpt-4o-mini", input="x", previous_response_id="resp_does_not_exist"
        )
    error = caught.value
    assert error.status_code == 400
    assert error.param == "previous_response_id"
    assert error.code == "previous_response_not_found"
    assert error.type == "invalid_request_error"
    assert stack.chat_requests(api_key) == []


def test_unknown_item_type_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="gpt-4o-mini", input=[{"type": "item_reference", "id": "msg_1"}]
        )
    assert caught.value.param == "input[0].type"
