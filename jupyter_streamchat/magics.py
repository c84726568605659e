"""``%%chat``: a chat cell answering the cell's text (``%load_ext jupyter_streamchat``).

::

    %%chat demo-sse --model slow
    Tell me about the White Rabbit.

The cell's output is a :class:`~jupyter_streamchat.widget.ChatWidget` (also
``_`` / ``Out[n]``), which keeps the conversation going: type a follow-up in it.
"""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .widget import ChatWidget

__all__ = ["chat_magic", "load_ipython_extension", "parse_chat_line"]

USAGE = (
    "%%chat [BACKEND] [--model M] [--leg auto|sse|ws] [--path auto|bridge|kernel] "
    "[--max-tokens N] [--system TEXT] [--title TEXT]"
)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting (a kernel must not exit)."""

    def error(self, message: str) -> Any:
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%%chat", add_help=False, usage=USAGE)
    parser.add_argument(
        "backend", nargs="?", default="", help="backend name (default: the bridge's)"
    )
    parser.add_argument("--model", "-m", default="", help="model for the backend")
    parser.add_argument("--leg", choices=("auto", "sse", "ws"), default="auto")
    parser.add_argument("--path", choices=("auto", "bridge", "kernel"), default="auto")
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--system", default="", help="system prompt")
    parser.add_argument("--title", default="", help="heading shown above the chat")
    return parser


def parse_chat_line(line: str) -> dict[str, Any]:
    """The :class:`ChatWidget` keyword arguments a ``%%chat`` line asks for."""
    try:
        args = _parser().parse_args(shlex.split(line))
        if args.max_tokens is not None and args.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"%%chat {line.strip()!r}: {exc}; usage: {USAGE}") from None
    options = {"max_tokens": args.max_tokens} if args.max_tokens is not None else {}
    return {
        "backend": args.backend,
        "model": args.model,
        "leg": args.leg,
        "path": args.path,
        "options": options,
        "system_prompt": args.system,
        "title": args.title,
    }


def chat_magic(line: str, cell: str) -> ChatWidget:
    """Make a chat cell and send it the cell's text (the widget is the cell's output)."""
    from .widget import ChatWidget

    widget = ChatWidget(**parse_chat_line(line))
    if cell.strip():
        widget.send(cell.strip())
    return widget


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magic_function(chat_magic, magic_kind="cell", magic_name="chat")
