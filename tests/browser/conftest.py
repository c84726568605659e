"""Fixtures of the real-browser tests: Chromium, the demo process, screenshots on failure.

Run them in their own pytest process (``python -m pytest -m browser tests/browser``):
Playwright's sync API must not share a process with jupyter_server's pytest plugin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import CHROMIUM, CHROMIUM_ARGS, DemoProcess, JupyterProcess
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def demo() -> Iterator[DemoProcess]:
    """``jupyter streamchat demo`` in its own process; every server's backends point at it."""
    with DemoProcess.run() as process:
        yield process


@pytest.fixture(scope="module")
def context(browser: Browser) -> Iterator[BrowserContext]:
    """One browser context per module: JupyterLab's bundles stay cached between tests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page; on failure its screenshot, console and the server log go to test-artifacts/."""
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
    yield page
    if _failed(request):
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # the page may be gone; keep the other artifacts
            console.append(f"[screenshot failed] {exc}")
        (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(console))
        for fixture in ("server",):
            server = request.node.funcargs.get(fixture)
            if isinstance(server, JupyterProcess):
                (ARTIFACTS / f"{name}.server.log").write_text(server.log.read_text()[-20000:])
    page.close()
