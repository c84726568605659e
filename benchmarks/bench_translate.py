"""The bridge's translation work per token, without any I/O (pure CPU, best of N).

One OpenAI-style SSE chunk in an HTTP/1.1 chunked body → HTTP framing → SSE →
JSON → dialect → ``Token`` event → the browser leg's SSE bytes.  This is what
the bridge adds over a bytes-only proxy; everything else (reading and writing
sockets) both pay.

    python benchmarks/bench_translate.py [--tokens 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

from jupyter_streamchat.bridge.encode import sse_event
from jupyter_streamchat.decode.emitter import Emitter
from jupyter_streamchat.decode.h1 import ResponseParser
from jupyter_streamchat.decode.stream import StreamDecoder
from jupyter_streamchat.dialects import get_dialect
from jupyter_streamchat.events import now_ms

FRAME = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"fast",'
    b'"choices":[{"index":0,"delta":{"content":" hello"},"finish_reason":null}],'
    b'"emit_ms":1795764890301.0042}\n\n'
)
CHUNK = b"%x\r\n" % len(FRAME) + FRAME + b"\r\n"


def per_token_us(tokens: int) -> float:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    emitter = Emitter()
    emitter.start()
    emitter.drain()
    decoder = StreamDecoder(get_dialect("openai-chat"), emitter)
    out = 0
    started = time.perf_counter()
    for _ in range(tokens):
        for piece in parser.feed(CHUNK):
            for event in decoder.feed(piece, now_ms()):  # type: ignore[arg-type]
                out += len(sse_event(event, now_ms(), "stream-id"))
    elapsed = time.perf_counter() - started
    assert out > 0
    return elapsed / tokens * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.tokens <= 10_000_000 or not 1 <= args.repeat <= 50:
        parser.error("--tokens must be 1-10,000,000 and --repeat 1-50")
    runs = [per_token_us(args.tokens) for _ in range(args.repeat)]
    median = sorted(runs)[len(runs) // 2]
    print(f"translation per token: best {min(runs):.2f} us, median {median:.2f} us")


if __name__ == "__main__":
    main()
