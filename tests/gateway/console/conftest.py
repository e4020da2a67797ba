"""The console in a real browser: Debian's chromium driven by Playwright, against a
real ``kiteline serve`` process on a free loopback port.

Screenshots of every page a test visits are kept: in ``$KITELINE_SCREENSHOTS`` when
set, otherwise in the session's pytest temporary folder (printed at the end).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from gateway.demo.workspace import Workspace
from tests.serving import free_port, running, serve_command

CHROMIUM = os.environ.get("KITELINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("KITELINE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Module-scoped, not session-scoped: Playwright's sync API keeps an event loop running
# on the thread while it lives, and later test files on the same worker call asyncio.run.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: `apt-get install -y chromium` (make test does)")
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    expect.set_options(timeout=15_000)
    with closing(playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)) as made:
        yield made


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    with closing(
        browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    ) as made:
        # Generous waits: the machine running the suite may be busy with other tests.
        made.set_default_timeout(30_000)
        yield made


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    opened = context.new_page()
    violations: list[str] = []
    # The browser reports Content-Security-Policy violations on its console: no page
    # may cause one (no inline script or style anywhere).
    opened.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield opened
    assert violations == []


@pytest.fixture
def server(workspace: Workspace, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = serve_command(workspace.config_path, port)
    with running(command, port, tmp_path / "serve.log") as url:
        yield url


class Shots:
    def __init__(self, folder: Path, test: str) -> None:
        self.folder = folder
        self.test = test

    def __call__(self, page: Page, name: str) -> Path:
        path = self.folder / f"{self.test}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shot(screenshots: Path, request: pytest.FixtureRequest) -> Shots:
    return Shots(screenshots, request.node.name.removeprefix("test_"))


def sign_in(page: Page, server: str, token: str) -> None:
    page.goto(f"{server}/console/login")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
