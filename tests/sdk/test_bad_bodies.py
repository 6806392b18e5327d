"""Bodies that are not UTF-8 are a 400 in each protocol, never a 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.conftest import Stack

BAD = b'{"model":"gpt-4o-mini","prompt":"\xff\xfe","messages":[{"role":"user","content":"\xff"}]}'


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/anthropic/v1/messages",
        "/v1/images/generations",
        "/v1/responses",
        "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
    ],
)
def test_invalid_utf8_is_a_400(stack: Stack, api_key: str, path: str) -> None:
    request = urllib.request.Request(
        stack.relay_url + path, data=BAD, method="POST",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    with raised.value as answer:
        body = json.loads(answer.read())
    assert raised.value.code == 400, body
    assert stack.upstream_requests(api_key) == []
