"""A labelled corpus of model replies for ``core.tools.parse_reply``.

Each case is a reply as models write it, offered the tools below, and what parsing must give:
the calls (name and arguments), the prose, or a ``ToolCallError`` whose message holds
``error``. The replies are hand-written in the shapes GPT, Claude, Llama, Qwen/Hermes and
Mistral models are trained to emit (not captured from live models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onemin_relay.core.types import ToolChoice, ToolSpec

WEATHER = ToolSpec(
    "get_weather",
    "Get the current weather for a city.",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
)
SEARCH = ToolSpec(
    "search",
    "Search the web and return the top results.",
    {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "max_results": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        "required": ["query"],
    },
)
CLOCK = ToolSpec("get_time", "The current UTC time.")
TOOLS = (WEATHER, SEARCH, CLOCK)

SAME = "<the reply itself>"


@dataclass(frozen=True)
class Case:
    id: str
    reply: str
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    text: str = SAME  # the prose expected; SAME = the reply unchanged
    error: str | None = None  # a ToolCallError is expected and its message holds this
    choice: ToolChoice | None = None
    parallel: bool = True


PARIS = ("get_weather", {"city": "Paris"})
CATS = ("search", {"query": "cats"})
WEATHER_JSON = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
CONTRACT = f"<tool_calls>[{WEATHER_JSON}]</tool_calls>"
TWO_CALLS = (
    '<tool_calls>[{"name":"get_weather","arguments":{"city":"Paris"}},'
    '{"name":"search","arguments":{"query":"cats"}}]</tool_calls>'
)

CONTRACT_CASES = [
    Case("contract", CONTRACT, (PARIS,), ""),
    Case(
        "contract_single_object",
        '<tool_calls>{"name": "search", "arguments": {"query": "cats"}}</tool_calls>',
        (CATS,),
        "",
    ),
    Case(
        "contract_prose_before",
        f"I'll check the current weather in Paris for you.\n\n{CONTRACT}",
        (PARIS,),
        "I'll check the current weather in Paris for you.",
    ),
    Case(
        "contract_prose_after",
        f"{CONTRACT}\nI'll report back once I have the forecast.",
        (PARIS,),
        "I'll report back once I have the forecast.",
    ),
    Case(
        "contract_prose_around",
        f"Sure!\n{CONTRACT}\nOne moment.",
        (PARIS,),
        "Sure!\n\nOne moment.",
    ),
    Case("contract_unclosed_at_end", f"<tool_calls>[{WEATHER_JSON}]", (PARIS,), ""),
    Case(
        "contract_unclosed_after_prose",
        f"Checking now.\n<tool_calls>\n[{WEATHER_JSON}]\n",
        (PARIS,),
        "Checking now.",
    ),
    Case(
        "contract_unclosed_then_prose",
        f"<tool_calls>[{WEATHER_JSON}]\nI'll wait for the forecast.",
        (PARIS,),
        "I'll wait for the forecast.",
    ),
    Case("contract_two_calls", TWO_CALLS, (PARIS, CATS), ""),
    Case(
        "contract_pretty_printed",
        '<tool_calls>\n[\n  {\n    "name": "search",\n    "arguments": {\n'
        '      "query": "cats",\n      "max_results": 3\n    }\n  }\n]\n</tool_calls>',
        (("search", {"query": "cats", "max_results": 3}),),
        "",
    ),
    Case(
        "contract_fenced_inside",
        f"<tool_calls>\n```json\n[{WEATHER_JSON}]\n```\n</tool_calls>",
        (PARIS,),
        "",
    ),
    Case(
        "contract_inside_fence",
        f"Calling the tool:\n```xml\n{CONTRACT}\n```",
        (PARIS,),
        "Calling the tool:",
    ),
    Case(
        "contract_no_arguments",
        '<tool_calls>[{"name":"get_time"}]</tool_calls>',
        (("get_time", {}),),
        "",
    ),
    Case(
        "contract_arguments_as_string",
        '<tool_calls>[{"name":"get_weather","arguments":"{\\"city\\": \\"Paris\\"}"}]</tool_calls>',
        (PARIS,),
        "",
    ),
    Case(
        "contract_openai_shape",
        '<tool_calls>[{"id":"call_1","type":"function","function":{"name":"get_weather",'
        '"arguments":"{\\"city\\":\\"Tokyo\\",\\"unit\\":\\"celsius\\"}"}}]</tool_calls>',
        (("get_weather", {"city": "Tokyo", "unit": "celsius"}),),
        "",
    ),
    Case(
        "contract_tool_calls_object",
        f'<tool_calls>{{"tool_calls": [{WEATHER_JSON}]}}</tool_calls>',
        (PARIS,),
        "",
    ),
    Case(
        "contract_name_in_other_case",
        '<tool_calls>[{"name":"Get_Weather","arguments":{"city":"Paris"}}]</tool_calls>',
        (PARIS,),
        "",
    ),
    Case(
        "contract_unicode_arguments",
        '<tool_calls>[{"name":"get_weather","arguments":{"city":"Zürich 東京"}}]</tool_calls>',
        (("get_weather", {"city": "Zürich 東京"}),),
        "",
    ),
    Case(
        "contract_two_blocks",
        f'{CONTRACT}\n<tool_calls>[{{"name":"search","arguments":{{"query":"cats"}}}}]</tool_calls>',
        (PARIS, CATS),
        "",
    ),
    Case(
        "contract_synonym_keys",
        '<tool_calls>[{"tool":"search","parameters":{"query":"cats"}}]</tool_calls>',
        (CATS,),
        "",
    ),
]

TAG_CASES = [
    Case("hermes", f"<tool_call>\n{WEATHER_JSON}\n</tool_call>", (PARIS,), ""),
    Case(
        "hermes_two",
        f'<tool_call>\n{WEATHER_JSON}\n</tool_call>\n<tool_call>\n{{"name": "search", '
        '"arguments": {"query": "cats"}}\n</tool_call>',
        (PARIS, CATS),
        "",
    ),
    Case(
        "hermes_prose_before",
        f"Let me look that up.\n<tool_call>\n{WEATHER_JSON}\n</tool_call>",
        (PARIS,),
        "Let me look that up.",
    ),
    Case("hermes_unclosed", f"<tool_call>\n{WEATHER_JSON}\n", (PARIS,), ""),
    Case(
        "qwen3_coder_parameters",
        "<tool_call>\n<function=search>\n<parameter=query>\ncats\n</parameter>\n"
        "<parameter=max_results>\n5\n</parameter>\n</function>\n</tool_call>",
        (("search", {"query": "cats", "max_results": 5}),),
        "",
    ),
    Case("llama_function", '<function=get_weather>{"city": "Paris"}</function>', (PARIS,), ""),
    Case(
        "llama_with_prose",
        'Searching.\n<function=search>{"query": "cats"}</function>',
        (CATS,),
        "Searching.",
    ),
    Case("llama_empty_body", "<function=get_time></function>", (("get_time", {}),), ""),
    Case(
        "claude_function_calls",
        'I\'ll search for that.\n\n<function_calls>\n<invoke name="search">\n'
        '<parameter name="query">cats</parameter>\n<parameter name="max_results">3</parameter>\n'
        "</invoke>\n</function_calls>",
        (("search", {"query": "cats", "max_results": 3}),),
        "I'll search for that.",
    ),
    Case(
        "claude_invoke_without_wrapper",
        '<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n</invoke>',
        (PARIS,),
        "",
    ),
    Case(
        "claude_numeric_text_for_a_string_parameter",
        '<invoke name="search"><parameter name="query">2024</parameter></invoke>',
        (("search", {"query": "2024"}),),
        "",
    ),
    Case(
        "claude_two_invokes",
        '<function_calls>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n'
        '</invoke>\n<invoke name="search">\n<parameter name="query">cats</parameter>\n</invoke>\n'
        "</function_calls>",
        (PARIS, CATS),
        "",
    ),
    Case(
        "history_imitation",
        '[tool call call_8f2a] get_weather({"city":"Paris"})',
        (PARIS,),
        "",
    ),
    Case(
        "history_imitation_after_prose",
        'Sure, checking.\n[tool call call_1] search({"query": "cats"})',
        (CATS,),
        "Sure, checking.",
    ),
    Case(
        "history_imitation_no_arguments", "[tool call call_9] get_time()", (("get_time", {}),), ""
    ),
]

JSON_CASES = [
    Case("fenced_json", f"```json\n{WEATHER_JSON}\n```", (PARIS,), ""),
    Case("bare_object", WEATHER_JSON, (PARIS,), ""),
    Case(
        "bare_array",
        f'[{WEATHER_JSON}, {{"name": "search", "arguments": {{"query": "cats"}}}}]',
        (PARIS, CATS),
        "",
    ),
    Case(
        "synonym_tool_parameters",
        '{"tool": "search", "parameters": {"query": "cats"}}',
        (CATS,),
        "",
    ),
    Case(
        "synonym_function_args",
        '{"function": "get_weather", "args": {"city": "Paris"}}',
        (PARIS,),
        "",
    ),
    Case(
        "synonym_tool_name_input",
        '{"tool_name": "search", "input": {"query": "cats"}}',
        (CATS,),
        "",
    ),
    Case(
        "arguments_as_string",
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
        (PARIS,),
        "",
    ),
    Case(
        "openai_tool_calls_object",
        '{"tool_calls": [{"id": "call_0", "type": "function", "function": '
        '{"name": "search", "arguments": "{\\"query\\": \\"cats\\"}"}}]}',
        (CATS,),
        "",
    ),
    Case(
        "openai_function_object",
        '{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}',
        (PARIS,),
        "",
    ),
    Case("bom_and_blank_lines", f"\ufeff\n\n  {WEATHER_JSON}\n\n", (PARIS,), ""),
    Case("mistral_prefix", f"[TOOL_CALLS][{WEATHER_JSON}]", (PARIS,), ""),
    Case(
        "gpt_functions_namespace",
        '<tool_calls>[{"name":"functions.search","arguments":{"query":"cats"}}]</tool_calls>',
        (CATS,),
        "",
    ),
]

ERROR_CASES = [
    Case(
        "malformed_json_in_contract",
        '<tool_calls>[{"name":"get_weather","arguments":{"city":"Paris"}]</tool_calls>',
        error="<tool_calls>: the JSON does not parse",
    ),
    Case(
        "malformed_json_in_hermes",
        '<tool_call>\n{"name": "search", "arguments": {"query": "cats"}\n</tool_call>',
        error="<tool_call>: the JSON does not parse",
    ),
    Case(
        "missing_required_argument",
        '<tool_calls>[{"name":"get_weather","arguments":{"unit":"celsius"}}]</tool_calls>',
        error="call 1 (get_weather): $: 'city' is a required property",
    ),
    Case(
        "argument_not_in_enum",
        '<tool_calls>[{"name":"get_weather","arguments":{"city":"Paris","unit":"kelvin"}}]</tool_calls>',
        error="call 1 (get_weather): $.unit: 'kelvin' is not one of",
    ),
    Case(
        "argument_of_wrong_type_in_bare_json",
        '{"name": "search", "arguments": {"query": "cats", "max_results": "five"}}',
        error="$.max_results: 'five' is not of type 'integer'",
    ),
    Case(
        "unknown_tool_in_contract",
        '<tool_calls>[{"name":"get_stock_price","arguments":{"ticker":"ACME"}}]</tool_calls>',
        error="call 1: unknown tool 'get_stock_price' (tools: get_weather, search, get_time)",
    ),
    Case(
        "unknown_tool_in_invoke",
        '<invoke name="web_search"><parameter name="query">cats</parameter></invoke>',
        error="unknown tool 'web_search'",
    ),
    Case(
        "arguments_not_an_object",
        '<tool_calls>[{"name":"get_weather","arguments":["Paris"]}]</tool_calls>',
        error="the arguments must be a JSON object, not an array",
    ),
    Case(
        "arguments_string_not_json",
        '<tool_calls>[{"name":"get_weather","arguments":"city=Paris"}]</tool_calls>',
        error="the arguments are a string that is not JSON",
    ),
    Case(
        "entry_without_name",
        '<tool_calls>[{"arguments":{"city":"Paris"}}]</tool_calls>',
        error='a call must be an object with "name" and "arguments"',
    ),
    Case(
        "history_imitation_cut_off",
        '[tool call call_1] get_weather({"city": "Par',
        error="[tool call call_1] get_weather(...): the JSON does not parse",
    ),
    Case(
        "good_and_bad_call",
        f'<tool_calls>[{WEATHER_JSON}, {{"name": "search", "arguments": {{}}}}]</tool_calls>',
        error="call 2 (search): $: 'query' is a required property",
    ),
]

PROSE_CASES = [
    Case("plain_answer", "The capital of France is Paris."),
    Case(
        "tutorial_with_json_mid_paragraph",
        "To run a search through the API, send a body such as "
        '{"name": "search", "arguments": {"query": "cats"}} to the endpoint. The server answers '
        "with a list of results, each with a title and a URL.",
    ),
    Case(
        "json_answer_named_like_no_tool",
        '{"name": "Ada Lovelace", "born": 1815, "field": "mathematics"}',
    ),
    Case(
        "json_answer_with_a_tool_name_and_other_keys",
        '{"name": "search", "description": "Search the web.", "parameters": {"type": "object"}}',
    ),
    Case(
        "code_block_in_an_explanation",
        "Here is how a client asks for the weather:\n\n```json\n"
        f"{WEATHER_JSON}\n```\n\nThe relay turns this into a function call and returns the result.",
    ),
    Case("json_array_answer", "[1, 2, 3]"),
    Case("array_of_records", '[{"name": "Paris", "population": 2102650}]'),
    Case("fenced_json_answer", '```json\n{"city": "Paris", "temperature": 18}\n```'),
    Case("less_than_in_prose", "If a < b and b > c, then a < c does not follow."),
    Case("tag_only_mentioned", "Hermes models wrap each call in `<tool_call>` tags; we use JSON."),
    Case("bracket_prose", "See [tool calling] in the docs, or [1] for the paper."),
    Case(
        "call_syntax_in_prose",
        'You could run search({"query": "cats"}) yourself, or ask me to look it up.',
    ),
    Case(
        "html_answer",
        '<div class="card">\n  <function>render</function>\n  <p>{"name": "search"}</p>\n</div>',
    ),
    Case(
        "think_block_then_answer",
        "<think>\nThe user greets me; no tool is needed.\n</think>\n\nHello! How can I help?",
    ),
]

CHOICE_CASES = [
    Case("choice_none_keeps_tags_as_text", CONTRACT, choice=ToolChoice("none")),
    Case("choice_none_keeps_json_as_text", WEATHER_JSON, choice=ToolChoice("none")),
    Case(
        "required_without_call",
        "It is probably sunny.",
        choice=ToolChoice("required"),
        error="a tool call was required",
    ),
    Case("required_with_call", CONTRACT, (PARIS,), "", choice=ToolChoice("required")),
    Case("named_with_call", CONTRACT, (PARIS,), "", choice=ToolChoice("named", "get_weather")),
    Case(
        "named_other_tool",
        CONTRACT,
        choice=ToolChoice("named", "search"),
        error="only search may be called now, not get_weather",
    ),
    Case(
        "named_without_call",
        "Cats are small carnivorous mammals.",
        choice=ToolChoice("named", "search"),
        error="a call to search was required, but the reply has none",
    ),
    Case(
        "named_bare_arguments",
        '{"query": "cats"}',
        (CATS,),
        "",
        choice=ToolChoice("named", "search"),
    ),
    Case(
        "required_unknown_tool_in_bare_json",
        '{"name": "lookup", "arguments": {"q": "cats"}}',
        choice=ToolChoice("required"),
        error="unknown tool 'lookup'",
    ),
    Case("single_call_allowed", CONTRACT, (PARIS,), "", parallel=False),
    Case(
        "two_calls_when_not_parallel",
        TWO_CALLS,
        parallel=False,
        error="only one tool call is allowed per reply, got 2",
    ),
]

CORPUS = [*CONTRACT_CASES, *TAG_CASES, *JSON_CASES, *ERROR_CASES, *PROSE_CASES, *CHOICE_CASES]
