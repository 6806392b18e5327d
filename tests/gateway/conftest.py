"""The store a multi-process test shares: a SQLite file, or a PostgreSQL database of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.gateway import procs


@pytest.fixture(params=["sqlite", "postgres"])
async def store_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"ONEMIN_DATA_DIR": str(tmp_path / "data")}
        return
    async with procs.postgres_database() as url:
        yield {"ONEMIN_DATABASE_URL": url}
