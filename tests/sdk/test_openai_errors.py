"""Every error path of the OpenAI surface, as the official SDK sees it."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request

import openai
import pytest

from tests.conftest import HEADER_TIMEOUT, Stack

HELLO = [{"role": "user", "content": "hello"}]


def raw_post(stack: Stack, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(f"{stack.relay_url}{path}", data=body, method="POST")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


def test_unknown_model_streaming_is_404_before_the_stream(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=HELLO, stream=True)


def test_disabled_model_is_hidden_and_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="claude-3-5-sonnet-20240620", messages=HELLO)


def test_image_model_on_chat_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="dall-e-3", messages=HELLO)
    assert caught.value.code == "model_not_supported"


def test_missing_key_is_401(stack: Stack) -> None:
    status, body = raw_post(
        stack,
        "/v1/chat/completions",
        json.dumps({"model": "gpt-4o-mini", "messages": HELLO}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"


def test_x_api_key_header_is_accepted(stack: Stack, api_key: str) -> None:
    status, body = raw_post(
        stack,
        "/v1/chat/completions",
        json.dumps({"model": "gpt-4o-mini", "messages": HELLO}).encode(),
        {"Content-Type": "application/json", "x-api-key": api_key},
    )
    assert status == 200, body
    assert stack.chat_requests(api_key)[0]["api_key"] == api_key


def test_key_rejected_upstream_is_401(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, status=401)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert api_key not in str(caught.value.body), "a key must never be echoed back"


def test_upstream_429_is_429_with_retry_after(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, status=429, retry_after=30)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "30"
    assert len(stack.chat_requests(api_key)) == 1, "a long Retry-After is left to the client"


def test_short_429_is_retried_by_the_relay(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, status=429, retry_after=0.05, status_times=1)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].message.content == "Echo: hello"
    assert len(stack.chat_requests(api_key)) == 2


@pytest.mark.parametrize("as_text", [False, True])
def test_upstream_500_is_502_and_not_retried(
    client: openai.OpenAI, stack: Stack, api_key: str, as_text: bool
) -> None:
    stack.set_faults(api_key, status=500, status_body_text=as_text)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(stack.chat_requests(api_key)) == 1, "a call 1min.ai may have billed is not retried"


def test_upstream_503_is_503_and_safe_to_retry(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, status=503)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 503
    assert "x-should-retry" not in caught.value.response.headers, "1min.ai did not process it"


def test_failed_record_is_an_error(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, record_failed=True)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 502


def test_invalid_json_is_400(stack: Stack, api_key: str) -> None:
    status, body = raw_post(
        stack, "/v1/chat/completions", b"{not json", {"Authorization": f"Bearer {api_key}"}
    )
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": 5, "messages": HELLO}, "model"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
        ),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ""}]}, "messages"),
    ],
)
def test_bad_request_names_the_field(stack: Stack, api_key: str, payload: dict, param: str) -> None:
    status, body = raw_post(
        stack,
        "/v1/chat/completions",
        json.dumps(payload).encode(),
        {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    assert status == 400, body
    assert body["error"]["param"] == param


def test_deeply_nested_body_is_400(stack: Stack, api_key: str) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [], "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    status, _ = raw_post(
        stack, "/v1/chat/completions", body, {"Authorization": f"Bearer {api_key}"}
    )
    assert status == 400


def test_oversized_body_is_413(stack: Stack, api_key: str) -> None:
    size = stack.settings.max_body_bytes + 1024
    status, body = raw_post(
        stack, "/v1/chat/completions", b" " * size, {"Authorization": f"Bearer {api_key}"}
    )
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


def test_unknown_path_is_404_in_openai_envelope(stack: Stack) -> None:
    status, body = raw_post(stack, "/v1/nothing-here", b"{}", {})
    assert status == 404
    assert body["error"]["message"]


def test_keys_never_logged(
    client: openai.OpenAI, stack: Stack, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack.set_faults(api_key, error_after_chunks=1)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=HELLO)
    relay_logs = [r.getMessage() for r in caplog.records if "/_emulator/" not in r.getMessage()]
    leaks = [message for message in relay_logs if api_key in message]
    assert caplog.records, "the relay logs requests"
    assert not leaks


def test_oversized_header_never_echoes_the_key(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-LEAKCHECK" + "x" * 9000
    host, port = stack.relay_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\n"
            + f"Authorization: Bearer {secret}\r\n".encode()
            + b"Content-Length: 2\r\n\r\n{}"
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400"), answer[:80]
    assert b"LEAKCHECK" not in answer
    assert not [r for r in caplog.records if "LEAKCHECK" in r.getMessage() or r.exc_info]


def test_connection_that_trickles_headers_is_closed(stack: Stack) -> None:
    """A client that never finishes its headers must not hold a connection (slowloris)."""
    host, port = stack.relay_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\n")
        started = time.monotonic()
        assert conn.recv(1024) == b"", "the relay closes the connection"
        elapsed = time.monotonic() - started
    assert elapsed < HEADER_TIMEOUT + 2


def test_complete_requests_are_not_cut_by_the_header_deadline(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    stack.set_faults(api_key, latency_ms=(HEADER_TIMEOUT + 0.3) * 1000)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].message.content == "Echo: hello"


def test_the_reason_for_a_502_reaches_the_log(
    client: openai.OpenAI, stack: Stack, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    stack.set_faults(api_key, status=500)
    with caplog.at_level(logging.WARNING), pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "onemin_relay.app"]
    assert any("502" in line and "upstream_error" in line for line in lines), lines
    assert not [line for line in lines if api_key in line]
