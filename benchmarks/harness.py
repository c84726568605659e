"""Processes and a lean SSE client for the benchmarks (loopback only, bounded in count and time).

* :func:`demo_process` — ``jupyter streamchat demo`` in its own process;
* :func:`jupyter_process` — a Jupyter server with the extension, backends
  pointing at that demo, in its own process;
* :class:`SSEClient` — one streamed POST over a raw asyncio connection, timing
  every event on arrival.  It is deliberately small (no HTTP library): at
  20,000 events/s a heavy client would measure itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jupyter_streamchat.events import now_ms

__all__ = [
    "Proc",
    "SSEClient",
    "StreamResult",
    "byte_proxy_process",
    "cpu_seconds",
    "demo_process",
    "flood_backend_process",
    "free_port",
    "jupyter_process",
    "percentile",
]

_EMIT = re.compile(rb'"emit_ms":([0-9.]+)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    info: dict[str, Any]

    @property
    def pid(self) -> int:
        return self.process.pid


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Interrupt a child as Ctrl-C would; kill it if it has not exited within 10 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


@contextlib.contextmanager
def demo_process(max_tokens_cap: int = 200_000) -> Iterator[Proc]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_streamchat.cli",
            "demo",
            "--max-tokens-cap",
            str(max_tokens_cap),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        yield Proc(process, json.loads(line))
    finally:
        _stop(process)


@contextlib.contextmanager
def jupyter_process(backends: dict[str, Any], **streamchat: Any) -> Iterator[Proc]:
    """A Jupyter server with the extension; ``info`` has ``base`` (…/streamchat/) and ``token``."""
    token = secrets.token_hex(16)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": f"{tmp}/config",
            "JUPYTER_DATA_DIR": f"{tmp}/data",
            "JUPYTER_RUNTIME_DIR": f"{tmp}/runtime",
            "IPYTHONDIR": f"{tmp}/ipython",
        }
        Path(f"{tmp}/config").mkdir()
        config = {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_streamchat": True},
                "port": port,
                "ip": "127.0.0.1",
                "open_browser": False,
                "root_dir": tmp,
                "log_level": "WARN",
            },
            "IdentityProvider": {"token": token},
            "StreamChatApp": {
                "backends": backends,
                "demo": False,
                "discovery": False,
                **streamchat,
            },
        }
        Path(f"{tmp}/config/jupyter_server_config.json").write_text(json.dumps(config))
        args = [sys.executable, "-m", "jupyter_server"]
        if os.geteuid() == 0:
            args.append("--allow-root")
        process = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("Jupyter server did not start within 60 s")
            yield Proc(process, {"base": f"http://127.0.0.1:{port}/streamchat/", "token": token})
        finally:
            _stop(process)


@contextlib.contextmanager
def byte_proxy_process(upstream: str) -> Iterator[Proc]:
    """The bytes-only reference proxy (``byte_proxy.py``) in front of ``upstream``."""
    port = free_port()
    script = Path(__file__).with_name("byte_proxy.py")
    process = subprocess.Popen(
        [sys.executable, str(script), upstream, str(port)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        yield Proc(process, {"base": f"http://127.0.0.1:{port}/"})
    finally:
        process.kill()
        process.wait(10)


@contextlib.contextmanager
def flood_backend_process(tokens: int) -> Iterator[Proc]:
    """``flood_backend.py``: an OpenAI-style backend that is never the bottleneck."""
    port = free_port()
    script = Path(__file__).with_name("flood_backend.py")
    process = subprocess.Popen(
        [sys.executable, str(script), str(port), str(tokens)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        yield Proc(process, {"openai": f"http://127.0.0.1:{port}/v1"})
    finally:
        process.kill()
        process.wait(10)


@dataclass
class StreamResult:
    """What one stream saw: per event arrival time and backend emit time (ms)."""

    status: int = 0
    arrivals: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    text_events: int = 0
    bytes: int = 0
    done: bool = False
    error: str | None = None


class _Reader(asyncio.Protocol):
    """HTTP/1.1 response with a chunked (or close-delimited) SSE body, parsed on arrival."""

    def __init__(self, result: StreamResult, finished: asyncio.Future[None], marker: bytes) -> None:
        self.result = result
        self.finished = finished
        self.marker = marker
        self.head = b""
        self.chunked = False
        self.raw = b""
        self.body = b""
        self.in_body = False

    def data_received(self, data: bytes) -> None:
        now = now_ms()
        self.result.bytes += len(data)
        if not self.in_body:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, rest = self.head.partition(b"\r\n\r\n")
            self.result.status = int(head.split(b" ", 2)[1])
            self.chunked = b"chunked" in head.lower()
            self.in_body = True
            data = rest
        if self.chunked:
            self.raw += data
            while True:
                line_end = self.raw.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(self.raw[:line_end].split(b";")[0], 16)
                if len(self.raw) < line_end + 2 + size + 2:
                    break
                self.body += self.raw[line_end + 2 : line_end + 2 + size]
                self.raw = self.raw[line_end + 2 + size + 2 :]
                if size == 0:
                    self._events(now)
                    self.result.done = True
                    if not self.finished.done():
                        self.finished.set_result(None)
                    return
        else:
            self.body += data
        self._events(now)

    def _events(self, now: float) -> None:
        body = self.body
        start = 0
        while True:
            end = body.find(b"\n\n", start)
            if end < 0:
                break
            event = body[start:end]
            start = end + 2
            if not event or event.startswith(b":"):
                continue
            self.result.events += 1
            if self.marker in event:
                self.result.text_events += 1
                self.result.arrivals.append(now)
                match = _EMIT.search(event)
                if match:
                    self.result.latencies.append(now - float(match.group(1)))
        self.body = body[start:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


class SSEClient:
    """POST a JSON body and time the SSE events of the response."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, marker: bytes = b'"content"'
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path
        self.headers = headers or {}
        self.marker = marker

    async def post(self, body: dict[str, Any], timeout: float = 120.0) -> StreamResult:
        loop = asyncio.get_running_loop()
        result = StreamResult()
        finished: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda: _Reader(result, finished, self.marker), self.host, self.port
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = json.dumps(body).encode()
        head = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            "Accept: text/event-stream",
            f"Content-Length: {len(payload)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        try:
            await asyncio.wait_for(finished, timeout)
        except asyncio.TimeoutError:
            result.error = "timeout"
        finally:
            transport.close()
        return result
