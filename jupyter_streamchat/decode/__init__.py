"""Sans-I/O decoding: bytes or messages of a reply in, events out.

:mod:`~.stream` is loaded on first use: it imports the dialects, and they
import :mod:`~.emitter` from this package, so importing it here would make
``import jupyter_streamchat.dialects`` circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .emitter import Emitter
from .ndjson import NDJSONDecoder
from .sse import SSEDecoder, SSEMessage

if TYPE_CHECKING:
    from .stream import DecoderLimits, StreamDecoder

__all__ = [
    "DecoderLimits",
    "Emitter",
    "NDJSONDecoder",
    "SSEDecoder",
    "SSEMessage",
    "StreamDecoder",
]


def __getattr__(name: str) -> Any:
    if name in ("DecoderLimits", "StreamDecoder"):
        from . import stream

        return getattr(stream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
