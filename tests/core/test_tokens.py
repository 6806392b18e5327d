from __future__ import annotations

import ast
import asyncio
import gzip
import hashlib
import importlib.resources
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken

from onemin_relay.core import tokens
from onemin_relay.core.tokens import (
    MAX_EXACT_CHARS,
    MAX_WHITESPACE_RUN,
    OFFLOAD_CHARS,
    count_tokens,
    count_tokens_async,
    encoding_name_for,
    seed_cache,
    warm_up,
)

HELLO = "Hello, 1min.ai gateway!"
O200K_FILE = "fb374d419588a4632f3f557e76b4b70aebbca790"  # sha1 of the o200k_base blob URL
CL100K_FILE = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
PROSE = "The quick brown fox jumps over the lazy dog; 1min.ai relays it. "


@pytest.fixture(autouse=True)
def _restore_cache_env() -> Iterator[None]:
    """seed_cache sets TIKTOKEN_CACHE_DIR; put the previous value back after each test."""
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    yield
    if saved is None:
        os.environ.pop("TIKTOKEN_CACHE_DIR", None)
    else:
        os.environ["TIKTOKEN_CACHE_DIR"] = saved


def test_known_ids_and_counts() -> None:
    warm_up()
    assert tiktoken.get_encoding("o200k_base").encode(HELLO) == [
        13225, 11, 220, 16, 1493, 75584, 49275, 0,
    ]  # fmt: skip
    assert count_tokens(HELLO, "gpt-4o") == 8
    assert count_tokens(HELLO, "openai/gpt-4o-mini") == 8
    assert count_tokens(HELLO, "gpt-4") == 8
    assert count_tokens("", "gpt-4o") == 0


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("openai/gpt-4-32k", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("GPT-4", "cl100k_base"),
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("claude-sonnet-4-20250514", "o200k_base"),
        ("anthropic/claude-3-5-haiku", "o200k_base"),
        ("gemini-2.5-flash", "o200k_base"),
        ("deepseek-chat", "o200k_base"),
    ],
)
def test_encoding_choice_per_model(model: str, encoding: str) -> None:
    assert encoding_name_for(model) == encoding


def test_special_token_text_counts_as_plain_text() -> None:
    warm_up()
    text = "before <|endoftext|> after <|endofprompt|>"
    for model, name in [("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")]:
        plain = tiktoken.get_encoding(name).encode(text, disallowed_special=())
        assert count_tokens(text, model) == len(plain), f"{model}: special tokens are user text"


OFFLINE_SCRIPT = """
import os, socket, sys
import tiktoken.load

def no_network(*args, **kwargs):
    raise AssertionError("tried to reach the network")

tiktoken.load.read_file = no_network
socket.socket.connect = no_network
from onemin_relay.core.tokens import count_tokens
print((count_tokens("Hello, 1min.ai gateway!", "gpt-4o"), count_tokens("Hello", "gpt-4")))
print(sorted(os.listdir(os.environ["TIKTOKEN_CACHE_DIR"])))
print(sorted(m for m in sys.modules if m.startswith(("aiohttp", "onemin_relay."))))
"""


def test_loads_offline_into_a_fresh_cache_dir(tmp_path: Path) -> None:
    cache = tmp_path / "fresh"
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    counts, files, imported = (ast.literal_eval(line) for line in result.stdout.splitlines())
    assert counts == (8, 1)
    assert files == sorted([O200K_FILE, CL100K_FILE]), "seeded under tiktoken's cache keys"
    assert all(m.startswith("onemin_relay.core") for m in imported), f"core imports {imported}"


def test_seed_cache_rewrites_a_wrong_file_and_keeps_a_good_one(tmp_path: Path) -> None:
    assert seed_cache(str(tmp_path)) == str(tmp_path)
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path)
    good, bad = tmp_path / O200K_FILE, tmp_path / CL100K_FILE
    good_inode = good.stat().st_ino
    bad.write_bytes(b"truncated")
    seed_cache(str(tmp_path))
    assert good.stat().st_ino == good_inode, "a file with the right hash is left alone"
    assert hashlib.sha256(good.read_bytes()).hexdigest() == O200K_SHA256
    assert bad.stat().st_size > 1_000_000, "a file with the wrong hash is rewritten"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([O200K_FILE, CL100K_FILE])


def test_seed_cache_default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    assert seed_cache() == str(tmp_path / "onemin-relay-tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "chosen"))
    assert seed_cache() == str(tmp_path / "chosen")


def test_seed_cache_refuses_a_corrupt_bundled_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "tokenizer_data").mkdir(parents=True)
    for name in ("o200k_base", "cl100k_base"):
        (bundle / "tokenizer_data" / f"{name}.tiktoken.gz").write_bytes(gzip.compress(b"junk"))
    monkeypatch.setattr(importlib.resources, "files", lambda package: bundle)
    with pytest.raises(RuntimeError, match="corrupt"):
        seed_cache(str(tmp_path / "cache"))
    assert list((tmp_path / "cache").iterdir()) == [], "nothing half-written is left behind"


def test_estimate_beyond_the_exact_cap() -> None:
    head = (PROSE * (MAX_EXACT_CHARS // len(PROSE) + 1))[:MAX_EXACT_CHARS]
    text = head + "x" * 4001
    assert count_tokens(text, "gpt-4o") == count_tokens(head, "gpt-4o") + 1001


def test_long_whitespace_run_does_not_panic() -> None:
    # o200k_base raises a Rust PanicException (not an Exception) on ~1M spaces in one run.
    count = count_tokens(" " * 12 * MAX_WHITESPACE_RUN + "x", "gpt-4o")
    assert count == pytest.approx(12 * count_tokens(" " * MAX_WHITESPACE_RUN, "gpt-4o"), abs=12)
    below = "a" + "\t" * MAX_WHITESPACE_RUN + "b"
    exact = tiktoken.get_encoding("o200k_base").encode_ordinary(below)
    assert count_tokens(below, "gpt-4o") == len(exact), "shorter runs are counted exactly"


async def test_async_count_of_small_input_equals_sync() -> None:
    warm_up()
    text = PROSE * 10
    assert len(text) < OFFLOAD_CHARS
    assert await count_tokens_async(text, "gpt-4o") == count_tokens(text, "gpt-4o")


async def test_async_count_of_large_input_keeps_the_loop_responsive() -> None:
    warm_up()
    text = (PROSE * (5_000_000 // len(PROSE) + 1))[:5_000_000]
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = len(ticks)
    try:
        count = await count_tokens_async(text, "gpt-4o")
    finally:
        task.cancel()
    assert len(ticks) - started >= 5, "the event loop was blocked while counting 5 MB"
    assert count == count_tokens(text, "gpt-4o")


def test_an_encoding_keeps_no_python_copy_of_its_ranks() -> None:
    """The Rust encoder has its own; the Python table (~27 MB for o200k_base) is freed, and
    counting is exact without it."""
    assert count_tokens("hello world", "gpt-4o") == 2
    assert tokens._encoding("o200k_base")._mergeable_ranks == {}


def test_counting_now_never_loads_an_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream being cancelled counts in place: with no encoding loaded it estimates rather
    than stall the event loop loading one; with one loaded it counts exactly."""
    monkeypatch.setattr(tokens, "_encodings", {})
    assert tokens.count_tokens_now("hello world, how are you", "gpt-4o") == 6  # 24 chars / 4
    assert tokens._encodings == {}
    monkeypatch.undo()
    assert tokens.count_tokens_now("hello world", "gpt-4o") == count_tokens("hello world", "gpt-4o")
