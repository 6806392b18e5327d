"""Settings from ONEMIN_* variables: defaults, conversion, and failures at start-up."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from onemin_relay.settings import Settings, SettingsError


def test_defaults_are_safe() -> None:
    settings = Settings.from_env({})
    assert settings.upstream_url == "https://api.1min.ai"
    assert settings.asset_url == "https://asset.1min.ai"
    assert settings.host == "127.0.0.1"
    assert settings.api_key is None


def test_values_are_read_and_converted() -> None:
    settings = Settings.from_env(
        {
            "ONEMIN_PORT": "9000",
            "ONEMIN_READ_TIMEOUT": "12.5",
            "ONEMIN_UPSTREAM_URL": "http://127.0.0.1:1/",
            "ONEMIN_API_KEY": "k",
            "ONEMIN_FETCH_ALLOW_HOSTS": "Images.Local, cdn.lan",
        }
    )
    assert settings.port == 9000
    assert settings.read_timeout == 12.5
    assert settings.upstream_base == "http://127.0.0.1:1"
    assert settings.api_key == "k"
    assert settings.fetch_allow_set == frozenset({"images.local", "cdn.lan"})


def test_overrides_win() -> None:
    assert Settings.from_env({"ONEMIN_PORT": "9000"}, port=9001).port == 9001


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ONEMIN_PORT", "eighty"),
        ("ONEMIN_PORT", "70000"),
        ("ONEMIN_READ_TIMEOUT", "0"),
        ("ONEMIN_UPSTREAM_URL", "api.1min.ai"),
        ("ONEMIN_UPSTREAM_RETRIES", "-1"),
    ],
)
def test_bad_values_fail_at_start_up(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_repr_never_shows_the_api_key() -> None:
    settings = Settings.from_env({"ONEMIN_API_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in repr(settings)


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    """Every knob is documented where operators look, with its default."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `ONEMIN_")}
    rows |= {
        name.strip(" `")
        for line in readme.splitlines()
        if line.startswith("| `ONEMIN_")
        for name in line.split("|")[1].split("/")
    }
    missing = [
        f"ONEMIN_{field.name.upper()}"
        for field in dataclasses.fields(Settings)
        if f"ONEMIN_{field.name.upper()}" not in rows
    ]
    assert not missing, missing
