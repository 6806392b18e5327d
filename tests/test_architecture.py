"""The import rules of the design: core is pure, surfaces never reach upstream, the emulator
stands alone. Checked in a fresh interpreter so other tests' imports cannot hide a leak."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "onemin_relay"


def imports_of(package: str) -> set[str]:
    found: set[str] = set()
    for path in (SRC / package).rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_core_imports_no_io_library_and_nothing_of_ours_outside_core() -> None:
    code = (
        "import sys, onemin_relay.core.types, onemin_relay.core.errors, onemin_relay.core.prompt, "
        "onemin_relay.core.tokens, onemin_relay.core.structured; "
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'yarl')))"
    )
    leaked = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert leaked.stdout.strip() == "", f"core pulled in: {leaked.stdout}"
    ours = {m for m in imports_of("core") if m.startswith("onemin_relay")}
    assert all(m.startswith("onemin_relay.core") for m in ours), ours


def test_a_relay_without_redis_or_postgresql_imports_neither() -> None:
    """Clients of stores that are not configured stay out of the process (memory, start-up)."""
    code = (
        "import sys, onemin_relay.app, onemin_relay.cli; "
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('redis', 'asyncpg')))"
    )
    leaked = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert leaked.stdout.strip() == "", f"the relay pulled in: {leaked.stdout}"


def test_surfaces_never_import_upstream() -> None:
    assert not {m for m in imports_of("surfaces") if m.startswith("onemin_relay.upstream")}


def test_emulator_imports_nothing_from_the_relay() -> None:
    ours = {m for m in imports_of("emulator") if m.startswith("onemin_relay")}
    assert all(m.startswith("onemin_relay.emulator") for m in ours), ours


def test_the_relay_never_imports_litellm() -> None:
    """LiteLLM is an optional extra: only ``onemin_relay.litellm`` may import it."""
    code = "import sys, onemin_relay.app, onemin_relay.cli; print('litellm' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False", "the relay imported litellm"
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "litellm"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            assert not any(n.split(".")[0] == "litellm" for n in names), path
