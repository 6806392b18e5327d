"""A relay with the dashboard on, and one headless Chromium (Debian's) shared by a module's tests.

Playwright drives the system browser (``executable_path``), so nothing is downloaded; each
test gets a fresh browser context (its own cookies). Screenshots of every page land in
``build/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.admin.conftest import Relay, serve

TOKEN = "dash-Adm1n-t0ken-7f3c9e"  # distinctive, so a leak anywhere is easy to find
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    yield from serve(tmp_path_factory.mktemp("dashboard-data"), admin_token=TOKEN)


# Module-wide, not session-wide: Playwright's sync API keeps an event loop running in the main
# thread while it is open, and pytest-asyncio's tests in later modules could not run theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport={"width": 1280, "height": 900})
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def log_in(page: Page, relay: Relay, token: str = TOKEN) -> None:
    page.goto(relay.url + "/dashboard")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
