"""Every example in README.md works against ``serve --demo``, as a reader would run it.

The README's text is the source of truth: its fenced ``sh`` and ``python`` blocks are read
here and run as written, with only the relay's address (``http://127.0.0.1:8080``) swapped
for the test relay's, ``.venv/bin/onemin-relay`` for this interpreter's module, and the
placeholder key id for the id of the key the README's own ``keys create`` made. Curl runs
with ``-sS --fail-with-body``, so an error status fails the example. A README edit that breaks
an example fails this test; a new kind of shell command must be taught to it first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.emulator.demo_relay import ADMIN_TOKEN, demo_env, demo_relay
from tests.gateway.procs import Process

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULT_URL = "http://127.0.0.1:8080"
PLACEHOLDER_KEY_ID = "key_0a1b2c3d4e5f"
KEY_ID = re.compile(r"\bkey_[0-9a-f]{12}\b")
CLI = ".venv/bin/onemin-relay "
# Commands shown but not run here: the set-up (`make test` is this very suite) and the
# command-line synopsis, whose brackets and ellipses are notation.
NOT_RUN = ("make ", "onemin-relay ")
# What no answer may show: the relay's prompt additions, the echo emulator, a crash.
LEAKS = ("<tool_calls>", "Tools:\n", "Respond with JSON only", "Echo:", "Traceback")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    kind: str  # "curl", "cli" or "python"
    code: str
    line: int  # where its block starts in README.md

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.code.splitlines()[0]}"


def readme_examples(text: str) -> Iterator[Example]:
    """The runnable examples, in README order; fails on a shell command of an unknown kind."""
    for block in _FENCE.finditer(text):
        language, body = block.group(1), block.group(2)
        line = text.count("\n", 0, block.start()) + 1
        if language == "python":
            yield Example("python", body, line)
        elif language == "sh":
            for command in shell_commands(body):
                if command.startswith("curl "):
                    yield Example("curl", command, line)
                elif command.startswith(CLI):
                    yield Example("cli", command, line)
                else:
                    assert command.startswith(NOT_RUN), f"README.md:{line}: {command!r}"


def shell_commands(block: str) -> list[str]:
    """A block's commands, with backslash-continued lines joined; blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_the_readme_has_the_examples_this_test_promises() -> None:
    examples = list(readme_examples(README.read_text()))
    kinds = {example.kind for example in examples}
    assert kinds == {"curl", "cli", "python"}, kinds
    python = "\n".join(e.code for e in examples if e.kind == "python")
    for feature in ("tools=", "response_format", "anthropic", "genai", "stream=True"):
        assert feature in python, f"no README python example uses {feature}"
    for example in examples:
        if example.kind != "cli":
            assert DEFAULT_URL in example.code, f"{example}: no relay URL to point at the test"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with demo_relay(tmp_path_factory.mktemp("readme")) as started:
        yield started


def test_every_readme_example_runs_in_demo_mode(relay: Process, tmp_path: Path) -> None:
    assert shutil.which("curl"), "the README's curl examples need curl"
    env = {
        **os.environ,
        **demo_env(relay.log.parent),
        "ONEMIN_AI_KEY": "any-key-works-in-demo-mode",
        "ONEMIN_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    created_key: str | None = None
    for example in readme_examples(README.read_text()):
        code = example.code.replace(DEFAULT_URL, relay.url)
        if created_key is not None:
            code = code.replace(PLACEHOLDER_KEY_ID, created_key)
        output = run(example.kind, code, env, tmp_path)
        for leak in LEAKS:
            assert leak not in output, f"{example} printed {leak!r}:\n{output}"
        if example.kind == "cli" and " keys create " in code and created_key is None:
            found = KEY_ID.search(output)
            assert found, f"{example}: no key id in\n{output}"
            created_key = found.group()


def run(kind: str, code: str, env: dict[str, str], cwd: Path) -> str:
    """Run one example; its output (stdout and stderr); fails with both if it fails."""
    if kind == "python":
        argv = [sys.executable, "-c", code]
    elif kind == "curl":
        argv = ["bash", "-c", code.replace("curl ", "curl -sS --fail-with-body --max-time 30 ", 1)]
    else:
        argv = ["bash", "-c", code.replace(CLI, f"{sys.executable} -m onemin_relay ", 1)]
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"exit {done.returncode} from:\n{code}\n--- output ---\n{output}"
    assert done.stdout.strip(), f"no output from:\n{code}"
    return output
