"""ChatWidget in JupyterLab under a base URL (``/user/x/``, as JupyterHub serves it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_harness import DemoProcess, JupyterProcess, NotebookPage
from chat_checks import chat_cell, stream_one_reply
from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(demo: DemoProcess) -> Iterator[JupyterProcess]:
    with JupyterProcess.run("lab", demo.backends, base_url="/user/x/") as server:
        yield server


@pytest.mark.parametrize("leg", ["sse", "ws"])
def test_a_reply_streams_under_a_base_url(page: Page, server: JupyterProcess, leg: str) -> None:
    name = f"base_{leg}.ipynb"
    server.write_notebook(name, [chat_cell(model="slow", leg=leg, options={"max_tokens": 12})])
    nb = NotebookPage(page, server).open(name)
    assert "/user/x/lab/" in page.url
    nb.run_cell(0)
    stream_one_reply(nb, "Who stole the tarts?", 12, leg)
    server.shutdown_kernels()
