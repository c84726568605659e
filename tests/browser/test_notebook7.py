"""ChatWidget in Notebook 7, at ``/`` and under a base URL (as JupyterHub serves it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_harness import DemoProcess, JupyterProcess, NotebookPage, wait_for
from chat_checks import (
    chat_cell,
    check_reload_shows_history,
    stream_one_reply,
    wait_no_open_streams,
)
from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["/", "/user/x/"], ids=["root", "base_url"])
def server(request: pytest.FixtureRequest, demo: DemoProcess) -> Iterator[JupyterProcess]:
    with JupyterProcess.run("notebook", demo.backends, base_url=request.param) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_kernels(server: JupyterProcess) -> Iterator[None]:
    yield
    server.shutdown_kernels()


def test_a_reply_streams_and_the_chat_survives_a_reload(page: Page, server: JupyterProcess) -> None:
    leg = "ws" if server.base_url == "/" else "sse"
    server.write_notebook(
        "nb7.ipynb", [chat_cell(model="slow", leg=leg, options={"max_tokens": 16})]
    )
    nb = NotebookPage(page, server).open("nb7.ipynb")
    nb.run_cell(0)
    stream_one_reply(nb, "What did the Hatter say?", 16, leg)
    check_reload_shows_history(nb, server, "nb7.ipynb")


def test_stop_cancels_the_upstream(page: Page, server: JupyterProcess, demo: DemoProcess) -> None:
    server.write_notebook("nb7stop.ipynb", [chat_cell(model="slow", options={"max_tokens": 400})])
    nb = NotebookPage(page, server).open("nb7stop.ipynb")
    nb.run_cell(0)
    root = nb.widget(0)
    nb.wait_path(root)
    nb.type_prompt(root, "Talk for a long while.")
    wait_for(lambda: nb.tokens_shown(root, 1) >= 2, 20, "two tokens shown")
    assert demo.open_streams() >= 1
    root.locator(".streamchat-stop").click()
    assert nb.wait_status(root, 1, ["cancelled", "done", "error"]) == "cancelled"
    wait_no_open_streams(demo)
