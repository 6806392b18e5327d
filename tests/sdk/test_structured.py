"""Structured output (json_object / json_schema) on the OpenAI and Gemini surfaces.

The emulator's scripted replies stand in for a model that wraps its JSON in prose, gets it
wrong once, or never gets it right, so every path of extract → validate → repair is driven.
"""

from __future__ import annotations

import json

import openai
import pydantic
import pytest
from google import genai
from google.genai import types as gt

from tests.conftest import Stack

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
PERSON_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": PERSON, "strict": True},
}
ASK = [{"role": "user", "content": "Who wrote the first program?"}]


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_json_schema_extracted_from_prose(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=['Sure!\n```json\n{"name": "Ada", "age": 36}\n```\nEnjoy.'])
    completion = client.chat.completions.create(
        model="gpt-4o", messages=ASK, response_format=PERSON_FORMAT
    )
    assert json.loads(completion.choices[0].message.content) == {"name": "Ada", "age": 36}
    (sent,) = stack.chat_requests(api_key)
    prompt = sent["body"]["promptObject"]["prompt"]
    assert prompt.startswith("Who wrote the first program?\n\n")
    assert '"person"' in prompt and '"minimum":0' in prompt, "the schema is shown to the model"


def test_invalid_answer_is_repaired_once(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=['{"name": "Ada"}', '{"name": "Ada", "age": 36}'])
    completion = client.chat.completions.create(
        model="gpt-4o", messages=ASK, response_format=PERSON_FORMAT
    )
    assert json.loads(completion.choices[0].message.content) == {"name": "Ada", "age": 36}
    first, second = stack.chat_requests(api_key)
    repair = second["body"]["promptObject"]["prompt"]
    assert repair.startswith(first["body"]["promptObject"]["prompt"])
    assert "'age' is a required property" in repair, "the model is shown its error"
    single = stack.direct_chat(api_key, "gpt-4o", "x")["aiRecord"]["metadata"]["outputToken"]
    assert completion.usage.completion_tokens > single, "both billed calls are counted"


def test_answer_that_never_validates_is_a_clean_error(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["I cannot answer in JSON, sorry."])
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ASK, response_format=PERSON_FORMAT)
    assert caught.value.status_code == 502
    assert caught.value.code == "structured_output_failed"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(stack.chat_requests(api_key)) == 2, "one answer plus one repair, then stop"


def test_stream_sends_only_validated_json(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["nope", 'Here: {"name": "Ada", "age": 36}'])
    stream = client.chat.completions.create(
        model="gpt-4o", messages=ASK, response_format=PERSON_FORMAT, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert json.loads(text) == {"name": "Ada", "age": 36}


def test_stream_that_never_validates_fails_before_streaming(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=["nope"])
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=ASK, response_format=PERSON_FORMAT, stream=True
        )
    assert caught.value.status_code == 502


def test_json_object_mode(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=["[1, 2]", '{"ok": true}'])
    completion = client.chat.completions.create(
        model="gpt-4o", messages=ASK, response_format={"type": "json_object"}
    )
    assert json.loads(completion.choices[0].message.content) == {"ok": True}


def test_sdk_parse_into_a_pydantic_model(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=['{"name": "Ada", "age": 36}'])
    completion = client.chat.completions.parse(model="gpt-4o", messages=ASK, response_format=Person)
    assert completion.choices[0].message.parsed == Person(name="Ada", age=36)


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}},
        {"type": "json_schema", "json_schema": {"name": "bad name!", "schema": PERSON}},
        {"type": "json_schema", "json_schema": {"name": "x"}},
        {"type": "yaml"},
    ],
)
def test_bad_response_format_is_400(
    client: openai.OpenAI, stack: Stack, api_key: str, response_format: dict
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=ASK, response_format=response_format
        )
    assert caught.value.param and caught.value.param.startswith("response_format")
    assert stack.chat_requests(api_key) == [], "nothing is sent upstream for a bad format"


def test_gemini_response_schema(gemini: genai.Client, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, replies=['```json\n{"name": "Ada", "age": 36}\n```'])
    response = gemini.models.generate_content(
        model="gemini-2.5-flash",
        contents="Who wrote the first program?",
        config=gt.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Person
        ),
    )
    assert response.parsed == Person(name="Ada", age=36)
    prompt = stack.chat_requests(api_key)[0]["body"]["promptObject"]["prompt"]
    assert '"type":"object"' in prompt, "Gemini's OpenAPI types become JSON Schema types"


def test_gemini_response_json_schema_repaired(
    gemini: genai.Client, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, replies=['{"name": "Ada", "age": -1}', '{"name": "Ada", "age": 36}'])
    response = gemini.models.generate_content(
        model="gemini-2.5-flash",
        contents="Who wrote the first program?",
        config=gt.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=PERSON
        ),
    )
    assert json.loads(response.text) == {"name": "Ada", "age": 36}
    assert len(stack.chat_requests(api_key)) == 2
