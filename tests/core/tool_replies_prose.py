"""Replies with a JSON call among prose, and near misses, for ``core.tools.parse_reply``.

Extends :mod:`tests.core.tool_replies` (same tools, same :class:`Case`): a JSON call that
stands on its own among prose is a call; JSON naming no offered tool, JSON that prose
introduces as an example, JSON in mid-sentence and calls with invalid arguments stay text.
"""

from __future__ import annotations

from . import tool_replies
from .tool_replies import CATS, PARIS, WEATHER_JSON, Case

EMBEDDED_CASES = [
    Case(
        "prose_then_fenced_call",
        f"Let me check the weather in Paris.\n```json\n{WEATHER_JSON}\n```",
        (PARIS,),
        "Let me check the weather in Paris.",
    ),
    Case(
        "fenced_call_with_prose_around",
        f"Let me check.\n\n```json\n{WEATHER_JSON}\n```\n\nI'll report back shortly.",
        (PARIS,),
        "Let me check.\n\nI'll report back shortly.",
    ),
    Case(
        "untagged_fence_after_prose",
        f"Sure:\n```\n{WEATHER_JSON}\n```",
        (PARIS,),
        "Sure:",
    ),
    Case(
        "prose_then_bare_call",
        f"I'll look that up for you.\n{WEATHER_JSON}",
        (PARIS,),
        "I'll look that up for you.",
    ),
    Case(
        "bare_call_then_sentence",
        f"{WEATHER_JSON}\nI'll report back once I have the forecast.",
        (PARIS,),
        "I'll report back once I have the forecast.",
    ),
    Case(
        "bare_call_then_sentence_on_its_line",
        f"{WEATHER_JSON} Checking now.",
        (PARIS,),
        "Checking now.",
    ),
    Case(
        "prose_then_bare_array_of_calls",
        f'Two lookups:\n[{WEATHER_JSON}, {{"name": "search", "arguments": {{"query": "cats"}}}}]',
        (PARIS, CATS),
        "Two lookups:",
    ),
    Case(
        "prose_then_pretty_printed_call",
        'Searching.\n{\n  "name": "search",\n  "arguments": {"query": "cats"}\n}\nDone.',
        (CATS,),
        "Searching.\n\nDone.",
    ),
    Case(
        "label_before_call",
        'Calling get_weather: {"name": "get_weather", "arguments": {"city": "Paris"}}',
        (PARIS,),
        "Calling get_weather:",
    ),
    Case(
        "label_after_prose",
        f"Sure.\nTool call: {WEATHER_JSON}\nBack soon.",
        (PARIS,),
        "Sure.\nTool call:\n\nBack soon.",
    ),
    Case("mistral_prefix_with_space", f"[TOOL_CALLS] [{WEATHER_JSON}]", (PARIS,), ""),
    Case(
        "mistral_prefix_after_prose",
        f"Let me check.\n[TOOL_CALLS] [{WEATHER_JSON}]",
        (PARIS,),
        "Let me check.",
    ),
    Case(
        "openai_shape_after_prose",
        'One moment.\n{"type": "function", "function": {"name": "search", '
        '"arguments": "{\\"query\\": \\"cats\\"}"}}',
        (CATS,),
        "One moment.",
    ),
    Case(
        "example_then_real_call",
        f'For example: {{"name": "Ada"}}\nNow the real call:\n{WEATHER_JSON}',
        (PARIS,),
        'For example: {"name": "Ada"}\nNow the real call:',
    ),
]

NEAR_MISS_CASES = [
    Case(
        "prose_then_json_naming_no_tool",
        'Here you go.\n{"name": "get_stock_price", "arguments": {"ticker": "ACME"}}',
    ),
    Case(
        "prose_then_record_with_a_name",
        'The record reads:\n{"name": "Paris", "population": 2102650}',
    ),
    Case(
        "fenced_json_naming_no_tool_between_prose",
        'I found this:\n```json\n{"name": "lookup", "arguments": {"q": "cats"}}\n```\nThat is all.',
    ),
    Case(
        "example_of_the_format_after_a_colon",
        f"Here is an example of the format: {WEATHER_JSON}",
    ),
    Case(
        "example_of_the_format_on_its_own_line",
        f"A call looks like this:\n{WEATHER_JSON}\nReplace the city as needed.",
    ),
    Case(
        "fenced_format_sample",
        f"The request format is:\n```json\n{WEATHER_JSON}\n```\nSend it as the body.",
    ),
    Case(
        "prose_then_call_with_invalid_arguments",
        'Checking.\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "kelvin"}}',
    ),
    Case(
        "label_then_call_missing_a_required_argument",
        'Calling search: {"name": "search", "arguments": {"max_results": 3}}',
    ),
    Case(
        "prose_then_call_with_extra_keys",
        'Result:\n{"name": "search", "arguments": {"query": "cats"}, "score": 0.9}',
    ),
    Case(
        "json_after_a_quoted_key",
        'Log line: "payload": {"name": "search", "arguments": {"query": "cats"}}',
    ),
    Case(
        "call_in_a_python_fence",
        f"In Python:\n```python\ncall = {WEATHER_JSON}\n```",
    ),
]

SEARCH_JSON = '{"name": "search", "arguments": {"query": "cats"}}'
KELVIN_JSON = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "kelvin"}}'

# A near miss beside a real call: only the real call is taken, the near miss stays text.
MIXED_CASES = [
    Case(
        "unknown_tool_json_then_a_call",
        f'First:\n{{"name": "lookup", "arguments": {{"q": 1}}}}\nThen:\n{SEARCH_JSON}',
        (CATS,),
        'First:\n{"name": "lookup", "arguments": {"q": 1}}\nThen:',
    ),
    Case(
        "invalid_call_then_a_valid_call",
        f"Trying:\n{KELVIN_JSON}\nRetrying:\n{WEATHER_JSON}",
        (PARIS,),
        f"Trying:\n{KELVIN_JSON}\nRetrying:",
    ),
    Case(
        "format_sample_then_a_call",
        f"The format is:\n```json\n{SEARCH_JSON}\n```\nSo here is mine:\n```json\n"
        f"{WEATHER_JSON}\n```",
        (PARIS,),
        f"The format is:\n```json\n{SEARCH_JSON}\n```\nSo here is mine:",
    ),
    Case(
        "json_mid_sentence_then_a_call",
        f"You could send {SEARCH_JSON} yourself.\nI'll check the weather:\n{WEATHER_JSON}",
        (PARIS,),
        f"You could send {SEARCH_JSON} yourself.\nI'll check the weather:",
    ),
]

CORPUS = [*tool_replies.CORPUS, *EMBEDDED_CASES, *NEAR_MISS_CASES, *MIXED_CASES]
