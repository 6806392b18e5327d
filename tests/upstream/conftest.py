"""Fixtures for upstream tests: an emulator on loopback and a plain client session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from onemin_relay.emulator import create_app


@pytest.fixture
async def emulator() -> AsyncIterator[TestServer]:
    server = TestServer(create_app())
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
