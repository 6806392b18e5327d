"""The command line as an operator meets it: a clear line, never a traceback, for a busy
port or a bad setting; --version; help text with defaults and no markup."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onemin_relay import __version__
from onemin_relay.cli import cli
from onemin_relay.settings import Settings, SettingsError

WIDE = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def run(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONEMIN_")}
    return subprocess.run(
        [sys.executable, "-m", "onemin_relay", *args],
        env={**clean, **WIDE, "ONEMIN_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def invoke(*args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={**WIDE, **env})
    return result.exit_code, result.output


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("serve", "--port", str(port), data_dir=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port} on 127.0.0.1 is in use; set ONEMIN_PORT or --port" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "error"])
def test_log_levels_accepted_in_any_case(level: str) -> None:
    assert Settings.from_env({"ONEMIN_LOG_LEVEL": level}).log_level == level


def test_unknown_log_level_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="ONEMIN_LOG_LEVEL must be one of debug, info"):
        Settings.from_env({"ONEMIN_LOG_LEVEL": "verbose"})


def test_unknown_log_level_is_a_usage_error(tmp_path: Path) -> None:
    done = run("serve", data_dir=tmp_path, ONEMIN_LOG_LEVEL="verbose")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ONEMIN_LOG_LEVEL must be one of debug, info, warning, error" in done.stderr
    assert "Traceback" not in done.stderr


def test_log_level_option_is_validated() -> None:
    code, output = invoke("serve", "--log-level", "verbose")
    assert code == 2
    assert "LOG_LEVEL must be one of debug, info, warning, error, got 'verbose'" in output


def test_version() -> None:
    code, output = invoke("--version")
    assert code == 0
    assert output.strip() == f"onemin-relay {__version__}"


def test_serve_help_shows_defaults_without_markup() -> None:
    code, output = invoke("serve", "--help")
    assert code == 0
    for expected in (
        "--log-level",
        "[default: 127.0.0.1]",
        "[default: 8080]",
        "[default: info]",
        "ONEMIN_PORT",
    ):
        assert expected in output
    assert "``" not in output


def test_main_help_has_no_markup() -> None:
    code, output = invoke("--help")
    assert code == 0
    assert "--version" in output
    assert "``" not in output
