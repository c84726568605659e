"""A real Jupyter server with the extension (jupyter_server's pytest plugin)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from io import StringIO
from typing import Any

import httpx
import pytest

# jupyter_server's pytest plugin, for this directory only: ``pytest_plugins`` is refused in a
# conftest below the rootdir, and the demo tests next door must not get its hooks.  Fixtures
# defined below override the plugin's (``jp_asyncio_loop``, ``jp_server_config``).
from pytest_jupyter.jupyter_server import *  # noqa: F403

from jupyter_streamchat.demo.stats import DemoStats
from jupyter_streamchat.server.app import StreamChatApp


@pytest.fixture
def jp_asyncio_loop(_function_scoped_runner: asyncio.Runner) -> asyncio.AbstractEventLoop:
    """Run the Jupyter server on pytest-asyncio's loop, so async tests can talk to it."""
    return _function_scoped_runner.get_loop()


@pytest.fixture
def streamchat_config() -> dict[str, Any]:
    """``StreamChatApp`` config for a test; override in a module to change it."""
    return {"demo": True, "discovery": False}


@pytest.fixture
def jp_server_config(streamchat_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_streamchat": True}},
        "StreamChatApp": streamchat_config,
    }


@pytest.fixture
def app(jp_serverapp: Any) -> StreamChatApp:
    """The running extension app."""
    apps = jp_serverapp.extension_manager.extension_apps["jupyter_streamchat"]
    (found,) = apps
    assert isinstance(found, StreamChatApp)
    return found


@pytest.fixture
def base(http_server: Any, jp_http_port: int, jp_base_url: str) -> str:
    """``http://127.0.0.1:PORT{base_url}streamchat/``."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}streamchat/"


@pytest.fixture
def auth(jp_serverapp: Any) -> dict[str, str]:
    return {"Authorization": f"token {jp_serverapp.identity_provider.token}"}


@pytest.fixture
def demo_stats(app: StreamChatApp) -> Callable[[], Any]:
    """Read the demo doors' counters from their ``/stats`` page, as a user would."""

    async def read() -> dict[str, Any]:
        await app.bridge.ready()
        async with httpx.AsyncClient() as client:
            response = await client.get(app._demo_servers.stats)
        return response.json()["doors"]  # type: ignore[no-any-return]

    return read


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the test (generous timeouts: 2 shared cores)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as c:
        yield c


@pytest.fixture
async def counters(app: StreamChatApp) -> DemoStats:
    """The in-process demo doors' counters (the same numbers ``/stats`` serves), for
    polling at millisecond resolution."""
    await app.bridge.ready()
    stats = app._demo_servers.counters
    assert isinstance(stats, DemoStats)
    return stats


@pytest.fixture
def ws_url(base: str) -> str:
    return "ws" + base.removeprefix("http") + "api/chat/ws"


@pytest.fixture
def logs(app: StreamChatApp) -> Iterator[StringIO]:
    """Every log record of the process at every level, as ``name LEVEL message`` lines: from
    the root logger and from loggers that do not propagate to it (traitlets apps have their own)."""
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)
