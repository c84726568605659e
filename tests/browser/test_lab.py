"""ChatWidget in JupyterLab at ``/``, over the bridge: what a user sees and does."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_harness import CutProxy, DemoProcess, JupyterProcess, NotebookPage, wait_for
from chat_checks import (
    chat_cell,
    check_reload_shows_history,
    expected_reply,
    stream_one_reply,
    wait_no_open_streams,
)
from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(demo: DemoProcess) -> Iterator[JupyterProcess]:
    with JupyterProcess.run("lab", demo.backends) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_kernels(server: JupyterProcess) -> Iterator[None]:
    yield
    server.shutdown_kernels()


@pytest.mark.parametrize("leg", ["sse", "ws"])
def test_tokens_appear_one_by_one_and_history_survives_a_reload(
    page: Page, server: JupyterProcess, leg: str
) -> None:
    name = f"stream_{leg}.ipynb"
    server.write_notebook(name, [chat_cell(model="slow", leg=leg, options={"max_tokens": 16})])
    nb = NotebookPage(page, server).open(name)
    nb.run_cell(0)
    stream_one_reply(nb, "Tell me about the White Rabbit.", 16, leg)
    check_reload_shows_history(nb, server, name)


@pytest.mark.parametrize("leg", ["sse", "ws"])
def test_stop_cancels_the_upstream_keeps_the_text_and_retry_answers(
    page: Page, server: JupyterProcess, demo: DemoProcess, leg: str
) -> None:
    name = f"stop_{leg}.ipynb"
    server.write_notebook(name, [chat_cell(model="slow", leg=leg, options={"max_tokens": 400})])
    nb = NotebookPage(page, server).open(name)
    nb.run_cell(0)
    root = nb.widget(0)
    nb.wait_path(root)
    nb.type_prompt(root, "Talk for a long while.")
    wait_for(lambda: nb.tokens_shown(root, 1) >= 3, 20, "three tokens shown")
    assert demo.open_streams() >= 1
    root.locator(".streamchat-stop").click()
    assert nb.wait_status(root, 1, ["cancelled", "done", "error"]) == "cancelled"
    wait_no_open_streams(demo)
    reply = nb.reply(root, 1)
    shown = reply.locator(".streamchat-content").inner_text().strip()
    assert len(shown) > 5, "the partial text was not kept"
    assert expected_reply("Talk for a long while.", 400).startswith(shown)
    assert reply.locator(".streamchat-error").get_attribute("data-code") == "cancelled"
    # Retry replaces the stopped reply with a new one.
    root.locator(".streamchat-retry").click()
    wait_for(lambda: nb.tokens_shown(root, 1) >= 2, 20, "the retried reply streams")
    root.locator(".streamchat-stop").click()
    assert nb.wait_status(root, 1, ["cancelled", "done", "error"]) == "cancelled"
    assert root.locator(".streamchat-message").count() == 2
    wait_no_open_streams(demo)


def test_the_kernel_stays_free_while_a_reply_streams(page: Page, server: JupyterProcess) -> None:
    server.write_notebook(
        "free.ipynb",
        [
            chat_cell(model="slow", options={"max_tokens": 40}),
            "import time\ntime.sleep(0.2)\nprint('the other cell ran')",
        ],
    )
    nb = NotebookPage(page, server).open("free.ipynb")
    nb.run_cell(0)
    root = nb.widget(0)
    nb.wait_path(root)
    nb.type_prompt(root, "Tell me a long story.")
    wait_for(lambda: nb.tokens_shown(root, 1) >= 2, 20, "the reply streams")
    nb.run_cell(1)
    nb.wait_cell_done(1)
    assert "the other cell ran" in nb.output_text(1)
    during = nb.tokens_shown(root, 1)
    assert nb.reply(root, 1).get_attribute("data-status") == "streaming"
    assert during < 40
    wait_for(lambda: nb.tokens_shown(root, 1) > during, 10, "tokens keep coming after the cell")
    assert nb.wait_status(root, 1, ["done"]) == "done"


@pytest.mark.parametrize("leg", ["sse", "ws"])
def test_a_dropped_connection_resumes_without_losing_or_repeating_text(
    page: Page, server: JupyterProcess, leg: str
) -> None:
    name = f"drop_{leg}.ipynb"
    server.write_notebook(name, [chat_cell(model="slow", leg=leg, options={"max_tokens": 24})])
    proxy = CutProxy(server.port)
    try:
        nb = NotebookPage(page, server).open(name, port=proxy.port)
        nb.run_cell(0)
        root = nb.widget(0)
        nb.wait_path(root)
        nb.observe(root, 1)
        prompt = "Tell me about the Queen."
        nb.type_prompt(root, prompt)
        wait_for(lambda: nb.tokens_shown(root, 1) >= 5, 20, "five tokens shown")
        route = "streamchat/api/chat/ws" if leg == "ws" else "POST /"
        assert proxy.cut(route) >= 1, "no streaming connection to cut"
        wait_for(lambda: nb.tokens_shown(root, 1) >= 10, 20, "tokens after the cut")
        assert proxy.cut(route if leg == "ws" else "streamchat/api/chat/") >= 1, "no resumed stream"
        assert nb.wait_status(root, 1, ["done", "error", "cancelled"]) == "done"
        reply = nb.reply(root, 1)
        assert reply.locator(".streamchat-content").inner_text().strip() == (
            expected_reply(prompt, 24).strip()
        )
        # Tokens that arrived while no client was attached may come merged into one
        # event on resume (arrivals < chunks), but every backend token is counted once.
        assert "24 tok" in reply.locator(".streamchat-stats").inner_text()
        assert len({n for _, n, _ in nb.samples(1)}) >= 10, "not streamed token by token"
    finally:
        proxy.close()


def test_send_from_code_the_magic_and_replay(page: Page, server: JupyterProcess) -> None:
    server.write_notebook(
        "code.ipynb",
        [
            chat_cell(model="steady", options={"max_tokens": 12}),
            "reply = await chat.send('Hello from Python')\n"
            "print(reply['status'], reply['path'], len(chat.history))",
            "%load_ext jupyter_streamchat",
            "%%chat demo-ws --model steady --max-tokens 8\nWhat did the Cat say?",
            "chat.replay(speed=0.5)",
        ],
    )
    nb = NotebookPage(page, server).open("code.ipynb")
    nb.run_cell(0)
    root = nb.widget(0)
    nb.wait_path(root)
    # An awaited send: the view takes the prompt and streams it over the bridge.
    nb.run_cell(1)
    nb.wait_cell_done(1, 30)
    assert nb.output_text(1).strip() == "done bridge 2"
    assert nb.reply(root, 1).locator(".streamchat-content").inner_text().strip() == (
        expected_reply("Hello from Python", 12).strip()
    )
    # %%chat renders a chat answering the cell's text.
    nb.run_cell(2)
    nb.wait_cell_done(2)
    nb.run_cell(3)
    magic = nb.widget(3)
    assert nb.wait_status(magic, 1, ["done", "error"]) == "done"
    user = magic.locator('.streamchat-message[data-role="user"] .streamchat-content')
    assert user.inner_text().strip() == "What did the Cat say?"
    assert "demo-ws" in nb.reply(magic, 1).locator(".streamchat-stats").inner_text()
    # replay() plays the recorded reply again, with its timing.
    nb.run_cell(4)
    replay = root.locator(".streamchat-replay")
    replay.wait_for()
    page.wait_for_function(
        "el => el.dataset.status === 'done'", arg=replay.element_handle(), timeout=20_000
    )
    assert replay.locator(".streamchat-content").inner_text().strip() == (
        expected_reply("Hello from Python", 12).strip()
    )


def test_a_prompt_the_kernel_streams_grows_in_the_view(page: Page, server: JupyterProcess) -> None:
    """No view takes it (``claim_seconds=0``, as when the kernel cannot hear the page):
    the kernel streams it and the view shows ``history`` growing, about ten times a second."""
    server.write_notebook(
        "headless.ipynb",
        [
            chat_cell(model="slow", options={"max_tokens": 24}, claim_seconds=0.0),
            "reply = await chat.send('Tell me about the Duchess.')\n"
            "print(reply['status'], reply['path'], reply['timing']['arrivals'])",
        ],
    )
    nb = NotebookPage(page, server).open("headless.ipynb")
    nb.run_cell(0)
    root = nb.widget(0)
    nb.wait_path(root)
    nb.run_cell(1)
    nb.reply(root, 1).wait_for()
    nb.observe(root, 1)
    assert root.get_attribute("data-busy") == "true"
    nb.wait_cell_done(1, 30)
    assert nb.output_text(1).strip() == "done kernel 24"
    assert nb.wait_status(root, 1, ["done"]) == "done"
    reply = nb.reply(root, 1)
    assert reply.get_attribute("data-path") == "kernel"
    text = reply.locator(".streamchat-content").inner_text().strip()
    assert text == expected_reply("Tell me about the Duchess.", 24).strip()
    lengths = sorted({c for _, _, c in nb.samples(1)})
    # ~3 s of streaming, history written at most every 100 ms: many steps, far fewer than 24 x 10.
    assert len(lengths) >= 8, f"the reply did not grow in the view: {lengths}"
    assert "kernel" in reply.locator(".streamchat-stats").inner_text()


def test_the_quickstart_opens_on_a_working_chat(page: Page, server: JupyterProcess) -> None:
    """What the README's main command opens: its first cell is a chat that answers."""
    source = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"
    shutil.copy(source, server.root / "quickstart.ipynb")
    nb = NotebookPage(page, server).open("quickstart.ipynb")
    nb.run_cell(0)
    root = nb.widget(0)
    assert nb.wait_path(root) == "bridge"
    assert root.locator(".streamchat-backend").input_value() == "demo-sse"
    nb.type_prompt(root, "Hello!")
    assert nb.wait_status(root, 1, ["done", "error", "cancelled"]) == "done"
    assert nb.reply(root, 1).locator(".streamchat-content").inner_text().strip()


def test_a_failed_stream_shows_the_error_keeps_the_text_and_retries(
    page: Page, server: JupyterProcess
) -> None:
    server.write_notebook(
        "fail.ipynb", [chat_cell(model="steady:drop@6", options={"max_tokens": 20})]
    )
    nb = NotebookPage(page, server).open("fail.ipynb")
    nb.run_cell(0)
    root = nb.widget(0)
    nb.wait_path(root)
    prompt = "Tell me about the Caterpillar."
    nb.type_prompt(root, prompt)
    assert nb.wait_status(root, 1, ["done", "error", "cancelled"]) == "error"
    reply = nb.reply(root, 1)
    error = reply.locator(".streamchat-error")
    assert error.get_attribute("data-code") == "upstream_closed"
    assert "mid-stream" in error.locator(".streamchat-error-message").inner_text()
    kept = reply.locator(".streamchat-content").inner_text().strip()
    assert kept == expected_reply(prompt, 6).strip(), "the partial text is kept"
    # Pick a model without the fault, then Retry: the failed reply is replaced.
    root.locator(".streamchat-model").select_option("steady")
    error.locator(".streamchat-retry").click()
    assert nb.wait_status(root, 1, ["done", "error", "cancelled"]) == "done"
    assert nb.reply(root, 1).locator(".streamchat-content").inner_text().strip() == (
        expected_reply(prompt, 20).strip()
    )
    assert root.locator(".streamchat-message").count() == 2
