"""The README's LiteLLM section, run as written: its Python example in-process against the
emulator, and LiteLLM's proxy started from its ``config.yaml``, driven by the openai SDK."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import Stack
from tests.gateway.procs import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PROXY_START_SECONDS = 120.0  # LiteLLM's proxy imports a great deal before it listens


def litellm_blocks(language: str) -> list[str]:
    """The fenced ``language`` blocks of the README's LiteLLM section."""
    text = README.read_text()
    start = text.index("## Use it from LiteLLM")
    section = text[start : text.index("\n## ", start + 1)]
    return [m.group(2) for m in _FENCE.finditer(section) if m.group(1) == language]


def env_for(stack: Stack, api_key: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ONE_MIN_API_KEY": api_key,
        "ONEMIN_UPSTREAM_URL": stack.emulator_url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        **extra,
    }


def test_readme_python_example_runs(stack: Stack, api_key: str, tmp_path: Path) -> None:
    (example,) = litellm_blocks("py")[:1]
    stack.set_faults(api_key, replies=["Hi!", "1, 2, 3", '{"name": "Oslo", "country": "Norway"}'])
    done = subprocess.run(
        [sys.executable, "-c", example],
        env=env_for(stack, api_key),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Hi!" in done.stdout and "1, 2, 3" in done.stdout
    assert "name='Oslo' country='Norway'" in done.stdout


@pytest.fixture
def proxy(stack: Stack, api_key: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """LiteLLM's proxy on a loopback port, from the README's config.yaml: (URL, master key)."""
    (config,) = litellm_blocks("yaml")
    (tmp_path / "config.yaml").write_text(config)
    port, master_key = free_port(), "sk-" + secrets.token_hex(16)
    cli = Path(sys.executable).parent / "litellm"
    args = [str(cli), "--config", "config.yaml", "--host", "127.0.0.1", "--port", str(port)]
    with open(tmp_path / "proxy.log", "wb") as log:
        process = subprocess.Popen(
            args,
            cwd=tmp_path,
            env=env_for(stack, api_key, LITELLM_MASTER_KEY=master_key),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(url, process, tmp_path / "proxy.log")
        yield url, master_key
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_until_live(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + PROXY_START_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the proxy exited:\n{log.read_text()[-3000:]}"
        try:
            with openai.OpenAI(base_url=url, api_key="-", max_retries=0, timeout=1) as client:
                client.get("/health/liveliness", cast_to=str)
            return
        except openai.APIError:
            time.sleep(0.25)
    raise TimeoutError(f"LiteLLM's proxy did not start:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(PROXY_START_SECONDS + 60)
def test_litellm_proxy_serves_one_min_models(
    proxy: tuple[str, str], stack: Stack, api_key: str
) -> None:
    url, master_key = proxy
    client = openai.OpenAI(base_url=url + "/v1", api_key=master_key, max_retries=0)
    hello = [{"role": "user", "content": "hello proxy"}]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=hello)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "Echo: hello proxy"
    assert reply.usage is not None and reply.usage.total_tokens > 0

    stream = client.chat.completions.create(
        model="gpt-4o-online",
        messages=hello,  # type: ignore[arg-type]
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: hello proxy [web search]"
    online = stack.chat_requests(api_key)[-1]["body"]
    assert online["model"] == "gpt-4o"
    assert online["promptObject"]["settings"]["webSearchSettings"]["webSearch"] is True

    stack.set_faults(api_key, status=401)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=hello)  # type: ignore[arg-type]
