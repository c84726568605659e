"""``%%chat``: parsing its line, registering it, and a real kernel answering a chat cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import jupyter_streamchat
from jupyter_streamchat.demo.text import generate, request_seed
from jupyter_streamchat.errors import ConfigError
from jupyter_streamchat.magics import chat_magic, parse_chat_line


def test_the_line_names_backend_model_and_options() -> None:
    assert parse_chat_line(
        "demo-ws --model slow --max-tokens 40 --system 'Be brief.' --title Story"
    ) == {
        "backend": "demo-ws",
        "model": "slow",
        "leg": "auto",
        "path": "auto",
        "options": {"max_tokens": 40},
        "system_prompt": "Be brief.",
        "title": "Story",
    }
    assert parse_chat_line("")["backend"] == ""
    assert parse_chat_line("-m steady --leg sse --path kernel")["path"] == "kernel"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("--leg pigeon", "invalid choice: 'pigeon'"),
        ("--max-tokens 0", "at least 1"),
        ("--max-tokens many", "invalid int value"),
        ("--frobnicate", "unrecognized arguments: --frobnicate"),
        ("one two", "unrecognized arguments: two"),
        ("--model 'unclosed", "No closing quotation"),
    ],
)
def test_a_bad_line_says_what_and_how(line: str, says: str) -> None:
    with pytest.raises(ConfigError, match="usage: %%chat") as info:
        parse_chat_line(line)
    assert says in str(info.value)


def test_load_ext_registers_the_cell_magic() -> None:
    registered: list[tuple[Any, str, str]] = []

    class FakeShell:
        def register_magic_function(self, func: Any, magic_kind: str, magic_name: str) -> None:
            registered.append((func, magic_kind, magic_name))

    jupyter_streamchat.load_ipython_extension(FakeShell())
    assert registered == [(chat_magic, "cell", "chat")]


async def test_the_magic_makes_a_chat_and_sends_the_cell() -> None:
    chat = chat_magic("demo-sse --model instant --max-tokens 4", "\n  Hello there  \n")
    try:
        assert chat.backend == "demo-sse"
        assert chat.options == {"max_tokens": 4}
        assert [r.text for r in chat._order] == ["Hello there"]
    finally:
        for request in chat._order:
            request.future.cancel()
        chat.close()


def test_a_chat_cell_in_a_real_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``%load_ext`` + ``%%chat`` in an ipykernel, no browser: the kernel answers the cell."""
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))  # demo backends only
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_streamchat"),
        nbformat.v4.new_code_cell("%%chat demo-ndjson --model instant --max-tokens 6\nHello there"),
        nbformat.v4.new_code_cell(
            "chat = _\n"
            "(reply,) = await chat.wait()\n"
            "print(reply['status'], reply['path'], repr(reply['content']))"
        ),
    ]
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert nb.cells[1].outputs[0]["output_type"] == "execute_result"
    assert "application/vnd.jupyter.widget-view+json" in nb.cells[1].outputs[0]["data"]
    text = "".join(generate(request_seed([("user", "Hello there")]), 6, complete=False))
    assert nb.cells[2].outputs[0]["text"].strip() == f"done kernel {text!r}"
