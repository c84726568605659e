"""Stream model output into Jupyter.

* :func:`stream` / :func:`stream_sync` — events from any backend, in any kernel;
* the ``jupyter_streamchat`` server extension — the streaming bridge;
* ``ChatWidget`` and the ``%%chat`` magic — chat cells (``%load_ext jupyter_streamchat``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    StreamChatError,
    StreamError,
    UnknownBackend,
)
from .events import Done, Error, Event, Heartbeat, Start, Token, Usage

# Imported on first use: they pull in the I/O libraries (httpx, grpc, websockets),
# which the sans-I/O layers must not load (``tests/test_sansio.py``).
_LAZY = {
    "Backend": ".backends",
    "ChatWidget": ".widget",
    "complete": ".api",
    "configure": ".registry",
    "stream": ".api",
    "stream_sync": ".api",
}

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "ChatWidget",
    "ConfigError",
    "Done",
    "Error",
    "Event",
    "Heartbeat",
    "Start",
    "StreamChatError",
    "StreamError",
    "Token",
    "UnknownBackend",
    "Usage",
    "__version__",
    "complete",
    "configure",
    "stream",
    "stream_sync",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jupyter_streamchat' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .api import complete, stream, stream_sync
    from .backends import Backend
    from .registry import configure
    from .widget import ChatWidget


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_streamchat`` registers the ``%%chat`` cell magic."""
    from .magics import load_ipython_extension as load

    load(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import StreamChatApp

    return [{"module": "jupyter_streamchat", "app": StreamChatApp}]
