"""What the browser tests check, shared by JupyterLab and Notebook 7, at / and under a base URL."""

from __future__ import annotations

import json
from typing import Any

from browser_harness import DemoProcess, JupyterProcess, NotebookPage, wait_for

from jupyter_streamchat.demo.text import generate, request_seed

SLOW_GAP_MS = 125.0
"""The demo's ``slow`` profile: a token every 125 ms."""


def expected_reply(prompt: str, max_tokens: int) -> str:
    """The demo model's reply to a one-message conversation (deterministic)."""
    return "".join(generate(request_seed([("user", prompt)]), max_tokens, complete=False))


def chat_cell(backend: str = "demo-sse", **traits: Any) -> str:
    """Source of a cell that shows a chat widget bound to ``chat``."""
    args = ", ".join([f"backend={backend!r}", *(f"{k}={v!r}" for k, v in traits.items())])
    return f"from jupyter_streamchat import ChatWidget\nchat = ChatWidget({args})\nchat"


def assert_incremental(samples: list[tuple[float, int, int]], tokens: int, gap_ms: float) -> None:
    """Tokens appeared one after another over time, not in one burst.

    ``samples`` are ``(page ms, tokens shown, text length)`` at each change the
    page saw.  At most one DOM update per frame, so with a token every
    ``gap_ms`` nearly every token is its own update; on 2 shared cores a few
    may share a frame, so the bound is on counts and the overall span.
    """
    counts = sorted({n for _, n, _ in samples if n >= 0})
    assert counts, "the reply never showed a token"
    assert counts[-1] == tokens, f"showed {counts[-1]} tokens at the end, expected {tokens}"
    assert len(counts) >= 0.75 * tokens, (
        f"only {len(counts)} distinct token counts for {tokens} tokens: arrived in bursts "
        f"({counts})"
    )
    span = samples[-1][0] - samples[0][0]
    assert span >= 0.5 * (tokens - 1) * gap_ms, (
        f"{tokens} tokens shown within {span:.0f} ms; the backend paced them {gap_ms} ms apart"
    )
    lengths = [c for _, _, c in samples]
    assert lengths == sorted(lengths), "the shown text shrank while streaming"


def stream_one_reply(nb: NotebookPage, prompt: str, max_tokens: int, leg: str) -> Any:
    """Type a prompt into the chat of cell 0; check it streams token by token; return the widget."""
    root = nb.widget(0)
    assert nb.wait_path(root) == "bridge"
    nb.observe(root, 1)
    nb.type_prompt(root, prompt)
    assert nb.wait_status(root, 1, ["done", "error", "cancelled"]) == "done"
    reply = nb.reply(root, 1)
    assert reply.get_attribute("data-leg") == leg
    assert reply.get_attribute("data-path") == "bridge"
    assert_incremental(nb.samples(1), max_tokens, SLOW_GAP_MS)
    text = reply.locator(".streamchat-content").inner_text().strip()
    assert text == expected_reply(prompt, max_tokens).strip()
    stats = reply.locator(".streamchat-stats").inner_text()
    assert "TTFT" in stats
    assert f"{max_tokens} tok" in stats
    assert f"demo-sse · openai · bridge · {leg}" in stats
    assert "(clocks not aligned)" not in stats, stats
    return root


def saved_history(server: JupyterProcess, name: str) -> list[dict[str, Any]]:
    """The ChatWidget ``history`` in the notebook file's saved widget state."""
    nb = server.read_notebook(name)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    histories = [
        model["state"]["history"]
        for model in state.values()
        if model.get("model_name") == "AnyModel" and "history" in model.get("state", {})
    ]
    assert len(histories) == 1, f"expected one chat in the widget state, found {len(histories)}"
    return list(histories[0])


def check_reload_shows_history(nb: NotebookPage, server: JupyterProcess, name: str) -> None:
    """Save with widget state; no secret in the file; reopened on a new kernel, the chat shows."""
    nb.save()
    raw = (server.root / name).read_text()
    assert server.token not in raw, "the Jupyter token is in the saved notebook"
    for cookie in nb.page.context.cookies():
        assert cookie["value"] not in raw, f"the {cookie['name']} cookie is in the saved notebook"
    history = saved_history(server, name)
    assert [(m["role"], m.get("status")) for m in history] == [
        ("user", "done"),
        ("assistant", "done"),
    ]
    reply_text = history[1]["content"]
    assert history[1]["timing"]["events"], "no recorded timings"
    json.dumps(history)  # plain JSON
    server.shutdown_kernels()
    nb.page.reload()
    nb.wait_kernel()
    root = nb.widget(0)
    reply = nb.reply(root, 1)
    reply.wait_for()
    assert reply.get_attribute("data-status") == "done"
    assert reply.locator(".streamchat-content").inner_text().strip() == reply_text.strip()
    assert "TTFT" in reply.locator(".streamchat-stats").inner_text()


def wait_no_open_streams(demo: DemoProcess, timeout: float = 10) -> None:
    wait_for(lambda: demo.open_streams() == 0, timeout, "demo open_streams falls to 0")
