"""A backend that is never the bottleneck: a pre-encoded OpenAI SSE reply, sent in 64 KiB writes.

    python benchmarks/flood_backend.py PORT TOKENS

Any POST gets ``TOKENS`` chat.completion.chunk events and ``[DONE]`` as fast as
the socket takes them, so a flood through the bridge measures the bridge.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

WRITE = 64 << 10


def body(tokens: int) -> bytes:
    now = time.time() * 1000.0
    frames = []
    for i in range(tokens):
        chunk = {
            "id": "chatcmpl-flood",
            "object": "chat.completion.chunk",
            "model": "flood",
            "emit_ms": now,
            "choices": [{"index": 0, "delta": {"content": f" t{i}"}, "finish_reason": None}],
        }
        frames.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)


async def main() -> None:
    port, tokens = int(sys.argv[1]), int(sys.argv[2])
    reply = body(tokens)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:  # one reply per connection, then close
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % len(reply)
            )
            for start in range(0, len(reply), WRITE):
                writer.write(reply[start : start + WRITE])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
