"""Bodies that are not UTF-8 are a 400 in each protocol, never a 500."""

from __future__ import annotations

import json
import socket
import time
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


def test_a_body_trickled_too_slowly_is_cut_off(stack: Stack, api_key: str) -> None:
    with stack.another_relay(body_timeout=1.0) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n"
                + f"Authorization: Bearer {api_key}\r\n\r\n".encode()
                + b"{"
            )
            started = time.monotonic()
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
            elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:60]
    assert elapsed < 5, "the connection is let go soon after the deadline"
