"""Shared fixtures.  Tests talk to real servers over loopback sockets only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jupyter_streamchat.demo.servers import DemoServers


@pytest.fixture
async def demo() -> AsyncIterator[DemoServers]:
    """The four demo doors, in this test's event loop."""
    async with DemoServers() as servers:
        yield servers


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_configure(config: pytest.Config) -> None:
    # Fail loudly rather than hang: every test has a time limit (pyproject: timeout).
    asyncio.set_event_loop_policy(None)
