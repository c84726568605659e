"""No bridge (a Jupyter server without the extension, like VS Code or Colab): the same
widget streams through the kernel comm, says so, and still stops the upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_harness import DemoProcess, JupyterProcess, NotebookPage, http_json, wait_for
from chat_checks import (
    SLOW_GAP_MS,
    assert_incremental,
    chat_cell,
    check_reload_shows_history,
    expected_reply,
    wait_no_open_streams,
)
from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(demo: DemoProcess) -> Iterator[JupyterProcess]:
    # The kernel reads StreamChatApp.backends from the same config, so it streams from
    # the demo process too; the server itself does not load the extension.
    with JupyterProcess.run("lab", demo.backends, extension=False) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_kernels(server: JupyterProcess) -> Iterator[None]:
    yield
    server.shutdown_kernels()


def test_the_bridge_is_really_off(server: JupyterProcess) -> None:
    with pytest.raises(OSError, match="404"):
        http_json(server.url("streamchat/api/backends"), server.auth)


def test_tokens_stream_through_the_kernel_and_the_widget_says_so(
    page: Page, server: JupyterProcess
) -> None:
    server.write_notebook("kernel.ipynb", [chat_cell(model="slow", options={"max_tokens": 16})])
    nb = NotebookPage(page, server).open("kernel.ipynb")
    nb.run_cell(0)
    root = nb.widget(0)
    assert nb.wait_path(root) == "kernel"
    assert root.locator(".streamchat-path").inner_text().strip() == "kernel"
    assert root.locator(".streamchat-leg").is_disabled()
    # The selector is filled by the kernel (backend names only, no URLs with secrets).
    wait_for(lambda: root.locator(".streamchat-backend option").count() >= 4, 10, "backends")
    nb.observe(root, 1)
    prompt = "Tell me about the Mock Turtle."
    nb.type_prompt(root, prompt)
    assert nb.wait_status(root, 1, ["done", "error", "cancelled"]) == "done"
    reply = nb.reply(root, 1)
    assert reply.get_attribute("data-path") == "kernel"
    assert_incremental(nb.samples(1), 16, SLOW_GAP_MS)
    assert reply.locator(".streamchat-content").inner_text().strip() == (
        expected_reply(prompt, 16).strip()
    )
    stats = reply.locator(".streamchat-stats").inner_text()
    assert "demo-sse · openai · kernel" in stats
    assert "16 tok" in stats
    # The browser aligned its clock with the kernel's (clock_ping / clock_pong).
    assert "comm " in stats
    assert "clocks not aligned" not in stats, stats
    check_reload_shows_history(nb, server, "kernel.ipynb")


def test_stop_cancels_the_kernel_stream_and_its_upstream(
    page: Page, server: JupyterProcess, demo: DemoProcess
) -> None:
    server.write_notebook("kstop.ipynb", [chat_cell(model="slow", options={"max_tokens": 400})])
    nb = NotebookPage(page, server).open("kstop.ipynb")
    nb.run_cell(0)
    root = nb.widget(0)
    assert nb.wait_path(root) == "kernel"
    nb.type_prompt(root, "Talk for a long while.")
    wait_for(lambda: nb.tokens_shown(root, 1) >= 3, 20, "three tokens shown")
    assert demo.open_streams() >= 1
    root.locator(".streamchat-stop").click()
    assert nb.wait_status(root, 1, ["cancelled", "done", "error"]) == "cancelled"
    wait_no_open_streams(demo)
    assert len(nb.reply(root, 1).locator(".streamchat-content").inner_text().strip()) > 5
