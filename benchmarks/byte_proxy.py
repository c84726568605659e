"""A bytes-only streaming proxy, the way jupyter-server-proxy relays a response.

tornado's HTTP client with a ``streaming_callback`` that writes and flushes
every chunk it reads: no parsing, no translation.  The benchmark runs it as a
reference point measured in the same run as the bridge.

    python benchmarks/byte_proxy.py UPSTREAM_BASE_URL PORT
"""

from __future__ import annotations

import asyncio
import sys

from tornado import httpclient, web


class Relay(web.RequestHandler):
    def initialize(self, upstream: str) -> None:
        self.upstream = upstream

    async def post(self, path: str) -> None:
        self.request.connection.stream.set_nodelay(True)  # type: ignore[attr-defined]

        def on_chunk(chunk: bytes) -> None:
            self.write(chunk)
            self.flush()

        def on_header(line: str) -> None:
            if line.lower().startswith("content-type:"):
                self.set_header("Content-Type", line.split(":", 1)[1].strip())

        request = httpclient.HTTPRequest(
            self.upstream + path, method="POST", body=self.request.body,
            headers={"Content-Type": "application/json"},
            streaming_callback=on_chunk, header_callback=on_header, request_timeout=300,
        )  # fmt: skip
        await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)


async def main() -> None:
    upstream, port = sys.argv[1], int(sys.argv[2])
    # tornado queues requests past max_clients (10 by default); a proxy must not.
    httpclient.AsyncHTTPClient.configure(None, max_clients=10_000)
    app = web.Application([(r"/(.*)", Relay, {"upstream": upstream})])
    app.listen(port, "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
