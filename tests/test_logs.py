"""configure_logging: JSON lines that carry an exception's traceback as text, and readable
lines on a terminal."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from yarl import URL

from onemin_relay.logs import configure_logging, redact_url


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def log_an_exception() -> None:
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logging.getLogger("onemin_relay.test").exception("unhandled error")


def test_exception_is_rendered_as_traceback_text_in_json() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    log_an_exception()
    output = stream.getvalue()
    assert "<traceback object" not in output
    (line,) = output.splitlines()
    record = json.loads(line)
    assert record["event"] == "unhandled error"
    assert record["level"] == "error"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in record["exception"]
    assert "exc_info" not in record


def test_terminal_gets_readable_lines() -> None:
    stream = Terminal()
    configure_logging("info", stream=stream)
    log_an_exception()
    output = stream.getvalue()
    assert not output.startswith("{")
    assert "[error" in output and "unhandled error" in output
    assert "Traceback (most recent call last):" in output
    assert "ZeroDivisionError: division by zero" in output
    assert "<traceback object" not in output
    assert "\x1b[" not in output  # no colours


def test_level_filters() -> None:
    stream = io.StringIO()
    configure_logging("WARNING", stream=stream, json=True)
    logging.getLogger("x").info("quiet")
    logging.getLogger("x").warning("loud")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]


def test_query_values_are_masked_but_a_known_few() -> None:
    url = URL("/gemini/v1beta/models/m:streamGenerateContent?alt=sse&key=k-123&mine=s-456")
    known = frozenset({"gemini", "v1"})
    line = redact_url(url, known)
    assert "alt=sse" in line and "k-123" not in line and "s-456" not in line
    assert redact_url(URL("/rk-onemin-abc/models?limit=5"), known) == "/***/models?limit=5"
