"""The routes file: format, inheritance, clear errors, and built-in routes from the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from onemin_relay.gateway.route_policy import Floor
from onemin_relay.gateway.routing import resolve_route
from onemin_relay.gateway.routing_config import (
    POSTURES,
    RouteBook,
    RoutesFileError,
    builtin_models,
    load_routes,
)
from tests.gateway.test_routing_resolve import emulator_catalog

EXAMPLE = """
[projects.default]
posture = "cost-saver"

[projects.default.routes.balanced]
incumbent = "anthropic/claude-sonnet-4-5"
candidates = ["openai/gpt-4o-mini", "deepseek/deepseek-chat"]
fallbacks = ["google/gemini-2.5-pro"]
floor = 0.95

[projects.support.routes.cost-saver]
candidates = ["mistral/open-mistral-nemo"]
min_samples = 5
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "routes.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_example_file_and_its_inheritance(tmp_path: Path) -> None:
    book = load_routes(write(tmp_path, EXAMPLE), str(tmp_path))
    balanced = book.route("default", "balanced")
    assert balanced.incumbent == "anthropic/claude-sonnet-4-5"
    assert balanced.floor == Floor(0.95, 0.95, 30), "unset fields come from the posture"
    auto = book.route("default", "auto")
    assert auto.floor == POSTURES["cost-saver"], "auto follows the project's posture"
    support = book.route("support", "cost-saver")
    assert support.candidates == ("mistral/open-mistral-nemo",)
    assert support.floor.min_samples == 5
    assert book.route("support", "balanced").incumbent == "anthropic/claude-sonnet-4-5"
    assert book.route("nobody", "balanced") == balanced, "unknown projects use the default"
    assert book.projects == ["default", "support"]


def test_data_dir_file_is_read_when_present_else_builtins(tmp_path: Path) -> None:
    assert load_routes(None, str(tmp_path)).route(None, "balanced").incumbent is None
    write(tmp_path, EXAMPLE)
    assert load_routes(None, str(tmp_path)).route(None, "balanced").incumbent is not None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[projects.default.routes.balanced]\nfloor = 1.5\n", "floor must be between 0 and 1"),
        ("[projects.default.routes.fast]\nfloor = 0.5\n", "fast"),
        ("[projects.default.routes.auto]\nspeed = 1\n", "speed"),
        ('[projects.default.routes.auto]\nincumbent = "onemin/auto"\n', "not aliases"),
        ('[projects.default]\nposture = "reckless"\n', "posture"),
        ("[projects.default\n", "not valid TOML"),
        ("[projects.default.routes.auto]\nmin_samples = 0\n", "min_samples"),
    ],
)
def test_a_bad_file_is_a_clear_error(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(RoutesFileError) as caught:
        load_routes(write(tmp_path, text), str(tmp_path))
    assert says in str(caught.value) and "routes.toml" in str(caught.value)


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RoutesFileError, match="cannot read"):
        load_routes(str(tmp_path / "nope.toml"), str(tmp_path))


def test_builtin_routes_pick_by_provider_and_price() -> None:
    incumbent, candidates, fallbacks = builtin_models(emulator_catalog().models)
    assert incumbent == "gpt-4o"
    assert candidates == ("open-mistral-nemo", "gpt-4o-mini", "deepseek-chat")
    assert fallbacks == ("claude-sonnet-4-5-20250929", "gemini-2.5-pro")


def test_route_models_resolve_pinned_ids_and_drop_unknown_ones(tmp_path: Path) -> None:
    text = EXAMPLE.replace('"deepseek/deepseek-chat"', '"deepseek/deepseek-chat", "nope"')
    book = load_routes(write(tmp_path, text), str(tmp_path))
    models = resolve_route(book.route("default", "balanced"), emulator_catalog())
    assert models.incumbent == "claude-sonnet-4-5-20250929"
    assert models.candidates == ("gpt-4o-mini", "deepseek-chat"), "cheapest first"
    assert models.fallbacks == ("gemini-2.5-pro",)
    assert RouteBook().route(None, "auto").floor == POSTURES["balanced"]


def test_the_readme_example_is_a_valid_routes_file(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    book = load_routes(write(tmp_path, example), str(tmp_path))
    assert book.route("support", "cost-saver").candidates == ("mistral/open-mistral-nemo",)
    assert book.route("default", "balanced").incumbent == "openai/gpt-4o"
